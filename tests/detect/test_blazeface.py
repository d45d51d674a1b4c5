"""BlazeFace on a real public-domain photo (scikit-image's astronaut), offline."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from skimage import data

from edge_daemon.boxes import iou_matrix
from edge_daemon.detect.blazeface import (
    DetectorError,
    DetectorParams,
    FaceDetector,
    InterpreterPool,
    merge_networks,
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
    pool = InterpreterPool(size=2)  # the default, both networks per slot
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
    # full range: the network whose weak scores the floor was measured on (track/tracker.py)
    plain = FaceDetector(DetectorParams(model="full_range"))
    floored = FaceDetector(DetectorParams(model="full_range", weak_min_confidence=0.35))
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
        off = FaceDetector(DetectorParams(model="full_range", weak_min_confidence=0.99))
        assert len(off.detect(washed).weak_xyxy) == 0
    finally:
        plain.close()
        floored.close()


def test_both_adds_the_close_face_full_range_misses_and_keeps_its_boxes(
    astronaut_bgr: np.ndarray,
) -> None:
    """``both`` (the default): where full range finds the face, its box and score are
    kept exactly; a face that fills the frame, which full range misses, comes from
    short range."""
    dets = {m: FaceDetector(DetectorParams(model=m)) for m in ("full_range", "short_range")}
    both = FaceDetector(DetectorParams())
    assert both.params.model == "both"
    # Her face from brow to chin filling a 480x480 frame, as a webcam or a driver
    # camera sees a face at arm's length.
    close = cv2.resize(astronaut_bgr[64:174, 170:280], (480, 480))
    try:
        for img in (astronaut_bgr, cv2.resize(astronaut_bgr, (1024, 1024))):
            a, b = dets["full_range"].detect(img), both.detect(img)
            assert len(a) == 1
            np.testing.assert_allclose(b.xyxy, a.xyxy, atol=1e-3)
            np.testing.assert_array_equal(b.scores, a.scores)
        assert len(dets["full_range"].detect(close)) == 0
        short = dets["short_range"].detect(close)
        got = both.detect(close)
        assert len(short) == 1 and len(got) == 1
        np.testing.assert_allclose(got.xyxy, short.xyxy, atol=1e-3)
        assert got.scores[0] == short.scores[0] > 0.8
        assert (both.counters.frames, both.counters.faces) == (3, 3)
    finally:
        both.close()


def test_a_face_only_short_range_finds_needs_added_min_confidence(
    astronaut_bgr: np.ndarray,
) -> None:
    """The close face short range adds (score above 0.8) passes the default 0.75 and
    not a threshold above its score; a confirmed face (full range's) never needs it."""
    close = cv2.resize(astronaut_bgr[64:174, 170:280], (480, 480))
    short = FaceDetector(DetectorParams(model="short_range"))
    alone = short.detect(close)
    score = float(alone.scores[0])
    assert 0.8 < score < 0.99
    strict = FaceDetector(DetectorParams(added_min_confidence=(score + 0.99) / 2))
    default = FaceDetector(DetectorParams())
    floored = FaceDetector(
        DetectorParams(added_min_confidence=(score + 0.99) / 2, weak_min_confidence=0.35)
    )
    try:
        assert len(default.detect(close)) == 1
        assert len(strict.detect(close)) == 0
        # with a weak floor, the face below the added threshold is a weak candidate,
        # on short range's face (merged with the other candidates there)
        got = floored.detect(close)
        assert len(got) == 0
        assert iou_matrix(alone.xyxy, got.weak_xyxy).max() > 0.9
        # full range's face in the photo is kept whatever the added threshold
        assert len(strict.detect(astronaut_bgr)) == 1
    finally:
        for d in (short, strict, default, floored):
            d.close()


def test_merge_keeps_the_first_networks_faces_and_adds_only_new_ones() -> None:
    first = (
        np.array([[0, 0, 10, 10], [100, 100, 110, 110]], np.float32),
        np.array([0.7, 0.9], np.float32),
    )
    second = (
        np.array(
            [[1, 1, 11, 11], [50, 50, 70, 70], [50, 51, 70, 71], [200, 0, 210, 10]], np.float32
        ),
        np.array([0.95, 0.8, 0.6, 0.3], np.float32),
    )
    (boxes, scores), (weak_boxes, weak_scores) = merge_networks([first, second], 0.5)
    # the second's box over the first's first face is dropped (its higher score too);
    # its two boxes at (50, 50) merge into one new face; 0.3 is a weak candidate.
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    np.testing.assert_array_equal(boxes[0], [100, 100, 110, 110])
    np.testing.assert_array_equal(boxes[2], [0, 0, 10, 10])
    assert 50 < boxes[1, 1] < 51  # score-weighted mean of the two overlapping boxes
    np.testing.assert_array_equal(weak_boxes, [[200, 0, 210, 10]])
    assert weak_scores.tolist() == pytest.approx([0.3])
    # One network: exactly weighted NMS of its strong faces.
    # A higher bar for the second network's own faces: its merged (50, 50) face (0.8)
    # becomes a candidate, with its merged box; the first network's 0.7 face stays.
    (boxes, scores), (weak_boxes, weak_scores) = merge_networks([first, second], 0.5, 0.85)
    assert scores.tolist() == pytest.approx([0.9, 0.7])
    assert weak_scores.tolist() == pytest.approx([0.3, 0.8])
    assert 50 < weak_boxes[1, 1] < 51
    (b1, s1), _ = merge_networks([first], 0.5)
    np.testing.assert_array_equal(b1, first[0][::-1])
    assert s1.tolist() == pytest.approx([0.9, 0.7])
