"""Turns a source spec into a running :class:`ThreadedSource`."""

from __future__ import annotations

from edge_daemon.sources.base import Backend, ThreadedSource
from edge_daemon.sources.cv import FileBackend, RtspBackend, UsbBackend
from edge_daemon.sources.mjpeg import MjpegBackend
from edge_daemon.sources.sample import SampleBackend
from edge_daemon.sources.spec import (
    FileSpec,
    MjpegSpec,
    RtspSpec,
    SampleSpec,
    SourceSpec,
    UsbSpec,
)


def make_backend(spec: SourceSpec, read_timeout_s: float) -> Backend:
    """The blocking backend for ``spec``; ``read_timeout_s`` bounds network/device reads."""
    if isinstance(spec, FileSpec):
        return FileBackend(spec)
    if isinstance(spec, UsbSpec):
        return UsbBackend(spec, read_timeout_s)
    if isinstance(spec, RtspSpec):
        return RtspBackend(spec, read_timeout_s)
    if isinstance(spec, MjpegSpec):
        return MjpegBackend(spec, read_timeout_s)
    if isinstance(spec, SampleSpec):
        return SampleBackend(spec)
    raise TypeError(f"unknown source spec {type(spec).__name__}")


def open_source(spec: SourceSpec, read_timeout_s: float, name: str = "source") -> ThreadedSource:
    """Start opening ``spec`` in a background thread and return at once.

    The returned object's ``read(timeout)`` yields BGR uint8 frames (None while nothing
    arrived yet), raises ``SourceError``/``SourceEnded``; ``close()`` never blocks.
    """
    return ThreadedSource(make_backend(spec, read_timeout_s), name=name)
