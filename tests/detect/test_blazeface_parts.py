"""The numpy parts of the BlazeFace graph: anchors, decoding, weighted NMS, letterbox."""

from __future__ import annotations

import numpy as np
import pytest

from edge_daemon.detect.blazeface import SPECS, decode, letterbox, ssd_anchors, weighted_nms


@pytest.mark.parametrize("model", ["short_range", "full_range"])
def test_anchor_layout_matches_the_model_outputs(model: str) -> None:
    spec = SPECS[model]
    anchors = ssd_anchors(spec)
    assert anchors.shape == (spec.num_boxes, 2)
    assert anchors.min() > 0 and anchors.max() < 1
    # First feature map, first row: anchors advance along x by one cell.
    stride, per_cell = spec.grids[0]
    cell = stride / spec.input_size
    assert anchors[0].tolist() == pytest.approx([cell / 2, cell / 2])
    assert anchors[per_cell].tolist() == pytest.approx([1.5 * cell, cell / 2])


def test_decode_places_boxes_relative_to_their_anchor() -> None:
    spec = SPECS["short_range"]
    anchors = ssd_anchors(spec)
    raw = np.zeros((spec.num_boxes, 16), np.float32)
    logits = np.full(spec.num_boxes, -10.0, np.float32)
    raw[5] = [3, -2, 20, 30] + [0] * 12  # dx, dy, w, h in input pixels
    logits[5] = 2.0  # sigmoid 0.88
    boxes, scores = decode(raw, logits, anchors, spec.input_size, 0.5)
    cx, cy = anchors[5] * spec.input_size + [3, -2]
    assert boxes.tolist() == [pytest.approx([cx - 10, cy - 15, cx + 10, cy + 15])]
    assert scores.tolist() == pytest.approx([1 / (1 + np.exp(-2.0))])
    # Extreme logits neither overflow nor pass the threshold when negative.
    logits[:] = -1e6
    assert len(decode(raw, logits, anchors, spec.input_size, 0.5)[0]) == 0


def test_weighted_nms_merges_clusters_by_score_and_keeps_separate_faces() -> None:
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60], [1, 1, 11, 11]], np.float32)
    scores = np.array([0.9, 0.6, 0.8, 0.3], np.float32)
    out, out_scores = weighted_nms(boxes, scores, 0.3)
    assert out_scores.tolist() == pytest.approx([0.9, 0.8])  # the top score of each cluster
    expected = (boxes[0] * 0.9 + boxes[1] * 0.6 + boxes[3] * 0.3) / 1.8
    assert out[0].tolist() == pytest.approx(expected.tolist())
    assert out[1].tolist() == pytest.approx([50, 50, 60, 60])


@pytest.mark.parametrize("shape", [(720, 1280), (1280, 720), (100, 100), (37, 500)])
def test_letterbox_maps_frame_pixels_into_the_tensor(shape: tuple[int, int]) -> None:
    h, w = shape
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 2] = 255  # pure red in BGR
    out = np.empty((192, 192, 3), np.float32)
    scale, px, py = letterbox(img, 192, out)
    assert scale == pytest.approx(192 / max(h, w))
    # The frame's corners land inside the tensor, centred; the border stays black (-1).
    assert px == (192 - round(w * scale)) // 2 and py == (192 - round(h * scale)) // 2
    inside = out[int(py) : int(py + h * scale), int(px) : int(px + w * scale)]
    assert np.allclose(inside[..., 0], 1.0) and np.allclose(inside[..., 1:], -1.0)  # RGB
    if px or py:
        assert np.all(out[0, 0] == -1.0) and np.all(out[-1, -1] == -1.0)
