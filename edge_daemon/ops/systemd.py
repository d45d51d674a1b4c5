"""The systemd notify protocol (``sd_notify``), without libsystemd.

systemd passes ``$NOTIFY_SOCKET`` (a unix datagram socket path, ``@`` for the abstract
namespace) to ``Type=notify`` services and ``$WATCHDOG_USEC``/``$WATCHDOG_PID`` when
``WatchdogSec=`` is set. Messages are newline-separated ``KEY=value`` assignments in one
datagram. Outside systemd every call is a cheap no-op, so the daemon needs no switch.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1`` to systemd.

    Sending never raises: a notify failure must not take the daemon down. It is logged
    once and counted in :attr:`failures`.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if addr.startswith("@"):
            self.address = "\0" + addr[1:]  # abstract namespace
        elif addr.startswith("/"):
            self.address = addr
        elif addr:
            log.warning("ignoring NOTIFY_SOCKET=%r: not a unix socket path", addr)
        self.watchdog_interval_s = _watchdog_interval(env)
        self.failures = 0
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send one datagram, e.g. ``notify(READY=1, STATUS="2 cameras")``."""
        if self.address is None:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value).replace("\n", " ")  # one assignment per line
            lines.append(f"{key}={text}")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:
            if not self.failures:
                log.warning("systemd notify to %s failed: %s", self.address.lstrip("\0"), exc)
            self.failures += 1
            return False

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half the timeout, as sd_watchdog_enabled)."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (e.g. a wrapper)
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)
        return None
    return value / 2e6 if value > 0 else None
