"""Event policy: turns per-frame track snapshots into a sparse stream of emotion events.

A pure state machine in the spirit of a driver-monitoring policy: it is fed time (``now``,
monotonic seconds, used for every duration) and never reads a clock; ``wall_ts`` only
stamps :attr:`Event.ts`. Same inputs, same events.

Per track (the "dominant" emotion is the argmax of the smoothed probabilities; ties go to
the label listed first):

* A **candidate** is the dominant emotion while its probability is ``>= min_confidence``.
  It becomes **established** once the candidate has stayed the same, uninterrupted, for
  ``>= establish_s``. Any frame with a different dominant emotion, or with the dominant
  probability below ``min_confidence``, restarts the clock.
* ``start`` -- once per track, at the first established emotion.
* ``update`` -- when an established emotion differs from the last reported one (the
  ``start``/``update`` emotion) and ``>= min_update_interval_s`` have passed since that
  event. If the interval has not passed yet, the update is emitted as soon as it has,
  provided the new emotion is still established then. Nothing is emitted while the
  emotion is unchanged, so there is never an event per frame.
* ``end`` -- when a track that had a ``start`` is listed in ``ended``. It carries the last
  reported emotion, its latest probability as ``confidence``, the latest scores and bbox,
  and ``extra={"duration_s": now - start_time}``. A track that never started ends
  silently (this includes a track that only raised alerts).
* ``alert`` -- per rule and track, see :class:`AlertParams`. Independent of start/update.

Every snapshot counts, whether or not it was ``observed`` in that frame: the tracker holds
a track's probabilities over skipped/missed detection frames, and counting those frames
keeps establishing and alert durations in wall time rather than in detection frames.

Ordering: the events of one :meth:`EventPolicy.update` are sorted by ``track_id``, then by
:data:`EVENT_TYPE_ORDER` (``end``, ``start``, ``update``, ``alert``), then alerts by rule
order. A ``start`` and an ``update`` never occur for one track in the same call.

Memory: state is dropped when a track ends. As a safety net against a caller that never
reports an end, a track absent from ``tracks`` for more than :data:`FORGET_UNSEEN_S` is
ended (with an ``end`` event if it had started) and forgotten.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge_daemon.labels import UNCERTAIN
from edge_daemon.types import Event, TrackSnapshot

if TYPE_CHECKING:  # only read as attributes; keeps pydantic out of the policy's imports
    from edge_daemon.config.schema import AlertRule, EventsConfig

__all__ = [
    "DEFAULT_ALERT_COOLDOWN_S",
    "DEFAULT_ALERT_MIN_DURATION_S",
    "DEFAULT_ALERT_MIN_SCORE",
    "DEFAULT_ESTABLISH_S",
    "DEFAULT_MIN_CONFIDENCE",
    "DEFAULT_MIN_UPDATE_INTERVAL_S",
    "EVENT_TYPE_ORDER",
    "FORGET_UNSEEN_S",
    "UNCERTAIN",
    "AlertParams",
    "EventPolicy",
    "PolicyParams",
    "normalise_bbox",
    "shown_emotion",
]

#: Smoothed probability (0..1) the dominant emotion needs to count. Higher = only clear
#: expressions produce events (fewer, more reliable); lower = more events on ambiguous faces.
DEFAULT_MIN_CONFIDENCE: float = 0.45
#: Seconds a dominant emotion must hold before a start/update. Higher = fewer false flips
#: from noisy frames, but every event is reported later (this is the event latency floor).
DEFAULT_ESTABLISH_S: float = 0.5
#: Minimum seconds between two start/update events of one track. Higher = a calmer event
#: stream for oscillating faces, at the cost of reporting a real second change later.
DEFAULT_MIN_UPDATE_INTERVAL_S: float = 1.0
#: Default alert threshold (0..1) on the watched emotion's smoothed probability.
DEFAULT_ALERT_MIN_SCORE: float = 0.6
#: Default seconds the watched emotion must stay >= min_score before an alert.
DEFAULT_ALERT_MIN_DURATION_S: float = 3.0
#: Default minimum seconds between two alerts of one rule for one track.
DEFAULT_ALERT_COOLDOWN_S: float = 30.0
#: Seconds a track may be absent from ``tracks`` (without being in ``ended``) before the
#: policy ends and forgets it. Only a safety net against unbounded memory: the tracker
#: reports every live confirmed track in every update and every lost one in ``ended``.
FORGET_UNSEEN_S: float = 60.0
#: Order of event types of one track within one update.
EVENT_TYPE_ORDER: tuple[str, ...] = ("end", "start", "update", "alert")

_TYPE_RANK = {name: i for i, name in enumerate(EVENT_TYPE_ORDER)}
#: Decimals of ``duration_s`` in events (1 ms).
_DURATION_DECIMALS = 3


def _finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def _unit_interval(name: str, value: float) -> None:
    if not 0.0 <= _finite(name, value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if _finite(name, value) < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class PolicyParams:
    """Tunables of start/update/end (see the ``DEFAULT_*`` constants for trade-offs)."""

    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    establish_s: float = DEFAULT_ESTABLISH_S
    min_update_interval_s: float = DEFAULT_MIN_UPDATE_INTERVAL_S

    def __post_init__(self) -> None:
        _unit_interval("min_confidence", self.min_confidence)
        _non_negative("establish_s", self.establish_s)
        _non_negative("min_update_interval_s", self.min_update_interval_s)

    @classmethod
    def from_config(cls, cfg: EventsConfig) -> PolicyParams:
        """The parameters of the ``events:`` config section."""
        return cls(
            min_confidence=cfg.min_confidence,
            establish_s=cfg.establish_s,
            min_update_interval_s=cfg.min_update_interval_s,
        )


@dataclass(frozen=True, slots=True)
class AlertParams:
    """One alert rule: ``emotion`` probability ``>= min_score`` for ``>= min_duration_s``.

    Exact semantics, per track: the condition is *held* while the smoothed probability of
    ``emotion`` is ``>= min_score`` on consecutive updates; ``held`` is ``now`` minus the
    first update of the current hold. The rule fires when ``held >= min_duration_s``, the
    rule is *armed* and either it never fired for this track or ``now - last_alert >=
    cooldown_s``. Firing disarms the rule; any update with the condition false re-arms it
    (and restarts the hold). So after an alert, the next one needs (a) the condition to
    break, (b) a new hold of ``min_duration_s`` and (c) ``cooldown_s`` since the previous
    alert -- if (b) completes before (c), the alert fires at the first update after the
    cooldown while the hold continues. ``extra["duration_s"]`` is ``held`` at firing time.
    A continuous hold therefore raises exactly one alert, however long it lasts.
    """

    name: str
    emotion: str
    min_score: float = DEFAULT_ALERT_MIN_SCORE
    min_duration_s: float = DEFAULT_ALERT_MIN_DURATION_S
    cooldown_s: float = DEFAULT_ALERT_COOLDOWN_S

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("alert name must not be empty")
        _unit_interval("min_score", self.min_score)
        _non_negative("min_duration_s", self.min_duration_s)
        _non_negative("cooldown_s", self.cooldown_s)

    @classmethod
    def from_rule(cls, rule: AlertRule) -> AlertParams:
        """The parameters of one ``cameras[].alerts[]`` config entry."""
        return cls(
            name=rule.name,
            emotion=str(rule.emotion),
            min_score=rule.min_score,
            min_duration_s=rule.min_duration_s,
            cooldown_s=rule.cooldown_s,
        )


def normalise_bbox(
    xyxy: tuple[float, float, float, float], frame_size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Pixel ``xyxy`` -> ``(x, y, w, h)`` as fractions of ``frame_size = (width, height)``.

    The box is clipped to the frame first, so every value and ``x + w``/``y + h`` lie in
    0..1 (a face partly outside the frame keeps only its visible part).
    """
    width, height = float(frame_size[0]), float(frame_size[1])
    x1 = min(max(float(xyxy[0]), 0.0), width)
    y1 = min(max(float(xyxy[1]), 0.0), height)
    x2 = min(max(float(xyxy[2]), x1), width)
    y2 = min(max(float(xyxy[3]), y1), height)
    return (x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height)


