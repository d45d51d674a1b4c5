"""The real daemon in a subprocess (``python -m edge_daemon run``), for end-to-end tests."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.mqtt import MqttCollector
from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]


def write_config(path: Path, broker_port: int, cameras: list[dict[str, Any]], **extra: Any) -> Path:
    cfg: dict[str, Any] = {
        "log_level": "info",
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "stats_interval_s": 1},
        "cameras": cameras,
    }
    for k, v in extra.items():
        cfg[k] = v
    path.write_text(yaml.safe_dump(cfg))
    return path


def default_config_on_free_port(path: Path) -> tuple[Path, int]:
    """``make run``'s config.yaml, written to ``path`` with its embedded broker (and the
    daemon's connection to it) and its live view on free ports; returns (path, MQTT
    port)."""
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    port = free_port()
    cfg["mqtt"]["embedded_broker"]["port"] = port
    cfg["mqtt"]["port"] = port
    cfg["live_view"]["port"] = free_port()
    path.write_text(yaml.safe_dump(cfg))
    return path, port


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


class Daemon:
    """``edge-daemon run -c CONFIG`` in a subprocess, output to ``log``. ``command``
    replaces ``python -m edge_daemon`` (e.g. another venv's ``edge-daemon``);
    ``file_size_limit`` (bytes) is the child's RLIMIT_FSIZE: a write that would make any
    file larger fails (EFBIG), like a full disk."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        cwd: Path = REPO,
        file_size_limit: int | None = None,
    ) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", "edge_daemon"]), "run", "-c", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=full_env,
            preexec_fn=None if file_size_limit is None else _limit_file_size(file_size_limit),
        )

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> float:
        """SIGTERM and return how long the exit took."""
        if self.proc.poll() is not None:
            if not self._log.closed:
                self._log.close()
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()
        return time.monotonic() - t0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def subscribe(self, port: int, topics: str = "edge/#", timeout: float = 60) -> MqttCollector:
        """A collector on the broker at ``port`` once it accepts one (the daemon may be
        starting it); fails with the daemon's log if it exits or the time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return MqttCollector("127.0.0.1", port, topics).start(timeout=2)
            except (OSError, AssertionError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(self.log()) from None
                time.sleep(0.3)

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        """Wait until ``text`` appears in the log; fail with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in daemon log; tail:\n{self.log()[-3000:]}")
