"""One camera's analysis: frames -> detector -> classifier -> tracker -> event policy.

:class:`CameraAnalyzer` is the synchronous core (used by the daemon thread and by the
benchmark); :class:`CameraPipeline` is the thread that feeds it from the capture queue,
hands events to the publisher and publishes the camera's retained state. The model runner
only produces probabilities and timings; turning them into events is the policy's job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from edge_daemon.classify.crop import crop_faces
from edge_daemon.classify.model import EmotionModel
from edge_daemon.config import AppConfig, CameraConfig
from edge_daemon.detect.blazeface import DetectorParams, FaceDetector, InterpreterPool
from edge_daemon.metrics import PipelineMetrics
from edge_daemon.policy.events import (
    UNCERTAIN,
    AlertParams,
    EventPolicy,
    PolicyParams,
    shown_emotion,
)
from edge_daemon.publish.snapshot import SnapshotOptions, snapshot_jpeg
from edge_daemon.sources import CaptureWorker, FrameQueue
from edge_daemon.track.tracker import IouTracker, TrackerParams
from edge_daemon.types import (
    Event,
    FaceObservation,
    Frame,
    ShownFace,
    StreamStatus,
    TrackSnapshot,
)

log = logging.getLogger(__name__)

QUEUE_WAIT_S = 0.25  # how long the pipeline blocks on its queue: bounds stop latency
#: Event types that get a picture with ``mqtt.publish_images`` (an ``end`` has no face).
SNAPSHOT_EVENTS = ("start", "update", "alert")
NO_BOXES = np.zeros((0, 4), np.float32)  # what a paused camera shows the live view
STATE_INTERVAL_S = 5.0  # retained state is refreshed at least this often (fps, tracks)
FRAME_ERROR_LOG_S = 10.0  # at most one log line per this many seconds of failing frames
RESTART_BACKOFF_INITIAL_S = 30.0  # an analysis restart waits this long before the next...
RESTART_BACKOFF_MAX_S = 600.0  # ...doubling up to this while frames keep failing


class EventSink(Protocol):
    def publish_event(self, event: Event) -> bool: ...

    def publish_snapshot(self, camera: str, kind: str, jpeg: bytes) -> bool: ...

    def publish_state(self, camera: str, state: dict[str, Any]) -> bool: ...


class FrameSink(Protocol):
    """Where a camera's pipeline thread hands each analysed frame (the live view is one).

    Called from the pipeline thread on every frame, so an implementation keeps
    references only and does its expensive work (drawing, encoding) elsewhere.
    """

    def put_frame(
        self,
        frame: Frame,
        faces: tuple[ShownFace, ...],
        boxes: np.ndarray,
        fps: float,
        boxes_fresh: bool = True,
    ) -> None:
        """``boxes_fresh``: ``boxes`` were detected on ``frame`` itself (not earlier)."""

    def needs_fresh_boxes(self) -> bool:
        """While true the detector runs on every frame (e.g. faces must be blurred in
        what someone is watching), not every ``detect_every``-th."""

    def add_events(self, events: Sequence[Event]) -> None: ...


class CameraAnalyzer:
    """Detect, classify, track and apply the event policy to frames of one camera.

    Owned by exactly one thread. ``process`` returns the events a frame produced;
    ``expire`` advances time without a frame (stream down) so lost tracks end;
    ``flush`` ends every track (end of a file, shutdown).
    """

    def __init__(
        self,
        camera: CameraConfig,
        cfg: AppConfig,
        model: EmotionModel,
        detectors: InterpreterPool | None = None,
    ) -> None:
        self.camera = camera.name
        self.model = model
        self.every_n = cfg.detector.every_n_frames
        self.max_batch = cfg.model.max_batch
        # ``detectors``: the interpreters shared by every camera (the daemon passes one
        # pool); without it this camera gets a pool of its own.
        self.detector = FaceDetector(
            DetectorParams.from_config(cfg.detector, cfg.tracker.weak_min_confidence), detectors
        )
        self.tracker_params = TrackerParams.from_config(cfg.tracker)
        self.tracker = IouTracker(self.tracker_params, len(model.labels))
        self.policy = EventPolicy(
            camera.name,
            model.labels,
            PolicyParams.from_config(cfg.events),
            [AlertParams.from_rule(r) for r in camera.alerts],
        )
        self.metrics = PipelineMetrics(camera.name)
        self._frames_seen = 0
        self._last_detect_seq: int | None = None
        self._unsettled = False
        self._last_mono = 0.0
        self._last_wall = 0.0
        self._size = (0, 0)
        # Latest results, read by the pipeline thread for the live view.
        self.last_tracks: tuple[TrackSnapshot, ...] = ()
        self.last_boxes: np.ndarray = np.zeros((0, 4), np.float32)  # every detected face
        self.last_boxes_seq: int | None = None  # the frame ``last_boxes`` were found on
        #: Detect on every frame with pixels, whatever ``every_n_frames`` says: set by
        #: the owning pipeline while a viewer watches a blurred live view (privacy).
        self.detect_every_frame = False

    def open(self) -> None:
        """Prepare the stages that must live in the owning thread (call from it)."""
        self.detector.open()

    def process(self, frame: Frame) -> list[Event]:
        self._frames_seen += 1
        # A frame captured before an `expire` tick is analysed after it: never let the
        # tracker/policy clock run backwards.
        now = max(frame.mono, self._last_mono)
        self._last_mono, self._last_wall = now, frame.ts
        self._size = (frame.width, frame.height)
        detect_ms = classify_ms = None
        mirrored = 0
        observations: list[FaceObservation] | None = None
        weak = None
        due = self._detection_due(frame.seq) or self._unsettled or self.detect_every_frame
        if frame.image is not None and due:
            self._last_detect_seq = frame.seq
            t0 = time.perf_counter()
            det = self.detector.detect(frame.image)
            t1 = time.perf_counter()
            self.last_boxes, self.last_boxes_seq = det.xyxy, frame.seq
            detect_ms = (t1 - t0) * 1000
            observations, weak = [], det.weak_xyxy
            dc = self.detector.counters
            self.metrics.set_detector_drops(dc.too_small, dc.over_cap)
            if len(det):
                # The detector caps faces per frame (max_faces); batch them to max_batch.
                crops = crop_faces(frame.image, det.xyxy, self.model.contract)
                runs = [
                    self.model.predict_counted(crops[i : i + self.max_batch])
                    for i in range(0, len(crops), self.max_batch)
                ]
                probs = np.concatenate([p for p, _ in runs])
                mirrored = sum(m for _, m in runs)
                classify_ms = (time.perf_counter() - t1) * 1000
                observations = [
                    FaceObservation((float(x0), float(y0), float(x1), float(y1)), float(s), p)
                    for (x0, y0, x1, y1), s, p in zip(det.xyxy, det.scores, probs, strict=True)
                ]
        upd = self.tracker.update(now, observations, weak)
        self.last_tracks = tuple(upd.tracks)
        if observations is not None:
            # Detector and tracker disagree (a face not yet confirmed, or a confirmed
            # face the detector missed): look again on the next frame.
            self._unsettled = self.tracker.tentative > 0 or any(not t.observed for t in upd.tracks)
        events = self.policy.update(now, frame.ts, self._size, upd.tracks, upd.ended)
        done = time.monotonic()
        self.metrics.record_frame(
            done,
            (done - frame.mono) * 1000,
            0 if observations is None else len(observations),
            len(upd.tracks),
            detect_ms,
            classify_ms,
            0 if weak is None else len(weak),
            mirrored,
        )
        return events

    @property
    def wants_every_frame(self) -> bool:
        """Detect on every frame until the detector and the tracker agree again.

        ``every_n_frames`` is for settled scenes: every face the detector finds belongs
        to a confirmed track and every confirmed track was found. While that is not so
        (a new face waiting for ``min_hits`` matches in a row, a small or turned face the
        detector finds only now and then, a crowd) the analyser detects on every frame,
        as with ``every_n_frames: 1``: otherwise such faces rarely get confirmed and which
        ones do depends on which frames happen to be sampled. The capture is asked for
        pixels of every frame meanwhile.
        """
        return self._unsettled

    def _detection_due(self, seq: int) -> bool:
        """Every ``every_n`` frames by the capture's sequence numbers, so frames the
        queue dropped still count (detection keeps its rate in camera time). A sequence
        that restarts or repeats (a new session, tests) detects at once."""
        last = self._last_detect_seq
        return last is None or seq - last >= self.every_n or seq <= last

    def expire(self, now_mono: float) -> list[Event]:
        """No frame arrived: advance time so tracks unseen for too long end."""
        if not self._frames_seen or now_mono <= self._last_mono:
            return []
        self._last_wall += now_mono - self._last_mono
        self._last_mono = now_mono
        upd = self.tracker.update(now_mono, None)
        return self.policy.update(now_mono, self._last_wall, self._size, upd.tracks, upd.ended)

    def flush(self) -> list[Event]:
        """End every track (stream ended or shutting down) at the last frame's time.

        The tracks were last seen then at the latest: ending them by advancing the clock
        past ``max_missed_s`` (as before) stamped every ``end`` event about a second in
        the future and inflated its ``duration_s`` by as much.
        """
        if not self._frames_seen:
            return []
        ended = self.tracker.reset()
        self.last_tracks = ()
        return self.policy.update(self._last_mono, self._last_wall, self._size, [], ended)

    def active_tracks(self) -> list[dict[str, Any]]:
        return [
            {"track_id": tid, "emotion": emo, "confidence": round(conf, 4)}
            for tid, emo, conf in self.policy.active_tracks()
        ]

    def restart(self) -> list[Event]:
        """Start the analysis afresh: every track ends (its ``end`` events are
        returned), tracker and policy state are rebuilt; the detector and model stay."""
        try:
            events = self.flush()
        except Exception as exc:  # noqa: BLE001 - the state being dropped may be what is at fault
            log.error("%s: open tracks dropped without end events (%s)", self.camera, exc)
            events = []
        self.tracker = IouTracker(self.tracker_params, len(self.model.labels))
        self.policy = EventPolicy(
            self.camera, self.model.labels, self.policy.params, self.policy.alerts
        )
        self._last_detect_seq = None
        self._unsettled = False
        self.last_tracks = ()
        self.last_boxes, self.last_boxes_seq = np.zeros((0, 4), np.float32), None
        return events

    def close(self) -> None:
        self.detector.close()


def dominant_emotion(tracks: Sequence[dict[str, Any]]) -> str | None:
    """One value for dashboards: the most confident reported face's emotion.

    Faces the model is not sure about only count when no face is sure: then the value
    is ``uncertain``; with no reported face at all it is ``None``.
    """
    sure = [t for t in tracks if t["emotion"] != UNCERTAIN]
    if sure:
        return str(max(sure, key=lambda t: t["confidence"])["emotion"])
    return UNCERTAIN if tracks else None


class CameraPipeline(threading.Thread):
    """Feeds a :class:`CameraAnalyzer` from the capture queue until ``stop`` is set."""

    def __init__(
        self,
        analyzer: CameraAnalyzer,
        queue: FrameQueue,
        capture: CaptureWorker,
        sink: EventSink,
        stop: threading.Event,
        live: FrameSink | None = None,
        failing_s: float = 30.0,
        snapshots: SnapshotOptions | None = None,
    ) -> None:
        super().__init__(name=f"pipeline-{analyzer.camera}", daemon=True)
        self.analyzer = analyzer
        self.queue = queue
        self.capture = capture
        self.sink = sink
        self.live = live
        #: With ``mqtt.publish_images``: how start/update/alert events get their picture.
        self.snapshots = snapshots
        self._stop_event = stop
        #: Set once the thread has opened its stages and entered its loop (readiness).
        self.ready = threading.Event()
        #: ``time.monotonic()`` of the loop's last turn; the loop turns at least every
        #: QUEUE_WAIT_S, so an old heartbeat means the thread is stuck (liveness).
        self.heartbeat = 0.0
        self._last_state: tuple[Any, ...] | None = None
        self._last_state_t = 0.0
        #: Seconds of failing frames, without one success, before the analysis restarts.
        self.failing_s = failing_s
        #: Why the last frame failed; None while frames are analysed.
        self.analysis_error: str | None = None
        self._failing_since: float | None = None
        self._fails = 0
        self._last_failure = 0.0
        self._last_error_log = 0.0
        self._backoff = RESTART_BACKOFF_INITIAL_S
        self._next_restart = 0.0
        #: Cleared to pause analysis (runtime control, set by the app from any thread):
        #: frames still arrive and reach the live view, nothing is detected or
        #: classified, and open tracks end at the pause.
        self.analysis_on = threading.Event()
        self.analysis_on.set()
        self._paused = False  # the pipeline thread's own view of the flag

    @property
    def camera(self) -> str:
        return self.analyzer.camera

    def run(self) -> None:
        try:
            self.analyzer.open()
            self.heartbeat = time.monotonic()
            self.ready.set()
            while not self._stop_event.is_set():
                frame = self.queue.get(timeout=QUEUE_WAIT_S)
                if not self.analysis_on.is_set():
                    self._pause(frame)
                    frame = None  # seen, not analysed
                elif self._paused:
                    self._paused = False
                    log.info("%s: analysis resumed", self.camera)
                if frame is not None:
                    self._process(frame)
                elif self.analysis_on.is_set():
                    self._emit(self.analyzer.expire(time.monotonic()))
                    if self.capture.status is StreamStatus.ENDED and not self.queue.qsize():
                        self._emit(self.analyzer.flush())
                self._maybe_publish_state()
                self.heartbeat = time.monotonic()
            self._emit(self.analyzer.flush())
            self._maybe_publish_state(force=True)
        finally:
            self.analyzer.close()

    def _pause(self, frame: Frame | None) -> None:
        if not self._paused:
            self._paused = True
            self._emit(self.analyzer.flush())  # the tracks end where the analysis stops
            log.info("%s: analysis paused", self.camera)
        if frame is not None and self.live is not None and frame.image is not None:
            self.live.put_frame(frame, (), NO_BOXES, self.analyzer.metrics.fps())

    def _process(self, frame: Frame) -> None:
        """One frame through the analyzer; a frame that fails is skipped, not fatal.

        The broad ``except`` is the point: whatever one frame does (a NaN from the
        model, a box the tracker rejects, a bug), the camera keeps running. Each failure
        is counted (metrics, state) and logged, the first with its traceback and then
        at most once per ``FRAME_ERROR_LOG_S``. Failures that keep recurring (no gap of
        ``failing_s`` without one) for ``failing_s`` rebuild the analyzer's state (tracks
        end, the policy starts afresh), at most once per backoff that doubles up to
        ``RESTART_BACKOFF_MAX_S``; the state reports the error until ``failing_s`` pass
        without a failure.
        """
        try:
            self._emit(self.analyzer.process(frame), frame)
            demand = self.capture.pixel_demand
            if self.analyzer.wants_every_frame != demand.is_set():
                (demand.set if self.analyzer.wants_every_frame else demand.clear)()
            if self.live is not None and frame.image is not None:
                self._update_live(frame)
        except Exception as exc:  # noqa: BLE001 - per-frame isolation, see the docstring
            self._frame_failed(exc)
        else:
            # Recovered once no frame failed for failing_s: frames without faces succeed
            # between failing ones, and must not hide a fault that recurs every second.
            now = time.monotonic()
            if self._failing_since is not None and now - self._last_failure > self.failing_s:
                log.info("%s: frames analysed again after %d failures", self.camera, self._fails)
                self._failing_since, self._fails = None, 0
                self.analysis_error = None

    def _frame_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        m = self.analyzer.metrics
        m.frame_errors += 1
        self._fails += 1
        self.analysis_error = f"frame analysis failed: {type(exc).__name__}: {exc}"[:300]
        if self._failing_since is None:
            self._failing_since = now
        self._last_failure = now
        if now - self._last_error_log >= FRAME_ERROR_LOG_S:
            first = self._last_error_log == 0.0
            self._last_error_log = now
            log.error(
                "%s: %s (%d so far; the frame is skipped)",
                self.camera,
                self.analysis_error,
                m.frame_errors,
                exc_info=exc if first else None,
            )
        failing = now - self._failing_since
        if failing >= self.failing_s and now >= self._next_restart:
            log.error(
                "%s: every frame failed for %.0f s: restarting the camera's analysis",
                self.camera,
                failing,
            )
            self._emit(self.analyzer.restart())
            m.analysis_restarts += 1
            self._next_restart = now + self._backoff
            self._backoff = min(self._backoff * 2, RESTART_BACKOFF_MAX_S)
            self._failing_since = now

    def _update_live(self, frame: Frame) -> None:
        # Only references and a few tuples: the JPEG work happens in the web threads,
        # and only while someone watches.
        live, an = self.live, self.analyzer
        assert live is not None
        labels = an.model.labels
        floor = an.policy.params.min_confidence
        faces = tuple(
            ShownFace(t.track_id, t.xyxy, *shown_emotion(t.probs, labels, floor))
            for t in an.last_tracks
        )
        fresh = an.last_boxes_seq == frame.seq
        live.put_frame(frame, faces, an.last_boxes, an.metrics.fps(), boxes_fresh=fresh)
        # E.g. blurred faces need boxes of the frame shown: detect on every frame from
        # the next one (until then the live view blurs the whole picture).
        an.detect_every_frame = live.needs_fresh_boxes()

    def _emit(self, events: Sequence[Event], frame: Frame | None = None) -> None:
        m = self.analyzer.metrics
        if self.live is not None and events:
            self.live.add_events(events)
        for e in events:
            if self.sink.publish_event(e):
                m.events += 1
            else:
                m.events_not_queued += 1
                log.warning("%s: publisher queue full, event %s dropped", self.camera, e.type)
                continue  # its picture would be taken for the camera's previous event
            if self.snapshots is not None and e.type in SNAPSHOT_EVENTS:
                self._snapshot(e, frame)

    def _snapshot(self, event: Event, frame: Frame | None) -> None:
        # Events come from the frame being analysed; one without pixels (a tracking-only
        # frame between detections) has no picture to give.
        m = self.analyzer.metrics
        jpeg = None
        if frame is not None and frame.image is not None and self.snapshots is not None:
            jpeg = snapshot_jpeg(frame.image, event.bbox, self.snapshots)
        if jpeg is None:
            m.snapshots_skipped += 1
            return
        self.sink.publish_snapshot(self.camera, event.type, jpeg)

    def state(self) -> dict[str, Any]:
        cap = self.capture.stats()
        snap = self.analyzer.metrics.snapshot()
        tracks = self.analyzer.active_tracks()
        return {
            "status": cap.status.value,
            "error": cap.last_error if cap.status is not StreamStatus.ONLINE else None,
            "fps": round(cap.fps, 2),
            "processed_fps": snap["fps"],
            "dropped_frames": self.queue.dropped,
            "reconnects": cap.reconnects,
            "faces": snap["faces"],
            "frame_errors": snap["frame_errors"],
            "analysis_error": self.analysis_error,
            "tracks": tracks,
            "dominant_emotion": dominant_emotion(tracks),
            "analysis": "paused" if self._paused else "on",
        }

    def _maybe_publish_state(self, force: bool = False) -> None:
        # Cheap change key per frame; the full state (percentiles etc.) only when sent.
        tracks = tuple((t, e) for t, e, _ in self.analyzer.policy.active_tracks())
        key = (
            self.capture.status,
            self.capture.last_error,
            self.analysis_error,
            tracks,
            self._paused,
        )
        now = time.monotonic()
        if force or key != self._last_state or now - self._last_state_t >= STATE_INTERVAL_S:
            self._last_state, self._last_state_t = key, now
            self.sink.publish_state(self.camera, self.state())
