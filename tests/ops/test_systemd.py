"""The sd_notify protocol against a real unix datagram socket.

Unit level: what the notifier sends and how it reads ``$WATCHDOG_USEC``. Daemon level:
the real CLI in a subprocess with ``NOTIFY_SOCKET`` pointing at a socket the test owns
(as systemd does): READY=1 once the pipelines run, STATUS= with per-camera fps,
WATCHDOG=1 pings, STOPPING=1 on SIGTERM. In process: a stuck pipeline stops the pings.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import edge_daemon.app.daemon as app_module
import edge_daemon.ops.health as health_module
from edge_daemon.ops.systemd import SystemdNotifier
from tests.support.app import app_config, running_app, sample_camera
from tests.support.daemon import Daemon, write_config


class NotifySocket:
    """A bound AF_UNIX datagram socket collecting notify messages as dicts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def with_key(self, key: str) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [(t, m) for t, m in self.messages if key in m]

    def wait_key(self, key: str, n: int = 1, timeout: float = 60.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.with_key(key)
            if len(got) >= n:
                return [m for _, m in got]
            time.sleep(0.05)
        raise AssertionError(f"no {n}x {key} within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(1)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(str(tmp_path / "notify.sock"))
    yield s
    s.close()


def test_notifier_sends_newline_separated_assignments(notify_socket: NotifySocket) -> None:
    n = SystemdNotifier(env={"NOTIFY_SOCKET": notify_socket.path})
    assert n.enabled
    assert n.ready("2 cameras\nok")  # a newline in a value must not start a new field
    assert n.watchdog()
    assert n.stopping()
    msgs = notify_socket.wait_key("STOPPING")
    assert msgs == [{"STOPPING": "1", "STATUS": "stopping"}]
    ready = notify_socket.wait_key("READY")[0]
    assert ready == {"READY": "1", "STATUS": "2 cameras ok"}
    assert notify_socket.wait_key("WATCHDOG") == [{"WATCHDOG": "1"}]
    n.close()


def test_abstract_namespace_socket() -> None:
    name = f"edge-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2)
    try:
        n = SystemdNotifier(env={"NOTIFY_SOCKET": "@" + name})
        assert n.notify(STATUS="hello")
        assert server.recv(100) == b"STATUS=hello"
    finally:
        server.close()


def test_without_notify_socket_everything_is_a_noop() -> None:
    n = SystemdNotifier(env={})
    assert not n.enabled
    assert not n.ready("x") and not n.watchdog()
    assert n.watchdog_interval_s is None


def test_unreachable_socket_is_counted_not_raised(tmp_path: Path) -> None:
    n = SystemdNotifier(env={"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert not n.watchdog()
    assert not n.watchdog()
    assert n.failures == 2


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),  # ping at half the timeout
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert SystemdNotifier(env=env).watchdog_interval_s == expected


def test_daemon_speaks_the_notify_protocol(
    tmp_path: Path, mosquitto: object, notify_socket: NotifySocket
) -> None:
    cfg = write_config(
        tmp_path / "config.yaml",
        mosquitto.port,  # type: ignore[attr-defined]
        [sample_camera("door", fps=10), sample_camera("yard", fps=5)],
    )
    d = Daemon(
        cfg,
        tmp_path / "daemon.log",
        env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"},
    )
    try:
        ready = notify_socket.wait_key("READY", timeout=90)[0]
        assert ready["STATUS"].startswith("2 camera(s)")
        # STATUS lines carry per-camera fps once frames flow.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses = [m["STATUS"] for _, m in notify_socket.with_key("STATUS")]
            if any("door " in s and " fps" in s and "yard " in s for s in statuses[1:]):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no per-camera fps STATUS: {statuses}")
        # WatchdogSec=1 -> a ping every 0.5 s.
        pings = notify_socket.wait_key("WATCHDOG", n=4, timeout=10)
        assert all(p == {"WATCHDOG": "1"} for p in pings)
        d.stop()  # exit time is checked by the end-to-end tests
        stopping = notify_socket.wait_key("STOPPING", timeout=5)
        assert stopping[0]["STOPPING"] == "1"
        # READY came before any WATCHDOG and STOPPING came last.
        order = [next(iter(m)) for _, m in notify_socket.messages]
        assert order.index("READY") < order.index("WATCHDOG")
        assert "STOPPING" in notify_socket.messages[-1][1]
    finally:
        d.stop()


def test_stuck_pipeline_withholds_watchdog_pings(
    tmp_path: Path, mosquitto: object, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health_module, "PIPELINE_STALL_S", 1.0)
    monkeypatch.setattr(app_module, "TICK_S", 0.05)
    notifier = SystemdNotifier(env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "200000"})
    data = app_config(mosquitto.port, [sample_camera("door", fps=10)])  # type: ignore[attr-defined]
    with running_app(tmp_path / "c.yaml", data, notifier) as app:
        waiter = threading.Thread(target=app.wait, daemon=True)
        waiter.start()
        notify_socket.wait_key("WATCHDOG", n=3, timeout=10)
        assert app.health().healthy

        # Block the pipeline thread inside its analyzer, as a hung inference would.
        release = threading.Event()
        analyzer = app.cameras[0].pipeline.analyzer
        original = analyzer.process

        def hang(frame: object) -> list[object]:
            release.wait(30)
            return original(frame)  # type: ignore[arg-type]

        analyzer.process = hang  # type: ignore[method-assign]
        deadline = time.monotonic() + 10
        while app.health().healthy and time.monotonic() < deadline:
            time.sleep(0.05)
        health = app.health()
        assert not health.healthy
        assert "door: pipeline stuck" in health.problems[0]
        before = len(notify_socket.with_key("WATCHDOG"))
        withheld = app.watchdog_pings_withheld
        # Five more ping decisions of the main loop, each one withheld (counted by the
        # loop itself, so this waits on the loop's progress, not on a wall-clock guess).
        deadline = time.monotonic() + 10
        while app.watchdog_pings_withheld < withheld + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.watchdog_pings_withheld >= withheld + 5
        assert len(notify_socket.with_key("WATCHDOG")) == before

        analyzer.process = original  # type: ignore[method-assign]
        release.set()
        notify_socket.wait_key("WATCHDOG", n=before + 2, timeout=10)
        assert app.health().healthy
        app.stop_event.set()
        waiter.join(5)
