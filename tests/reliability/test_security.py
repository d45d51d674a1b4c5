"""Security rows of the fault matrix, through the real CLI against real Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.mqtt import MqttCollector, TlsFiles
from tests.support.app import sample_camera
from tests.support.daemon import REPO, Daemon
from tests.support.net import free_port

MQTT_PASSWORD = "mqtt-S3cret-pw"
CAM_PASSWORD = "cam-S3cret-pw"
TOKEN = "view-S3cret-token"


def test_tls_and_password_daemon_never_logs_secrets(
    tmp_path: Path, mosquitto_factory: Any, mqtt_collector: Any, mqtt_tls_files: TlsFiles
) -> None:
    tls = mqtt_tls_files
    broker = mosquitto_factory(tls=tls, auth=("edge", MQTT_PASSWORD))
    col: MqttCollector = mqtt_collector(
        broker, "edge/#", tls_ca=tls.ca_cert, username="edge", password=MQTT_PASSWORD
    )
    cfg = {
        "log_level": "debug",  # the most talkative level must still not leak
        "mqtt": {
            "host": "localhost",
            "port": broker.port,
            "username": "edge",
            "password": "${MQTT_PASSWORD}",
            "tls": {"ca_file": str(tls.ca_cert)},
        },
        "live_view": {"enabled": True, "port": free_port(), "token": TOKEN},
        "cameras": [
            sample_camera("door", fps=5),
            {  # a camera with credentials in its URL that refuses connections
                "name": "gate",
                "source": {"type": "rtsp", "url": f"rtsp://admin:{CAM_PASSWORD}@127.0.0.1:9/s"},
                "reconnect_initial_s": 0.5,
                "reconnect_max_s": 1,
            },
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    d = Daemon(path, tmp_path / "d.log", env={"MQTT_PASSWORD": MQTT_PASSWORD})
    try:
        col.wait_for(
            lambda ms: any(m.topic == "edge/door/events" for m in ms), 90, "events over TLS"
        )
        col.wait_for(
            lambda ms: any(
                m.topic == "edge/gate/state" and m.json()["status"] == "reconnecting" for m in ms
            ),
            30,
            "gate reconnecting",
        )
    finally:
        d.stop()
    log = d.log()
    published = b"".join(m.payload for m in col.messages).decode(errors="replace")
    for secret in (MQTT_PASSWORD, CAM_PASSWORD, TOKEN):
        assert secret not in log, secret
        assert secret not in published, secret
    assert "admin:***@127.0.0.1" in log  # the URL is shown, redacted
    assert "(TLS)" in log and "user 'edge'" in log


def test_missing_tls_file_refuses_to_start(tmp_path: Path) -> None:
    cfg = {
        "mqtt": {"tls": {"ca_file": "certs/missing-ca.pem"}},
        "cameras": [sample_camera("door")],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "edge_daemon", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2
    assert "mqtt.tls.ca_file" in r.stderr and "file not found" in r.stderr
    assert "Traceback" not in r.stderr


def test_network_surfaces_are_off_or_local_by_default() -> None:
    from edge_daemon.config import load_config, load_config_text

    cfg = load_config(REPO / "config.yaml", env={})
    # The live view is on in the shipped file (so `make run` has a page to open), on
    # loopback only; metrics are off. Both are off in the schema's defaults.
    assert not cfg.metrics.enabled and cfg.live_view.enabled
    assert cfg.metrics.host == cfg.live_view.host == "127.0.0.1"
    minimal = load_config_text("cameras: [{name: c, source: {type: sample}}]")
    assert not minimal.metrics.enabled and not minimal.live_view.enabled
    assert cfg.mqtt.embedded_broker.host == "127.0.0.1"
    assert not cfg.mqtt.publish_images  # no face pictures leave the box unless enabled