def shown_emotion(probs: np.ndarray, labels: Sequence[str], floor: float) -> tuple[str, float]:
    """``(name, probability)`` of the dominant emotion, or ``(UNCERTAIN, p)`` below ``floor``.

    Ties go to the label listed first, as for events.
    """
    k = int(np.argmax(probs))
    p = float(probs[k])
    return (labels[k] if p >= floor else UNCERTAIN), p


@dataclass(slots=True)
class _AlertState:
    held_since: float | None = None
    armed: bool = True
    last_fired: float | None = None


@dataclass(slots=True)
class _TrackState:
    probs: np.ndarray
    bbox: tuple[float, float, float, float]
    last_seen: float
    alerts: list[_AlertState]
    candidate: int | None = None
    candidate_since: float = 0.0
    reported: int | None = None  # emotion of the last start/update; None = not started
    started_at: float = 0.0
    last_event_at: float = 0.0


class EventPolicy:
    """Per-camera event state machine; see the module docstring for the semantics."""

    def __init__(
        self,
        camera: str,
        labels: tuple[str, ...],
        params: PolicyParams,
        alerts: Sequence[AlertParams] = (),
    ) -> None:
        labels = tuple(labels)
        if not labels:
            raise ValueError("labels must not be empty")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be unique, got {labels}")
        alerts = tuple(alerts)
        names = [a.name for a in alerts]
        if len(set(names)) != len(names):
            raise ValueError(f"alert names must be unique, got {names}")
        for alert in alerts:
            if alert.emotion not in labels:
                raise ValueError(
                    f"alert {alert.name!r} watches emotion {alert.emotion!r}, "
                    f"which is not one of the model's labels {labels}"
                )
        self._camera = camera
        self._labels = labels
        self._params = params
        self._alerts = alerts
        self._alert_idx = tuple(labels.index(a.emotion) for a in alerts)
        self._tracks: dict[int, _TrackState] = {}
        self._last_now: float | None = None

    @property
    def camera(self) -> str:
        return self._camera

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def params(self) -> PolicyParams:
        return self._params

    @property
    def alerts(self) -> tuple[AlertParams, ...]:
        return self._alerts

    def __len__(self) -> int:
        """Tracks the policy holds state for."""
        return len(self._tracks)

    def active_tracks(self) -> list[tuple[int, str, float]]:
        """``(track_id, emotion, confidence)`` of every started track, sorted by id.

        ``emotion`` is the last reported (start/update) emotion, or :data:`UNCERTAIN`
        while its latest smoothed probability (``confidence``) is below
        ``min_confidence``.
        """
        out: list[tuple[int, str, float]] = []
        floor = self._params.min_confidence
        for tid in sorted(self._tracks):
            st = self._tracks[tid]
            if st.reported is not None:
                p = float(st.probs[st.reported])
                out.append((tid, self._labels[st.reported] if p >= floor else UNCERTAIN, p))
        return out

    # ------------------------------------------------------------------ update

    def update(
        self,
        now: float,
        wall_ts: float,
        frame_size: tuple[int, int],
        tracks: Sequence[TrackSnapshot],
        ended: Sequence[int],
    ) -> list[Event]:
        """Advance to monotonic time ``now``; return this update's events (ordered).

        ``tracks`` are the confirmed tracks of this frame, ``ended`` the ids lost in it
        (a track listed in both is treated as ended). Raises ValueError for a
        non-finite or decreasing ``now``, a non-positive frame size, duplicate track ids
        or probabilities whose length differs from ``labels``.
        """
        now = _finite("now", now)
        wall_ts = _finite("wall_ts", wall_ts)
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"time went backwards: now={now!r} < previous {self._last_now!r}")
        width, height = frame_size
        if not (width > 0 and height > 0):
            raise ValueError(f"frame_size must be positive (width, height), got {frame_size}")
        ended_ids = {int(t) for t in ended}
        seen: set[int] = set()
        for snap in tracks:
            if snap.track_id in seen:
                raise ValueError(f"track {snap.track_id} appears twice in one update")
            seen.add(snap.track_id)
            if np.shape(snap.probs) != (len(self._labels),):
                raise ValueError(
                    f"track {snap.track_id}: probs shape {np.shape(snap.probs)}, "
                    f"expected ({len(self._labels)},)"
                )
        self._last_now = now

        out: list[tuple[int, int, int, Event]] = []  # (track_id, type rank, n, event)

        def emit(event: Event) -> None:
            out.append((event.track_id, _TYPE_RANK[event.type], len(out), event))

        for tid in sorted(ended_ids):
            state = self._tracks.pop(tid, None)
            if state is not None and state.reported is not None:
                emit(self._end_event(tid, state, now, wall_ts))

        for snap in tracks:
            if snap.track_id in ended_ids:
                continue
            for event in self._step(snap, now, wall_ts, (width, height)):
                emit(event)

        for tid in sorted(self._tracks):
            state = self._tracks[tid]
            if tid not in seen and now - state.last_seen > FORGET_UNSEEN_S:
                del self._tracks[tid]
                if state.reported is not None:
                    emit(self._end_event(tid, state, now, wall_ts))

        out.sort(key=lambda item: item[:3])
        return [item[3] for item in out]

    # ------------------------------------------------------------------ helpers

    def _step(
        self, snap: TrackSnapshot, now: float, wall_ts: float, frame_size: tuple[int, int]
    ) -> list[Event]:
        probs = np.asarray(snap.probs, dtype=np.float64)
        bbox = normalise_bbox(snap.xyxy, frame_size)
        state = self._tracks.get(snap.track_id)
        if state is None:
            state = _TrackState(
                probs=probs,
                bbox=bbox,
                last_seen=now,
                alerts=[_AlertState() for _ in self._alerts],
            )
            self._tracks[snap.track_id] = state
        state.probs = probs
        state.bbox = bbox
        state.last_seen = now

        events: list[Event] = []
        p = self._params
        dominant = int(np.argmax(probs))
        if probs[dominant] >= p.min_confidence:
            if state.candidate != dominant:
                state.candidate = dominant
                state.candidate_since = now
        else:
            state.candidate = None
        established = state.candidate is not None and now - state.candidate_since >= p.establish_s
        if established and state.candidate is not None:
            if state.reported is None:
                state.reported = state.candidate
                state.started_at = now
                state.last_event_at = now
                events.append(self._event("start", snap.track_id, state.candidate, state, wall_ts))
            elif (
                state.candidate != state.reported
                and now - state.last_event_at >= p.min_update_interval_s
            ):
                state.reported = state.candidate
                state.last_event_at = now
                events.append(self._event("update", snap.track_id, state.candidate, state, wall_ts))

        for rule, idx, alert in zip(self._alerts, self._alert_idx, state.alerts, strict=True):
            if probs[idx] < rule.min_score:
                alert.held_since = None
                alert.armed = True
                continue
            if alert.held_since is None:
                alert.held_since = now
            held = now - alert.held_since
            if (
                alert.armed
                and held >= rule.min_duration_s
                and (alert.last_fired is None or now - alert.last_fired >= rule.cooldown_s)
            ):
                alert.armed = False
                alert.last_fired = now
                extra: dict[str, object] = {
                    "alert": rule.name,
                    "duration_s": round(held, _DURATION_DECIMALS),
                }
                events.append(self._event("alert", snap.track_id, idx, state, wall_ts, extra))
        return events

    def _end_event(self, track_id: int, state: _TrackState, now: float, wall_ts: float) -> Event:
        assert state.reported is not None
        duration = round(now - state.started_at, _DURATION_DECIMALS)
        return self._event(
            "end", track_id, state.reported, state, wall_ts, {"duration_s": duration}
        )

    def _event(
        self,
        kind: str,
        track_id: int,
        emotion: int,
        state: _TrackState,
        wall_ts: float,
        extra: dict[str, object] | None = None,
    ) -> Event:
        scores = {label: float(state.probs[i]) for i, label in enumerate(self._labels)}
        return Event(
            type=kind,
            camera=self._camera,
            track_id=track_id,
            emotion=self._labels[emotion],
            confidence=float(state.probs[emotion]),
            scores=scores,
            bbox=state.bbox,
            ts=wall_ts,
            extra=dict(extra) if extra else {},
        )
