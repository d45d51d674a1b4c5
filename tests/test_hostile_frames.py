"""Hostile frames through the real detector + classifier + tracker + policy.

All-black, tiny, 4K, faces cut by the border and a frame with 50 faces: no crash, every
cap holds (faces per frame, inference batch), and each frame returns (the per-frame work
is bounded by the caps; the time itself is measured by `edge-bench pipeline`, not here).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from edge_daemon.classify.model import EmotionModel
from edge_daemon.config import AppConfig
from edge_daemon.pipeline import CameraAnalyzer
from edge_daemon.types import Frame

ASTRONAUT = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # 512x512, one face


@pytest.fixture(scope="module")
def model() -> EmotionModel:
    return EmotionModel()


def analyzer(model: EmotionModel, **detector: object) -> CameraAnalyzer:
    cfg = AppConfig.model_validate(
        {
            "detector": {"min_face_px": 8, **detector},
            "model": {"max_batch": 8},
            "events": {"min_confidence": 0.0, "establish_s": 0.0},
            "tracker": {"min_hits": 1},
            "cameras": [{"name": "cam", "source": {"type": "sample"}}],
        }
    )
    an = CameraAnalyzer(cfg.cameras[0], cfg, model)
    an.open()
    return an


class CountingModel:
    """Wraps the real model and records each inference batch size."""

    def __init__(self, model: EmotionModel) -> None:
        self._m = model
        self.batches: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._m, name)

    def predict_counted(self, crops: np.ndarray) -> tuple[np.ndarray, int]:
        """What the pipeline calls: the probabilities and the faces also mirrored."""
        self.batches.append(len(crops))
        return self._m.predict_counted(crops)


def run(an: CameraAnalyzer, images: list[np.ndarray]) -> list[str]:
    types: list[str] = []
    for i, img in enumerate(images):
        types += [e.type for e in an.process(Frame("cam", i, 1.7e9 + i / 10, 100 + i / 10, img))]
    return types


def test_black_tiny_and_odd_frames(model: EmotionModel) -> None:
    an = analyzer(model)
    try:
        frames = [
            np.zeros((480, 640, 3), np.uint8),
            np.full((480, 640, 3), 255, np.uint8),
            np.zeros((8, 8, 3), np.uint8),
            np.zeros((1, 1, 3), np.uint8),
            np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8),
            cv2.resize(ASTRONAUT, (16, 16)),  # a face too small to matter
        ]
        assert run(an, frames) == []
        assert an.metrics.snapshot()["frames"] == len(frames)
    finally:
        an.close()


def test_4k_frame_is_downscaled_for_detection(model: EmotionModel) -> None:
    an = analyzer(model)
    try:
        big = cv2.resize(ASTRONAUT, (2160, 2160))
        frame = np.zeros((2160, 3840, 3), np.uint8)
        frame[:, 840:3000] = big
        types = run(an, [frame, frame])
        assert "start" in types
        (track,) = an.last_tracks
        x1, y1, x2, y2 = track.xyxy  # boxes come back in 4K pixel coordinates
        assert 840 < x1 < x2 < 3000 and x2 - x1 > 300 and 0 <= y1 < y2 <= 2160
    finally:
        an.close()


@pytest.mark.parametrize("shift", [-250, 200])
def test_face_cut_by_the_border(model: EmotionModel, shift: int) -> None:
    an = analyzer(model)
    try:
        img = np.zeros_like(ASTRONAUT)
        # Slide the picture so the face (x ~170..320) is cut by the left or right edge.
        src = ASTRONAUT[:, max(0, shift) : 512 + min(0, shift)]
        if shift > 0:
            img[:, : src.shape[1]] = src
        else:
            img[:, -shift:] = src
        for _ in range(3):
            run(an, [img])
        # The half face is found (a test without a track would prove nothing), its box
        # is clipped into the frame at the edge that cuts it, and it is classified.
        (track,) = an.last_tracks
        x1, _y1, x2, _y2 = track.xyxy
        assert (x1 == 0) if shift > 0 else (x2 == img.shape[1])
        assert np.isfinite(track.probs).all() and abs(float(track.probs.sum()) - 1) < 1e-3
    finally:
        an.close()


def test_faces_over_the_cap_are_dropped_counted_and_batched(model: EmotionModel) -> None:
    counting = CountingModel(model)
    an = analyzer(counting, max_faces=3)  # type: ignore[arg-type]
    an.max_batch = 2
    try:
        grid = cv2.resize(np.vstack([np.hstack([ASTRONAUT] * 2)] * 2), (1280, 1280))  # 4 faces
        run(an, [grid])
        assert len(an.last_boxes) == 3  # max_faces
        assert an.detector.counters.over_cap == 1  # the fourth, counted
        assert counting.batches == [2, 1]  # max_batch
    finally:
        an.close()


FACE_IN_TILE = (0.48, 0.28)  # where the astronaut's face centre is, as a fraction of the photo


def raw_outputs_for_tiles(
    an: CameraAnalyzer, network: int, frame_hw: tuple[int, int], tile: int, face_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """BlazeFace raw outputs with one confident face in every ``tile`` x ``tile`` cell.

    The real detector finds almost none of the faces in a mosaic (it sees the frame at
    192 or 256 pixels), so a test of 50 faces needs 50 detections another way: these are
    decoded, NMS-merged, clipped and capped by the real code, and the crops they name
    hold real faces for the real classifier. ``network``: which of the detector's
    networks (in :data:`~edge_daemon.detect.blazeface.PARTS` order) the outputs are for.
    """
    det = an.detector
    size = det.pool.specs[network].input_size
    h, w = frame_hw
    scale = size / max(w, h)
    px, py = (size - w * scale) / 2, (size - h * scale) / 2
    anchors = det._anchors[network] * size  # anchor centres in input pixels
    boxes = np.zeros((1, len(anchors), 16), np.float32)
    scores = np.full((1, len(anchors), 1), -20.0, np.float32)
    for r in range(h // tile):
        for c in range(w // tile):
            cx = (c + FACE_IN_TILE[0]) * tile * scale + px
            cy = (r + FACE_IN_TILE[1]) * tile * scale + py
            i = int(np.argmin(((anchors - (cx, cy)) ** 2).sum(axis=1)))
            assert scores[0, i, 0] < 0, "two faces on one anchor: use larger tiles"
            boxes[0, i, :4] = (
                cx - anchors[i, 0],
                cy - anchors[i, 1],
                face_px * scale,
                face_px * scale,
            )
            scores[0, i, 0] = 8.0 - 0.01 * (r * 10 + c)  # distinct, so the cap's order is known
    return boxes, scores


def test_fifty_faces_in_one_frame(model: EmotionModel, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_daemon.detect import blazeface

    counting = CountingModel(model)
    an = analyzer(counting, max_faces=20)  # type: ignore[arg-type]
    try:
        face = cv2.resize(ASTRONAUT, (256, 256))
        grid = np.vstack([np.hstack([face] * 10)] * 5)  # 50 faces, 2560x1280
        # Every network (both, by default) finds every face: the merge keeps 50, not 100.
        raw = {
            spec.input_size: raw_outputs_for_tiles(an, k, grid.shape[:2], 256, face_px=110)
            for k, spec in enumerate(an.detector.pool.specs)
        }
        assert len(raw) == 2
        monkeypatch.setattr(blazeface._Runner, "run", lambda self: raw[self.input.shape[1]])
        types: list[str] = []
        for _ in range(3):
            types += run(an, [grid])
        # All 50 reach the cap, which keeps the 20 best and counts the other 30.
        assert len(an.last_boxes) == 20
        assert an.detector.counters.over_cap == 3 * 30
        # The kept ones are the first two rows (highest scores), each on its own face.
        xs = sorted(int(b[0]) // 256 for b in an.last_boxes)
        assert xs == sorted(list(range(10)) * 2)
        assert max(counting.batches) == 8 and sum(counting.batches) == 3 * 20  # max_batch
        assert len(an.last_tracks) == 20 and types.count("start") == 20
        assert an.metrics.snapshot()["frames"] == 3
    finally:
        an.close()
