"""RTSP through OpenCV/FFmpeg against a real GStreamer RTSP server (tests/fixtures/rtsp.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from edge_daemon.sources import (
    CaptureSettings,
    CaptureWorker,
    FrameQueue,
    RtspSpec,
    SourceError,
    open_source,
)
from edge_daemon.types import StreamStatus
from tests.support.net import free_port

SETTINGS = CaptureSettings(stall_timeout_s=2.0, reconnect_initial_s=0.2, reconnect_max_s=1.0)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[StreamStatus, str | None]] = []

    def __call__(self, camera: str, status: StreamStatus, error: str | None) -> None:
        with self.lock:
            self.events.append((status, error))

    def statuses(self) -> list[StreamStatus]:
        with self.lock:
            return [s for s, _ in self.events]


def wait_for(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def run_worker(spec: RtspSpec, settings: CaptureSettings = SETTINGS):
    stop = threading.Event()
    rec = Recorder()
    q = FrameQueue(4)
    worker = CaptureWorker("gate", spec, settings, q, stop, rec)
    worker.start()
    return worker, stop, rec, q


def stop_quickly(worker: CaptureWorker, stop: threading.Event) -> None:
    t0 = time.monotonic()
    stop.set()
    worker.join(3.0)
    assert not worker.is_alive()
    assert time.monotonic() - t0 < 2.0


@pytest.mark.slow
def test_worker_survives_server_kill_and_restart(rtsp_server, h264_video) -> None:
    server = rtsp_server(h264_video(seconds=60, fps=15, size=(320, 240)), "/cam")
    worker, stop, rec, q = run_worker(RtspSpec(server.url, transport="tcp", open_timeout_s=5.0))
    try:
        assert wait_for(lambda: worker.frames >= 10, 10.0), rec.events
        assert worker.status is StreamStatus.ONLINE
        frame = q.get(1.0)
        assert frame is not None and frame.image.shape == (240, 320, 3)
        assert frame.image.dtype == np.uint8 and frame.camera == "gate"

        server.stop()  # like a camera crashing
        assert wait_for(lambda: worker.status is StreamStatus.RECONNECTING, 5.0), rec.events
        assert "RTSP stream" in (worker.last_error or "")
        # While the server is down, every attempt fails fast (connection refused).
        assert wait_for(lambda: worker.reconnects >= 2, 3.0)
        before = worker.frames

        server.start()  # same port
        assert wait_for(lambda: worker.status is StreamStatus.ONLINE, 10.0), rec.events
        assert wait_for(lambda: worker.frames >= before + 10, 5.0)
        assert rec.statuses()[:3] == [
            StreamStatus.STARTING,
            StreamStatus.ONLINE,
            StreamStatus.RECONNECTING,
        ]
        assert rec.statuses()[-1] is StreamStatus.ONLINE
    finally:
        stop_quickly(worker, stop)
    assert rec.statuses()[-1] is StreamStatus.STOPPED


@pytest.mark.slow
def test_udp_transport(rtsp_server, h264_video) -> None:
    server = rtsp_server(h264_video(seconds=30, fps=15, size=(160, 120)))
    src = open_source(RtspSpec(server.url, transport="udp", open_timeout_s=5.0), read_timeout_s=3)
    try:
        frames = collect_frames(src, 5, within_s=10)
        assert len(frames) == 5 and frames[0].shape == (120, 160, 3)
        assert src.fps == pytest.approx(15.0)
    finally:
        src.close()


def collect_frames(src: object, n: int, within_s: float) -> list[np.ndarray]:
    """Up to ``n`` frames read within ``within_s`` (fewer when the stream is slower)."""
    frames: list[np.ndarray] = []
    deadline = time.monotonic() + within_s
    while len(frames) < n and time.monotonic() < deadline:
        img = src.read(0.5)  # type: ignore[attr-defined]
        if img is not None:
            frames.append(img)
    return frames


def read_for(src: object, seconds: float, timeout_s: float) -> None:
    """Read frames for up to ``seconds``; the error of a failing source raises out of here."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        src.read(timeout_s)  # type: ignore[attr-defined]


def test_refused_connection_is_reported_without_password() -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/stream"
    worker, stop, rec, _q = run_worker(RtspSpec(url, open_timeout_s=2.0))
    try:
        assert wait_for(lambda: worker.reconnects >= 1, 5.0)
        assert worker.status is StreamStatus.RECONNECTING
        error = worker.last_error or ""
        assert "cannot open RTSP stream" in error
        assert "hunter2" not in error and "admin:***@" in error
        assert all("hunter2" not in (e or "") for _, e in rec.events)
    finally:
        stop_quickly(worker, stop)


def test_stop_is_prompt_while_open_is_blocked() -> None:
    """A server that accepts TCP but never answers: open blocks for open_timeout_s (10 s),
    but the worker must still stop within 2 s."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(4)
        url = f"rtsp://127.0.0.1:{blackhole.getsockname()[1]}/cam"
        worker, stop, rec, _q = run_worker(RtspSpec(url, open_timeout_s=10.0))
        time.sleep(0.5)
        assert worker.status is StreamStatus.STARTING
        stop_quickly(worker, stop)
    assert rec.statuses() == [StreamStatus.STARTING, StreamStatus.STOPPED]


def test_open_timeout_is_enforced() -> None:
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(4)
        url = f"rtsp://127.0.0.1:{blackhole.getsockname()[1]}/cam"
        src = open_source(RtspSpec(url, open_timeout_s=1.0), read_timeout_s=1.0)
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="within 1 s"):
            read_for(src, seconds=5, timeout_s=0.2)
        assert time.monotonic() - t0 < 3.0
        src.close()


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_face_video_over_rtsp(rtsp_server, loop_video, videos_dir) -> None:
    clip = loop_video(videos_dir / "pyfeat__single_face.mp4", 20.0)  # 2.4 s clip, no loop
    server = rtsp_server(clip, "/face")
    src = open_source(RtspSpec(server.url, open_timeout_s=5.0), read_timeout_s=3.0)
    try:
        frames = collect_frames(src, 10, within_s=10)
        assert len(frames) == 10
        assert frames[0].shape == (360, 640, 3)
    finally:
        src.close()
