"""Prometheus exposition of the pipeline metrics and the daemon's health.

The HTTP side (``/metrics``, ``/healthz``, ``/readyz``) lives in
:mod:`edge_daemon.web.metrics_endpoint`: this module knows nothing of web servers.

Pull model: nothing is recorded for Prometheus on the hot path. At scrape time the
collector reads the snapshots the pipelines and the publisher already keep (counters
under their locks, never-resetting histograms), so a scrape costs the pipelines nothing.

Metric names follow the Prometheus conventions (``_total`` counters, base units: seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector

from edge_daemon import __version__
from edge_daemon.metrics import HistogramSnapshot, PipelineMetrics
from edge_daemon.ops.health import Health
from edge_daemon.sources import CaptureStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class CameraView:
    """What the exporter reads about one camera at scrape time."""

    name: str
    capture: CaptureStats
    dropped_frames: int
    metrics: PipelineMetrics


#: Daemon-wide counters read at scrape time (``edge_<name>_total``): name -> help.
DAEMON_COUNTERS = {
    "detector_pool_waits": "detector borrows that found every shared interpreter busy "
    "(contention; starts again at 0 when a reload replaces the pool)",
    "live_streams_refused": "live-view picture streams refused at live_view.max_clients",
    "watchdog_pings_withheld": "systemd watchdog pings withheld because a pipeline, capture "
    "or publisher thread was unhealthy (systemd restarts the daemon after WatchdogSec)",
    "commands_unknown_camera": "MQTT commands refused because they named no running camera",
}


class DaemonCollector(Collector):
    def __init__(
        self,
        cameras: Callable[[], list[CameraView]],
        mqtt_stats: Callable[[], dict[str, Any]],
        health: Callable[[], Health],
        counters: Callable[[], dict[str, int]] = dict,
        model: Callable[[], dict[str, str]] = dict,
    ) -> None:
        """``counters``: current values of :data:`DAEMON_COUNTERS` (missing ones are not
        exported). ``model``: labels of ``edge_model_info`` (the model file, the execution
        provider it runs on, the CPU); empty: not exported."""
        self._cameras = cameras
        self._mqtt = mqtt_stats
        self.health = health
        self._counters = counters
        self._model = model

    def collect(self) -> Iterator[Any]:
        yield InfoMetricFamily("edge_daemon_build", "daemon version", {"version": __version__})
        if model := self._model():
            yield InfoMetricFamily(
                "edge_model", "emotion model, its execution provider and the CPU", model
            )
        health = self.health()
        yield GaugeMetricFamily(
            "edge_daemon_healthy", "1 when every pipeline is alive", value=int(health.healthy)
        )
        yield GaugeMetricFamily(
            "edge_daemon_ready", "1 when every pipeline has started", value=int(health.ready)
        )
        values = self._counters()
        for name, doc in DAEMON_COUNTERS.items():
            if name in values:
                yield CounterMetricFamily(f"edge_{name}", doc, value=values[name])
        cams = self._cameras()
        lab = ["camera"]

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=lab)

        def counter(name: str, doc: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=lab)

        up = gauge("edge_camera_up", "1 while the stream delivers frames")
        cap_fps = gauge("edge_camera_capture_fps", "frames per second read from the source")
        proc_fps = gauge("edge_camera_processed_fps", "frames per second analysed")
        faces_now = gauge("edge_camera_faces", "faces in the latest analysed frame")
        tracks_now = gauge("edge_camera_tracks", "confirmed tracks now")
        frames = counter("edge_camera_frames", "frames read from the source")
        analysed = counter("edge_camera_frames_analysed", "frames analysed by the pipeline")
        dropped = counter(
            "edge_camera_frames_dropped", "frames dropped because analysis fell behind"
        )
        reconnects = counter("edge_camera_reconnects", "times the source was reopened")
        decode_fail = counter("edge_camera_decode_failures", "frames that failed to decode")
        faces = counter("edge_camera_faces_detected", "faces detected")
        weak = counter(
            "edge_camera_weak_faces_detected",
            "faces under detector.min_confidence offered to keep confirmed tracks alive",
        )
        mirrored = counter(
            "edge_camera_faces_mirrored",
            "faces classified a second time, mirrored (model.tta_hflip, model.tta_hflip_below)",
        )
        too_small = counter(
            "edge_camera_faces_too_small", "faces found but dropped for detector.min_face_px"
        )
        over_cap = counter(
            "edge_camera_faces_over_cap", "faces found but dropped for detector.max_faces"
        )
        events = counter("edge_camera_events", "events handed to the publisher")
        events_lost = counter(
            "edge_camera_events_not_queued", "events refused because the publisher queue was full"
        )
        frame_errors = counter(
            "edge_camera_frame_errors", "frames whose analysis failed (skipped, logged)"
        )
        restarts = counter(
            "edge_camera_analysis_restarts", "analysis restarted after failing frames for a while"
        )
        hists = {
            "detect": HistogramMetricFamily(
                "edge_detect_seconds", "face detection time per frame", labels=lab
            ),
            "classify": HistogramMetricFamily(
                "edge_classify_seconds", "emotion inference time per frame with faces", labels=lab
            ),
            "latency": HistogramMetricFamily(
                "edge_pipeline_latency_seconds", "capture to events handed over", labels=lab
            ),
        }
        for cam in cams:
            v = [cam.name]
            snap = cam.metrics.snapshot()
            up.add_metric(v, int(cam.capture.status.value == "online"))
            cap_fps.add_metric(v, cam.capture.fps)
            proc_fps.add_metric(v, float(snap["fps"]))
            faces_now.add_metric(v, float(snap["faces"]))
            tracks_now.add_metric(v, float(snap["tracks"]))
            frames.add_metric(v, cam.capture.frames)
            analysed.add_metric(v, float(snap["frames"]))
            dropped.add_metric(v, cam.dropped_frames)
            reconnects.add_metric(v, cam.capture.reconnects)
            decode_fail.add_metric(v, cam.capture.decode_failures)
            faces.add_metric(v, float(snap["faces_total"]))
            weak.add_metric(v, float(snap["weak_faces_total"]))
            mirrored.add_metric(v, float(snap["faces_mirrored_total"]))
            too_small.add_metric(v, float(snap["faces_too_small_total"]))
            over_cap.add_metric(v, float(snap["faces_over_cap_total"]))
            events.add_metric(v, float(snap["events"]))
            events_lost.add_metric(v, float(snap["events_not_queued"]))
            frame_errors.add_metric(v, float(snap["frame_errors"]))
            restarts.add_metric(v, float(snap["analysis_restarts"]))
            for key, h in cam.metrics.histograms().items():
                _add_histogram(hists[key], v, h)
        yield from (up, cap_fps, proc_fps, faces_now, tracks_now, frames, analysed, dropped)
        yield from (reconnects, decode_fail, faces, weak, events, events_lost, frame_errors)
        yield from (restarts, too_small, over_cap, mirrored)
        yield from hists.values()

        m = self._mqtt()
        if m:
            yield GaugeMetricFamily(
                "edge_mqtt_connected", "1 while connected to the broker", value=int(m["connected"])
            )
            yield GaugeMetricFamily(
                "edge_mqtt_outbox", "events waiting for broker acknowledgement", value=m["outbox"]
            )
            yield GaugeMetricFamily(
                "edge_mqtt_queue", "commands waiting for the publisher thread", value=m["queue"]
            )
            for key, doc in (
                ("events_published", "events acknowledged by the broker"),
                ("events_dropped", "events dropped (outbox overflow, queue full, shutdown)"),
                ("publish_failures", "publishes not acknowledged on their connection"),
                ("reconnects", "broker reconnections"),
                ("connect_failures", "broker connection attempts that failed"),
                ("events_restored", "undelivered events read back from the state store at start"),
                ("events_expired", "events dropped undelivered for mqtt.outbox_max_age_s"),
                ("store_failures", "event-store writes the disk refused (events kept in memory)"),
                ("commands_received", "commands accepted on <prefix>/<camera>/set"),
                ("commands_refused", "commands refused (malformed, unknown setting, flood)"),
                ("messages_dropped", "non-event messages dropped while disconnected"),
            ):
                yield CounterMetricFamily(f"edge_mqtt_{key}", doc, value=m[key])


def _add_histogram(fam: HistogramMetricFamily, labels: list[str], h: HistogramSnapshot) -> None:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(bound / 1000.0), count)
        for bound, count in h.buckets
    ]
    fam.add_metric(labels, buckets, h.sum / 1000.0)
