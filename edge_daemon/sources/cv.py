"""OpenCV (FFmpeg / V4L2) backends: video files, USB cameras and RTSP streams.

Each backend is driven by one :class:`~edge_daemon.sources.base.ThreadedSource` thread;
the ``cv2.VideoCapture`` is created, read and released in that thread only.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from edge_daemon.redact import redact_url
from edge_daemon.sources.base import Pacer, Skipped, SourceEnded, SourceError
from edge_daemon.sources.spec import FileSpec, RtspSpec, UsbSpec

log = logging.getLogger(__name__)

# Fall back to this when a container reports no or an absurd frame rate.
DEFAULT_FPS = 25.0
MAX_PLAUSIBLE_FPS = 240.0
# grab() succeeded but retrieve() failed this many times in a row: treat as broken.
MAX_CONSECUTIVE_DECODE_FAILURES = 50

# Decoding threads per FFmpeg capture (files and RTSP). FFmpeg's default, one per core
# with frame buffers for each, pays for one big stream alone, not for several cameras on
# a small box where the cameras already keep every core busy. Measured with 8 paced 720p
# 25 fps cameras on the 2-core machine (perf.run_paced, 2 runs each): RSS median
# 373-386 MB -> 293-296 MB, CPU the same (0.59 cores), p99 latency 8.3 -> 10.3 ms.
DECODER_THREADS = 1

OPENCV_FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# OpenCV reads OPENCV_FFMPEG_CAPTURE_OPTIONS from the *process* environment each time an
# FFmpeg capture is opened, file or stream; there is no per-capture way to pass
# rtsp_transport in OpenCV 4.14. So every FFmpeg open (``_open_ffmpeg``) holds this lock
# and sets the variable to exactly the options meant for it: the user's own value plus,
# for RTSP, its rtsp_transport. Trade-offs: FFmpeg opens are serialised (an RTSP open may
# take up to its open timeout, so a file or another camera waits its turn), and setenv is
# not thread-safe against a concurrent getenv in C code of other threads (nothing else in
# the daemon opens FFmpeg captures). An open whose source was closed while it waited for
# the lock gives up instead of opening a capture nobody will read.
_ffmpeg_env_lock = threading.Lock()
LOCK_POLL_S = 0.25  # how often a waiting open checks whether its source was closed


def _open_ffmpeg(
    target: str, params: list[int], cancel: threading.Event, what: str, **options: str
) -> cv2.VideoCapture:
    """``cv2.VideoCapture(target, CAP_FFMPEG, params)`` seeing ``options`` and no others."""
    while not _ffmpeg_env_lock.acquire(timeout=LOCK_POLL_S):
        if cancel.is_set():
            raise SourceError(f"{what}: closed while waiting to open")
    try:
        if cancel.is_set():
            raise SourceError(f"{what}: closed while waiting to open")
        previous = os.environ.get(OPENCV_FFMPEG_ENV)
        if options:
            os.environ[OPENCV_FFMPEG_ENV] = merge_capture_options(previous, **options)
        try:
            return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        finally:
            if previous is None:
                os.environ.pop(OPENCV_FFMPEG_ENV, None)
            else:
                os.environ[OPENCV_FFMPEG_ENV] = previous
    finally:
        _ffmpeg_env_lock.release()


def _fps_or_default(value: float, what: str) -> float:
    if value > 0 and value <= MAX_PLAUSIBLE_FPS:
        return float(value)
    log.warning("%s reports fps=%r; assuming %.0f", what, value, DEFAULT_FPS)
    return DEFAULT_FPS


def merge_capture_options(existing: str | None, **options: str) -> str:
    """Merge ``options`` into an ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` value (``k;v|k;v``)."""
    pairs: dict[str, str] = {}
    for item in (existing or "").split("|"):
        if not item.strip():
            continue
        key, _, value = item.partition(";")
        pairs[key.strip()] = value
    pairs.update(options)
    return "|".join(f"{k};{v}" for k, v in pairs.items())


class _CvBackend:
    """Common grab/retrieve loop with decode-failure counting."""

    fps: float | None
    decode_failures: int

    def __init__(self) -> None:
        self.fps = None
        self.decode_failures = 0
        self._cap: cv2.VideoCapture | None = None
        self._size: tuple[int, int] | None = None  # of the last converted frame

    def describe(self) -> str:
        raise NotImplementedError

    def _read_once(self, pixels: bool = True) -> np.ndarray | Skipped | None:
        """One decoded frame, or None when grab() failed (end of stream or error).

        ``pixels=False``: grab only (FFmpeg decodes the frame, as it must for the next
        ones) and skip ``retrieve``, the colour conversion and copy, about a quarter of
        the decode cost of a 720p H.264 frame. The first frame is always converted so
        that the size is known.
        """
        assert self._cap is not None, "read() before open()"
        consecutive = 0
        while True:
            if not self._cap.grab():
                return None
            if not pixels and self._size is not None:
                return Skipped(*self._size)
            ok, image = self._cap.retrieve()
            if ok and image is not None and image.size:
                self._size = (int(image.shape[1]), int(image.shape[0]))
                return image
            # A packet arrived but did not decode (corrupt data): skip it, but give up
            # if nothing decodes any more.
            self.decode_failures += 1
            consecutive += 1
            if consecutive >= MAX_CONSECUTIVE_DECODE_FAILURES:
                raise SourceError(
                    f"{self.describe()}: {consecutive} frames in a row failed to decode"
                )

    def interrupt(self) -> None:
        # A VideoCapture may only be touched by its own thread; FFmpeg's interrupt
        # callback bounds every open and read by the timeouts instead, and an open
        # still waiting for the options lock sees the cancel event.
        pass

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FileBackend(_CvBackend):
    """A video file decoded by FFmpeg; optional real-time pacing and looping."""

    def __init__(self, spec: FileSpec) -> None:
        super().__init__()
        self.spec = spec
        self._pacer: Pacer | None = None
        self._frames_this_pass = 0

    def describe(self) -> str:
        return f"file {self.spec.path}"

    def _open_capture(self, cancel: threading.Event) -> cv2.VideoCapture:
        path = self.spec.path
        # Check the common mistakes first: FFmpeg's own message for them is just "can't
        # open", which does not tell the user what to fix.
        if not path.exists():
            raise SourceError(f"video file not found: {path}", permanent=True)
        if not path.is_file():
            raise SourceError(f"not a regular file: {path}", permanent=True)
        if path.stat().st_size == 0:
            raise SourceError(f"video file is empty (0 bytes): {path}", permanent=True)
        # CAP_FFMPEG explicitly: CAP_ANY could pick the image-sequence backend for
        # names containing '%' and behave differently from one machine to another.
        params = [cv2.CAP_PROP_N_THREADS, DECODER_THREADS]
        cap = _open_ffmpeg(str(path), params, cancel, self.describe())
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open video file {path}: not a video FFmpeg can read "
                "(corrupt, truncated or wrong format?)",
                permanent=True,
            )
        return cap

    def open(self, cancel: threading.Event) -> None:
        self._cap = self._open_capture(cancel)
        self.fps = _fps_or_default(self._cap.get(cv2.CAP_PROP_FPS), self.describe())
        self._pacer = Pacer(self.fps) if self.spec.realtime else None
        self._frames_this_pass = 0

    def read(self, cancel: threading.Event, pixels: bool = True) -> np.ndarray | Skipped:
        for _attempt in range(2):  # at most one rewind per call
            image = self._read_once(pixels)
            if image is not None:
                self._frames_this_pass += 1
                if self._pacer is not None:
                    self._pacer.wait(cancel)
                return image
            if self._frames_this_pass == 0:
                raise SourceError(
                    f"cannot decode any frame from video file {self.spec.path} "
                    "(corrupt, truncated or unsupported codec?)",
                    permanent=True,
                )
            if not self.spec.loop:
                raise SourceEnded(f"end of video file {self.spec.path}")
            # Reopen rather than seek to frame 0: seeking is unreliable for some
            # containers/codecs, and opening a local file costs milliseconds.
            self.close()
            self._cap = self._open_capture(cancel)
            self._frames_this_pass = 0
            if self._pacer is not None:
                self._pacer.restart()
        raise SourceError(f"video file {self.spec.path}: no frame after rewinding")


class UsbBackend(_CvBackend):
    """A V4L2 camera (``/dev/videoN`` or its index)."""

    def __init__(self, spec: UsbSpec, read_timeout_s: float) -> None:
        super().__init__()
        self.spec = spec
        self._read_timeout_s = read_timeout_s

    def _device_path(self) -> str:
        dev = self.spec.device
        return f"/dev/video{dev}" if isinstance(dev, int) else str(dev)

    def describe(self) -> str:
        return f"usb camera {self._device_path()}"

    def open(self, cancel: threading.Event) -> None:
        path = self._device_path()
        if not Path(path).exists():
            # Not permanent: USB cameras get plugged in later or re-enumerate.
            raise SourceError(f"USB camera {path} not found (unplugged?)")
        cap = cv2.VideoCapture(self.spec.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open USB camera {path} (busy, no permission or not a capture device)"
            )
        # Ask for the read timeout; the V4L2 backend honours it on recent OpenCV. If it
        # does not, ThreadedSource still keeps the worker responsive.
        cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._read_timeout_s * 1000.0)
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, self.spec.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, self.spec.height),
            (cv2.CAP_PROP_FPS, self.spec.fps),
        ):
            if value is not None and not cap.set(prop, float(value)):
                log.warning("%s: camera refused property %s=%s", self.describe(), prop, value)
        self._cap = cap
        reported = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported) if reported > 0 else self.spec.fps
        log.info(
            "%s opened: %dx%d @ %s fps",
            self.describe(),
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            self.fps,
        )

    def read(self, cancel: threading.Event, pixels: bool = True) -> np.ndarray | Skipped:
        image = self._read_once(pixels)
        if image is None:
            raise SourceError(f"{self.describe()}: read failed (unplugged or timed out)")
        return image


class RtspBackend(_CvBackend):
    """An RTSP stream via OpenCV's FFmpeg backend with open and read timeouts."""

    def __init__(self, spec: RtspSpec, read_timeout_s: float) -> None:
        super().__init__()
        self.spec = spec
        self._read_timeout_s = read_timeout_s

    def describe(self) -> str:
        return f"rtsp {redact_url(self.spec.url)} ({self.spec.transport})"

    def open(self, cancel: threading.Event) -> None:
        # Both timeouts are enforced by OpenCV's FFmpeg interrupt callback (verified with
        # opencv-python-headless 4.14 against a frozen server: open and read each give up
        # after the given time). Once a read has timed out the capture is dead, so the
        # read timeout is the stall timeout: a shorter one would turn a brief network
        # hiccup into a reconnect.
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.spec.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self._read_timeout_s * 1000),
            cv2.CAP_PROP_N_THREADS,
            DECODER_THREADS,
        ]
        cap = _open_ffmpeg(
            self.spec.url, params, cancel, self.describe(), rtsp_transport=self.spec.transport
        )
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open RTSP stream {redact_url(self.spec.url)} over "
                f"{self.spec.transport} within {self.spec.open_timeout_s:g} s "
                "(unreachable, refused, wrong path or credentials?)"
            )
        self._cap = cap
        self.fps = _fps_or_default(cap.get(cv2.CAP_PROP_FPS), self.describe())

    def read(self, cancel: threading.Event, pixels: bool = True) -> np.ndarray | Skipped:
        image = self._read_once(pixels)
        if image is None:
            raise SourceError(
                f"RTSP stream {redact_url(self.spec.url)} ended or sent no data for "
                f"{self._read_timeout_s:g} s"
            )
        return image
