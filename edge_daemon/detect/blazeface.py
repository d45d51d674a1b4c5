"""Face detection with MediaPipe's BlazeFace (short or full range) on CPU, offline.

The two ``.tflite`` models are vendored in ``edge_daemon/models`` (Apache-2.0, from the
mediapipe 0.10.21 wheel; ``scripts/fetch_blazeface.py`` re-derives and checks them) and
run with mediapipe 1.2.x's Tasks ``FaceDetector``; nothing is downloaded at run time.

Trade-off between the two models: short range (128x128 input) costs about 2-4 ms per
frame here but misses faces smaller than about a fifth of the frame; full range (192x192,
sparse) costs about 5-8 ms and finds faces down to a few percent of the frame, which a
surveillance camera needs. Full range is the default.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_daemon.types import Detections

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
MODEL_FILES = {
    "short_range": MODELS_DIR / "face_detection_short_range.tflite",
    "full_range": MODELS_DIR / "face_detection_full_range_sparse.tflite",
}


class DetectorError(Exception):
    """The detector cannot be created; the message says how to fix it."""


@dataclass(frozen=True)
class DetectorParams:
    model: str = "full_range"
    min_confidence: float = 0.6
    max_input_width: int = 640  # frames wider are downscaled first; 0 = never
    max_faces: int = 20
    min_face_px: int = 20  # in original frame pixels

    @classmethod
    def from_config(cls, cfg: object) -> DetectorParams:
        return cls(
            model=cfg.model,  # type: ignore[attr-defined]
            min_confidence=cfg.min_confidence,  # type: ignore[attr-defined]
            max_input_width=cfg.max_input_width,  # type: ignore[attr-defined]
            max_faces=cfg.max_faces,  # type: ignore[attr-defined]
            min_face_px=cfg.min_face_px,  # type: ignore[attr-defined]
        )


@dataclass
class DetectorCounters:
    frames: int = 0
    faces: int = 0
    too_small: int = 0  # detections dropped by min_face_px
    over_cap: int = 0  # detections dropped by max_faces


class FaceDetector:
    """One BlazeFace instance. Not thread-safe: each camera pipeline owns its own."""

    def __init__(self, params: DetectorParams) -> None:
        self.params = params
        self.counters = DetectorCounters()
        path = MODEL_FILES.get(params.model)
        if path is None:
            raise DetectorError(f"detector.model {params.model!r} (allowed: {list(MODEL_FILES)})")
        if not path.is_file():
            raise DetectorError(f"bundled detector model missing: {path} (reinstall the package)")
        # MediaPipe/LiteRT log through glog/absl to stderr; keep only errors in our logs.
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as exc:
            raise DetectorError(
                f"mediapipe is not importable ({exc}); install it with "
                "`pip install --no-deps mediapipe==1.2.2` (see Makefile)"
            ) from exc
        self._mp = mp
        self._vision = vision
        self._options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=path.read_bytes()),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=params.min_confidence,
        )
        self._det: object | None = None
        self._owner: int | None = None

    def _ensure(self) -> None:
        """Create the graph in the calling thread, which then owns it.

        MediaPipe's task runner must be created, used and closed by one thread: a
        detector created on one thread and run on another deadlocks. So the graph is
        built lazily by the pipeline thread that uses it, and warmed up there (the first
        inference costs hundreds of ms).
        """
        if self._det is not None:
            if self._owner != threading.get_ident():
                raise RuntimeError("FaceDetector used from a thread that does not own it")
            return
        self._owner = threading.get_ident()
        self._det = self._vision.FaceDetector.create_from_options(self._options)
        self._det.detect(  # type: ignore[attr-defined]
            self._mp.Image(
                image_format=self._mp.ImageFormat.SRGB, data=np.zeros((64, 64, 3), np.uint8)
            )
        )

    def open(self) -> None:
        """Build and warm up the graph now, in the calling (owning) thread."""
        self._ensure()

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Faces in a BGR frame, boxes in that frame's pixel coordinates."""
        self._ensure()
        h, w = image_bgr.shape[:2]
        p = self.params
        scale = 1.0
        small = image_bgr
        if p.max_input_width and w > p.max_input_width:
            scale = w / p.max_input_width
            small = cv2.resize(
                image_bgr,
                (p.max_input_width, max(1, round(h / scale))),
                interpolation=cv2.INTER_AREA,
            )
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        result = self._det.detect(  # type: ignore[attr-defined]
            self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)
        )
        self.counters.frames += 1
        boxes, scores = [], []
        for d in result.detections:
            bb = d.bounding_box
            x1, y1 = bb.origin_x * scale, bb.origin_y * scale
            x2, y2 = x1 + bb.width * scale, y1 + bb.height * scale
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
            if x2 - x1 < p.min_face_px or y2 - y1 < p.min_face_px:
                self.counters.too_small += 1
                continue
            boxes.append((x1, y1, x2, y2))
            scores.append(d.categories[0].score if d.categories else 0.0)
        if len(boxes) > p.max_faces:
            order = np.argsort(scores)[::-1][: p.max_faces]
            self.counters.over_cap += len(boxes) - p.max_faces
            boxes = [boxes[i] for i in order]
            scores = [scores[i] for i in order]
        self.counters.faces += len(boxes)
        if not boxes:
            return Detections.empty()
        return Detections(np.array(boxes, np.float32), np.array(scores, np.float32))

    def close(self) -> None:
        det, self._det = getattr(self, "_det", None), None
        if det is not None:
            det.close()  # type: ignore[attr-defined]
