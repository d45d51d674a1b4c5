"""CLI commands that need no camera: version, watch (against a real broker)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge_daemon import __version__

REPO = Path(__file__).resolve().parents[2]


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "edge_daemon", "version"], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode == 0 and out.stdout.strip() == f"edge-daemon {__version__}"


def _watch_one(mosquitto: Any, topic: str, payload: str, *flags: str) -> str:
    """Run ``watch`` until it printed one message published to ``topic``; its stdout."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "edge_daemon", "watch", *flags,
            "--port", str(mosquitto.port), "--count", "1", "--timeout", "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        deadline = time.monotonic() + 20
        # Publish until the watcher (which may still be subscribing) has seen one.
        while proc.poll() is None and time.monotonic() < deadline:
            pub.publish(topic, payload, qos=1).wait_for_publish(2)
            time.sleep(0.3)
        out, err = proc.communicate(timeout=10)
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert proc.returncode == 0, err
    return out


EVENT = {
    "schema_version": 1, "type": "start", "camera": "door", "track_id": 4,
    "emotion": "happy", "confidence": 0.9, "scores": {}, "bbox": {}, "ts": 1.0, "seq": 7,
}  # fmt: skip


def test_watch_prints_events_from_the_broker(mosquitto: Any) -> None:
    out = _watch_one(mosquitto, "edge/door/events", json.dumps(EVENT))
    assert "door" in out and "#7" in out and "start" in out and "happy" in out


def test_watch_escapes_control_characters_a_publisher_sends(mosquitto: Any) -> None:
    # Anyone who may publish could otherwise retitle or repaint the operator's terminal.
    hostile = "\x1b]0;pwned\x07\x1b[2J"
    out = _watch_one(mosquitto, "edge/door/events", json.dumps({**EVENT, "emotion": hostile}))
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07" in out
    out = _watch_one(mosquitto, "edge/door/state", "raw " + hostile, "--all")
    assert "\x1b" not in out and "raw \\x1b]0;pwned" in out


def test_watch_prints_each_cameras_retained_state_first(mosquitto: Any) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    state = {"schema_version": 1, "camera": "door", "status": "online", "ts": 1.0, "fps": 14.96}
    pub.publish("edge/door/state", json.dumps(state), qos=1, retain=True).wait_for_publish(5)
    bad = {"camera": "yard", "status": "reconnecting", "error": "timed out\x1b[2J"}
    pub.publish("edge/yard/state", json.dumps(bad), qos=1, retain=True).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    out = _watch_one(mosquitto, "edge/door/events", json.dumps(EVENT))
    lines = out.splitlines()
    assert any("door state  online 15.0 fps" in line for line in lines[:2])
    assert any("yard state  reconnecting (timed out\\x1b[2J)" in line for line in lines[:2])
    assert "#7" in lines[-1] and "\x1b" not in out  # then the event; --count counts events


def test_watch_without_broker_says_how_to_fix(tmp_path: Path) -> None:
    from tests.support.net import free_port

    res = subprocess.run(
        [sys.executable, "-m", "edge_daemon", "watch", "--port", str(free_port())],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert res.returncode == 1
    assert "cannot connect" in res.stderr and "Traceback" not in res.stderr
