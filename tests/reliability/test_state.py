"""The state directory under the real daemon: a corrupt event store is moved aside and
the daemon runs on a fresh one; a second daemon on the same directory is refused with a
clear message and a usage exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mqtt import MqttCollector
from tests.support.app import sample_camera
from tests.support.daemon import Daemon, write_config

pytestmark = pytest.mark.slow


def config(tmp_path: Path, port: int) -> tuple[Path, Path]:
    state = tmp_path / "state"
    cfg = write_config(
        tmp_path / "c.yaml", port, [sample_camera("door", fps=10)], state={"dir": str(state)}
    )
    return cfg, state


def test_a_corrupt_store_is_moved_aside_and_the_daemon_runs(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any
) -> None:
    cfg, state = config(tmp_path, mosquitto.port)
    state.mkdir()
    (state / "events.db").write_bytes(b"\x00garbage, not SQLite\xff" * 500)
    col: MqttCollector = mqtt_collector(mosquitto, "edge/door/events")
    d = Daemon(cfg, tmp_path / "d.log")
    try:
        col.wait_for(lambda ms: len(ms) >= 1, 90, "an event on the fresh store")
    finally:
        d.stop()
    assert d.proc.returncode == 0
    log = d.log()
    assert "is unreadable" in log and "moved aside" in log and "Traceback" not in log
    (aside,) = state.glob("events.db.corrupt-*")
    assert aside.read_bytes().startswith(b"\x00garbage")
    assert col.messages[0].json()["seq"] == 1 and col.messages[0].json()["boot"] == 1


def test_a_second_daemon_on_the_same_state_directory_is_refused(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any
) -> None:
    cfg, _ = config(tmp_path, mosquitto.port)
    col: MqttCollector = mqtt_collector(mosquitto, "edge/door/events")
    first = Daemon(cfg, tmp_path / "first.log")
    try:
        col.wait_for(lambda ms: len(ms) >= 1, 90, "the first daemon running")
        second = Daemon(cfg, tmp_path / "second.log")
        assert second.proc.wait(60) == 2
        second.stop()
        assert first.proc.poll() is None  # the first one is untouched
    finally:
        first.stop()
    log = second.log()
    assert "in use by another edge-daemon" in log and "Traceback" not in log
