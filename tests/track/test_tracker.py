"""IouTracker: replay synthetic timelines of (t, observations) and check the tracks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from edge_daemon.config.schema import TrackerConfig
from edge_daemon.track import IouTracker, TrackerParams, TrackUpdate, iou_matrix
from edge_daemon.types import FaceObservation

K = 7  # classes
FPS = 30.0
DT = 1.0 / FPS

Timeline = list[tuple[float, list[FaceObservation] | None]]


def probs_for(cls: int = 3, p: float = 0.9, k: int = K) -> np.ndarray:
    """Probabilities with ``p`` on class ``cls`` and the rest spread evenly."""
    out = np.full(k, (1.0 - p) / (k - 1), dtype=np.float32)
    out[cls] = p
    return out


def face(
    x: float, y: float, size: float = 80.0, probs: np.ndarray | None = None
) -> FaceObservation:
    """A square face with its top-left corner at (x, y)."""
    return FaceObservation(
        xyxy=(x, y, x + size, y + size),
        det_score=0.9,
        probs=probs_for() if probs is None else probs,
    )


def params(**kw: float) -> TrackerParams:
    base: dict[str, float] = {
        "iou_threshold": 0.3,
        "min_hits": 2,
        "max_missed_s": 1.0,
        "smoothing_half_life_s": 0.5,
    }
    base.update(kw)
    return TrackerParams(**base)  # type: ignore[arg-type]


def replay(tracker: IouTracker, timeline: Timeline) -> list[TrackUpdate]:
    return [tracker.update(t, obs) for t, obs in timeline]


def ended_ids(updates: Sequence[TrackUpdate]) -> list[int]:
    return [tid for u in updates for tid in u.ended]


# --------------------------------------------------------------------------- params


def test_params_from_config_and_defaults_match_schema() -> None:
    cfg = TrackerConfig(iou_threshold=0.4, min_hits=3, max_missed_s=2.5, smoothing_half_life_s=0)
    assert TrackerParams.from_config(cfg) == TrackerParams(0.4, 3, 2.5, 0.0)
    default = TrackerConfig()
    assert TrackerParams.from_config(default) == TrackerParams()


@pytest.mark.parametrize(
    "kw",
    [
        {"iou_threshold": 0.0},
        {"iou_threshold": 1.5},
        {"iou_threshold": math.nan},
        {"min_hits": 0},
        {"min_hits": 1.5},
        {"max_missed_s": 0.0},
        {"max_missed_s": math.inf},
        {"smoothing_half_life_s": -1.0},
    ],
)
def test_invalid_params_raise(kw: dict[str, float]) -> None:
    (name,) = kw  # every message starts with the setting's name
    with pytest.raises(ValueError, match=f"^{name} must be"):
        params(**kw)


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=np.float64)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float64)
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0])
    np.testing.assert_allclose(iou[1], [0.0, 0.0, 0.0])  # degenerate box
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


# --------------------------------------------------------------------------- identity


def test_two_faces_moving_slowly_keep_their_ids() -> None:
    tracker = IouTracker(params(), K)
    timeline: Timeline = [
        (i * DT, [face(50 + 1.5 * i, 100), face(400 - 1.5 * i, 120 + i)]) for i in range(90)
    ]
    updates = replay(tracker, timeline)
    assert updates[0].tracks == []  # min_hits=2: nothing confirmed on the first frame
    for u in updates[1:]:
        assert [s.track_id for s in u.tracks] == [1, 2]
        left, right = u.tracks
        assert left.xyxy[0] < right.xyxy[0]  # id 1 is the face that started on the left
        assert right.xyxy[1] > 120  # id 2 is the one drifting down
        assert left.observed and right.observed
    assert ended_ids(updates) == []
    assert len(tracker) == 2


def test_crossing_faces_keep_their_ids() -> None:
    """Two faces pass each other (partly overlapping) and each keeps its id."""
    tracker = IouTracker(params(), K)
    timeline: Timeline = [
        (i * DT, [face(100 + 4 * i, 100), face(500 - 4 * i, 150)]) for i in range(100)
    ]
    updates = replay(tracker, timeline)
    xs: dict[int, list[float]] = {1: [], 2: []}
    for u in updates[1:]:
        assert [s.track_id for s in u.tracks] == [1, 2]
        for s in u.tracks:
            xs[s.track_id].append(s.xyxy[0])
    assert np.all(np.diff(xs[1]) > 0)  # track 1 always moves right
    assert np.all(np.diff(xs[2]) < 0)  # track 2 always moves left
    assert xs[1][-1] > xs[2][-1]  # and they did cross
    assert ended_ids(updates) == []


def test_one_detection_matches_one_track_only() -> None:
    tracker = IouTracker(params(min_hits=1), K)
    tracker.update(0.0, [face(100, 100), face(110, 100)])
    u = tracker.update(DT, [face(100, 100)])  # exact match for track 1
    assert [(s.track_id, s.observed) for s in u.tracks] == [(1, True), (2, False)]


def test_single_frame_face_never_confirms() -> None:
    tracker = IouTracker(params(min_hits=2), K)
    timeline: Timeline = [(0.0, [])]
    timeline.append((DT, [face(100, 100)]))  # a one-frame false positive
    timeline += [(i * DT, []) for i in range(2, 60)]
    updates = replay(tracker, timeline)
    assert all(u.tracks == [] for u in updates)
    assert ended_ids(updates) == []
    assert len(tracker) == 0


def test_min_hits_three_confirms_on_third_detection() -> None:
    tracker = IouTracker(params(min_hits=3), K)
    updates = replay(tracker, [(i * DT, [face(100 + i, 100)]) for i in range(4)])
    assert [len(u.tracks) for u in updates] == [0, 0, 1, 1]
    assert updates[2].tracks[0].age_s == pytest.approx(2 * DT)


def test_disappearing_face_ends_after_max_missed_exactly_once() -> None:
    tracker = IouTracker(params(max_missed_s=1.0), K)
    seen = [(i * DT, [face(100, 100)]) for i in range(30)]
    last_seen = seen[-1][0]
    gone: Timeline = [(i * DT, []) for i in range(30, 120)]
    updates = replay(tracker, seen + gone)
    ends = [(t, u.ended) for (t, _), u in zip(seen + gone, updates, strict=True) if u.ended]
    assert len(ends) == 1
    t_end, ids = ends[0]
    assert ids == [1]
    assert t_end - last_seen > 1.0  # lost on the first update more than 1 s later
    assert t_end - DT - last_seen <= 1.0
    for (t, _), u in zip(seen + gone, updates, strict=True):
        if last_seen < t < t_end:
            assert [(s.track_id, s.observed) for s in u.tracks] == [(1, False)]
        elif t >= t_end:
            assert u.tracks == []
    assert len(tracker) == 0


def test_skipped_detection_frames_are_not_misses_but_time_expires() -> None:
    tracker = IouTracker(params(min_hits=2, max_missed_s=0.5), K)
    # Detect every 3rd frame; None in between. A tentative track survives the Nones.
    timeline: Timeline = [(i * DT, [face(100 + i, 100)] if i % 3 == 0 else None) for i in range(30)]
    updates = replay(tracker, timeline)
    assert updates[0].tracks == [] and updates[1].tracks == [] and updates[2].tracks == []
    assert [s.track_id for s in updates[3].tracks] == [1]  # second detection confirms it
    for i, u in enumerate(updates[3:], start=3):
        assert len(u.tracks) == 1
        assert u.tracks[0].observed is (i % 3 == 0)
        if i % 3:  # skipped frame: box held from the last detection
            assert u.tracks[0].xyxy[0] == 100 + (i - i % 3)
    # Detection off entirely: the track still expires after max_missed_s of time.
    last_match = 27 * DT
    later = replay(tracker, [(last_match + k * 0.15, None) for k in range(1, 8)])
    ends = [k for k, u in enumerate(later, start=1) if u.ended]
    assert ends == [4]  # first update more than 0.5 s after the last match (0.6 s)
    assert ended_ids(later) == [1]


def test_tentative_track_expires_by_time_on_skipped_frames() -> None:
    tracker = IouTracker(params(min_hits=2, max_missed_s=0.5), K)
    tracker.update(0.0, [face(100, 100)])
    assert len(tracker) == 1
    assert tracker.update(0.4, None).ended == []
    assert len(tracker) == 1
    u = tracker.update(0.6, None)
    assert u.ended == [] and u.tracks == []  # tentative: dropped silently
    assert len(tracker) == 0


def test_ids_are_never_reused() -> None:
    tracker = IouTracker(params(min_hits=1, max_missed_s=0.2), K)
    timeline: Timeline = []
    t = 0.0
    for _ in range(5):  # a face appears, stays 0.5 s, leaves for 0.5 s; repeat
        for _ in range(15):
            timeline.append((t, [face(100, 100)]))
            t += DT
        for _ in range(15):
            timeline.append((t, []))
            t += DT
    updates = replay(tracker, timeline)
    assert ended_ids(updates) == [1, 2, 3, 4, 5]
    seen_ids = sorted({s.track_id for u in updates for s in u.tracks})
    assert seen_ids == [1, 2, 3, 4, 5]
    tracker.update(t, [face(100, 100)])
    assert tracker.reset() == [6]
    assert len(tracker) == 0
    assert [s.track_id for s in tracker.update(0.0, [face(1, 1)]).tracks] == [7]


# --------------------------------------------------------------------------- smoothing


def test_smoothing_half_life_step_is_half_way_after_one_half_life() -> None:
    a, b = probs_for(0, 0.9), probs_for(3, 0.9)
    tracker = IouTracker(params(min_hits=1, smoothing_half_life_s=0.5), K)
    tracker.update(0.0, [face(100, 100, probs=a)])
    u = tracker.update(0.5, [face(100, 100, probs=b)])
    np.testing.assert_allclose(u.tracks[0].probs, 0.5 * a + 0.5 * b, atol=1e-6)


def test_smoothing_is_frame_rate_independent() -> None:
    a, b = probs_for(0, 0.9), probs_for(3, 0.9)
    results = []
    for steps in (1, 5, 50):
        tracker = IouTracker(params(min_hits=1, smoothing_half_life_s=0.5), K)
        tracker.update(0.0, [face(100, 100, probs=a)])
        for i in range(1, steps + 1):
            u = tracker.update(i * 1.0 / steps, [face(100, 100, probs=b)])
        results.append(u.tracks[0].probs)  # two half-lives: 3/4 of the way
    for probs in results:
        np.testing.assert_allclose(probs, 0.25 * a + 0.75 * b, atol=1e-5)
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_smoothing_skipped_frames_do_not_change_probs() -> None:
    a, b = probs_for(0, 0.9), probs_for(3, 0.9)
    tracker = IouTracker(params(min_hits=1, smoothing_half_life_s=0.5), K)
    tracker.update(0.0, [face(100, 100, probs=a)])
    for t in (0.1, 0.2, 0.3, 0.4):
        np.testing.assert_allclose(tracker.update(t, None).tracks[0].probs, a, atol=1e-6)
    u = tracker.update(0.5, [face(100, 100, probs=b)])  # dt measured from the last match
    np.testing.assert_allclose(u.tracks[0].probs, 0.5 * a + 0.5 * b, atol=1e-6)


def test_zero_half_life_means_no_smoothing() -> None:
    a, b = probs_for(0, 0.9), probs_for(3, 0.8)
    tracker = IouTracker(params(min_hits=1, smoothing_half_life_s=0.0), K)
    tracker.update(0.0, [face(100, 100, probs=a)])
    u = tracker.update(DT, [face(100, 100, probs=b)])
    np.testing.assert_allclose(u.tracks[0].probs, b, atol=1e-7)


def test_snapshot_probs_are_a_read_only_copy() -> None:
    tracker = IouTracker(params(min_hits=1), K)
    snap = tracker.update(0.0, [face(100, 100)]).tracks[0]
    assert snap.probs.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        snap.probs[0] = 1.0


# --------------------------------------------------------------------------- validation


def test_invalid_probs_length_raises() -> None:
    tracker = IouTracker(params(), K)
    with pytest.raises(ValueError, match="probs"):
        tracker.update(0.0, [face(100, 100, probs=probs_for(0, 0.9, k=5))])
    bad = probs_for().copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        tracker.update(0.0, [face(100, 100, probs=bad)])
    assert len(tracker) == 0  # a rejected update changes nothing


def test_invalid_boxes_and_time_raise() -> None:
    tracker = IouTracker(params(), K)
    with pytest.raises(ValueError, match="x1<=x2"):
        tracker.update(0.0, [FaceObservation((10, 10, 5, 20), 0.9, probs_for())])
    with pytest.raises(ValueError, match="finite"):
        tracker.update(math.nan, [])
    tracker.update(1.0, [])
    tracker.update(1.0, [])  # equal time is fine
    with pytest.raises(ValueError, match="backwards"):
        tracker.update(0.5, [])
    with pytest.raises(ValueError, match="num_classes"):
        IouTracker(params(), 0)


# --------------------------------------------------------------------------- weak boxes


def _box(x: float, y: float, size: float = 80.0) -> np.ndarray:
    return np.array([[x, y, x + size, y + size]])


def test_weak_boxes_keep_a_confirmed_track_alive_without_touching_its_probabilities() -> None:
    tr = IouTracker(params(), K)
    tr.update(0.0, [face(100, 100)])
    tr.update(DT, [face(102, 100)])
    before = tr.update(2 * DT, [face(104, 100)]).tracks[0]
    # 2 s of weak boxes only (max_missed_s is 1 s), drifting right: still the same id.
    t = 2 * DT
    for i in range(60):
        t += DT
        upd = tr.update(t, [], _box(106 + 2 * i, 100))
        assert not upd.ended and [s.track_id for s in upd.tracks] == [before.track_id]
        assert upd.tracks[0].observed
    after = upd.tracks[0]
    assert after.xyxy == pytest.approx((224, 100, 304, 180))  # the box followed
    np.testing.assert_array_equal(after.probs, before.probs)
    # The next classified match is weighed by the time since the last classified one
    # (2 s: four half-lives), not since the last weak box.
    sad = probs_for(cls=4, p=0.9)
    mixed = tr.update(t + DT, [face(226, 100, probs=sad)]).tracks[0]
    alpha = 1 - 0.5 ** ((t + DT - 2 * DT) / 0.5)
    want = alpha * sad + (1 - alpha) * before.probs
    np.testing.assert_allclose(mixed.probs, want, rtol=1e-5)


def test_weak_boxes_never_start_or_confirm_a_track() -> None:
    tr = IouTracker(params(), K)
    for i in range(10):  # weak only: nothing, ever
        upd = tr.update(i * DT, [], _box(100, 100))
        assert not upd.tracks and len(tr) == 0
    tr.update(10 * DT, [face(300, 300)])  # a tentative track...
    upd = tr.update(11 * DT, [], _box(300, 300))  # ...that only a weak box matches
    assert not upd.tracks and len(tr) == 0  # is dropped at its first (strong) miss


def test_strong_faces_are_matched_before_weak_boxes() -> None:
    tr = IouTracker(params(), K)
    tr.update(0.0, [face(100, 100)])
    tid = tr.update(DT, [face(100, 100)]).tracks[0].track_id
    # A weak box overlaps the track more than the strong face does: the strong face wins,
    # and the weak box is left over (it starts nothing).
    upd = tr.update(2 * DT, [face(120, 100)], _box(101, 100))
    assert [s.track_id for s in upd.tracks] == [tid]
    assert upd.tracks[0].xyxy == pytest.approx((120, 100, 200, 180))
    assert len(tr) == 1


def test_weak_boxes_are_ignored_when_detection_was_skipped() -> None:
    tr = IouTracker(params(), K)
    tr.update(0.0, [face(100, 100)])
    tr.update(DT, [face(100, 100)])
    upd = tr.update(1.5, None, _box(100, 100))  # skipped frame: no match of any kind
    assert upd.ended == [1] and not upd.tracks


@pytest.mark.parametrize(
    "weak", [np.array([[1.0, 2.0, 3.0]]), np.array([[5.0, 5.0, 1.0, 9.0]]), np.full((1, 4), np.nan)]
)
def test_malformed_weak_boxes_are_refused(weak: np.ndarray) -> None:
    with pytest.raises(ValueError, match="weak"):
        IouTracker(params(), K).update(0.0, [], weak)
