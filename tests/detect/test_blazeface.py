"""BlazeFace on a real public-domain photo (scikit-image's astronaut), offline."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from skimage import data

from edge_daemon.detect.blazeface import (
    DetectorError,
    DetectorParams,
    FaceDetector,
    InterpreterPool,
)


@pytest.fixture(scope="module")
def astronaut_bgr() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize("model", ["short_range", "full_range"])
def test_finds_the_astronaut_face(astronaut_bgr: np.ndarray, model: str) -> None:
    det = FaceDetector(DetectorParams(model=model))
    try:
        d = det.detect(astronaut_bgr)
    finally:
        det.close()
    assert len(d) == 1
    x1, y1, x2, y2 = d.xyxy[0]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert 200 < cx < 250 and 100 < cy < 150  # her face, not the flag or the helmet
    assert d.scores[0] > 0.85


def test_large_frame_is_downscaled_and_boxes_mapped_back(astronaut_bgr: np.ndarray) -> None:
    big = cv2.resize(astronaut_bgr, (2048, 2048))  # 4x: a 4K-class frame
    det = FaceDetector(DetectorParams())
    try:
        d = det.detect(big)
    finally:
        det.close()
    assert len(d) == 1
    cx = (d.xyxy[0, 0] + d.xyxy[0, 2]) / 2
    assert 800 < cx < 1000


def test_blank_frame_and_size_filter_are_counted(astronaut_bgr: np.ndarray) -> None:
    det = FaceDetector(DetectorParams(min_face_px=500))
    try:
        assert len(det.detect(np.zeros((240, 320, 3), np.uint8))) == 0
        assert len(det.detect(astronaut_bgr)) == 0
        assert det.counters.too_small == 1
    finally:
        det.close()


def test_cameras_share_a_pool_safely_from_many_threads(astronaut_bgr: np.ndarray) -> None:
    """Four cameras, two interpreters: concurrent detections give identical boxes and
    never more interpreters than the pool allows."""
    pool = InterpreterPool("full_range", size=2)
    detectors = [FaceDetector(DetectorParams(), pool) for _ in range(4)]
    expected = detectors[0].detect(astronaut_bgr).xyxy
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def camera(det: FaceDetector) -> None:
        try:
            for _ in range(15):
                results.append(det.detect(astronaut_bgr).xyxy)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=camera, args=(d,)) for d in detectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 60 and all(np.array_equal(r, expected) for r in results)
    assert 1 <= pool.created <= 2
    assert sum(d.counters.frames for d in detectors) == 61
    with pytest.raises(DetectorError, match="pool runs"):
        FaceDetector(DetectorParams(model="short_range"), pool)


def test_unknown_model_is_refused() -> None:
    with pytest.raises(DetectorError, match="allowed"):
        FaceDetector(DetectorParams(model="huge"))


def test_a_weak_floor_adds_weak_faces_and_never_moves_a_strong_one(
    astronaut_bgr: np.ndarray,
) -> None:
    # Her face washed out in a larger frame scores 0.57: under the 0.6 threshold.
    canvas = np.full((720, 1280, 3), 128, np.uint8)
    canvas[100:612, 384:896] = astronaut_bgr
    washed = ((canvas.astype(np.float32) - 128) * 0.15 + 128).astype(np.uint8)
    plain = FaceDetector(DetectorParams())
    floored = FaceDetector(DetectorParams(weak_min_confidence=0.35))
    try:
        for img in (astronaut_bgr, cv2.resize(astronaut_bgr, (1024, 1024))):
            a, b = plain.detect(img), floored.detect(img)
            np.testing.assert_array_equal(a.xyxy, b.xyxy)
            np.testing.assert_array_equal(a.scores, b.scores)
        assert len(plain.detect(washed)) == 0 and len(plain.detect(washed).weak_xyxy) == 0
        weak = floored.detect(washed)
        assert len(weak) == 0 and len(weak.weak_xyxy) == 1  # her face, too unsure to report
        x1, y1, x2, y2 = weak.weak_xyxy[0]
        assert 384 + 200 < (x1 + x2) / 2 < 384 + 250 and 100 + 80 < (y1 + y2) / 2 < 100 + 150
        assert (floored.counters.faces, floored.counters.weak) == (2, 1)
        # A floor at or above the threshold is no floor.
        off = FaceDetector(DetectorParams(weak_min_confidence=0.99))
        assert len(off.detect(washed).weak_xyxy) == 0
    finally:
        plain.close()
        floored.close()
