"""EventPolicy: replay synthetic timelines of track snapshots and check the events."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from edge_daemon.config.schema import AlertRule, EventsConfig
from edge_daemon.labels import FER_LABELS
from edge_daemon.policy import EVENT_TYPE_ORDER, AlertParams, EventPolicy, PolicyParams
from edge_daemon.policy.events import (
    FORGET_UNSEEN_S,
    normalise_bbox,
    shown_emotion,
)
from edge_daemon.publish.payloads import Origin, event_payload
from edge_daemon.track import IouTracker, TrackerParams
from edge_daemon.types import Event, FaceObservation, TrackSnapshot

LABELS = FER_LABELS
FPS = 30
FRAME = (640, 480)
BOX = (64.0, 48.0, 192.0, 240.0)  # -> bbox (0.1, 0.1, 0.2, 0.4)
WALL0 = 1_700_000_000.0

Frame = tuple[float, list[TrackSnapshot], list[int]]
Timed = list[tuple[float, Event]]


def probs_for(emotion: str, p: float) -> np.ndarray:
    """``p`` on ``emotion``, the rest spread evenly over the other labels."""
    out = np.full(len(LABELS), (1.0 - p) / (len(LABELS) - 1), dtype=np.float32)
    out[LABELS.index(emotion)] = p
    return out


def snap(tid: int, emotion: str = "happy", p: float = 0.9, t0: float = 0.0) -> TrackSnapshot:
    return TrackSnapshot(tid, BOX, probs_for(emotion, p), age_s=t0, observed=True)


def policy(
    alerts: Sequence[AlertParams] = (),
    min_confidence: float = 0.45,
    establish_s: float = 0.5,
    min_update_interval_s: float = 1.0,
) -> EventPolicy:
    params = PolicyParams(min_confidence, establish_s, min_update_interval_s)
    return EventPolicy("cam1", LABELS, params, alerts)


def timeline(
    start_frame: int, end_frame: int, tracks: Callable[[float], list[TrackSnapshot]]
) -> list[Frame]:
    """Frames ``start_frame..end_frame-1`` at FPS; ``tracks(t)`` gives each frame's tracks."""
    return [(i / FPS, tracks(i / FPS), []) for i in range(start_frame, end_frame)]


def run(pol: EventPolicy, frames: Sequence[Frame]) -> Timed:
    out: Timed = []
    for t, tracks, ended in frames:
        for event in pol.update(t, WALL0 + t, FRAME, tracks, ended):
            out.append((t, event))
    return out


def kinds(events: Timed) -> list[str]:
    return [e.type for _, e in events]


ANGRY_3S = AlertParams("angry_3s", "angry", min_score=0.6, min_duration_s=3.0, cooldown_s=5.0)


# --------------------------------------------------------------------------- params


