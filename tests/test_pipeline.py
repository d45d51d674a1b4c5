"""CameraAnalyzer on synthetic frames: detect -> classify -> track -> policy, in-process."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from edge_daemon.classify.model import EmotionModel
from edge_daemon.config import AppConfig
from edge_daemon.pipeline import CameraAnalyzer
from edge_daemon.types import Frame


def make_cfg(every_n: int = 1) -> AppConfig:
    return AppConfig.model_validate(
        {
            "detector": {"every_n_frames": every_n},
            # Any dominant emotion counts, so the test does not depend on the model's mood.
            "events": {"min_confidence": 0.0, "establish_s": 0.2},
            "cameras": [{"name": "cam", "source": {"type": "sample"}}],
        }
    )


def frames(n: int, fps: float = 10.0, t0: float = 100.0) -> list[Frame]:
    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    blank = np.zeros_like(img)
    out = []
    for i in range(n):
        face = i < n // 2  # the face leaves half-way
        out.append(Frame("cam", i, 1.7e9 + i / fps, t0 + i / fps, img if face else blank))
    return out


def test_face_gets_a_track_a_start_and_an_end_when_it_leaves() -> None:
    cfg = make_cfg()
    an = CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel())
    an.open()
    try:
        events = [e for f in frames(40) for e in an.process(f)]
    finally:
        an.close()
    types = [e.type for e in events]
    assert types.count("start") == 1 and types.count("end") == 1
    assert types.index("start") < types.index("end")
    start = events[types.index("start")]
    assert start.camera == "cam" and set(start.scores) == set(EmotionModel().labels)
    x, y, w, _ = start.bbox
    assert 0.3 < x < 0.5 and 0.1 < y < 0.3 and 0 < w < 0.3
    snap = an.metrics.snapshot()
    assert snap["frames"] == 40 and snap["detections_run"] == 40
    assert snap["faces_total"] == 20


def test_detection_every_nth_frame_still_tracks() -> None:
    cfg = make_cfg(every_n=3)
    an = CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel())
    an.open()
    try:
        events = [e for f in frames(30) for e in an.process(f)]
        events += an.flush()
    finally:
        an.close()
    # Every 3rd frame while the face is tracked and found; every frame while the
    # detector and the tracker disagree (the new face before confirmation, the face gone).
    detections = an.metrics.snapshot()["detections_run"]
    assert 10 < detections < 30, detections
    assert [e.type for e in events].count("start") == 1


def test_flush_ends_open_tracks() -> None:
    cfg = make_cfg()
    an = CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel())
    an.open()
    try:
        fs = frames(40)[:15]  # face still visible at the end
        events = [e for f in fs for e in an.process(f)]
        assert not any(e.type == "end" for e in events)
        flushed = an.flush()
        assert [e.type for e in flushed] == ["end"]
        # Stamped when the face was last seen (the last frame), not a second later, and
        # the duration runs from the start event to then.
        start = next(e for e in events if e.type == "start")
        assert flushed[0].ts == pytest.approx(fs[-1].ts)
        assert flushed[0].extra["duration_s"] == pytest.approx(fs[-1].ts - start.ts, abs=1e-3)
        assert an.last_tracks == ()
    finally:
        an.close()


def test_frames_without_pixels_are_tracked_and_detection_keeps_its_rate() -> None:
    """As the capture hands them over with ``pixels_every_n``: pixels on every 4th
    frame, sizes only in between, and some frames dropped by the queue."""
    cfg = make_cfg(every_n=4)
    an = CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel())
    an.open()
    try:
        events = []
        for f in frames(40):
            if f.seq in (8, 9, 21):  # dropped by the queue (8 was a pixel frame)
                continue
            if f.seq % 4:
                f = Frame(f.camera, f.seq, f.ts, f.mono, None, (f.width, f.height))
            events += an.process(f)
            assert an.last_tracks == () or all(t.xyxy[2] <= f.width for t in an.last_tracks)
        events += an.flush()
    finally:
        an.close()
    snap = an.metrics.snapshot()
    assert snap["frames"] == 37
    # Pixel frames 0, 4, 12, 16, ..., 36 (8 was dropped): every one of them detected.
    assert snap["detections_run"] == 9
    assert [e.type for e in events].count("start") == 1


def test_unsettled_scene_is_detected_on_every_frame_settled_one_every_nth() -> None:
    cfg = make_cfg(every_n=5)
    an = CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel())
    an.open()
    seen: list[int] = []
    try:
        for f in frames(20)[:10]:  # the face on every frame
            before = an.metrics.snapshot()["detections_run"]
            an.process(f)
            if an.metrics.snapshot()["detections_run"] > before:
                seen.append(f.seq)
            assert an.wants_every_frame == (f.seq == 0)  # only before confirmation
    finally:
        an.close()
    assert seen == [0, 1, 6]  # new face, its confirmation, then the stride from frame 1


def test_dominant_emotion_prefers_sure_faces_and_says_uncertain_otherwise() -> None:
    from edge_daemon.pipeline import dominant_emotion

    sure = {"track_id": 1, "emotion": "happy", "confidence": 0.6}
    unsure = {"track_id": 2, "emotion": "uncertain", "confidence": 0.9}
    assert dominant_emotion([sure, unsure]) == "happy"
    assert dominant_emotion([unsure]) == "uncertain"
    assert dominant_emotion([]) is None


@pytest.mark.parametrize(("weak_floor", "ids"), [(0.35, 1), (0.99, 2)])
def test_a_face_that_scores_weakly_for_a_while_keeps_its_id(weak_floor: float, ids: int) -> None:
    """A face found clearly, then for 1.6 s only below detector.min_confidence (washed
    out: it scores 0.57 here, under the 0.6 threshold), then clearly again. With the
    weak floor (the default) the tracker's second stage keeps its track alive: one id,
    one start, no end in between. Without it (0.99: off) the track is lost after
    max_missed_s and the face comes back as a new id, as on the shared crowd video."""
    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    canvas = np.full((720, 1280, 3), 128, np.uint8)
    canvas[100:612, 384:896] = img
    washed = ((canvas.astype(np.float32) - 128) * 0.15 + 128).astype(np.uint8)
    cfg = AppConfig.model_validate(
        {
            "detector": {"every_n_frames": 1},
            "tracker": {"weak_min_confidence": weak_floor},
            "events": {"min_confidence": 0.0, "establish_s": 0.2},
            "cameras": [{"name": "cam", "source": {"type": "sample"}}],
        }
    )
    an = CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel())
    an.open()
    fps, seen = 25.0, set()
    try:
        images = [canvas] * 10 + [washed] * 40 + [canvas] * 10
        events = []
        for i, im in enumerate(images):
            events += an.process(Frame("cam", i, 1.7e9 + i / fps, 100 + i / fps, im))
            seen.update(t.track_id for t in an.last_tracks)
        events += an.flush()
    finally:
        an.close()
    assert len(seen) == ids
    assert [e.type for e in events if e.type in ("start", "end")] == ["start", "end"] * ids
    weak = an.detector.counters.weak
    assert (weak > 0) == (weak_floor < cfg.detector.min_confidence)
    assert an.metrics.snapshot()["weak_faces_total"] == weak  # what /metrics exports


def _metrics_after(an: CameraAnalyzer, image: np.ndarray, frames: int) -> dict:
    """The camera metrics' snapshot after ``frames`` frames of ``image`` at 10 fps."""
    an.open()
    try:
        for i in range(frames):
            an.process(Frame("cam", i, 1.7e9 + i / 10, 100 + i / 10, image))
    finally:
        an.close()
    return an.metrics.snapshot()


