"""What to open (source specs) and how to keep it alive (capture settings).

Plain frozen dataclasses so the capture layer does not depend on the config schema;
the config layer converts its validated models into these. Each spec still checks its
own invariants so that a bad value fails at construction, not deep in a capture thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RtspTransport = Literal["tcp", "udp"]


def _check_positive(name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_url(url: str, schemes: tuple[str, ...]) -> None:
    if not isinstance(url, str) or not url.lower().startswith(tuple(s + "://" for s in schemes)):
        raise ValueError(f"URL must start with one of {[s + '://' for s in schemes]}")


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A video file. ``realtime`` paces frames at the file's fps; ``loop`` rewinds at EOF."""

    path: Path
    loop: bool = False
    realtime: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))


@dataclass(frozen=True, slots=True)
class UsbSpec:
    """A V4L2 camera: an index (0 for /dev/video0) or a device path."""

    device: int | str
    width: int | None = None
    height: int | None = None
    fps: float | None = None

    def __post_init__(self) -> None:
        dev = self.device
        if isinstance(dev, str) and dev.strip().isdigit():
            # "0" from an env var or CLI means index 0, not a file named "0".
            object.__setattr__(self, "device", int(dev.strip()))
        elif isinstance(dev, bool) or not isinstance(dev, int | str) or dev == "":
            raise ValueError(f"usb device must be an index or a device path, got {dev!r}")
        if isinstance(self.device, int) and self.device < 0:
            raise ValueError(f"usb device index must be >= 0, got {self.device}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"usb {name} must be a positive int, got {value!r}")
        _check_positive("usb fps", self.fps, allow_none=True)


@dataclass(frozen=True, slots=True)
class RtspSpec:
    """An RTSP stream read through OpenCV's FFmpeg backend."""

    url: str
    transport: RtspTransport = "tcp"
    open_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        _check_url(self.url, ("rtsp", "rtsps"))
        if self.transport not in ("tcp", "udp"):
            raise ValueError(f"rtsp transport must be 'tcp' or 'udp', got {self.transport!r}")
        _check_positive("rtsp open_timeout_s", self.open_timeout_s)


@dataclass(frozen=True, slots=True)
class MjpegSpec:
    """An HTTP ``multipart/x-mixed-replace`` MJPEG stream (typical IP-camera URL)."""

    url: str
    open_timeout_s: float = 10.0
    max_frame_side: int = 4096  # pixels; larger frames are refused before decoding

    def __post_init__(self) -> None:
        _check_url(self.url, ("http", "https"))
        _check_positive("mjpeg open_timeout_s", self.open_timeout_s)
        _check_positive("mjpeg max_frame_side", self.max_frame_side)


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """A synthetic camera: a public-domain portrait slowly panned and zoomed; with
    ``away_s`` > 0 the camera looks away from the face for ``away_s`` seconds after
    every ``present_s`` seconds on it, so tracks end and start again (a demo that keeps
    producing events)."""

    fps: float = 10.0
    width: int = 640
    height: int = 480
    present_s: float = 8.0
    away_s: float = 0.0

    def __post_init__(self) -> None:
        _check_positive("sample fps", self.fps)
        _check_positive("sample present_s", self.present_s)
        if not (math.isfinite(self.away_s) and self.away_s >= 0):
            raise ValueError(f"sample away_s must be a finite number >= 0, got {self.away_s!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 16 <= value <= 4096:
                raise ValueError(f"sample {name} must be an int in 16..4096, got {value!r}")


SourceSpec = FileSpec | UsbSpec | RtspSpec | MjpegSpec | SampleSpec
SOURCE_SPEC_TYPES = (FileSpec, UsbSpec, RtspSpec, MjpegSpec, SampleSpec)


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """How a :class:`~edge_daemon.sources.capture.CaptureWorker` keeps a stream alive.

    ``stall_timeout_s``: no frame for this long => close and reconnect.
    ``reconnect_initial_s`` .. ``reconnect_max_s``: exponential backoff between attempts.
    ``pixels_every_n``: only every Nth frame is converted to pixels; the others are
    decoded (codecs need every frame) but handed on as their size only, which saves the
    colour conversion and copy of frames nobody looks at (the detector runs every Nth
    frame; between detections the tracker needs no pixels). ``pixels_phase`` shifts
    which frames those are, so that cameras started together do not all detect on the
    same tick (eight cameras detecting at once would queue up behind two cores).
    """

    stall_timeout_s: float = 10.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 30.0
    pixels_every_n: int = 1
    pixels_phase: int = 0

    def __post_init__(self) -> None:
        _check_positive("stall_timeout_s", self.stall_timeout_s)
        _check_positive("reconnect_initial_s", self.reconnect_initial_s)
        _check_positive("reconnect_max_s", self.reconnect_max_s)
        if not isinstance(self.pixels_every_n, int) or self.pixels_every_n < 1:
            raise ValueError(f"pixels_every_n must be an int >= 1, got {self.pixels_every_n!r}")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")


def open_timeout_of(spec: SourceSpec) -> float:
    """How long opening ``spec`` may legitimately take (0 for local sources)."""
    return float(getattr(spec, "open_timeout_s", 0.0))
