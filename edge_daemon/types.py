"""Small validated value types that flow between pipeline stages.

Data flows one way: source -> detector -> classifier -> tracker -> event policy ->
publisher. Each stage receives one of these immutable values and produces the next;
none of them holds a reference back to a stage.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class StreamStatus(enum.StrEnum):
    """Lifecycle of one camera stream, as published on ``<prefix>/<camera>/state``."""

    STARTING = "starting"
    ONLINE = "online"
    RECONNECTING = "reconnecting"
    ENDED = "ended"  # a file source without loop reached its end
    FAILED = "failed"  # a permanent error that retrying cannot fix (e.g. bad media file)
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame from a camera.

    ``ts`` is wall-clock epoch seconds (for payloads); ``mono`` is ``time.monotonic()``
    at capture (for latency and for the event policy, which must not see clock jumps).
    ``image`` is BGR uint8 HxWx3 and must not be modified by consumers; it is None for
    a frame decoded without pixels (see ``CaptureSettings.pixels_every_n``), which then
    carries its ``size`` (width, height).
    """

    camera: str
    seq: int
    ts: float
    mono: float
    image: np.ndarray | None
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.image is None and self.size is None:
            raise ValueError("Frame: a frame without pixels must carry its size")

    @property
    def width(self) -> int:
        return self._shape()[0]

    @property
    def height(self) -> int:
        return self._shape()[1]

    def _shape(self) -> tuple[int, int]:
        if self.image is not None:
            return int(self.image.shape[1]), int(self.image.shape[0])
        assert self.size is not None  # checked in __post_init__
        return self.size


@dataclass(frozen=True, slots=True)
class Detections:
    """Face boxes of one frame in pixel coordinates, ``xyxy`` float32 [N, 4].

    ``scores`` is float32 [N]. ``weak_xyxy`` [M, 4] are the faces scored below the
    detector's ``min_confidence`` but above its weak floor, overlapping no face above
    it: too unsure to report or classify, sure enough to keep a confirmed track of a
    face that looks down or turns for a moment (the tracker's second matching stage).
    Validated at construction so downstream stages never see mismatched lengths or
    inverted boxes.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    weak_xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        weak = np.asarray(self.weak_xyxy, dtype=np.float32).reshape(-1, 4)
        if len(xyxy) != len(scores):
            raise ValueError(f"Detections: {len(xyxy)} boxes but {len(scores)} scores")
        for b in (xyxy, weak):
            if len(b) and (np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1])):
                raise ValueError("Detections: boxes must be x1<=x2, y1<=y2")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "weak_xyxy", weak)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """One detected face with its class probabilities (in the model's label order)."""

    xyxy: tuple[float, float, float, float]
    det_score: float
    probs: np.ndarray  # float32 [num_classes], sums to 1


@dataclass(frozen=True, slots=True)
class TrackSnapshot:
    """State of one confirmed track after a tracker update."""

    track_id: int
    xyxy: tuple[float, float, float, float]
    probs: np.ndarray  # smoothed probabilities, model label order
    age_s: float
    observed: bool  # True when matched to a detection in this frame


@dataclass(frozen=True, slots=True)
class Event:
    """An emotion event produced by the event policy for one camera."""

    type: str  # "start" | "update" | "end" | "alert"
    camera: str
    track_id: int
    emotion: str
    confidence: float
    scores: dict[str, float]
    bbox: tuple[float, float, float, float]  # normalised x, y, w, h
    ts: float  # epoch seconds
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShownFace:
    """What a viewer is shown for one tracked face: its box in the frame's pixels and
    the emotion to name (``UNCERTAIN`` below the policy's confidence floor)."""

    track_id: int
    xyxy: tuple[float, float, float, float]
    emotion: str
    confidence: float
