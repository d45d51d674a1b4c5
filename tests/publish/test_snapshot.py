"""publish.snapshot: the picture an event carries, pure, on the public-domain portrait."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_daemon.publish.snapshot import SnapshotOptions, render_snapshot, snapshot_jpeg
from edge_daemon.sources.sample import FACE_REGION, _portrait_bgr

FACE = (
    FACE_REGION[0],
    FACE_REGION[1],
    FACE_REGION[2] - FACE_REGION[0],
    FACE_REGION[3] - FACE_REGION[1],
)  # normalised x, y, w, h of the portrait's face


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_face_is_the_face_with_a_margin() -> None:
    image = _portrait_bgr()
    out = render_snapshot(image, FACE, SnapshotOptions("face"))
    assert out is not None
    _, y, w, h = (v * 512 for v in FACE)
    # 25 % of the box on each side, clipped by the picture (the hair is near its top).
    assert out.shape[1] == pytest.approx(w * 1.5, abs=3)
    assert out.shape[0] == pytest.approx(min(512, y + h * 1.25) - max(0, y - h * 0.25), abs=3)
    jpeg = snapshot_jpeg(image, FACE, SnapshotOptions("face"))
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8" and decode(jpeg).shape == out.shape


def test_frame_blur_keeps_only_the_face_sharp() -> None:
    image = _portrait_bgr()
    frame = render_snapshot(image, FACE, SnapshotOptions("frame", max_width=256))
    blurred = render_snapshot(image, FACE, SnapshotOptions("frame_blur", max_width=256))
    assert (
        frame is not None and blurred is not None and frame.shape == blurred.shape == (256, 256, 3)
    )
    x1, y1 = int(FACE[0] * 256), int(FACE[1] * 256)
    x2, y2 = int(np.ceil((FACE[0] + FACE[2]) * 256)), int(np.ceil((FACE[1] + FACE[3]) * 256))
    assert np.array_equal(blurred[y1:y2, x1:x2], frame[y1:y2, x1:x2])  # the face as it is
    outside = np.ones(frame.shape[:2], bool)
    outside[y1:y2, x1:x2] = False

    def detail(img: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(img, cv2.CV_32F))[outside].mean())

    assert detail(blurred) < 0.3 * detail(frame)  # everything else is blurred
    assert np.shares_memory(frame, image) is False  # never the pipeline's own buffer


def test_the_byte_cap_reencodes_smaller_and_gives_up_cleanly() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # incompressible
    big = snapshot_jpeg(noise, (0, 0, 1, 1), SnapshotOptions("frame", max_bytes=4 * 1024**2))
    assert big is not None
    capped = snapshot_jpeg(noise, (0, 0, 1, 1), SnapshotOptions("frame", max_bytes=120_000))
    assert capped is not None and len(capped) <= 120_000 < len(big)
    assert snapshot_jpeg(noise, (0, 0, 1, 1), SnapshotOptions("frame", max_bytes=1024)) is None


def test_a_box_outside_the_frame_gives_no_picture() -> None:
    image = _portrait_bgr()
    assert render_snapshot(image, (1.2, 1.2, 0.1, 0.1), SnapshotOptions("face")) is None
    assert snapshot_jpeg(image, (1.2, 1.2, 0.1, 0.1), SnapshotOptions("face")) is None
