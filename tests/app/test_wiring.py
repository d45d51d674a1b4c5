"""app.wiring: validated config -> the stages' settings types, pure (no threads, no sockets)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
import yaml

from edge_daemon.app.wiring import (
    capture_settings,
    live_slot,
    mqtt_settings,
    publishes_to_embedded_port,
    source_spec,
)
from edge_daemon.config import AppConfig, load_config_text
from edge_daemon.sources import FileSpec, MjpegSpec, RtspSpec, SampleSpec, UsbSpec


def config(tmp_path: Path, **sections: object) -> AppConfig:
    data = {"cameras": [{"name": "cam", "source": {"type": "sample"}}], **sections}
    return load_config_text(yaml.safe_dump(data), base_dir=tmp_path)


@pytest.mark.parametrize(
    ("source", "spec"),
    [
        (
            {"type": "file", "path": "clip.mp4", "loop": False, "realtime": False},
            FileSpec,
        ),
        ({"type": "usb", "device": 2, "width": 320, "height": 240, "fps": 15}, UsbSpec),
        ({"type": "rtsp", "url": "rtsp://cam.local/s", "transport": "udp"}, RtspSpec),
        ({"type": "mjpeg", "url": "http://cam.local/v", "max_frame_side": 1280}, MjpegSpec),
        ({"type": "sample", "fps": 7, "width": 320, "height": 200}, SampleSpec),
    ],
)
def test_every_source_type_maps_to_its_spec_with_its_values(
    tmp_path: Path, source: dict[str, object], spec: type
) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"")
    cfg = config(tmp_path, cameras=[{"name": "cam", "source": source}])
    got = source_spec(cfg.cameras[0])
    assert isinstance(got, spec)
    for key, value in source.items():
        if key == "type":
            continue
        if key == "path":
            assert Path(got.path) == tmp_path / "clip.mp4"
        else:
            assert getattr(got, key) == value, key


def test_capture_needs_every_frame_only_for_the_live_view(tmp_path: Path) -> None:
    cfg = config(tmp_path, detector={"every_n_frames": 3})
    cam = cfg.cameras[0]
    s = capture_settings(cam, cfg)
    assert s.pixels_every_n == 3 and s.pixels_phase == zlib.crc32(b"cam")
    assert s.stall_timeout_s == cam.stall_timeout_s
    assert live_slot(cam, cfg) is None
    cfg = config(tmp_path, detector={"every_n_frames": 3}, live_view={"enabled": True})
    assert capture_settings(cfg.cameras[0], cfg).pixels_every_n == 1
    slot = live_slot(cfg.cameras[0], cfg)
    assert slot is not None and slot.camera == "cam"


@pytest.mark.parametrize(
    ("mqtt_host", "broker_host", "same_port", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", True, True),
        ("localhost", "0.0.0.0", True, True),  # both loopback or any: the same broker
        ("127.0.0.1", "127.0.0.1", False, False),
        ("broker.lan", "0.0.0.0", True, False),
    ],
)
def test_publishing_to_the_embedded_broker_is_recognised(
    tmp_path: Path, mqtt_host: str, broker_host: str, same_port: bool, expected: bool
) -> None:
    mqtt = {
        "host": mqtt_host,
        "port": 1883 if same_port else 1884,
        "embedded_broker": {"enabled": True, "host": broker_host, "port": 1883},
    }
    assert publishes_to_embedded_port(config(tmp_path, mqtt=mqtt)) is expected


def test_mqtt_settings_can_leave_the_credentials_out(tmp_path: Path) -> None:
    cfg = config(tmp_path, mqtt={"username": "u", "password": "p", "protocol": "auto"})
    s = mqtt_settings(cfg)
    assert (s.username, s.password, s.protocol) == ("u", "p", "auto")
    s = mqtt_settings(cfg, anonymous=True, own_broker=True)
    assert (s.username, s.password, s.protocol) == (None, None, "3.1.1")
