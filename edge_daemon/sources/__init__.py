"""Camera sources: files, USB (V4L2), RTSP, HTTP MJPEG and a synthetic sample camera.

Public entry points: :class:`CaptureWorker` (one thread per camera, reconnects
forever), :class:`FrameQueue` (bounded, drop-oldest) and the ``*Spec`` dataclasses that
say what to open. :func:`open_source` gives direct access to a source for tools/tests.
"""

from edge_daemon.redact import redact_url
from edge_daemon.sources.base import SourceEnded, SourceError, ThreadedSource
from edge_daemon.sources.capture import CaptureStats, CaptureWorker, StatusCallback
from edge_daemon.sources.factory import open_source
from edge_daemon.sources.queue import FrameQueue
from edge_daemon.sources.sample import render_sample_frame
from edge_daemon.sources.spec import (
    CaptureSettings,
    FileSpec,
    MjpegSpec,
    RtspSpec,
    SampleSpec,
    SourceSpec,
    UsbSpec,
)

__all__ = [
    "CaptureSettings",
    "CaptureStats",
    "CaptureWorker",
    "FileSpec",
    "FrameQueue",
    "MjpegSpec",
    "RtspSpec",
    "SampleSpec",
    "SourceEnded",
    "SourceError",
    "SourceSpec",
    "StatusCallback",
    "ThreadedSource",
    "UsbSpec",
    "open_source",
    "redact_url",
    "render_sample_frame",
]
