"""The real daemon in a subprocess (``python -m edge_daemon run``), for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

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


class Daemon:
    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_daemon", "run", "-c", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=full_env,
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
