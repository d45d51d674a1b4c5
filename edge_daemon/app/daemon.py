"""The application object: the one owner of start-up and shutdown order.

Start order: embedded broker (optional) -> MQTT publisher -> emotion model -> per camera
(analyzer, pipeline thread, capture thread) -> Home Assistant discovery -> HTTP endpoints
(metrics, live view) -> systemd ``READY=1`` once every pipeline has entered its loop.
Stop order is the reverse, driven by one stop event (each camera also has its own, so a
reload can restart one camera): ``STOPPING=1``, HTTP endpoints close, captures stop,
pipelines flush their tracks (``end`` events), the publisher delivers what it can and
publishes ``offline``, then the broker stops. Everything blocks with timeouts, so a stop
completes within about two seconds.

The main thread runs :meth:`App.wait`: stats, systemd watchdog pings (only while every
pipeline is alive and turning), ``STATUS=`` lines, and reloads requested by SIGHUP.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_daemon import __version__
from edge_daemon.app.reload_plan import plan_reload
from edge_daemon.app.wiring import (
    capture_settings,
    live_slot,
    mqtt_settings,
    publishes_to_embedded_port,
    snapshot_options,
    source_spec,
    state_dir,
)
from edge_daemon.classify.model import EmotionModel
from edge_daemon.config import AppConfig, CameraConfig, ConfigError, load_config
from edge_daemon.detect.blazeface import InterpreterPool
from edge_daemon.ops.cpu import cpu_info
from edge_daemon.ops.health import CameraThreads, Health, assess
from edge_daemon.ops.prometheus import CameraView, DaemonCollector
from edge_daemon.ops.systemd import SystemdNotifier
from edge_daemon.pipeline import CameraAnalyzer, CameraPipeline
from edge_daemon.publish import BrokerStartError, EmbeddedBroker, MqttPublisher
from edge_daemon.publish.broker import broker_answers
from edge_daemon.publish.homeassistant import (
    DiscoveryCamera,
    discovery_messages,
    removal_messages,
)
from edge_daemon.publish.store import OutboxStore
from edge_daemon.sources import CaptureWorker, FrameQueue
from edge_daemon.types import StreamStatus
from edge_daemon.web.http import HttpService
from edge_daemon.web.live import LiveSlot
from edge_daemon.web.liveview import LiveView
from edge_daemon.web.metrics_endpoint import MetricsEndpoint

log = logging.getLogger(__name__)

STOP_BUDGET_S = 2.0  # total time a shutdown may take
READY_TIMEOUT_S = 60.0  # waiting for pipelines to open their stages before READY=1
STATUS_INTERVAL_S = 5.0  # systemd STATUS= refresh
TICK_S = 0.5  # main loop granularity: reload requests and watchdog pings


@dataclass
class CameraRuntime:
    config: CameraConfig
    queue: FrameQueue
    capture: CaptureWorker
    pipeline: CameraPipeline
    stop: threading.Event
    live: LiveSlot | None = None

    def view(self) -> CameraView:
        metrics = self.pipeline.analyzer.metrics
        return CameraView(self.config.name, self.capture.stats(), self.queue.dropped, metrics)


@dataclass
class ReloadResult:
    ok: bool
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class App:
    """Owns every component; ``start()`` then ``wait()``; ``stop()`` from any thread."""

    def __init__(
        self,
        cfg: AppConfig,
        config_path: Path | None = None,
        notifier: SystemdNotifier | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self._env = os.environ if env is None else env  # $STATE_DIRECTORY from systemd
        self.config_path = config_path  # re-read on reload; None = reload unsupported
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.notifier = notifier or SystemdNotifier()
        self.broker: EmbeddedBroker | None = None
        self.publisher: MqttPublisher | None = None
        self.store: OutboxStore | None = None
        self.model: EmotionModel | None = None
        self.cpu = cpu_info()  # read once: /proc/cpuinfo does not change under us
        # The model file for this CPU (model.bundled auto: by int8 dot products).
        self.model_choice = cfg.model.choose(self.cpu.int8_dot)
        self._detector_pool: InterpreterPool | None = None
        self.cameras: list[CameraRuntime] = []
        self.http: list[HttpService] = []
        self.live_view: LiveView | None = None
        self.started_at = 0.0
        self.started = False
        self.reloads = 0
        self._stopping = False  # stop() ran (the stop event may be set earlier by a signal)
        self._watchdog_problem: tuple[str, ...] = ()
        self.watchdog_pings_withheld = 0  # main thread writes; a scrape reads a plain int
        self._ha_cameras: list[str] = []
        # Cameras paused by command: a camera restarted by a reload stays paused.
        self._paused_cameras: set[str] = set()
        self.commands_unknown_camera = 0

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
        foreign = cfg.mqtt.embedded_broker.enabled and not self._start_embedded_broker()
        to_embedded = cfg.mqtt.embedded_broker.enabled and publishes_to_embedded_port(cfg)
        self._open_store()
        self.publisher = MqttPublisher(
            mqtt_settings(
                cfg, anonymous=foreign and to_embedded, own_broker=to_embedded and not foreign
            ),
            self.store,
        )
        self.publisher.start()
        # The CPU decides the classifier's speed (int8 dot products: ~5x): say which.
        log.info("cpu: %s", self.cpu.line())
        choice = self.model_choice
        log.info("model: %s (%s)", choice.bundled or choice.path, choice.reason)
        self.model = EmotionModel(
            choice.path,
            cfg.model.providers,
            cfg.model.intra_op_threads,
            cfg.model.tta_hflip,
            cfg.model.tta_hflip_below,
        )
        for cam in cfg.cameras:
            if not cam.enabled:
                log.info("camera %s disabled in config", cam.name)
                continue
            self.cameras.append(self._start_camera(cam))
        self._publish_discovery()
        self._start_http()
        self.started = True
        self._wait_pipelines_ready(READY_TIMEOUT_S)
        log.info(
            "edge-daemon %s running: %d camera(s), model %s",
            __version__,
            len(self.cameras),
            self.model.info.path.name,
        )
        self.notifier.ready(self.status_line())

    def _open_store(self) -> None:
        directory = state_dir(self.cfg, self._env)
        if directory is None:
            log.warning(
                "no state directory (state.dir): undelivered events are lost at a restart "
                "and seq starts again at 1"
            )
            return
        st = self.cfg.state
        self.store = OutboxStore.open(
            directory, st.sync, st.history_days, st.history_max_mb * 1024 * 1024
        )
        origin = self.store.origin
        log.info("state in %s: instance %s, boot %d", directory, origin.instance_id, origin.boot)

    def _wait_pipelines_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for rt in self.cameras:
            while not rt.pipeline.ready.wait(0.1):
                if not rt.pipeline.is_alive() or self.stop_event.is_set():
                    break
                if time.monotonic() > deadline:
                    log.warning("camera %s: pipeline not ready in %.0fs", rt.config.name, timeout)
                    break

    def _start_http(self) -> None:
        m, lv = self.cfg.metrics, self.cfg.live_view
        if m.enabled:
            svc = HttpService(
                "metrics",
                m.host,
                m.port,
                m.token.get_secret_value() if m.token else None,
                public_paths=("/healthz", "/readyz"),
                allowed_hosts=tuple(m.allowed_hosts),
            )
            collector = DaemonCollector(
                lambda: [rt.view() for rt in self.cameras],
                lambda: self.publisher.stats() if self.publisher else {},
                self.health,
                self._counters,
                self._model_labels,
            )
            MetricsEndpoint(svc, collector)
            svc.start()
            self.http.append(svc)
            log.info("metrics on %s/metrics (health: /healthz, /readyz)%s", svc.url, m.exposure)
        if lv.enabled:
            token = lv.token.get_secret_value() if lv.token else None
            svc = HttpService(
                "live-view", lv.host, lv.port, token, allowed_hosts=tuple(lv.allowed_hosts)
            )
            history = self.store.directory if self.store is not None else None
            if history is not None and self.cfg.state.history_days <= 0:
                history = None
            self.live_view = LiveView(svc, self._live_cameras, lv.fps, lv.max_clients, history)
            svc.start()
            self.http.append(svc)
            log.info(
                "live view on %s/%s%s",
                svc.url,
                " (token required)" if lv.token else "",
                lv.exposure,
            )

    def _live_cameras(self) -> dict[str, tuple[LiveSlot, str]]:
        return {
            rt.config.name: (rt.live, rt.capture.status.value)
            for rt in list(self.cameras)
            if rt.live is not None
        }

    def _start_embedded_broker(self) -> bool:
        """Start the embedded broker; False when a foreign one on its port is used instead.

        The credentials in ``mqtt`` were written for the broker the daemon starts itself,
        so a broker some other program runs on that port (Debian's mosquitto service,
        or anything that took the port) never receives them: with ``if_port_taken:
        use_running`` the publisher connects to it anonymously, and says so loudly.
        """
        eb = self.cfg.mqtt.embedded_broker
        broker = EmbeddedBroker(eb.host, eb.port)
        try:
            broker.start(timeout=10)
        except BrokerStartError as exc:
            if not broker_answers(eb.host, eb.port):
                raise
            if eb.if_port_taken == "fail":
                raise BrokerStartError(
                    f"cannot start the embedded MQTT broker: another program already serves "
                    f"MQTT on {eb.host}:{eb.port}; stop it, move mqtt.embedded_broker.port "
                    "(and mqtt.port), or set mqtt.embedded_broker.if_port_taken: "
                    "use_running to publish to that broker instead"
                ) from exc
            creds = self.cfg.mqtt.username is not None or self.cfg.mqtt.password is not None
            log.warning(
                "embedded broker NOT started: a broker this daemon did not start already "
                "serves MQTT on %s:%d; publishing to it (mqtt.embedded_broker.if_port_taken: "
                "use_running)%s",
                eb.host,
                eb.port,
                "; mqtt.username and password are NOT sent to it (they were meant for the "
                "embedded broker), so a broker that requires them will refuse the daemon"
                if creds and publishes_to_embedded_port(self.cfg)
                else "",
            )
            return False
        self.broker = broker
        log.info("embedded MQTT broker listening on %s:%d", eb.host, eb.port)
        return True

    def _counters(self) -> dict[str, int]:
        """Daemon-wide counters for the metrics endpoint (read from its thread: plain
        ints, so a scrape sees a value that was current a moment ago)."""
        pool, live = self._detector_pool, self.live_view
        return {
            "detector_pool_waits": pool.waits if pool is not None else 0,
            "live_streams_refused": live.streams_refused if live is not None else 0,
            "watchdog_pings_withheld": self.watchdog_pings_withheld,
            "commands_unknown_camera": self.commands_unknown_camera,
        }

    def _detectors(self) -> InterpreterPool:
        """The detector interpreters every camera shares (one per core at most, made on
        demand); a new pool when a reload changed the detector model or threads."""
        d = self.cfg.detector
        pool = self._detector_pool
        if pool is None or (pool.model, pool.threads) != (d.model, d.threads):
            pool = InterpreterPool(d.model, size=os.cpu_count() or 1, threads=d.threads)
            self._detector_pool = pool
        return pool

    def _start_camera(self, cam: CameraConfig) -> CameraRuntime:
        assert self.model is not None and self.publisher is not None
        stop = threading.Event()
        if self.stop_event.is_set():
            stop.set()
        live = live_slot(cam, self.cfg)
        queue = FrameQueue(cam.queue_size)
        settings = capture_settings(cam, self.cfg)
        capture = CaptureWorker(cam.name, source_spec(cam), settings, queue, stop, self._on_status)
        analyzer = CameraAnalyzer(cam, self.cfg, self.model, self._detectors())
        pipeline = CameraPipeline(
            analyzer,
            queue,
            capture,
            self.publisher,
            stop,
            live,
            cam.analysis_failing_s,
            snapshot_options(self.cfg),
        )
        if cam.name in self._paused_cameras:
            pipeline.analysis_on.clear()
        pipeline.start()  # consumer first, so no frame waits for it
        capture.start()
        return CameraRuntime(cam, queue, capture, pipeline, stop, live)

    def _stop_cameras(self, cameras: list[CameraRuntime], budget_s: float) -> None:
        deadline = time.monotonic() + budget_s
        for rt in cameras:
            rt.stop.set()
        for rt in cameras:
            rt.capture.join(timeout=max(0.05, (deadline - time.monotonic()) * 0.5))
        for rt in cameras:
            rt.pipeline.join(timeout=max(0.05, deadline - time.monotonic()))

    def _on_status(self, camera: str, status: StreamStatus, error: str | None) -> None:
        # Runs on the capture thread: only log here; the pipeline thread owns the state
        # topic and notices the change on its next loop.
        if error and status is not StreamStatus.ONLINE:
            log.warning("camera %s: %s (%s)", camera, status.value, error)
        else:
            log.info("camera %s: %s", camera, status.value)

    def wait(self) -> None:
        """Until stop: stats, watchdog pings, STATUS lines and reloads (main thread)."""
        now = time.monotonic()
        next_stats = now + min(self.cfg.mqtt.stats_interval_s, 5.0)
        next_status = now + STATUS_INTERVAL_S
        wd = self.notifier.watchdog_interval_s
        next_watchdog = now
        while not self.stop_event.wait(TICK_S):
            now = time.monotonic()
            self._apply_commands()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            if wd is not None and now >= next_watchdog:
                self._watchdog()
                next_watchdog = now + wd
            if now >= next_status:
                self.notifier.status(self.status_line())
                next_status = now + STATUS_INTERVAL_S
            if now >= next_stats:
                self.publish_stats()
                next_stats = now + self.cfg.mqtt.stats_interval_s

    def _apply_commands(self) -> None:
        """Commands the publisher received (``mqtt.commands``), applied on this thread."""
        if self.publisher is None:
            return
        while True:
            try:
                cmd = self.publisher.commands.get_nowait()
            except queue.Empty:
                return
            rt = next((r for r in self.cameras if r.config.name == cmd.camera), None)
            if rt is None:
                self.commands_unknown_camera += 1
                log.warning("MQTT command for unknown camera %r refused", cmd.camera)
                continue
            was = rt.pipeline.analysis_on.is_set()
            if cmd.analysis:
                self._paused_cameras.discard(cmd.camera)
                rt.pipeline.analysis_on.set()
            else:
                self._paused_cameras.add(cmd.camera)
                rt.pipeline.analysis_on.clear()
            # The audit line: what changed, from where.
            log.info(
                "MQTT command: camera %s analysis %s (was %s)",
                cmd.camera,
                "on" if cmd.analysis else "off",
                "on" if was else "off",
            )

    def request_reload(self) -> None:
        """Ask the main loop to re-read the config (safe from a signal handler)."""
        self.reload_requested.set()

    def _watchdog(self) -> None:
        h = self.health()
        if h.healthy:
            if self._watchdog_problem:
                log.info("pipelines healthy again: watchdog pings resumed")
            self._watchdog_problem = ()
            self.notifier.watchdog()
            return
        problems = tuple(h.problems)
        self.watchdog_pings_withheld += 1
        if problems != self._watchdog_problem:
            log.error("unhealthy, withholding systemd watchdog pings: %s", "; ".join(problems))
        self._watchdog_problem = problems

    def stop(self) -> None:
        """Stop in reverse start order within ~STOP_BUDGET_S. Idempotent."""
        self.stop_event.set()
        if not self._stopping:
            self._stopping = True
            self.notifier.stopping()
        deadline = time.monotonic() + STOP_BUDGET_S

        def left(share: float) -> float:
            return max(0.05, (deadline - time.monotonic()) * share)

        for svc in self.http:
            svc.stop(timeout=left(0.1))
        self.http = []
        self._stop_cameras(self.cameras, left(0.6))
        if self.publisher is not None:
            self.publisher.stop(timeout=left(0.7))
        if self.store is not None:
            if self.publisher is not None and self.publisher.alive:
                # Still its thread's: the process exit closes the file and the lock.
                log.warning("event store left open: the publisher thread is still running")
            else:
                self.store.close()
            self.store = None
        if self.broker is not None:
            self.broker.stop(timeout=left(1.0))
        alive = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        stuck = [n for n in alive if n.startswith(("capture-", "pipeline-"))]
        if stuck:
            log.warning("threads still running after stop: %s", ", ".join(stuck))
        self.notifier.close()

    # -- reload ----------------------------------------------------------------------

    def reload(self) -> ReloadResult:
        """Re-read the config file; restart only the cameras whose settings changed.

        An invalid file is rejected with every error logged, and the running
        configuration keeps going (the plan: :func:`~edge_daemon.app.reload_plan.plan_reload`).
        Changes to sections in ``RESTART_SECTIONS`` cannot be
        applied live: they are logged and kept for the next start. Detector, tracker and
        event settings are part of every camera's pipeline, so changing them restarts
        all cameras.
        """
        if self.config_path is None:
            log.warning("reload requested but the daemon was not started from a config file")
            return ReloadResult(False, errors=["no config file"])
        mono_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notifier.notify(RELOADING=1, MONOTONIC_USEC=mono_us)
        try:
            try:
                new = load_config(self.config_path)
            except ConfigError as exc:
                errors = [str(i) for i in exc.errors]
                log.error(
                    "reload rejected: %s has %d error(s); the running configuration stays:",
                    self.config_path,
                    len(errors),
                )
                for e in errors:
                    log.error("  %s", e)
                return ReloadResult(False, errors=errors)
            return self._apply(new)
        finally:
            self.notifier.notify(READY=1, STATUS=self.status_line())

    def _apply(self, new: AppConfig) -> ReloadResult:
        plan = plan_reload(self.cfg, new)
        for section in plan.deferred:
            log.warning("reload: %s changed; restart the daemon to apply it", section)
        if plan.log_level_changed:
            logging.getLogger().setLevel(plan.config.log_level.upper())
        going = [rt for rt in self.cameras if rt.config.name in (*plan.removed, *plan.restarted)]
        self._stop_cameras(going, STOP_BUDGET_S)
        self.cfg = plan.config
        by_name = {c.name: c for c in plan.config.cameras}
        running = {rt.config.name: rt for rt in self.cameras if rt not in going}
        for name in plan.cameras:  # the config's order
            if name in plan.added or name in plan.restarted:
                running[name] = self._start_camera(by_name[name])
        self.cameras = [running[n] for n in plan.cameras if n in running]
        self.reloads += 1
        self._publish_discovery()
        log.info(
            "reloaded %s: %d added, %d removed, %d restarted, %d unchanged",
            self.config_path,
            len(plan.added),
            len(plan.removed),
            len(plan.restarted),
            len(plan.unchanged),
        )
        return ReloadResult(True, list(plan.added), list(plan.removed), list(plan.restarted))

    def _publish_discovery(self) -> None:
        ha = self.cfg.homeassistant
        if self.publisher is None or self.model is None:
            return
        names = [rt.config.name for rt in self.cameras]
        msgs: list[tuple[str, bytes]] = []
        gone = [n for n in self._ha_cameras if n not in names]
        if gone or (not ha.enabled and self._ha_cameras):
            msgs += removal_messages(
                discovery_prefix=ha.discovery_prefix,
                node_id=ha.node_id,
                cameras=gone if ha.enabled else self._ha_cameras,
            )
        if ha.enabled:
            msgs += discovery_messages(
                discovery_prefix=ha.discovery_prefix,
                node_id=ha.node_id,
                device_name=ha.device_name,
                topic_prefix=self.cfg.mqtt.topic_prefix,
                labels=self.model.labels,
                commands=self.cfg.mqtt.commands,
                images=self.cfg.mqtt.publish_images,
                cameras=[
                    DiscoveryCamera(rt.config.name, tuple(a.name for a in rt.config.alerts))
                    for rt in self.cameras
                ],
            )
        for topic, payload in msgs:
            self.publisher.publish_raw(topic, payload, retain=True, qos=1, absolute=True)
        self._ha_cameras = names if ha.enabled else []

    # -- observation -----------------------------------------------------------------

    def health(self) -> Health:
        """Liveness of every thread the daemon needs (the rules: :func:`assess`)."""
        snapshot = [
            CameraThreads(
                rt.config.name,
                rt.capture.status,
                rt.pipeline.is_alive(),
                rt.pipeline.ready.is_set(),
                rt.pipeline.heartbeat,
                rt.capture.is_alive(),
            )
            for rt in list(self.cameras)
        ]
        alive = self.publisher.alive if self.publisher is not None else None
        return assess(time.monotonic(), snapshot, alive, self.started)

    def status_line(self) -> str:
        """One line for systemd's STATUS=: per-camera fps or state, MQTT connection."""
        parts = []
        for rt in list(self.cameras):
            cap = rt.capture.stats()
            if cap.status is StreamStatus.ONLINE:
                parts.append(f"{rt.config.name} {rt.pipeline.analyzer.metrics.fps():.1f} fps")
            else:
                parts.append(f"{rt.config.name} {cap.status.value}")
        mq = self.publisher.stats() if self.publisher else {}
        link = "mqtt connected" if mq.get("connected") else "mqtt disconnected"
        line = f"{len(parts)} camera(s): {', '.join(parts) or 'none'}; {link}"
        if mq.get("store_problem"):
            line += "; event store not writable (events in memory only)"
        return line

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
            **({"model": self._model_stats()} if self.model is not None else {}),
            "cpu": self.cpu.describe(),
        }

    def _model_stats(self) -> dict[str, Any]:
        """The stats document's ``model``: the file, where it runs, and why this one."""
        assert self.model is not None
        return {
            **self.model.info.describe(),
            "bundled": self.model_choice.bundled,
            "bundled_requested": None if self.cfg.model.path else self.cfg.model.bundled,
            "choice": self.model_choice.reason,
        }

    def _model_labels(self) -> dict[str, str]:
        """The model and where it runs, as the metrics' ``edge_model_info`` labels."""
        if self.model is None:
            return {}
        info = self.model.info
        return {
            "file": info.path.name,
            "bundled": self.model_choice.bundled or "",
            "sha256": info.sha256[:12],
            "provider": info.providers[0] if info.providers else "",
            "providers_requested": info.requested,
            "provider_fallback": "yes" if info.fallback else "no",
            "cpu": self.cpu.model,
            "int8_dot_product": "yes" if self.cpu.int8_dot else "no",
        }

    def publish_stats(self) -> None:
        if self.publisher is not None:
            self.publisher.publish_stats(self.stats())
