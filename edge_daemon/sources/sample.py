"""A synthetic camera for demos and tests: a public-domain portrait, slowly panned/zoomed.

The picture is ``astronaut.jpg`` beside this module: scikit-image's ``astronaut`` (NASA
photo of Eileen Collins, public domain) as a 68 kB JPEG, so the runtime needs no
scikit-image; the face detector and classifier have a real face to work on while the
virtual camera moves; frames are generated on the fly at the configured rate.
"""

from __future__ import annotations

import functools
import math
import threading
from pathlib import Path

import cv2
import numpy as np

from edge_daemon.sources.base import Pacer, SourceError
from edge_daemon.sources.spec import SampleSpec

PORTRAIT = Path(__file__).with_name("astronaut.jpg")


@functools.lru_cache(maxsize=1)
def _portrait_bgr() -> np.ndarray:
    """The source picture (512x512 BGR), decoded on first use."""
    bgr = cv2.imread(str(PORTRAIT), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(f"the sample picture {PORTRAIT} is missing or unreadable", permanent=True)
    bgr.flags.writeable = False  # shared by all sample cameras
    return bgr


# Region around the face (with hair and chin) in the 512x512 picture, as fractions of
# width/height: the virtual camera keeps it in view so every frame has a face to detect.
FACE_REGION = (160 / 512, 30 / 512, 290 / 512, 200 / 512)


def _pan_range(size: float, crop: float, lo_face: float, hi_face: float) -> tuple[float, float]:
    """Admissible crop-centre interval on one axis: crop inside the picture, face inside
    the crop (or centred on the face when the crop is too small to hold it)."""
    lo = max(crop / 2, hi_face - crop / 2)
    hi = min(size - crop / 2, lo_face + crop / 2)
    if lo > hi:
        centre = min(max((lo_face + hi_face) / 2, crop / 2), size - crop / 2)
        return centre, centre
    return lo, hi


#: Zoom while looking away: the crop (at most 1/AWAY_ZOOM of the picture's height) then
#: fits below the face region, on the suit.
AWAY_ZOOM = 1.8


def render_sample_frame(
    picture: np.ndarray, t: float, width: int, height: int, face: bool = True
) -> np.ndarray:
    """The virtual camera's view at time ``t`` seconds: a crop that drifts and zooms.

    The crop stays inside the picture (no borders) and keeps the face in view; its
    aspect ratio is the output's, and the periods are incommensurate so the motion does
    not visibly repeat. ``face=False``: the camera looks away, at the bottom of the
    picture (the suit), with no face in the crop.
    """
    src_h, src_w = picture.shape[:2]
    aspect = width / height
    base_h = min(float(src_h), src_w / aspect)
    zoom = 1.35 + 0.25 * math.sin(2 * math.pi * t / 13.0)  # 1.1 .. 1.6
    if not face:
        zoom = max(zoom, AWAY_ZOOM)
    crop_h = base_h / zoom
    crop_w = crop_h * aspect
    fx1, fy1, fx2, fy2 = FACE_REGION
    x_lo, x_hi = _pan_range(src_w, crop_w, fx1 * src_w, fx2 * src_w)
    y_lo, y_hi = _pan_range(src_h, crop_h, fy1 * src_h, fy2 * src_h)
    if not face:
        x_lo, x_hi = crop_w / 2, src_w - crop_w / 2
        y_lo = y_hi = src_h - crop_h / 2
    u = 0.5 + 0.5 * math.sin(2 * math.pi * t / 7.0)
    v = 0.5 + 0.5 * math.sin(2 * math.pi * t / 9.0 + 1.0)
    cx = x_lo + u * (x_hi - x_lo)
    cy = y_lo + v * (y_hi - y_lo)
    scale = width / crop_w
    matrix = np.array(
        [[scale, 0.0, -(cx - crop_w / 2) * scale], [0.0, scale, -(cy - crop_h / 2) * scale]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        picture, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


class SampleBackend:
    """Renders :func:`render_sample_frame` at ``spec.fps`` in real time."""

    def __init__(self, spec: SampleSpec) -> None:
        self.spec = spec
        self.fps: float | None = spec.fps
        self.decode_failures = 0
        self._picture: np.ndarray | None = None
        self._pacer = Pacer(spec.fps)
        self._n = 0

    def describe(self) -> str:
        s = self.spec
        away = f", away {s.away_s:g} s every {s.present_s:g} s" if s.away_s else ""
        return f"sample {s.width}x{s.height} @ {s.fps:g} fps{away}"

    def open(self, cancel: threading.Event) -> None:
        self._picture = _portrait_bgr()

    def read(self, cancel: threading.Event, pixels: bool = True) -> np.ndarray:
        # Rendering is the frame: nothing to skip.
        assert self._picture is not None, "read() before open()"
        self._pacer.wait(cancel)
        t = self._n / self.spec.fps
        self._n += 1
        spec = self.spec
        face = spec.away_s == 0 or t % (spec.present_s + spec.away_s) < spec.present_s
        return render_sample_frame(self._picture, t, spec.width, spec.height, face)

    def interrupt(self) -> None:
        pass  # reads never block longer than one frame interval (the cancel event ends it)

    def close(self) -> None:
        self._picture = None
