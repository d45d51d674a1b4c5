"""Building blocks shared by all sources.

A *backend* does blocking I/O (open, read one frame, close) and knows nothing about
threads. :class:`ThreadedSource` runs a backend in its own daemon thread and offers the
non-blocking contract the capture worker needs: ``read(timeout)`` waits at most
``timeout`` seconds, whatever the backend does. Running the blocking calls there
(rather than in the worker) is what lets the worker honour ``stop`` within a second and
detect a stall even when OpenCV/FFmpeg or a socket ignores its own timeout. Closing a
source also calls the backend's ``interrupt()``, which unblocks whatever I/O the thread
is in (a socket is shut down), so the thread and its handle end with the source instead
of piling up at every reconnect; a backend that cannot be interrupted from outside
(OpenCV's captures) bounds every call by its own timeouts instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


class SourceError(Exception):
    """Opening or reading a source failed; the message is meant for users.

    ``permanent`` marks errors that retrying will not fix without the user acting
    (missing/undecodable file, missing dependency): the worker reports them as
    ``FAILED`` rather than ``RECONNECTING`` but still retries, slowly, in case the user
    fixes the problem.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SourceEnded(Exception):
    """A finite source (a file without loop) has no more frames."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A frame that was decoded but not converted to pixels: only its size is known."""

    width: int
    height: int


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Normalise a decoded image to BGR uint8 HxWx3 (grey/BGRA cameras exist)."""
    if image.dtype != np.uint8:
        raise SourceError(f"decoder returned {image.dtype} pixels, expected uint8")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[:, :, :3])
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise SourceError(f"decoder returned an image of shape {image.shape}")
    return image


class Pacer:
    """Releases frames at a fixed rate using absolute monotonic deadlines.

    Deadline *n* is ``t0 + n / fps``, so sleep jitter never accumulates into drift.
    When the caller falls more than ``max_lag_s`` behind (CPU starvation, a slow
    consumer) the schedule is re-anchored instead of bursting to catch up.

    ``clock`` and ``sleep`` (``sleep(cancel, seconds) -> True unless cancelled``) are
    injectable so that tests replay a schedule exactly instead of timing real sleeps.
    """

    def __init__(
        self,
        fps: float,
        max_lag_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = fps
        self._max_lag_s = max_lag_s
        self._clock = clock
        self._sleep = sleep or (lambda cancel, seconds: not cancel.wait(seconds))
        self._t0: float | None = None
        self._n = 0

    def restart(self) -> None:
        """Start a new schedule at the next ``wait`` (after a pause that is not lag, such
        as a looping file being reopened: catching up would burst frames)."""
        self._t0 = None

    def wait(self, cancel: threading.Event) -> bool:
        """Block until the next frame is due. False when ``cancel`` was set meanwhile."""
        now = self._clock()
        if self._t0 is None:
            self._t0, self._n = now, 0
        deadline = self._t0 + self._n / self.fps
        if now - deadline > self._max_lag_s:
            self._t0, self._n, deadline = now, 0, now
        self._n += 1
        delay = deadline - now
        if delay > 0:
            return self._sleep(cancel, delay)
        return not cancel.is_set()


class Backend(Protocol):
    """Blocking source I/O, driven by exactly one thread (see :class:`ThreadedSource`).

    ``open`` and ``read`` raise :class:`SourceError` on failure; ``read`` raises
    :class:`SourceEnded` at the end of a finite source. ``cancel`` is set when the
    source is closed so that sleeps (pacing) can end early. ``decode_failures`` counts
    frames that arrived but could not be decoded (skipped, not fatal).
    """

    fps: float | None
    decode_failures: int

    def open(self, cancel: threading.Event) -> None: ...

    def read(self, cancel: threading.Event, pixels: bool = True) -> np.ndarray | Skipped:
        """The next frame. With ``pixels=False`` a backend may return :class:`Skipped`
        (the frame was read but not decoded); one that cannot skip returns pixels
        (correct, just not cheaper)."""
        ...

    def close(self) -> None: ...

    def interrupt(self) -> None:
        """Unblock the backend thread's current or next I/O call; from any thread.

        Called by :meth:`ThreadedSource.close`. Must not raise, must return at once, and
        must not release the handle itself (``close`` does that, in the backend thread).
        """
        ...

    def describe(self) -> str: ...


class ThreadedSource:
    """Runs a :class:`Backend` in a daemon thread; ``read(timeout)`` never blocks longer.

    The thread opens the backend immediately, then reads one frame per request (no
    read-ahead: the worker asks for the next frame as soon as it has queued the last
    one). Errors and end-of-stream are sticky: once raised, every later ``read``
    raises the same exception. ``close()`` returns at once.
    """

    def __init__(self, backend: Backend, name: str) -> None:
        self._backend = backend
        self._cond = threading.Condition()
        self._cancel = threading.Event()
        self._requested = False
        self._frame: np.ndarray | Skipped | None = None
        self._want_pixels = True
        self._failure: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- public contract -------------------------------------------------------------

    @property
    def fps(self) -> float | None:
        """Nominal frame rate of the stream, when known (after open)."""
        return self._backend.fps

    @property
    def decode_failures(self) -> int:
        return self._backend.decode_failures

    def describe(self) -> str:
        return self._backend.describe()

    def read(self, timeout: float, pixels: bool = True) -> np.ndarray | Skipped | None:
        """Next frame (BGR uint8), or None when none arrived within ``timeout`` s.

        With ``pixels=False`` a backend that supports it returns :class:`Skipped` (the
        frame decoded, its pixels not converted). The flag belongs to the request made
        by this call; a frame already requested keeps the flag it was requested with.
        Raises :class:`SourceError` or :class:`SourceEnded`.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            if self._closed:
                raise SourceError(f"{self.describe()}: source is closed")
            if self._frame is None and self._failure is None and not self._requested:
                self._requested = True
                self._want_pixels = pixels
                self._cond.notify_all()
            while self._frame is None and self._failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._frame is not None:
                frame, self._frame = self._frame, None
                return frame
            assert self._failure is not None
            raise self._failure

    def close(self) -> None:
        """Stop the backend thread and release its handle; does not wait.

        The thread's blocking call is interrupted (see :meth:`Backend.interrupt`), so it
        ends within moments rather than whenever the peer next sends something.
        """
        with self._cond:
            self._closed = True
            self._cancel.set()
            self._cond.notify_all()
        self._backend.interrupt()  # outside the lock: it may touch a socket

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the backend thread to finish (tests, orderly shutdown)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- backend thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._backend.open(self._cancel)
            while True:
                with self._cond:
                    while not self._requested and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return
                    want = self._want_pixels
                got = self._backend.read(self._cancel, pixels=want)
                image = got if isinstance(got, Skipped) else as_bgr(got)
                with self._cond:
                    self._requested = False
                    self._frame = image
                    self._cond.notify_all()
        except (SourceError, SourceEnded) as exc:
            self._fail(exc)
        except Exception as exc:
            # A bug or an unexpected library error: keep the traceback in the log, hand
            # the worker a SourceError so it reconnects instead of dying.
            log.exception("%s: unexpected error in source thread", self._safe_describe())
            self._fail(SourceError(f"unexpected {type(exc).__name__}: {exc}"))
        finally:
            try:
                self._backend.close()
            except Exception:
                log.exception("%s: error while closing", self._safe_describe())

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self._failure = exc
            self._cond.notify_all()

    def _safe_describe(self) -> str:
        try:
            return self._backend.describe()
        except Exception:  # noqa: BLE001 - describing must never fail a log line
            return type(self._backend).__name__
