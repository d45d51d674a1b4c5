"""Validated config -> the stages' own settings types: the only place that knows both.

Pure functions of the config (no threads, no sockets), so the mapping is tested without
starting anything (tests/app/test_wiring.py); :class:`~edge_daemon.app.daemon.App` calls
them when it builds or rebuilds a camera.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path

from edge_daemon.config import AppConfig, CameraConfig
from edge_daemon.publish import MqttSettings
from edge_daemon.publish.snapshot import SnapshotOptions
from edge_daemon.sources import (
    CaptureSettings,
    FileSpec,
    MjpegSpec,
    RtspSpec,
    SampleSpec,
    SourceSpec,
    UsbSpec,
)
from edge_daemon.web.live import LiveSlot, RenderOptions


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
        return MjpegSpec(
            url=s.url, open_timeout_s=s.open_timeout_s, max_frame_side=s.max_frame_side
        )
    if s.type == "sample":
        return SampleSpec(
            fps=s.fps, width=s.width, height=s.height, present_s=s.present_s, away_s=s.away_s
        )
    raise ValueError(f"unknown source type {s.type}")  # unreachable: the schema is closed


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})


def publishes_to_embedded_port(cfg: AppConfig) -> bool:
    """True when the publisher's broker address is the embedded broker's."""
    m, eb = cfg.mqtt, cfg.mqtt.embedded_broker
    if m.port != eb.port:
        return False
    return m.host == eb.host or {m.host, eb.host} <= LOOPBACK_NAMES


def mqtt_settings(
    cfg: AppConfig, anonymous: bool = False, own_broker: bool = False
) -> MqttSettings:
    """The publisher's settings; ``anonymous`` leaves the username and password out;
    ``own_broker``: it publishes to the embedded broker, which speaks MQTT 3.1.1 only
    (so ``protocol: auto`` need not find that out at every start)."""
    m = cfg.mqtt
    tls = m.tls
    return MqttSettings(
        host=m.host,
        port=m.port,
        client_id=m.client_id,
        username=None if anonymous else m.username,
        password=m.password.get_secret_value() if m.password and not anonymous else None,
        tls_ca_file=tls.ca_file if tls else None,
        tls_cert_file=tls.cert_file if tls else None,
        tls_key_file=tls.key_file if tls else None,
        tls_insecure=tls.insecure if tls else False,
        use_tls=tls is not None,
        keepalive_s=m.keepalive_s,
        protocol="3.1.1" if own_broker and m.protocol == "auto" else m.protocol,
        topic_prefix=m.topic_prefix,
        qos=m.qos,
        outbox_max=m.outbox_max,
        outbox_max_bytes=m.outbox_max_bytes,
        outbox_max_age_s=m.outbox_max_age_s,
        publish_images=m.publish_images,
        commands=m.commands,
    )


def capture_settings(cam: CameraConfig, cfg: AppConfig) -> CaptureSettings:
    """The capture thread's settings for ``cam``."""
    return CaptureSettings(
        stall_timeout_s=cam.stall_timeout_s,
        reconnect_initial_s=cam.reconnect_initial_s,
        reconnect_max_s=cam.reconnect_max_s,
        # The live view shows every frame; otherwise only detection frames need pixels.
        # (live_view changes need a restart, detector changes restart every camera: this
        # stays consistent across reloads.)
        pixels_every_n=1 if cfg.live_view.enabled else cfg.detector.every_n_frames,
        # Spread the cameras' detection frames over the stride (stable per name).
        pixels_phase=zlib.crc32(cam.name.encode()),
    )


def live_slot(cam: CameraConfig, cfg: AppConfig) -> LiveSlot | None:
    """The live view's slot for ``cam``; None when the live view is off."""
    lv = cfg.live_view
    if not lv.enabled:
        return None
    return LiveSlot(cam.name, RenderOptions(lv.max_width, lv.jpeg_quality, lv.blur_faces))


def state_dir(cfg: AppConfig, env: Mapping[str, str]) -> Path | None:
    """Where the event store lives: ``state.dir``, else systemd's ``$STATE_DIRECTORY``
    (its first entry), else None (events are kept in memory only)."""
    if cfg.state.dir is not None:
        return cfg.state.dir
    provided = env.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(provided) if provided else None


def snapshot_options(cfg: AppConfig) -> SnapshotOptions | None:
    """How events get their picture; None unless ``mqtt.publish_images``."""
    m = cfg.mqtt
    if not m.publish_images:
        return None
    sn = m.snapshots
    return SnapshotOptions(sn.what, sn.max_width, sn.jpeg_quality, sn.max_bytes)