def test_params_from_config() -> None:
    # The schema's defaults are the policy's DEFAULT_* constants (written once), so
    # default config and default params agree by construction.
    cfg = EventsConfig(min_confidence=0.6, establish_s=2, min_update_interval_s=5)
    assert PolicyParams.from_config(cfg) == PolicyParams(0.6, 2.0, 5.0)
    assert PolicyParams.from_config(EventsConfig()) == PolicyParams()
    rule = AlertRule(name="mad", emotion="angry", min_score=0.7, min_duration_s=2, cooldown_s=9)
    assert AlertParams.from_rule(rule) == AlertParams("mad", "angry", 0.7, 2.0, 9.0)
    default_rule = AlertRule(name="x", emotion="sad")
    assert AlertParams.from_rule(default_rule) == AlertParams("x", "sad")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PolicyParams(min_confidence=1.5), r"min_confidence must be in \[0, 1\]"),
        (lambda: PolicyParams(establish_s=-1), "establish_s must be >= 0"),
        (lambda: PolicyParams(min_update_interval_s=math.nan), "min_update_interval_s must be"),
        (lambda: AlertParams("a", "angry", min_score=-0.1), "min_score must be in"),
        (lambda: AlertParams("a", "angry", min_duration_s=math.inf), "min_duration_s must be"),
        (lambda: AlertParams("", "angry"), "alert name must not be empty"),
    ],
)
def test_invalid_params_raise(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_unknown_alert_emotion_raises() -> None:
    with pytest.raises(ValueError, match="contempt"):
        policy(alerts=[AlertParams("c", "contempt")])
    with pytest.raises(ValueError, match="unique"):
        policy(alerts=[AlertParams("a", "angry"), AlertParams("a", "sad")])
    with pytest.raises(ValueError, match="unique"):
        EventPolicy("cam1", ("a", "a"), PolicyParams())


def test_invalid_updates_raise() -> None:
    pol = policy()
    bad = TrackSnapshot(1, BOX, np.ones(5, np.float32) / 5, 0.0, True)
    with pytest.raises(ValueError, match="probs"):
        pol.update(0.0, WALL0, FRAME, [bad], [])
    with pytest.raises(ValueError, match="twice"):
        pol.update(0.0, WALL0, FRAME, [snap(1), snap(1)], [])
    with pytest.raises(ValueError, match="frame_size"):
        pol.update(0.0, WALL0, (0, 480), [snap(1)], [])
    pol.update(1.0, WALL0, FRAME, [snap(1)], [])
    with pytest.raises(ValueError, match="backwards"):
        pol.update(0.5, WALL0, FRAME, [snap(1)], [])


# --------------------------------------------------------------------------- start


def test_steady_face_gives_exactly_one_start_after_establish() -> None:
    events = run(policy(), timeline(0, 5 * FPS, lambda t: [snap(1, "happy", 0.9)]))
    assert kinds(events) == ["start"]
    t, event = events[0]
    assert t == pytest.approx(0.5)
    assert event.camera == "cam1" and event.track_id == 1
    assert event.emotion == "happy"
    assert event.confidence == pytest.approx(0.9)
    assert event.ts == pytest.approx(WALL0 + 0.5)
    assert list(event.scores) == list(LABELS)  # every label, in model order
    assert event.scores["happy"] == pytest.approx(0.9)
    assert sum(event.scores.values()) == pytest.approx(1.0)
    assert event.bbox == pytest.approx((0.1, 0.1, 0.2, 0.4))
    assert event.extra == {}


def test_below_min_confidence_never_starts() -> None:
    events = run(policy(), timeline(0, 5 * FPS, lambda t: [snap(1, "happy", 0.44)]))
    assert events == []


def test_confidence_dip_restarts_establishing() -> None:
    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, "happy", 0.3 if 0.3 <= t < 0.4 else 0.9)]

    events = run(policy(), timeline(0, 3 * FPS, tracks))
    assert [(round(t, 3), e.type) for t, e in events] == [(0.9, "start")]


def test_zero_establish_starts_immediately() -> None:
    events = run(policy(establish_s=0), timeline(0, 10, lambda t: [snap(1)]))
    assert [(t, e.type) for t, e in events] == [(0.0, "start")]


# --------------------------------------------------------------------------- update


def test_flicker_faster_than_establish_gives_no_update() -> None:
    def tracks(t: float) -> list[TrackSnapshot]:
        if t < 2.0:
            return [snap(1, "happy")]
        phase = int((t - 2.0) / 0.2) % 2  # flips every 0.2 s < establish_s = 0.5 s
        return [snap(1, "sad" if phase == 0 else "happy")]

    events = run(policy(), timeline(0, 10 * FPS, tracks))
    assert kinds(events) == ["start"]


def test_flicker_from_the_beginning_never_starts() -> None:
    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, ("sad", "happy")[int(t / 0.3) % 2])]

    assert run(policy(), timeline(0, 10 * FPS, tracks)) == []


def test_real_change_gives_one_update() -> None:
    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, "happy" if t < 3.0 else "sad", 0.8)]

    events = run(policy(), timeline(0, 8 * FPS, tracks))
    assert [(round(t, 3), e.type, e.emotion) for t, e in events] == [
        (0.5, "start", "happy"),
        (3.5, "update", "sad"),
    ]
    assert events[1][1].confidence == pytest.approx(0.8)


def test_update_waits_for_min_update_interval() -> None:
    # start at 0.5; sad from 0.6 is established at 1.1 but the interval ends at 2.5.
    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, "happy" if t < 0.6 else "sad")]

    events = run(policy(min_update_interval_s=2.0), timeline(0, 6 * FPS, tracks))
    assert [(round(t, 3), e.type, e.emotion) for t, e in events] == [
        (0.5, "start", "happy"),
        (2.5, "update", "sad"),
    ]


