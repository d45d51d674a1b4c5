"""The application object: the one owner of start-up and shutdown order.

Start order: embedded broker (optional) -> MQTT publisher -> emotion model -> per camera
(analyzer, pipeline thread, capture thread). Stop order is the reverse, driven by one
stop event: captures stop first, pipelines flush their tracks (``end`` events), the
publisher delivers what it can and publishes ``offline``, then the broker stops.
Everything blocks with timeouts, so a stop completes within about two seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from edge_daemon import __version__
from edge_daemon.classify.model import EmotionModel
from edge_daemon.config import AppConfig, CameraConfig
from edge_daemon.pipeline import CameraAnalyzer, CameraPipeline
from edge_daemon.publish import BrokerStartError, EmbeddedBroker, MqttPublisher, MqttSettings
from edge_daemon.sources import (
    CaptureSettings,
    CaptureWorker,
    FileSpec,
    FrameQueue,
    MjpegSpec,
    RtspSpec,
    SampleSpec,
    SourceSpec,
    UsbSpec,
)
from edge_daemon.types import StreamStatus

log = logging.getLogger(__name__)

STOP_BUDGET_S = 2.0  # total time a shutdown may take


def source_spec(cam: CameraConfig) -> SourceSpec:
    """Map a validated camera source config to the sources package's spec."""
    s = cam.source
    if s.type == "file":
        return FileSpec(path=s.path, loop=s.loop, realtime=s.realtime)
    if s.type == "usb":
        return UsbSpec(device=s.device, width=s.width, height=s.height, fps=s.fps)
    if s.type == "rtsp":
        return RtspSpec(url=s.url, transport=s.transport, open_timeout_s=s.open_timeout_s)
    if s.type == "mjpeg":
        return MjpegSpec(url=s.url, open_timeout_s=s.open_timeout_s)
    if s.type == "sample":
        return SampleSpec(fps=s.fps, width=s.width, height=s.height)
    raise ValueError(f"unknown source type {s.type}")  # unreachable: the schema is closed


def mqtt_settings(cfg: AppConfig) -> MqttSettings:
    m = cfg.mqtt
    tls = m.tls
    return MqttSettings(
        host=m.host,
        port=m.port,
        client_id=m.client_id,
        username=m.username,
        password=m.password.get_secret_value() if m.password else None,
        tls_ca_file=tls.ca_file if tls else None,
        tls_cert_file=tls.cert_file if tls else None,
        tls_key_file=tls.key_file if tls else None,
        tls_insecure=tls.insecure if tls else False,
        use_tls=tls is not None,
        keepalive_s=m.keepalive_s,
        topic_prefix=m.topic_prefix,
        qos=m.qos,
        outbox_max=m.outbox_max,
        publish_images=m.publish_images,
    )


def mqtt_broker_answers(host: str, port: int, timeout: float = 3.0) -> bool:
    """True when an MQTT broker accepts a connection at host:port."""
    import paho.mqtt.client as mqtt

    ok = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_connect(_c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        if not getattr(rc, "is_failure", True):
            ok.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=5)
    except OSError:
        return False
    client.loop_start()
    try:
        return ok.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass
class CameraRuntime:
    config: CameraConfig
    queue: FrameQueue
    capture: CaptureWorker
    pipeline: CameraPipeline


