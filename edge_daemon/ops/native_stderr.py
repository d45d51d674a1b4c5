"""Route what native libraries write to file descriptor 2 into logging, rate-limited.

libjpeg prints "Corrupt JPEG data: N extraneous bytes before marker" once per damaged
frame, FFmpeg and LiteRT print their own notices, all with ``fprintf(stderr)``: outside
logging, without a timestamp or level, and as often as a broken camera produces frames
(25 lines a second into the journal). Python cannot intercept a C library's stderr, so
:class:`NativeStderr` moves file descriptor 2 itself: C code writes into a pipe, a
reader thread turns each line into a log record, and Python's own ``sys.stderr`` (the
log handler, tracebacks, ``faulthandler``) keeps the original descriptor.

Rate limit: lines are grouped by their text with every number replaced by ``#`` (so
"2 extraneous bytes" and "5 extraneous bytes" are one kind). The first line of a kind is
logged as it is (``INFO:`` lines at INFO, others at WARNING); repeats are counted and
summarised once per ``SUMMARY_S`` ("... 1,499 more like this in the last 60 s") and at
:meth:`uninstall`. At most ``MAX_KINDS`` kinds are tracked; further kinds share one.

Trade-offs: the pipe's write end is non-blocking, so a library that writes while the
reader is far behind (more than the pipe's buffer, raised to 1 MiB where the kernel
allows) loses those lines instead of blocking a camera thread; the reader counts nothing
it never received. A native crash message written just before the process dies may be
lost in the pipe; Python's fatal-error dumps go to the original descriptor.
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import logging
import os
import re
import select
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("edge_daemon.native")

SUMMARY_S = 60.0  # seconds between two summaries of repeated lines
MAX_KINDS = 256  # distinct kinds of lines tracked; beyond this they share one counter
MAX_LINE = 4096  # longer lines are cut (a binary blob written to stderr)
PIPE_BYTES = 1 << 20
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")
_OTHER = "(other kinds)"


def kind_of(line: str) -> str:
    """The rate-limit key of a line: its text with every number as ``#``."""
    return _NUMBER.sub("#", line)


class LineLimiter:
    """Decides what to log for each line; pure, driven by the reader thread (and tests)."""

    def __init__(self, summary_s: float = SUMMARY_S, max_kinds: int = MAX_KINDS) -> None:
        self.summary_s = summary_s
        self.max_kinds = max_kinds
        self.lines = 0  # every line seen
        self._repeats: dict[str, tuple[int, str]] = {}  # kind -> (count, last line)
        self._seen: set[str] = set()
        self._last_summary: float | None = None

    def feed(self, line: str, now: float) -> list[tuple[int, str]]:
        """(level, message) records to log for ``line`` arriving at ``now``."""
        self.lines += 1
        if self._last_summary is None:
            self._last_summary = now
        kind = kind_of(line)
        if kind not in self._seen and len(self._seen) >= self.max_kinds:
            kind = _OTHER
        out: list[tuple[int, str]] = []
        if kind not in self._seen:
            self._seen.add(kind)
            level = logging.INFO if line.startswith("INFO:") else logging.WARNING
            out.append((level, line))
        else:
            count, _ = self._repeats.get(kind, (0, line))
            self._repeats[kind] = (count + 1, line)
        return out + self.due(now)

    def due(self, now: float, force: bool = False) -> list[tuple[int, str]]:
        """Summaries of the repeats, once ``summary_s`` has passed (or ``force``)."""
        if self._last_summary is None or not self._repeats:
            return []
        span = now - self._last_summary
        if not force and span < self.summary_s:
            return []
        out = [
            (
                logging.WARNING,
                f"{count:,} more like this in the last {span:.0f} s, latest: {last}",
            )
            for count, last in self._repeats.values()
        ]
        self._repeats.clear()
        self._last_summary = now
        return out


class NativeStderr:
    """Owns file descriptor 2 between :meth:`install` and :meth:`uninstall`.

    Install it before logging is configured, so that the log handler writes to the
    ``sys.stderr`` that :meth:`install` returns (the original descriptor); a handler
    created earlier would write into the pipe and read its own lines back.
    """

    def __init__(self) -> None:
        self.limiter = LineLimiter()
        self._saved_fd: int | None = None
        self._read_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._stderr: TextIO | None = None
        self._previous_stderr: TextIO | None = None

    def install(self) -> TextIO:
        """Redirect fd 2 into the pipe; returns the stream on the original descriptor."""
        if self._thread is not None:
            raise RuntimeError("already installed")
        sys.stderr.flush()
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # Linux only; default 64 KiB
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        flags = fcntl.fcntl(write_fd, fcntl.F_GETFL)
        fcntl.fcntl(write_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        stream = open(  # noqa: SIM115 - lives until uninstall
            saved, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False
        )
        self._saved_fd, self._read_fd, self._stderr = saved, read_fd, stream
        self._previous_stderr, sys.stderr = sys.stderr, stream
        faulthandler.enable(stream)
        self._thread = threading.Thread(target=self._read, name="native-stderr", daemon=True)
        self._thread.start()
        return stream

    def uninstall(self, timeout: float = 2.0) -> None:
        """Give fd 2 back, log what the reader still holds, and end the reader."""
        if self._thread is None or self._saved_fd is None:
            return
        os.dup2(self._saved_fd, 2)  # closes the pipe's last write end: the reader sees EOF
        self._thread.join(timeout)
        for level, message in self.limiter.due(time.monotonic(), force=True):
            log.log(level, "%s", message)
        if self._previous_stderr is not None:
            sys.stderr = self._previous_stderr
            faulthandler.enable(sys.stderr)
        assert self._stderr is not None
        self._stderr.close()
        os.close(self._saved_fd)
        self._thread = self._saved_fd = None

    def _read(self) -> None:
        assert self._read_fd is not None
        fd, pending = self._read_fd, b""
        try:
            while True:
                # Wake up now and then without input, so summaries are not held back
                # until the next line.
                ready, _, _ = select.select([fd], [], [], self.limiter.summary_s / 4)
                if not ready:
                    for level, message in self.limiter.due(time.monotonic()):
                        log.log(level, "%s", message)
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                if len(pending) > MAX_LINE:
                    lines.append(pending)
                    pending = b""
                now = time.monotonic()
                for raw in lines:
                    text = raw.decode("utf-8", "backslashreplace").rstrip("\r")[:MAX_LINE]
                    if text.strip():
                        for level, message in self.limiter.feed(text, now):
                            log.log(level, "%s", message)
                for level, message in self.limiter.due(now):
                    log.log(level, "%s", message)
            if pending.strip():
                text = pending.decode("utf-8", "backslashreplace")
                for level, message in self.limiter.feed(text, time.monotonic()):
                    log.log(level, "%s", message)
        finally:
            os.close(fd)