def test_change_that_reverts_within_interval_gives_no_update() -> None:
    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, "sad" if 0.6 <= t < 1.8 else "happy")]

    events = run(policy(min_update_interval_s=2.0), timeline(0, 6 * FPS, tracks))
    assert kinds(events) == ["start"]


def test_back_and_forth_changes_respect_interval() -> None:
    # Emotion changes every 0.8 s (> establish_s): updates are rate-limited to one per 2 s.
    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, ("happy", "sad", "neutral")[int(t / 0.8) % 3])]

    events = run(policy(min_update_interval_s=2.0), timeline(0, 20 * FPS, tracks))
    times = [t for t, _ in events]
    assert kinds(events)[0] == "start" and len(events) >= 3
    assert all(b - a >= 2.0 - 1e-9 for a, b in itertools.pairwise(times))
    emotions = [e.emotion for _, e in events]
    assert all(a != b for a, b in itertools.pairwise(emotions))


# --------------------------------------------------------------------------- end


def test_lost_track_ends_with_duration() -> None:
    pol = policy()
    frames = timeline(0, 3 * FPS, lambda t: [snap(1, "happy", 0.7)])
    frames.append((4.0, [], [1]))
    events = run(pol, frames)
    assert kinds(events) == ["start", "end"]
    t, end = events[1]
    assert t == 4.0
    assert end.emotion == "happy" and end.confidence == pytest.approx(0.7)
    assert end.extra == {"duration_s": pytest.approx(3.5)}
    assert end.bbox == pytest.approx((0.1, 0.1, 0.2, 0.4))
    assert len(pol) == 0 and pol.active_tracks() == []
    assert run(pol, [(5.0, [], [1])]) == []  # ended twice: nothing the second time


def test_end_carries_last_reported_emotion_and_latest_scores() -> None:
    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, "happy" if t < 2.0 else "sad", 0.8)]

    pol = policy()
    frames = timeline(0, int(2.2 * FPS), tracks)  # sad not yet established at the end
    frames.append((2.3, [], [1]))
    events = run(pol, frames)
    assert kinds(events) == ["start", "end"]
    end = events[1][1]
    assert end.emotion == "happy"
    assert end.scores["sad"] == pytest.approx(0.8)
    assert end.confidence == pytest.approx(end.scores["happy"])


def test_never_started_track_ends_silently() -> None:
    pol = policy()
    frames = timeline(0, 10, lambda t: [snap(1, "happy", 0.3)])  # too weak to start
    frames.append((1.0, [], [1]))
    assert run(pol, frames) == []
    assert len(pol) == 0


def test_alert_only_track_ends_silently() -> None:
    # angry 0.44 < min_confidence never starts, but it is >= the rule's 0.4 -> alert.
    pol = policy(alerts=[AlertParams("a", "angry", 0.4, 0.0, 0.0)])
    frames = timeline(0, 10, lambda t: [snap(1, "angry", 0.44)])
    frames.append((1.0, [], [1]))
    assert [(t, e.type) for t, e in run(pol, frames)] == [(0.0, "alert")]
    assert len(pol) == 0


def test_track_listed_in_ended_and_tracks_is_ended() -> None:
    pol = policy(establish_s=0)
    run(pol, [(0.0, [snap(1)], [])])
    events = run(pol, [(1.0, [snap(1)], [1])])
    assert kinds(events) == ["end"]
    assert len(pol) == 0


def test_unseen_track_is_forgotten_after_safety_timeout() -> None:
    pol = policy(establish_s=0)
    run(pol, [(0.0, [snap(1), snap(2)], [])])
    assert run(pol, [(FORGET_UNSEEN_S, [snap(2)], [])]) == []
    events = run(pol, [(FORGET_UNSEEN_S + 0.1, [snap(2)], [])])
    assert [(e.type, e.track_id) for _, e in events] == [("end", 1)]
    assert len(pol) == 1


# --------------------------------------------------------------------------- alerts


