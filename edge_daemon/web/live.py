"""What the live view shows: the latest frame of each camera with its faces.

The pipeline thread calls :meth:`LiveSlot.put_frame` after each frame (it stores
references only, no copy and no encoding), and :meth:`LiveSlot.add_events`. The web
threads call :meth:`LiveSlot.jpeg`, which renders and JPEG-encodes the newest frame at
most once per frame however many viewers there are, and only while someone watches.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge_daemon.types import Event, Frame, ShownFace

#: One emoji per emotion name, for the page (the image itself carries ASCII labels,
#: since OpenCV cannot draw emoji).
EMOJI: dict[str, str] = {
    "angry": "\U0001f620",
    "disgust": "\U0001f922",
    "fear": "\U0001f628",
    "happy": "\U0001f604",
    "sad": "\U0001f622",
    "surprise": "\U0001f62e",
    "neutral": "\U0001f610",
}
RECENT_EVENTS = 20  # events kept per camera for the page
#: A camera counts as watched this long after its last picture request; meanwhile a
#: blurred view makes the pipeline detect on every frame.
WATCH_S = 5.0

# BGR colours per emotion for the boxes; unknown labels get white.
_COLOURS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230),
    "disgust": (40, 160, 40),
    "fear": (160, 60, 160),
    "happy": (40, 200, 240),
    "sad": (200, 120, 40),
    "surprise": (40, 140, 255),
    "neutral": (200, 200, 200),
}


@dataclass(frozen=True, slots=True)
class RenderOptions:
    max_width: int = 960
    jpeg_quality: int = 75
    blur_faces: bool = False


class LiveSlot:
    """Latest frame + faces of one camera; written by its pipeline, read by web threads.

    The pipeline's :class:`~edge_daemon.pipeline.FrameSink`."""

    def __init__(self, camera: str, options: RenderOptions) -> None:
        self.camera = camera
        self.options = options
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._faces: tuple[ShownFace, ...] = ()
        self._boxes: np.ndarray = np.zeros((0, 4), np.float32)
        self._boxes_fresh = False  # the boxes were detected on this very frame
        self._last_view = -WATCH_S  # monotonic time of the last picture request
        self._fps = 0.0
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_EVENTS)
        self._render_lock = threading.Lock()
        self._jpeg: tuple[int, bytes] | None = None  # (frame seq, encoded picture)
        self.encoded = 0  # frames encoded (observability: the cost is paid per view)

    # -- pipeline thread -------------------------------------------------------------

    def put_frame(
        self,
        frame: Frame,
        faces: tuple[ShownFace, ...],
        boxes: np.ndarray,
        fps: float,
        boxes_fresh: bool = True,
    ) -> None:
        # FrameSink.put_frame: references only, from the pipeline thread.
        with self._lock:
            self._frame, self._faces, self._boxes, self._fps = frame, faces, boxes, fps
            self._boxes_fresh = boxes_fresh

    def watched(self) -> bool:
        """Someone asked for a picture of this camera in the last ``WATCH_S`` seconds."""
        with self._lock:
            return time.monotonic() - self._last_view < WATCH_S

    def needs_fresh_boxes(self) -> bool:
        """Blurred faces need the boxes of the very frame shown, while it is watched."""
        return self.options.blur_faces and self.watched()

    def add_events(self, events: Iterable[Event]) -> None:
        items = [
            {
                "type": e.type,
                "track_id": e.track_id,
                "emotion": e.emotion,
                "emoji": EMOJI.get(e.emotion, ""),
                "confidence": round(e.confidence, 3),
                "ts": e.ts,
                **({"alert": e.extra["alert"]} if "alert" in e.extra else {}),
            }
            for e in events
        ]
        with self._lock:
            self._events.extend(items)

    # -- web threads -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self._lock:
            frame, faces, fps = self._frame, self._faces, self._fps
            events = list(self._events)
        w, h = (frame.width, frame.height) if frame is not None else (0, 0)
        return {
            "fps": round(fps, 1),
            "frame_age_s": round(time.monotonic() - frame.mono, 2) if frame else None,
            "size": [w, h],
            "faces": [
                {
                    "track_id": f.track_id,
                    "emotion": f.emotion,
                    "emoji": EMOJI.get(f.emotion, ""),
                    "confidence": round(f.confidence, 3),
                    "box": _norm_box(f.xyxy, w, h),
                }
                for f in faces
            ],
            "events": events[::-1],  # newest first
        }

    def jpeg(self) -> tuple[int, bytes] | None:
        """``(frame seq, JPEG)`` of the newest frame, rendered once per frame."""
        with self._lock:
            frame, faces, boxes, fresh = self._frame, self._faces, self._boxes, self._boxes_fresh
            self._last_view = time.monotonic()
        if frame is None or frame.image is None:  # the pipeline hands decoded frames only
            return None
        with self._render_lock:
            if self._jpeg is not None and self._jpeg[0] == frame.seq:
                return self._jpeg
            picture = render(frame.image, faces, boxes, self.options, boxes_fresh=fresh)
            ok, buf = cv2.imencode(
                ".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, self.options.jpeg_quality]
            )
            if not ok:  # cannot happen for a valid BGR image; keep the last picture
                return self._jpeg
            self._jpeg = (frame.seq, buf.tobytes())
            self.encoded += 1
            return self._jpeg


