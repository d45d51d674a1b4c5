"""The per-camera capture thread: open, read, stamp, queue; reconnect forever.

Modelled on Frigate's capture loop: the capture thread never blocks on the consumer
(:class:`FrameQueue` drops the oldest frame), every wait is bounded and also watches
the one shared ``stop`` event, and failures become a status plus a counted, logged
error, never an exception that kills the thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_daemon.sources.base import Skipped, SourceEnded, SourceError, ThreadedSource
from edge_daemon.sources.factory import open_source
from edge_daemon.sources.queue import FrameQueue
from edge_daemon.sources.spec import (
    SOURCE_SPEC_TYPES,
    CaptureSettings,
    SourceSpec,
    open_timeout_of,
)
from edge_daemon.types import Frame, StreamStatus

log = logging.getLogger(__name__)

StatusCallback = Callable[[str, StreamStatus, str | None], None]

# Longest single wait on the source, so that ``stop`` is seen quickly even while no
# frame arrives (stall detection is checked at the same cadence).
READ_SLICE_S = 0.25
FPS_WINDOW_S = 2.0


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """A consistent snapshot of a worker's counters."""

    camera: str
    status: StreamStatus
    frames: int
    reconnects: int
    decode_failures: int
    fps: float
    last_error: str | None


class CaptureWorker(threading.Thread):
    """Reads one camera into ``out`` until ``stop`` is set.

    Status flow: STARTING -> ONLINE on the first frame; on an error or when no frame
    arrives for ``settings.stall_timeout_s`` -> RECONNECTING (FAILED for errors the user
    must fix, e.g. an undecodable file) with the error text, then reopen after an
    exponential backoff (``reconnect_initial_s`` doubling up to ``reconnect_max_s``,
    reset after a successful connection) -> ONLINE again. A file without loop ends with
    ENDED and the thread exits; otherwise the thread exits with STOPPED within ~0.5 s of
    ``stop.set()``. ``on_status(camera, status, error)`` is called from this thread on
    every change of status or error text; exceptions it raises are logged and ignored.
    """

    def __init__(
        self,
        camera: str,
        spec: SourceSpec,
        settings: CaptureSettings,
        out: FrameQueue,
        stop: threading.Event,
        on_status: StatusCallback,
        pixel_demand: threading.Event | None = None,
    ) -> None:
        # Fail here, in the caller, rather than retrying a hopeless spec forever.
        if not isinstance(spec, SOURCE_SPEC_TYPES):
            raise TypeError(f"unknown source spec {type(spec).__name__}")
        super().__init__(name=f"capture-{camera}", daemon=True)
        self.camera = camera
        self.spec = spec
        self.settings = settings
        self.out = out
        self._stop_event = stop
        self._on_status = on_status
        #: Set by the consumer while it wants pixels of every frame (a face to confirm);
        #: only read here, so no lock is needed (an Event is thread-safe).
        self.pixel_demand = pixel_demand if pixel_demand is not None else threading.Event()
        self._lock = threading.Lock()
        self._status = StreamStatus.STARTING
        self._reported: tuple[StreamStatus, str | None] | None = None
        self._frames = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._decode_failures_closed = 0
        self._source: ThreadedSource | None = None
        self._frame_times: collections.deque[float] = collections.deque(maxlen=1024)
        self._seq = 0

    # -- counters (any thread) -------------------------------------------------------

    @property
    def status(self) -> StreamStatus:
        with self._lock:
            return self._status

    @property
    def frames(self) -> int:
        with self._lock:
            return self._frames

    @property
    def reconnects(self) -> int:
        """Times the stream was lost (or failed to open) and a new attempt scheduled."""
        with self._lock:
            return self._reconnects

    @property
    def last_error(self) -> str | None:
        """The most recent error text; kept after recovery."""
        with self._lock:
            return self._last_error

    @property
    def decode_failures(self) -> int:
        with self._lock:
            current = self._source.decode_failures if self._source is not None else 0
            return self._decode_failures_closed + current

    @property
    def fps(self) -> float:
        """Frames per second delivered over the last ``FPS_WINDOW_S`` seconds."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._frame_times if now - t <= FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    def stats(self) -> CaptureStats:
        decode_failures = self.decode_failures
        fps = self.fps
        with self._lock:
            return CaptureStats(
                camera=self.camera,
                status=self._status,
                frames=self._frames,
                reconnects=self._reconnects,
                decode_failures=decode_failures,
                fps=fps,
                last_error=self._last_error,
            )

    # -- thread ----------------------------------------------------------------------

    def run(self) -> None:
        settings = self.settings
        backoff = settings.reconnect_initial_s
        final = StreamStatus.STOPPED
        self._set_status(StreamStatus.STARTING, None)
        try:
            while not self._stop_event.is_set():
                try:
                    got_frames, error = self._session()
                except SourceEnded as exc:
                    log.info("camera %s: %s", self.camera, exc)
                    final = StreamStatus.ENDED
                    return
                except Exception as exc:
                    # A bug in our code (not a source failure): keep the traceback, but
                    # keep the camera alive and retry like any other failure.
                    log.exception("camera %s: unexpected error in capture loop", self.camera)
                    got_frames, error = False, SourceError(f"internal error: {exc!r}")
                if self._stop_event.is_set() or error is None:
                    break
                if got_frames:
                    backoff = settings.reconnect_initial_s
                self._record_failure(error)
                # Waiting on the stop event (not sleeping) makes stop immediate.
                if self._stop_event.wait(backoff):
                    break
                backoff = min(backoff * 2.0, settings.reconnect_max_s)
        finally:
            self._set_status(final, None)

    def _session(self) -> tuple[bool, SourceError | None]:
        """Open the source and pump frames until stop or failure.

        Returns (whether any frame arrived, the error or None on stop); lets
        SourceEnded through.
        """
        stall = self.settings.stall_timeout_s
        first_frame_limit = open_timeout_of(self.spec) + stall
        source = open_source(self.spec, read_timeout_s=stall, name=f"{self.name}-io")
        with self._lock:
            self._source = source
        got_frames = False
        started = last_frame = time.monotonic()
        try:
            while not self._stop_event.is_set():
                # Pixels only for the frames the analysis will look at (every Nth).
                s = self.settings
                pixels = (
                    self._seq + s.pixels_phase
                ) % s.pixels_every_n == 0 or self.pixel_demand.is_set()
                image = source.read(min(READ_SLICE_S, stall), pixels)
                now = time.monotonic()
                if image is None:
                    if got_frames and now - last_frame >= stall:
                        return True, SourceError(
                            f"{source.describe()}: no frame for {now - last_frame:.1f} s "
                            f"(stall timeout {stall:g} s)"
                        )
                    if not got_frames and now - started >= first_frame_limit:
                        return False, SourceError(
                            f"{source.describe()}: no frame within {first_frame_limit:g} s "
                            "of opening"
                        )
                    continue
                last_frame = now
                self._emit(image, now)
                if not got_frames:
                    got_frames = True
                    log.info("camera %s online: %s", self.camera, source.describe())
                    self._set_status(StreamStatus.ONLINE, None)
            return got_frames, None
        except SourceError as exc:
            return got_frames, exc
        finally:
            source.close()  # never blocks; a stuck backend thread finishes on its own
            with self._lock:
                self._decode_failures_closed += source.decode_failures
                self._source = None

    def _emit(self, image: np.ndarray | Skipped, mono: float) -> None:
        if isinstance(image, Skipped):
            size = (image.width, image.height)
            frame = Frame(self.camera, self._seq, time.time(), mono, None, size)
        else:
            frame = Frame(self.camera, self._seq, time.time(), mono, image)
        self._seq += 1
        self.out.put(frame)  # drops the oldest queued frame when full, never blocks
        with self._lock:
            self._frames += 1
            self._frame_times.append(mono)

    def _record_failure(self, error: SourceError) -> None:
        text = str(error)
        with self._lock:
            self._reconnects += 1
            repeated = text == self._last_error
            self._last_error = text
        # Log each distinct error once at WARNING; a camera that stays down for hours
        # would otherwise fill the log at every backoff step.
        log.log(logging.DEBUG if repeated else logging.WARNING, "camera %s: %s", self.camera, text)
        status = StreamStatus.FAILED if error.permanent else StreamStatus.RECONNECTING
        self._set_status(status, text)

    def _set_status(self, status: StreamStatus, error: str | None) -> None:
        with self._lock:
            self._status = status
            if self._reported == (status, error):
                return
            self._reported = (status, error)
        try:
            self._on_status(self.camera, status, error)
        except Exception:
            log.exception("camera %s: on_status callback failed", self.camera)
