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


# --------------------------------------------------- degenerate and random raw outputs
# (robustness round 2, item 1: a zero-size box once kept weighted NMS looping forever)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402


def test_decode_drops_boxes_without_a_positive_finite_size() -> None:
    spec = SPECS["short_range"]
    anchors = ssd_anchors(spec)
    raw = np.zeros((spec.num_boxes, 16), np.float32)
    logits = np.full(spec.num_boxes, -10.0, np.float32)
    sizes = [(20, 30), (0, 30), (20, -1), (np.nan, 5), (np.inf, 5), (10, 10)]
    for i, (w, h) in enumerate(sizes):
        raw[i, 2:4] = (w, h)
        logits[i] = 3.0
    boxes, scores = decode(raw, logits, anchors, spec.input_size, 0.5)
    assert len(boxes) == len(scores) == 2
    assert np.isfinite(boxes).all()
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()


def test_weighted_nms_ends_on_degenerate_boxes() -> None:
    # Before the fix this never returned: a zero-area top box has IoU 0 with itself.
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 9], [0, 0, 10, 10]], np.float32)
    out, scores = weighted_nms(boxes, np.array([0.9, 0.8, 0.7], np.float32))
    assert len(out) == 3 and scores.tolist() == pytest.approx([0.9, 0.8, 0.7])


_finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)
_any = st.floats(width=32)  # NaN and +-inf included


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=arrays(np.float32, (896, 16), elements=_any),
    logits=arrays(np.float32, (896,), elements=st.floats(-20, 20, width=32)),
)
def test_decode_and_nms_of_any_raw_output_terminate_with_sane_boxes(raw, logits) -> None:
    spec = SPECS["short_range"]
    boxes, scores = decode(raw, logits, ssd_anchors(spec), spec.input_size, 0.5)
    assert np.isfinite(boxes).all()
    out, out_scores = weighted_nms(boxes, scores)
    assert len(out) == len(out_scores) <= len(boxes)
    assert out.shape[1:] == (4,)
    assert np.isfinite(out).all() and ((out_scores >= 0.5) & (out_scores <= 1)).all()


@settings(max_examples=200, deadline=None)
@given(
    boxes=arrays(np.float32, st.tuples(st.integers(0, 40), st.just(4)), elements=_finite),
    data=st.data(),
)
def test_weighted_nms_of_any_boxes_terminates_and_keeps_each_top_score(boxes, data) -> None:
    n = len(boxes)
    scores = data.draw(arrays(np.float32, (n,), elements=st.floats(0.015625, 1, width=32)))
    out, out_scores = weighted_nms(boxes, scores)
    assert 1 <= len(out) <= n if n else len(out) == 0
    assert out.shape == (len(out_scores), 4)
    if n:
        assert out_scores[0] == pytest.approx(scores.max())


def test_huge_finite_regressor_outputs_give_no_infinite_boxes() -> None:
    # Regression: a finite float32 offset near its maximum overflowed to inf in decode's
    # centre +- half size, and a cluster of such boxes overflowed weighted NMS's sum.
    spec = SPECS["short_range"]
    anchors = ssd_anchors(spec)
    raw = np.zeros((len(anchors), 16), np.float32)
    raw[:, 2:4] = 10.0  # ordinary boxes...
    raw[:3, :4] = 3e38  # ...and three whose offsets and sizes are finite but huge
    logits = np.full(len(anchors), 5.0, np.float32)
    boxes, scores = decode(raw, logits, anchors, spec.input_size, 0.5)
    assert np.isfinite(boxes).all() and len(boxes) == len(anchors) - 3 == len(scores)
    huge = np.full((3, 4), 1e38, np.float32)
    huge[:, 2:] = 3e38  # finite boxes overlapping fully: one cluster, sum > float32 max
    out, _ = weighted_nms(huge, np.ones(3, np.float32))
    assert len(out) == 1 and np.isfinite(out).all()