def _norm_box(xyxy: tuple[float, float, float, float], w: int, h: int) -> list[float]:
    if not w or not h:
        return [0.0, 0.0, 0.0, 0.0]
    x1, y1, x2, y2 = xyxy
    return [round(x1 / w, 4), round(y1 / h, 4), round((x2 - x1) / w, 4), round((y2 - y1) / h, 4)]


def render(
    image: np.ndarray,
    faces: tuple[ShownFace, ...],
    boxes: np.ndarray,
    options: RenderOptions,
    boxes_fresh: bool = True,
) -> np.ndarray:
    """A scaled copy of ``image`` with (optionally blurred) faces, boxes and labels.

    With ``blur_faces`` and boxes that were not detected on this frame (``boxes_fresh``
    false: detection runs every ``every_n_frames``, and a face moves meanwhile) the
    whole picture is blurred: a box from an earlier frame can miss a moving face.
    """
    h, w = image.shape[:2]
    scale = min(1.0, options.max_width / w)
    if scale < 1.0:
        out = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    else:
        out = image.copy()  # the frame is shared with the pipeline: never draw on it
    oh, ow = out.shape[:2]

    def px(box: Iterable[float]) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = (round(v * scale) for v in box)
        return max(0, x1), max(0, y1), min(ow, x2), min(oh, y2)

    if options.blur_faces and not boxes_fresh:
        k = max(3, (max(ow, oh) // 12) | 1)
        out = cv2.GaussianBlur(out, (k, k), 0)
    elif options.blur_faces:
        # Every detected face, confirmed track or not: privacy must not wait for min_hits.
        for box in [*boxes.tolist(), *(f.xyxy for f in faces)]:
            x1, y1, x2, y2 = px(box)
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                k = max(3, ((x2 - x1) // 3) | 1)
                out[y1:y2, x1:x2] = cv2.GaussianBlur(out[y1:y2, x1:x2], (k, k), 0)
    thickness = max(1, round(ow / 480))
    font_scale = max(0.4, ow / 1600)
    for f in faces:
        x1, y1, x2, y2 = px(f.xyxy)
        colour = _COLOURS.get(f.emotion, (255, 255, 255))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        label = f"#{f.track_id} {f.emotion} {f.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(oh - base, y2 + th + 4)
        cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 4, ty + base), colour, cv2.FILLED)
        cv2.putText(
            out, label, (x1 + 2, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness
        )
    return out
