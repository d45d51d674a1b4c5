"""Fuzz the whole analysis path: random frames and random raw detector outputs.

Each example is a short run of one camera's real pipeline (letterbox, decode, NMS, clip,
cap, crop, the bundled classifier, tracker, event policy) on frames of random size and
content, with the detector's raw tensors replaced by random values (NaN, infinities,
huge and negative sizes included) so that every kind of box reaches the stages after
it, which the real detector on random pixels almost never produces. Bounded: a fixed
number of examples of a few frames each; each frame must return. What must hold: no
exception, boxes finite and inside the frame, probabilities finite and summing to one,
events only of the four types, no more faces than ``max_faces``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_daemon.classify.model import EmotionModel
from edge_daemon.config import AppConfig
from edge_daemon.detect import blazeface
from edge_daemon.pipeline import CameraAnalyzer
from edge_daemon.types import Frame

MAX_FACES = 6
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, -1e30]


@pytest.fixture(scope="module")
def analyzer() -> CameraAnalyzer:
    cfg = AppConfig.model_validate(
        {
            "detector": {"min_face_px": 4, "max_faces": MAX_FACES},
            "model": {"max_batch": 4},
            "events": {"min_confidence": 0.0, "establish_s": 0.0},
            "tracker": {"min_hits": 1},
            "cameras": [{"name": "fuzz", "source": {"type": "sample"}}],
        }
    )
    an = CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel())
    an.open()
    yield an
    an.close()


def raw_outputs(seed: int, n_boxes: int, faces: int) -> tuple[np.ndarray, np.ndarray]:
    """``faces`` confident anchors with random (sometimes absurd) regressor values."""
    rng = np.random.default_rng(seed)
    boxes = rng.normal(0, 40, (1, n_boxes, 16)).astype(np.float32)
    scores = np.full((1, n_boxes, 1), -30.0, np.float32)
    picked = rng.choice(n_boxes, size=min(faces, n_boxes), replace=False)
    scores[0, picked, 0] = rng.uniform(-2, 30, len(picked))
    boxes[0, picked, 2:4] = np.abs(boxes[0, picked, 2:4]) * rng.uniform(0, 6, (len(picked), 1))
    for i in picked[: len(picked) // 3]:  # a third get a special value somewhere
        boxes[0, i, rng.integers(0, 4)] = SPECIAL[rng.integers(0, len(SPECIAL))]
    if faces and rng.random() < 0.2:
        scores[0, picked[0], 0] = SPECIAL[rng.integers(0, 3)]  # NaN/inf logit
    return boxes, scores


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**31 - 1),
    width=st.integers(1, 1600),
    height=st.integers(1, 1200),
    faces=st.integers(0, 40),
    frames=st.integers(1, 4),
)
def test_random_frames_and_raw_outputs_never_break_the_pipeline(
    analyzer: CameraAnalyzer,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    width: int,
    height: int,
    faces: int,
    frames: int,
) -> None:
    specs = analyzer.detector.pool.specs  # both by default: each network gets its own
    assert len({s.input_size for s in specs}) == len(specs)
    rng = np.random.default_rng(seed)
    with monkeypatch.context() as m:
        for i in range(frames):
            raw = {
                s.input_size: raw_outputs(seed + i + 7919 * k, s.num_boxes, faces)
                for k, s in enumerate(specs)
            }
            m.setattr(blazeface._Runner, "run", lambda self, raw=raw: raw[self.input.shape[1]])
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            ts = 1.7e9 + seed % 1000 + i / 10
            events = analyzer.process(Frame("fuzz", i, ts, ts - 1.7e9, image))
            assert {e.type for e in events} <= {"start", "update", "end", "alert"}
            boxes = np.asarray(analyzer.last_boxes, np.float64).reshape(-1, 4)
            assert len(boxes) <= MAX_FACES
            assert np.isfinite(boxes).all()
            assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= width).all()
            assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= height).all()
            for t in analyzer.last_tracks:
                assert np.isfinite(t.probs).all() and abs(float(t.probs.sum()) - 1) < 1e-3
                assert all(np.isfinite(t.xyxy))