def test_alert_fires_at_min_duration_once() -> None:
    pol = policy(alerts=[ANGRY_3S])
    events = run(pol, timeline(0, 10 * FPS, lambda t: [snap(1, "angry", 0.7)]))
    alerts = [(t, e) for t, e in events if e.type == "alert"]
    assert len(alerts) == 1  # a continuous hold alerts once, even past the cooldown
    t, alert = alerts[0]
    assert t == pytest.approx(3.0)  # not before
    assert alert.emotion == "angry" and alert.confidence == pytest.approx(0.7)
    assert alert.extra == {"alert": "angry_3s", "duration_s": pytest.approx(3.0)}
    assert list(alert.scores) == list(LABELS)


def test_alert_below_threshold_never_fires() -> None:
    pol = policy(alerts=[ANGRY_3S])
    events = run(pol, timeline(0, 20 * FPS, lambda t: [snap(1, "angry", 0.59)]))
    assert [e.type for _, e in events] == ["start"]


def test_alert_rearms_after_break_and_cooldown() -> None:
    def tracks(t: float) -> list[TrackSnapshot]:
        broken = 10.0 <= t < 11.0 or 20.0 <= t < 20.5
        return [snap(1, "angry", 0.3 if broken else 0.7)]

    pol = policy(alerts=[ANGRY_3S])  # cooldown 5 s
    events = run(pol, timeline(0, 30 * FPS, tracks))
    alerts = [(round(t, 3), e.extra["duration_s"]) for t, e in events if e.type == "alert"]
    # 3.0: first hold; 14.0: re-held 3 s after the break at 10-11; 23.5: after 20-20.5.
    assert alerts == [(3.0, 3.0), (14.0, 3.0), (23.5, 3.0)]


def test_alert_rehold_waits_for_cooldown() -> None:
    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, "angry", 0.3 if 4.0 <= t < 4.5 else 0.7)]

    rule = AlertParams("angry_3s", "angry", 0.6, 3.0, cooldown_s=30.0)
    events = run(policy(alerts=[rule]), timeline(0, 40 * FPS, tracks))
    alerts = [(round(t, 3), e.extra["duration_s"]) for t, e in events if e.type == "alert"]
    # Re-held from 4.5 (3 s reached at 7.5) but the cooldown only ends at 33.0.
    assert alerts == [(3.0, 3.0), (33.0, 28.5)]


def test_alert_is_per_track_and_per_rule() -> None:
    rules = [
        AlertParams("angry_1s", "angry", 0.5, 1.0, 0.0),
        AlertParams("angry_2s", "angry", 0.5, 2.0, 0.0),
    ]

    def tracks(t: float) -> list[TrackSnapshot]:
        return [snap(1, "angry", 0.8), snap(2, "angry", 0.8 if t >= 1.0 else 0.1)]

    events = run(policy(alerts=rules), timeline(0, 4 * FPS, tracks))
    alerts = [(round(t, 3), e.track_id, e.extra["alert"]) for t, e in events if e.type == "alert"]
    assert alerts == [
        (1.0, 1, "angry_1s"),
        (2.0, 1, "angry_2s"),
        (2.0, 2, "angry_1s"),
        (3.0, 2, "angry_2s"),
    ]


# --------------------------------------------------------------------------- misc


def test_events_are_ordered_by_track_then_type() -> None:
    rule = AlertParams("angry_now", "angry", 0.6, 0.5, 0.0)
    pol = policy(alerts=[rule])
    run(pol, timeline(0, FPS, lambda t: [snap(3, "happy"), snap(1, "happy")]))
    events = run(pol, [(1.0, [snap(5, "angry")], [])])
    assert events == []
    events = run(pol, [(1.5, [snap(5, "angry"), snap(1, "happy")], [3])])
    assert [(e.track_id, e.type) for _, e in events] == [(3, "end"), (5, "start"), (5, "alert")]
    assert EVENT_TYPE_ORDER == ("end", "start", "update", "alert")


def test_active_tracks() -> None:
    pol = policy()
    run(pol, timeline(0, FPS, lambda t: [snap(2, "sad", 0.8), snap(1, "happy", 0.6)]))
    assert pol.active_tracks() == [(1, "happy", pytest.approx(0.6)), (2, "sad", pytest.approx(0.8))]
    run(pol, [(1.1, [snap(1, "happy", 0.5)], [2])])
    assert pol.active_tracks() == [(1, "happy", pytest.approx(0.5))]
    # Below min_confidence the reported emotion is not claimed any more.
    run(pol, [(1.2, [snap(1, "happy", 0.3)], [])])
    assert pol.active_tracks() == [(1, "uncertain", pytest.approx(0.3))]


