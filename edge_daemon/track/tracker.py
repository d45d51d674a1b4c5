"""Greedy IoU face tracker with hit/miss hysteresis and time-aware probability smoothing.

One call shape: ``IouTracker.update(now, observations) -> TrackUpdate``. The tracker is a
pure function of the timeline it is fed: it never reads a clock (``now`` is monotonic
seconds from the caller) and has no randomness, so replaying a timeline reproduces it.

Lifecycle of a track::

    unmatched detection -> tentative --(min_hits matches)--> confirmed
    tentative --(unmatched on a detection frame, or max_missed_s elapsed)--> dropped silently
    confirmed --(no match for longer than max_missed_s)--> removed, id reported in ``ended``

Only confirmed tracks are reported. Design decisions (all covered by tests):

* **Matching** is greedy on IoU, highest first, over all (track, detection) pairs with
  ``IoU >= iou_threshold``; each track and each detection is used at most once. Ties are
  broken deterministically: confirmed tracks before tentative ones, then lower track id,
  then lower detection index. Greedy is optimal enough for the handful of faces per frame
  and, unlike Hungarian assignment, never trades a strong match for two weak ones.
* **Skipped detection** (``observations is None``, the daemon detects every Nth frame):
  tracks keep their box and probabilities and no track counts a miss, but expiry is time
  based (``now - last_match > max_missed_s``) so a track still ends if detection stays
  off for too long.
* **A miss** is an update with a (possibly empty) observation list in which the track is
  not matched. A tentative track is dropped at its first miss (a one-frame false positive
  never becomes a track); a confirmed track survives misses until ``max_missed_s``.
* **Probabilities** are smoothed with a time-aware EMA:
  ``alpha = 1 - 0.5 ** (dt / half_life)`` where ``dt`` is the time since the track's
  previous match, so the smoothing is independent of the frame rate and of skipped
  frames: after one half-life a step change is exactly half-way. ``half_life = 0``
  disables smoothing (the latest probabilities are used).
* **Weak detections** (``weak``: faces the detector scored below its threshold but above
  a lower floor, ``tracker.weak_min_confidence``) are a second matching stage, as in
  ByteTrack: after the faces above the threshold are matched, each confirmed track left
  unmatched may take a weak box by the same greedy IoU rule. That keeps a person's id
  while the face looks down or turns for a moment (on the shared crowd video such
  faces score 0.3-0.6 for a second at a time, and their tracks broke into new ids). A
  weak match moves the box and counts as seen (``observed``, ``last_match``); it never
  starts or confirms a track and does not touch the probabilities (a turned face is
  not classified, and the EMA's time base stays the last classified match).
* **Boxes** follow the latest matched detection without smoothing: box smoothing adds
  lag, and a lagging box lowers the IoU with the next detection of a moving face, which
  is what breaks tracks. Consumers that want a steadier box can smooth for display.
* **Ids** start at 1 and increase; they are never reused within one tracker, not even
  after :meth:`IouTracker.reset`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge_daemon.boxes import iou_matrix
from edge_daemon.types import FaceObservation, TrackSnapshot

if TYPE_CHECKING:  # only read as attributes; keeps pydantic out of the tracker's imports
    from edge_daemon.config.schema import TrackerConfig

__all__ = [
    "DEFAULT_IOU_THRESHOLD",
    "DEFAULT_MAX_MISSED_S",
    "DEFAULT_MIN_HITS",
    "DEFAULT_SMOOTHING_HALF_LIFE_S",
    "DEFAULT_WEAK_MIN_CONFIDENCE",
    "FIRST_TRACK_ID",
    "IouTracker",
    "TrackUpdate",
    "TrackerParams",
    "iou_matrix",
]

#: Minimum IoU (unitless, 0..1] to link a detection to a track. Lower = tracks survive
#: faster motion / lower frame rates, but two nearby faces are more likely to swap ids.
DEFAULT_IOU_THRESHOLD: float = 0.3
#: Matches (count) before a track is confirmed and reported. Higher = fewer tracks from
#: one-frame false detections, but every real face is reported ``min_hits - 1``
#: detection frames later.
DEFAULT_MIN_HITS: int = 2
#: Seconds without a match before a confirmed track is lost. Higher = a face survives a
#: longer occlusion / missed detections with its id, but ``end`` events come later and a
#: new face entering where an old one left may inherit its id.
DEFAULT_MAX_MISSED_S: float = 1.0
#: EMA half-life of the class probabilities, seconds. Higher = steadier emotions (fewer
#: flips from single noisy frames) but slower reaction to a real change; 0 = no smoothing.
DEFAULT_SMOOTHING_HALF_LIFE_S: float = 0.5
#: Detector score (0..1) from which a face below ``detector.min_confidence`` may extend
#: a confirmed track (never start one; see "Weak detections" above). Lower = ids survive
#: longer stretches of a turned or downcast face, but a track may also cling to a
#: face-like pattern where a person just left, and end later. ByteTrack's low threshold
#: is 0.1 for person boxes; BlazeFace scores cartoons up to ~0.68 and background
#: patches mostly under 0.3 on the shared videos.
DEFAULT_WEAK_MIN_CONFIDENCE: float = 0.35
#: The first track id handed out by a tracker.
FIRST_TRACK_ID: int = 1


def _finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """Tunables of :class:`IouTracker` (see the ``DEFAULT_*`` constants for trade-offs)."""

    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    min_hits: int = DEFAULT_MIN_HITS
    max_missed_s: float = DEFAULT_MAX_MISSED_S
    smoothing_half_life_s: float = DEFAULT_SMOOTHING_HALF_LIFE_S

    def __post_init__(self) -> None:
        if not 0.0 < _finite("iou_threshold", self.iou_threshold) <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold!r}")
        if isinstance(self.min_hits, bool) or int(self.min_hits) != self.min_hits:
            raise ValueError(f"min_hits must be an integer, got {self.min_hits!r}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits!r}")
        if _finite("max_missed_s", self.max_missed_s) <= 0.0:
            raise ValueError(f"max_missed_s must be > 0, got {self.max_missed_s!r}")
        if _finite("smoothing_half_life_s", self.smoothing_half_life_s) < 0.0:
            raise ValueError(
                f"smoothing_half_life_s must be >= 0, got {self.smoothing_half_life_s!r}"
            )

    @classmethod
    def from_config(cls, cfg: TrackerConfig) -> TrackerParams:
        """The parameters of the ``tracker:`` config section."""
        return cls(
            iou_threshold=cfg.iou_threshold,
            min_hits=cfg.min_hits,
            max_missed_s=cfg.max_missed_s,
            smoothing_half_life_s=cfg.smoothing_half_life_s,
        )


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """Result of one :meth:`IouTracker.update`.

    ``tracks``: every confirmed track still alive, sorted by ``track_id``.
    ``ended``: ids of confirmed tracks lost in this update (each id is reported once,
    and never appears in ``tracks`` of the same or a later update).
    """

    tracks: list[TrackSnapshot]
    ended: list[int]


@dataclass(slots=True)
class _Track:
    track_id: int
    xyxy: tuple[float, float, float, float]
    probs: np.ndarray  # float64 [num_classes]
    first_seen: float
    last_match: float
    hits: int
    confirmed: bool
    observed: bool = False
    probs_at: float = 0.0  # time of the last classified match: the EMA's time base


class IouTracker:
    """Links :class:`FaceObservation` s across frames; see the module docstring."""

    def __init__(self, params: TrackerParams, num_classes: int) -> None:
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self._params = params
        self._num_classes = int(num_classes)
        self._tracks: list[_Track] = []  # always sorted by track_id (ids are increasing)
        self._next_id = FIRST_TRACK_ID
        self._last_now: float | None = None

    @property
    def params(self) -> TrackerParams:
        return self._params

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def __len__(self) -> int:
        """Tracks held, tentative ones included (the tracker's whole state)."""
        return len(self._tracks)

    @property
    def tentative(self) -> int:
        """Tracks seen but not yet confirmed (the caller may want to detect sooner)."""
        return sum(1 for t in self._tracks if not t.confirmed)

    def reset(self) -> list[int]:
        """Forget all tracks (e.g. after a stream reconnect).

        Returns the ids of the confirmed tracks that were dropped, so the caller can end
        them downstream (e.g. pass them as ``ended`` to the event policy). Ids are not
        reused after a reset. The time base is forgotten too.
        """
        ended = [t.track_id for t in self._tracks if t.confirmed]
        self._tracks.clear()
        self._last_now = None
        return ended

    # ------------------------------------------------------------------ update

    def update(
        self,
        now: float,
        observations: list[FaceObservation] | None,
        weak: np.ndarray | None = None,
    ) -> TrackUpdate:
        """Advance to monotonic time ``now`` with this frame's faces.

        ``observations=None`` means detection was skipped on this frame (no track counts
        a miss); an empty list means detection ran and found nothing. ``weak``: boxes
        [M, 4] of the frame's weak detections (second matching stage; ignored when
        ``observations`` is None). Raises ValueError for a non-finite or decreasing
        ``now`` and for malformed observations (probs length != ``num_classes``,
        non-finite values, inverted boxes).
        """
        now = _finite("now", now)
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"time went backwards: now={now!r} < previous {self._last_now!r}")
        boxes, probs = self._validate(observations)
        self._last_now = now

        for track in self._tracks:
            track.observed = False
        ended: list[int] = []
        if observations is None:
            self._expire(now, ended)
            return self._result(now, ended)

        matched_tracks, matched_dets = self._match(boxes, range(len(self._tracks)))
        for ti, di in zip(matched_tracks, matched_dets, strict=True):
            self._apply_match(self._tracks[ti], now, boxes[di], probs[di])
        weak_boxes = self._validate_weak(weak)
        if len(weak_boxes):
            left = set(range(len(self._tracks))) - set(matched_tracks)
            rest = [ti for ti in sorted(left) if self._tracks[ti].confirmed]
            for ti, di in zip(*self._match(weak_boxes, rest), strict=True):
                self._extend(self._tracks[ti], now, weak_boxes[di])
                matched_tracks.append(ti)

        survivors: list[_Track] = []
        matched_set = set(matched_tracks)
        for ti, track in enumerate(self._tracks):
            if ti in matched_set:
                survivors.append(track)
            elif not track.confirmed:
                continue  # a tentative track that misses once is dropped silently
            elif now - track.last_match > self._params.max_missed_s:
                ended.append(track.track_id)
            else:
                survivors.append(track)
        self._tracks = survivors

        used = set(matched_dets)
        for di in range(len(boxes)):
            if di not in used:
                self._tracks.append(self._new_track(now, boxes[di], probs[di]))
        return self._result(now, ended)

    # ------------------------------------------------------------------ helpers

    def _validate(
        self, observations: list[FaceObservation] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if observations is None:
            return np.zeros((0, 4)), np.zeros((0, self._num_classes))
        n = len(observations)
        boxes = np.zeros((n, 4), dtype=np.float64)
        probs = np.zeros((n, self._num_classes), dtype=np.float64)
        for i, obs in enumerate(observations):
            box = np.asarray(obs.xyxy, dtype=np.float64).reshape(-1)
            p = np.asarray(obs.probs, dtype=np.float64).reshape(-1)
            if box.shape != (4,) or not np.all(np.isfinite(box)):
                raise ValueError(f"observation {i}: xyxy must be 4 finite numbers, got {obs.xyxy}")
            if box[2] < box[0] or box[3] < box[1]:
                raise ValueError(f"observation {i}: box must have x1<=x2, y1<=y2, got {obs.xyxy}")
            if p.shape != (self._num_classes,):
                raise ValueError(
                    f"observation {i}: probs has {p.size} values, expected {self._num_classes}"
                )
            if not np.all(np.isfinite(p)):
                raise ValueError(f"observation {i}: probs must be finite")
            boxes[i] = box
            probs[i] = p
        return boxes, probs

    def _validate_weak(self, weak: np.ndarray | None) -> np.ndarray:
        if weak is None:
            return np.zeros((0, 4))
        boxes = np.asarray(weak, dtype=np.float64)
        if boxes.size == 0:
            return np.zeros((0, 4))
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.all(np.isfinite(boxes)):
            raise ValueError(f"weak must be finite boxes [M, 4], got shape {boxes.shape}")
        if np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1]):
            raise ValueError("weak boxes must have x1<=x2, y1<=y2")
        return boxes

    def _match(self, boxes: np.ndarray, tracks: Iterable[int]) -> tuple[list[int], list[int]]:
        """Greedy IoU assignment of ``boxes`` to the tracks at indices ``tracks`` ->
        (track indices, detection indices), pairwise."""
        idx = list(tracks)
        if not idx or len(boxes) == 0:
            return [], []
        track_boxes = np.array([self._tracks[i].xyxy for i in idx], dtype=np.float64)
        iou = iou_matrix(track_boxes, boxes)
        rows, cols = np.nonzero(iou >= self._params.iou_threshold)
        candidates = sorted(
            (
                (idx[r], c, float(iou[r, c]))
                for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
            ),
            key=lambda rc: (
                -rc[2],
                not self._tracks[rc[0]].confirmed,
                self._tracks[rc[0]].track_id,
                rc[1],
            ),
        )
        track_used: set[int] = set()
        det_used: set[int] = set()
        out_t: list[int] = []
        out_d: list[int] = []
        for ti, di, _ in candidates:
            if ti in track_used or di in det_used:
                continue
            track_used.add(ti)
            det_used.add(di)
            out_t.append(ti)
            out_d.append(di)
        return out_t, out_d

    def _alpha(self, dt: float) -> float:
        half_life = self._params.smoothing_half_life_s
        if half_life <= 0.0:
            return 1.0
        return float(1.0 - 0.5 ** (max(dt, 0.0) / half_life))

    def _apply_match(self, track: _Track, now: float, box: np.ndarray, probs: np.ndarray) -> None:
        alpha = self._alpha(now - track.probs_at)
        track.probs = alpha * probs + (1.0 - alpha) * track.probs
        track.probs_at = now
        track.xyxy = _box_tuple(box)
        track.last_match = now
        track.hits += 1
        track.observed = True
        if track.hits >= self._params.min_hits:
            track.confirmed = True

    @staticmethod
    def _extend(track: _Track, now: float, box: np.ndarray) -> None:
        """A weak match: the face is still there; its probabilities stay as they were."""
        track.xyxy = _box_tuple(box)
        track.last_match = now
        track.observed = True

    def _new_track(self, now: float, box: np.ndarray, probs: np.ndarray) -> _Track:
        track = _Track(
            track_id=self._next_id,
            xyxy=_box_tuple(box),
            probs=probs.copy(),
            first_seen=now,
            last_match=now,
            hits=1,
            confirmed=self._params.min_hits <= 1,
            observed=True,
            probs_at=now,
        )
        self._next_id += 1
        return track

    def _expire(self, now: float, ended: list[int]) -> None:
        survivors: list[_Track] = []
        for track in self._tracks:
            if now - track.last_match > self._params.max_missed_s:
                if track.confirmed:
                    ended.append(track.track_id)
            else:
                survivors.append(track)
        self._tracks = survivors

    def _result(self, now: float, ended: list[int]) -> TrackUpdate:
        snapshots = [_snapshot(t, now) for t in self._tracks if t.confirmed]
        snapshots.sort(key=lambda s: s.track_id)
        return TrackUpdate(tracks=snapshots, ended=sorted(ended))


def _box_tuple(box: np.ndarray) -> tuple[float, float, float, float]:
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _snapshot(track: _Track, now: float) -> TrackSnapshot:
    probs = track.probs.astype(np.float32)
    probs.flags.writeable = False
    return TrackSnapshot(
        track_id=track.track_id,
        xyxy=track.xyxy,
        probs=probs,
        age_s=now - track.first_seen,
        observed=track.observed,
    )
