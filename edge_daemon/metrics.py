"""Per-camera pipeline metrics: written by the pipeline thread, read as snapshots.

The owning thread updates counters and windows; other threads (stats publisher,
benchmark, later the Prometheus exporter) only call :meth:`PipelineMetrics.snapshot`,
which copies under a lock. Windows are bounded so memory never grows.
"""

from __future__ import annotations

import bisect
import collections
import math
import threading
from dataclasses import dataclass, field

import numpy as np

WINDOW = 1024  # samples kept per latency window (about 40 s at 25 fps)

#: Upper bounds (milliseconds) of the cumulative histograms exported to Prometheus. They
#: span a fast classifier call (0.5 ms) to a badly overloaded frame (2 s).
HISTOGRAM_BUCKETS_MS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class Window:
    """Bounded window of float samples with percentile queries."""

    def __init__(self, size: int = WINDOW) -> None:
        self._d: collections.deque[float] = collections.deque(maxlen=size)

    def add(self, v: float) -> None:
        self._d.append(v)

    def percentiles(self, qs: tuple[float, ...]) -> list[float]:
        if not self._d:
            return [0.0 for _ in qs]
        return [float(x) for x in np.percentile(self.values(), qs)]

    def values(self) -> np.ndarray:
        return np.fromiter(self._d, np.float64, len(self._d))

    def __len__(self) -> int:
        return len(self._d)


class Histogram:
    """Cumulative-bucket histogram with sum and count (the Prometheus model).

    Unlike :class:`Window` it never forgets, so rates over any scrape interval are exact.
    """

    def __init__(self, bounds: tuple[float, ...] = HISTOGRAM_BUCKETS_MS) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # last slot: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``[(upper_bound, observations <= bound), ..., (inf, count)]``."""
        out, acc = [], 0
        for bound, n in zip((*self.bounds, math.inf), self._counts, strict=True):
            acc += n
            out.append((bound, acc))
        return out


@dataclass(frozen=True)
class HistogramSnapshot:
    buckets: list[tuple[float, int]]
    sum: float
    count: int


@dataclass
class PipelineMetrics:
    camera: str
    frames: int = 0
    detections_run: int = 0
    faces: int = 0
    weak_faces: int = 0  # faces under the detector threshold offered to keep tracks alive
    faces_mirrored: int = 0  # faces classified a second time, mirrored (model.tta_hflip*)
    faces_too_small: int = 0  # found but under detector.min_face_px: dropped, counted
    faces_over_cap: int = 0  # found beyond detector.max_faces in a frame: dropped, counted
    events: int = 0
    events_not_queued: int = 0  # publisher refused (its queue full): counted, never silent
    frame_errors: int = 0  # frames whose analysis raised: skipped, counted, logged
    analysis_restarts: int = 0  # analyzer state rebuilt after failing for failing_s
    snapshots_skipped: int = 0  # event pictures not made (no pixels, no box, over max_bytes)
    current_faces: int = 0
    current_tracks: int = 0
    latency_ms: Window = field(default_factory=Window)  # capture -> events handed over
    detect_ms: Window = field(default_factory=Window)
    classify_ms: Window = field(default_factory=Window)
    latency_hist: Histogram = field(default_factory=Histogram)
    detect_hist: Histogram = field(default_factory=Histogram)
    classify_hist: Histogram = field(default_factory=Histogram)
    _times: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=256))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_frame(
        self,
        mono_done: float,
        latency_ms: float,
        faces: int,
        tracks: int,
        detect_ms: float | None,
        classify_ms: float | None,
        weak_faces: int = 0,
        faces_mirrored: int = 0,
    ) -> None:
        with self._lock:
            self.frames += 1
            self.faces += faces
            self.weak_faces += weak_faces
            self.faces_mirrored += faces_mirrored
            self.current_faces = faces
            self.current_tracks = tracks
            self.latency_ms.add(latency_ms)
            self.latency_hist.observe(latency_ms)
            self._times.append(mono_done)
            if detect_ms is not None:
                self.detections_run += 1
                self.detect_ms.add(detect_ms)
                self.detect_hist.observe(detect_ms)
            if classify_ms is not None:
                self.classify_ms.add(classify_ms)
                self.classify_hist.observe(classify_ms)

    def set_detector_drops(self, too_small: int, over_cap: int) -> None:
        """The detector's running totals of the faces it dropped (its own counters)."""
        with self._lock:
            self.faces_too_small, self.faces_over_cap = too_small, over_cap

    def fps(self, now: float | None = None) -> float:
        t = self._times
        if len(t) < 2:
            return 0.0
        end = t[-1] if now is None else now
        span = end - t[0]
        return (len(t) - 1) / span if span > 0 else 0.0

    def histograms(self) -> dict[str, HistogramSnapshot]:
        """Copies of the never-resetting histograms (for the Prometheus exporter)."""
        with self._lock:
            return {
                name: HistogramSnapshot(h.cumulative(), h.sum, h.count)
                for name, h in (
                    ("latency", self.latency_hist),
                    ("detect", self.detect_hist),
                    ("classify", self.classify_hist),
                )
            }

    def snapshot(self) -> dict[str, float | int | str]:
        with self._lock:
            p50, p99 = self.latency_ms.percentiles((50, 99))
            d50, d99 = self.detect_ms.percentiles((50, 99))
            c50, c99 = self.classify_ms.percentiles((50, 99))
            return {
                "camera": self.camera,
                "fps": round(self.fps(), 2),
                "frames": self.frames,
                "detections_run": self.detections_run,
                "faces_total": self.faces,
                "weak_faces_total": self.weak_faces,
                "faces_mirrored_total": self.faces_mirrored,
                "faces_too_small_total": self.faces_too_small,
                "faces_over_cap_total": self.faces_over_cap,
                "faces": self.current_faces,
                "tracks": self.current_tracks,
                "events": self.events,
                "events_not_queued": self.events_not_queued,
                "frame_errors": self.frame_errors,
                "analysis_restarts": self.analysis_restarts,
                "snapshots_skipped": self.snapshots_skipped,
                "latency_ms_p50": round(p50, 2),
                "latency_ms_p99": round(p99, 2),
                "detect_ms_p50": round(d50, 2),
                "detect_ms_p99": round(d99, 2),
                "classify_ms_p50": round(c50, 2),
                "classify_ms_p99": round(c99, 2),
            }