@pytest.mark.parametrize("floor", [0.0, 1.0])
def test_faces_classified_mirrored_are_counted(floor: float) -> None:
    """model.tta_hflip_below: the camera's metrics count the faces that also went through
    the mirrored pass (1.0: every face; 0: none)."""
    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cfg = AppConfig.model_validate(
        {
            "detector": {"every_n_frames": 1},
            "model": {"tta_hflip_below": floor},
            "cameras": [{"name": "cam", "source": {"type": "sample"}}],
        }
    )
    model = EmotionModel(tta_hflip_below=cfg.model.tta_hflip_below)
    snap = _metrics_after(CameraAnalyzer(cfg.cameras[0], cfg, model), img, 5)
    assert snap["faces_total"] >= 5
    assert snap["faces_mirrored_total"] == (snap["faces_total"] if floor else 0)


@pytest.mark.parametrize(
    ("detector", "key"),
    [({"min_face_px": 1000}, "faces_too_small_total"), ({"max_faces": 1}, "faces_over_cap_total")],
)
def test_faces_the_detector_drops_are_counted_in_the_camera_metrics(
    detector: dict, key: str
) -> None:
    """Faces found but dropped (smaller than min_face_px, beyond max_faces) are never
    silent: the camera's metrics (stats, /metrics) carry the detector's totals."""
    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    two = np.hstack([img, img])  # two faces: one is over a cap of one
    cfg = AppConfig.model_validate(
        {
            "detector": {"every_n_frames": 1, **detector},
            "cameras": [{"name": "cam", "source": {"type": "sample"}}],
        }
    )
    snap = _metrics_after(CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel()), two, 3)
    assert snap[key] == 3 * (2 if key == "faces_too_small_total" else 1)
    assert snap["faces_total"] == (0 if key == "faces_too_small_total" else 3)
