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


def _history_dir(tmp_path: Path) -> Path:
    from edge_daemon.publish.store import OutboxStore

    state = tmp_path / "state"
    store = OutboxStore.open(state, history_days=30)
    for seq, kind in enumerate(("start", "end", "start", "alert"), start=1):
        doc = {
            **EVENT,
            "seq": seq,
            "type": kind,
            "ts": 1_764_600_000.0 + seq,
            "boot": 1,
            "scores": {"happy": 0.9, "sad": 0.1},
        }
        if kind == "alert":
            doc["alert"] = "smile\x1b[2J"
        store.add(
            "door",
            seq,
            "edge/door/events",
            json.dumps(doc).encode(),
            1,
            doc["ts"],
            (doc["ts"], kind, "happy"),
        )
    store.commit()
    store.close()
    return state


def _history(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_daemon", "history", *map(str, args)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip


def test_history_prints_the_latest_events_oldest_first(tmp_path: Path) -> None:
    state = _history_dir(tmp_path)
    r = _history("--state-dir", state, "--limit", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[3] for line in lines] == ["#2", "#3", "#4"]
    assert "alert=smile\\x1b[2J" in lines[-1] and "\x1b" not in r.stdout
    assert "more than 3 events matched" in r.stderr

    r = _history("--state-dir", state, "--type", "start", "--format", "json")
    assert [e["seq"] for e in json.loads(r.stdout)] == [1, 3]
    r = _history("--state-dir", state, "--format", "csv", "--since", "1764600002.5")
    rows = r.stdout.splitlines()
    assert rows[0].startswith("time,ts,camera,seq,boot,type") and "score_happy" in rows[0]
    assert len(rows) == 3 and ",door,3,1,start," in rows[1]
    assert "smile\\x1b[2J" in rows[2] and "\x1b" not in r.stdout


def test_history_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    r = _history("--state-dir", tmp_path / "none")
    assert r.returncode == 2 and "no event history at" in r.stderr
    r = _history("--state-dir", _history_dir(tmp_path), "--since", "last tuesday")
    assert r.returncode == 2 and "ISO 8601" in r.stderr and "Traceback" not in r.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cameras: [{name: c, source: {type: sample}}]\n")
    r = _history("-c", cfg)
    assert r.returncode == 2 and "no state directory" in r.stderr
