"""The picture that goes with an event (``mqtt.publish_images``): pure, one function.

What leaves the box is chosen in the config (``mqtt.snapshots.what``):

- ``face``: the event's face, cropped with a margin (the default: the least of the
  scene);
- ``frame_blur``: the whole frame, scaled to ``max_width``, blurred everywhere except the
  event's face (where it happened, without showing who else was there);
- ``frame``: the whole frame, scaled to ``max_width`` (everything the camera saw).

The JPEG is capped at ``max_bytes``: when it is larger it is encoded again at lower
quality, then at half the size, and is dropped (None, the caller counts it) if it still
does not fit, so a broker with a message-size limit never refuses the event stream's
neighbour. Runs on the pipeline thread; events are a few per minute, and a face crop
encodes in well under a millisecond (a 640-pixel frame in a few).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

SnapshotKind = Literal["face", "frame_blur", "frame"]
#: Margin around the face box in a ``face`` snapshot, as a fraction of the box size.
FACE_MARGIN = 0.25
#: JPEG qualities tried, in order, when a picture is over ``max_bytes``.
QUALITY_STEPS = (0, 60, 40)  # 0 = the configured quality


@dataclass(frozen=True)
class SnapshotOptions:
    what: SnapshotKind = "face"
    max_width: int = 640
    jpeg_quality: int = 80
    max_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.what not in ("face", "frame_blur", "frame"):
            raise ValueError(f"snapshot kind must be face, frame_blur or frame: {self.what!r}")
        if not 16 <= self.max_width <= 7680:
            raise ValueError(f"snapshot max_width must be 16..7680, got {self.max_width}")
        if not 10 <= self.jpeg_quality <= 100:
            raise ValueError(f"snapshot jpeg_quality must be 10..100, got {self.jpeg_quality}")
        if self.max_bytes < 1024:
            raise ValueError(f"snapshot max_bytes must be >= 1024, got {self.max_bytes}")


def _pixels(
    bbox: tuple[float, float, float, float], w: int, h: int, margin: float
) -> tuple[int, int, int, int]:
    """A normalised (x, y, w, h) box in pixels, grown by ``margin``, clipped."""
    x, y, bw, bh = bbox
    mx, my = bw * margin, bh * margin
    x1 = max(0, int((x - mx) * w))
    y1 = max(0, int((y - my) * h))
    x2 = min(w, int(np.ceil((x + bw + mx) * w)))
    y2 = min(h, int(np.ceil((y + bh + my) * h)))
    return x1, y1, x2, y2


def render_snapshot(
    image: np.ndarray, bbox: tuple[float, float, float, float], options: SnapshotOptions
) -> np.ndarray | None:
    """The picture (BGR) for an event whose face is ``bbox`` (normalised x, y, w, h)."""
    h, w = image.shape[:2]
    if options.what == "face":
        x1, y1, x2, y2 = _pixels(bbox, w, h, FACE_MARGIN)
        if x2 - x1 < 2 or y2 - y1 < 2:
            return None
        out = image[y1:y2, x1:x2]
        scale = min(1.0, options.max_width / out.shape[1])
    else:
        out = image
        scale = min(1.0, options.max_width / w)
    if scale < 1.0:
        size = (max(1, round(out.shape[1] * scale)), max(1, round(out.shape[0] * scale)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    elif options.what != "frame":
        out = out.copy()  # the frame is shared with the pipeline: never draw on it
    if options.what == "frame_blur":
        oh, ow = out.shape[:2]
        x1, y1, x2, y2 = _pixels(bbox, ow, oh, 0.0)
        face = out[y1:y2, x1:x2].copy()
        k = max(3, (max(ow, oh) // 16) | 1)
        out = cv2.GaussianBlur(out, (k, k), 0)
        out[y1:y2, x1:x2] = face
    return out


def snapshot_jpeg(
    image: np.ndarray, bbox: tuple[float, float, float, float], options: SnapshotOptions
) -> bytes | None:
    """The event's picture as a JPEG of at most ``options.max_bytes``; None when there is
    no usable face box or it cannot be made small enough."""
    picture = render_snapshot(image, bbox, options)
    if picture is None:
        return None
    for attempt in range(2):  # full size, then half
        for q in QUALITY_STEPS:
            quality = options.jpeg_quality if q == 0 else min(q, options.jpeg_quality)
            ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(buf) <= options.max_bytes:
                return buf.tobytes()
        if attempt == 0:
            ph, pw = picture.shape[:2]
            if pw < 32 or ph < 32:
                break
            picture = cv2.resize(picture, (pw // 2, ph // 2), interpolation=cv2.INTER_AREA)
    return None