class App:
    """Owns every component; ``start()`` then ``wait()``; ``stop()`` from any thread."""

    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()
        self.broker: EmbeddedBroker | None = None
        self.publisher: MqttPublisher | None = None
        self.model: EmotionModel | None = None
        self.cameras: list[CameraRuntime] = []
        self.started_at = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start everything; on a failure, stop what was started and re-raise."""
        self.started_at = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        cfg = self.cfg
        if cfg.mqtt.embedded_broker.enabled:
            self._start_embedded_broker()
        self.publisher = MqttPublisher(mqtt_settings(cfg))
        self.publisher.start()
        self.model = EmotionModel(
            cfg.model.resolved_path(),
            cfg.model.providers,
            cfg.model.intra_op_threads,
            cfg.model.tta_hflip,
        )
        for cam in cfg.cameras:
            if not cam.enabled:
                log.info("camera %s disabled in config", cam.name)
                continue
            self.cameras.append(self._start_camera(cam))
        log.info(
            "edge-daemon %s running: %d camera(s), model %s",
            __version__,
            len(self.cameras),
            self.model.info.path.name,
        )

    def _start_embedded_broker(self) -> None:
        eb = self.cfg.mqtt.embedded_broker
        broker = EmbeddedBroker(eb.host, eb.port)
        try:
            broker.start(timeout=10)
        except BrokerStartError:
            # Typical on a box where Debian's mosquitto service already owns the port:
            # use that broker rather than refusing to run, and say so.
            if not mqtt_broker_answers(eb.host, eb.port):
                raise
            log.warning(
                "embedded broker not started: an MQTT broker already listens on %s:%d; "
                "using it (set mqtt.embedded_broker.enabled: false to silence this)",
                eb.host,
                eb.port,
            )
            return
        self.broker = broker
        log.info("embedded MQTT broker listening on %s:%d", eb.host, eb.port)

    def _start_camera(self, cam: CameraConfig) -> CameraRuntime:
        assert self.model is not None and self.publisher is not None
        queue = FrameQueue(cam.queue_size)
        settings = CaptureSettings(
            stall_timeout_s=cam.stall_timeout_s,
            reconnect_initial_s=cam.reconnect_initial_s,
            reconnect_max_s=cam.reconnect_max_s,
        )
        capture = CaptureWorker(
            cam.name, source_spec(cam), settings, queue, self.stop_event, self._on_status
        )
        analyzer = CameraAnalyzer(cam, self.cfg, self.model)
        pipeline = CameraPipeline(analyzer, queue, capture, self.publisher, self.stop_event)
        pipeline.start()  # consumer first, so no frame waits for it
        capture.start()
        return CameraRuntime(cam, queue, capture, pipeline)

    def _on_status(self, camera: str, status: StreamStatus, error: str | None) -> None:
        # Runs on the capture thread: only log here; the pipeline thread owns the state
        # topic and notices the change on its next loop.
        if error and status is not StreamStatus.ONLINE:
            log.warning("camera %s: %s (%s)", camera, status.value, error)
        else:
            log.info("camera %s: %s", camera, status.value)

    def wait(self) -> None:
        """Block until stop is requested, publishing stats periodically."""
        interval = self.cfg.mqtt.stats_interval_s
        next_stats = time.monotonic() + min(interval, 5.0)
        while not self.stop_event.wait(timeout=max(0.0, next_stats - time.monotonic())):
            self.publish_stats()
            next_stats = time.monotonic() + interval

    def stop(self) -> None:
        """Stop in reverse start order within ~STOP_BUDGET_S. Idempotent."""
        self.stop_event.set()
        deadline = time.monotonic() + STOP_BUDGET_S

        def left(share: float) -> float:
            return max(0.05, (deadline - time.monotonic()) * share)

        for rt in self.cameras:
            rt.capture.join(timeout=left(0.3))
        for rt in self.cameras:
            rt.pipeline.join(timeout=left(0.3))
        if self.publisher is not None:
            self.publisher.stop(timeout=left(0.7))
        if self.broker is not None:
            self.broker.stop(timeout=left(1.0))
        alive = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        stuck = [n for n in alive if n.startswith(("capture-", "pipeline-"))]
        if stuck:
            log.warning("threads still running after stop: %s", ", ".join(stuck))

    # -- observation -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        cams = {}
        for rt in self.cameras:
            cap = rt.capture.stats()
            cams[rt.config.name] = {
                **rt.pipeline.analyzer.metrics.snapshot(),
                "status": cap.status.value,
                "capture_fps": round(cap.fps, 2),
                "dropped_frames": rt.queue.dropped,
                "reconnects": cap.reconnects,
                "decode_failures": cap.decode_failures,
            }
        return {
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "cameras": cams,
            "mqtt": self.publisher.stats() if self.publisher else {},
        }

    def publish_stats(self) -> None:
        if self.publisher is not None:
            self.publisher.publish_stats(self.stats())