def test_shown_emotion_names_nothing_below_the_floor() -> None:
    probs = np.array([0.1, 0.0, 0.0, 0.44, 0.2, 0.0, 0.26], np.float32)
    assert shown_emotion(probs, FER_LABELS, 0.45) == ("uncertain", pytest.approx(0.44))
    assert shown_emotion(probs, FER_LABELS, 0.4) == ("happy", pytest.approx(0.44))
    # Ties go to the label listed first, as for events.
    tie = np.array([0.5, 0, 0, 0.5, 0, 0, 0], np.float32)
    assert shown_emotion(tie, FER_LABELS, 0.45)[0] == "angry"


@pytest.mark.parametrize(
    ("xyxy", "size", "expected"),
    [
        ((64, 48, 192, 240), (640, 480), (0.1, 0.1, 0.2, 0.4)),
        ((-10, 20, 100, 500), (200, 400), (0.0, 0.05, 0.5, 0.95)),
        ((700, 500, 800, 600), (640, 480), (1.0, 1.0, 0.0, 0.0)),
    ],
)
def test_bbox_is_normalised_and_clamped(
    xyxy: tuple[float, float, float, float],
    size: tuple[int, int],
    expected: tuple[float, float, float, float],
) -> None:
    assert normalise_bbox(xyxy, size) == pytest.approx(expected)
    pol = policy(establish_s=0)
    s = TrackSnapshot(1, xyxy, probs_for("happy", 0.9), 0.0, True)
    (event,) = pol.update(0.0, WALL0, size, [s], [])
    assert event.bbox == pytest.approx(expected)
    assert all(0.0 <= v <= 1.0 for v in event.bbox)


def test_long_replay_with_tracker_keeps_state_bounded() -> None:
    """10k frames, faces coming and going, detection every 2nd frame, random dropouts."""
    rng = random.Random(1234)
    tracker = IouTracker(TrackerParams(0.3, 2, 0.5, 0.3), len(LABELS))
    pol = policy(alerts=[AlertParams("angry_2s", "angry", 0.6, 2.0, 10.0)])
    slots = 6
    present = [False] * slots
    next_change = [rng.uniform(0.0, 3.0) for _ in range(slots)]
    emotion = [rng.choice(LABELS) for _ in range(slots)]
    seq = 0
    started: set[int] = set()
    ended_ids: set[int] = set()
    max_policy = 0
    frames = 10_000
    for i in range(frames + 3 * FPS):
        t = i / FPS
        if i >= frames:  # final 3 s: everyone leaves
            present = [False] * slots
        else:
            for s in range(slots):
                if t >= next_change[s]:
                    present[s] = not present[s]
                    emotion[s] = rng.choice(LABELS)
                    next_change[s] = t + rng.uniform(0.5, 6.0 if present[s] else 3.0)
                elif rng.random() < 0.01:
                    emotion[s] = rng.choice(LABELS)
        if i % 2:
            observations: list[FaceObservation] | None = None
        else:
            observations = []
            for s in range(slots):
                if present[s] and rng.random() > 0.05:
                    x = 10 + 100 * s + rng.uniform(-3, 3)
                    p = probs_for(emotion[s], rng.uniform(0.4, 0.95))
                    observations.append(FaceObservation((x, 100.0, x + 80.0, 180.0), 0.9, p))
        update = tracker.update(t, observations)
        for event in pol.update(t, WALL0 + t, FRAME, update.tracks, update.ended):
            seq += 1
            event_payload(event, seq, Origin("0" * 32, 1))  # every event is publishable
            if event.type == "start":
                assert event.track_id not in started
                started.add(event.track_id)
            elif event.type == "end":
                assert event.track_id in started and event.track_id not in ended_ids
                ended_ids.add(event.track_id)
        assert len(pol) <= len(update.tracks)  # no state for tracks that are gone
        assert len(tracker) <= 2 * slots
        max_policy = max(max_policy, len(pol))
    assert seq > 100 and len(started) > 50
    assert started == ended_ids  # every start got exactly one end
    assert len(pol) == 0 and len(tracker) == 0
    assert 0 < max_policy <= slots
