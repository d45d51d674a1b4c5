"""Our LiteRT BlazeFace against MediaPipe's own Tasks ``FaceDetector`` on real frames.

MediaPipe (installed by the Makefile as a dev tool) is the reference for the graph we
re-implement. The two differ only in resampling (MediaPipe warps with plain bilinear;
we anti-alias), so faces near the score threshold may flip; confident faces must agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data

from edge_daemon.boxes import iou_matrix
from edge_daemon.detect.blazeface import SPECS, DetectorParams, FaceDetector

mp = pytest.importorskip("mediapipe", reason="mediapipe is the reference (make setup installs it)")
vision = pytest.importorskip("mediapipe.tasks.python.vision")
BaseOptions = pytest.importorskip("mediapipe.tasks.python").BaseOptions

CONFIDENT = 0.8  # faces both detectors score above this must match one to one


def reference_boxes(ref: object, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    result = ref.detect(image)  # type: ignore[attr-defined]
    boxes = [
        (b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height)
        for b in (d.bounding_box for d in result.detections)
    ]
    scores = [d.categories[0].score for d in result.detections]
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32)


def generated_frames(model: str) -> list[np.ndarray]:
    """The public-domain astronaut photo in 640x480 frames at several sizes, positions
    and brightnesses (for ``short_range``, made for faces near the camera: zoomed in on
    the face); runs without the shared data."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(0)
    out = []
    for i in range(24):
        frame = np.full((480, 640, 3), 90, np.uint8)
        if model == "short_range":
            side = int(rng.integers(260, 400))  # a square around the face, 130x170 px
            x0 = int(np.clip(225 - side // 2 + rng.integers(-30, 31), 0, 512 - side))
            y0 = int(np.clip(115 - side // 2 + rng.integers(-20, 21), 0, 512 - side))
            frame[:, 80:560] = cv2.resize(photo[y0 : y0 + side, x0 : x0 + side], (480, 480))
        else:
            size = int(rng.integers(180, 470))
            x, y = int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))
            frame[y : y + size, x : x + size] = cv2.resize(photo, (size, size))
        gain = (0.6, 1.0, 1.3)[i % 3]
        out.append(np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    return out


def video_frames(videos: Path, every: int = 10) -> list[np.ndarray]:
    out = [cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)]
    for path in sorted(videos.iterdir()):
        cap = cv2.VideoCapture(str(path))
        i = 0
        while True:
            ok, img = cap.read()
            if not ok:
                break
            if i % every == 0:
                out.append(img)
            i += 1
        cap.release()
    return out


def compare(model: str, shots: list[np.ndarray]) -> dict[str, Any]:
    """Run both detectors on ``shots``; what the tests assert on."""
    opts = vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_buffer=SPECS[model].path.read_bytes()),
        running_mode=vision.RunningMode.IMAGE,
        min_detection_confidence=0.6,
    )
    ref = vision.FaceDetector.create_from_options(opts)
    ours = FaceDetector(DetectorParams(model=model, min_face_px=1))
    confident = same_count = ours_total = ref_total = 0
    ious: list[float] = []
    score_diffs: list[float] = []
    try:
        for img in shots:
            ref_boxes, ref_scores = reference_boxes(ref, img)
            det = ours.detect(img)
            same_count += len(det) == len(ref_boxes)
            ours_total += len(det)
            ref_total += len(ref_boxes)
            for box, score in zip(ref_boxes, ref_scores, strict=True):
                if score < CONFIDENT:
                    continue
                confident += 1
                assert len(det), f"a face MediaPipe scores {score:.2f} was missed"
                overlap = iou_matrix(box, det.xyxy)[0]
                best = int(np.argmax(overlap))
                ious.append(float(overlap[best]))
                score_diffs.append(abs(float(det.scores[best]) - float(score)))
    finally:
        ours.close()
        ref.close()
    return {
        "confident": confident,
        "ious": ious,
        "score_diffs": score_diffs,
        "same_count": same_count,
        "ours_total": ours_total,
        "ref_total": ref_total,
    }


@pytest.mark.parametrize("model", ["short_range", "full_range"])
def test_agree_with_mediapipe_on_generated_frames(model: str) -> None:
    shots = generated_frames(model)
    r = compare(model, shots)
    assert r["confident"] >= 0.75 * len(shots), r["confident"]  # one clear face each
    assert min(r["ious"]) > 0.5 and float(np.median(r["ious"])) > 0.88
    assert float(np.median(r["score_diffs"])) < 0.03
    assert r["same_count"] >= 0.9 * len(shots)


@pytest.mark.shared_data
@pytest.mark.parametrize("model", ["short_range", "full_range"])
def test_boxes_and_scores_agree_with_mediapipe(model: str, videos_dir: Path) -> None:
    shots = video_frames(videos_dir)
    r = compare(model, shots)
    ious, score_diffs = r["ious"], r["score_diffs"]
    same_count, ours_total, ref_total = r["same_count"], r["ours_total"], r["ref_total"]
    assert r["confident"] > 50  # the videos have plenty of clear faces
    assert min(ious) > 0.5 and float(np.median(ious)) > 0.88
    # Small faces in the 1080p video sit near the threshold: single scores may differ
    # by up to ~0.2, the typical face by a few hundredths.
    assert float(np.median(score_diffs)) < 0.03 and max(score_diffs) < 0.25
    assert same_count >= 0.9 * len(shots)
    assert abs(ours_total - ref_total) <= 0.05 * ref_total
