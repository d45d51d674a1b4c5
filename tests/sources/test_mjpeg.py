"""MJPEG over HTTP against a tiny real server (http.server in a thread)."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from edge_daemon.sources import (
    CaptureSettings,
    CaptureWorker,
    FrameQueue,
    MjpegSpec,
    SourceError,
    open_source,
    redact_url,
)
from edge_daemon.sources.base import ThreadedSource
from edge_daemon.types import StreamStatus

SIZE = (160, 120)  # width, height
SETTINGS = CaptureSettings(stall_timeout_s=1.0, reconnect_initial_s=0.1, reconnect_max_s=0.3)


@dataclass
class ServerOptions:
    content_length: bool = True
    boundary: str = "frameboundary"
    bad_every: int = 0  # every n-th part is garbage instead of a JPEG
    stall_after: int | None = None  # stop sending (but keep the connection) after n parts
    status: int = 200
    content_type: str | None = None  # override
    fps: float = 30.0
    bomb_every: int = 0  # every n-th part is a tiny JPEG declaring 10000x10000 pixels
    # "headers" or "body": trickle one byte every DRIP_S there, forever (a slowloris camera)
    drip: str | None = None


DRIP_S = 0.05


def jpeg(i: int) -> bytes:
    img = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    img[:, :, 1] = (i * 20) % 256
    cv2.putText(img, str(i), (10, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def bomb(side: int = 10_000) -> bytes:
    """A small JPEG whose frame header claims ``side`` x ``side`` pixels (300 MB decoded)."""
    data = bytearray(jpeg(0))
    i = 2
    while data[i + 1] not in (0xC0, 0xC2):  # walk the markers to the frame header
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    data[i + 5 : i + 9] = bytes([side >> 8, side & 255, side >> 8, side & 255])
    return bytes(data)


class MjpegServer:
    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.closing = threading.Event()
        self.requests = 0
        self.auth_headers: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                outer.requests += 1
                outer.auth_headers.append(self.headers.get("Authorization"))
                opts = outer.options
                if opts.status != 200:
                    self.send_error(opts.status)
                    return
                if opts.drip is not None:
                    self._drip(opts.drip)
                    return
                self.send_response(200)
                ctype = opts.content_type or (
                    f"multipart/x-mixed-replace; boundary={opts.boundary}"
                )
                self.send_header("Content-Type", ctype)
                self.end_headers()
                i = 0
                try:
                    self.wfile.write(b"preamble the reader must skip\r\n")
                    while not outer.closing.is_set():
                        if opts.stall_after is not None and i >= opts.stall_after:
                            outer.closing.wait(0.05)
                            continue
                        body = (
                            b"not a jpeg" * 10
                            if opts.bad_every and i % opts.bad_every == 1
                            else bomb()
                            if opts.bomb_every and i % opts.bomb_every == 1
                            else jpeg(i)
                        )
                        head = f"--{opts.boundary}\r\nContent-Type: image/jpeg\r\n"
                        if opts.content_length:
                            head += f"Content-Length: {len(body)}\r\n"
                        self.wfile.write(head.encode() + b"\r\n" + body + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        time.sleep(1.0 / opts.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _drip(self, phase: str) -> None:
                # Every byte arrives well within the client's socket timeout, so no
                # single recv ever times out: only a total deadline ends the wait.
                try:
                    if phase == "body":
                        self.send_response(200)
                        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=b")
                        self.end_headers()
                    else:
                        self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                    while not outer.closing.is_set():
                        self.wfile.write(b"a")
                        self.wfile.flush()
                        time.sleep(DRIP_S)
                except OSError:
                    pass  # the client hung up: what the test wants

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, auth: str = "") -> str:
        return f"http://{auth}127.0.0.1:{self.port}/video.mjpg"

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg_server() -> Iterator[Callable[..., MjpegServer]]:
    servers: list[MjpegServer] = []

    def start(**kwargs: object) -> MjpegServer:
        server = MjpegServer(ServerOptions(**kwargs))  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.close()


def collect(src: ThreadedSource, n: int, timeout: float = 5.0) -> list[np.ndarray]:
    """Up to ``n`` frames from ``src`` within ``timeout`` seconds."""
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < deadline:
        img = src.read(0.5)
        if img is not None:
            frames.append(img)
    return frames


def read_frames(url: str, n: int, timeout: float = 5.0):
    src = open_source(MjpegSpec(url, open_timeout_s=2.0), read_timeout_s=2.0)
    try:
        return collect(src, n, timeout), src.decode_failures
    finally:
        src.close()


@pytest.mark.parametrize("content_length", [True, False])
@pytest.mark.parametrize("boundary_dashes", ["", "--"])
def test_reads_jpeg_parts(mjpeg_server, content_length: bool, boundary_dashes: str) -> None:
    server = mjpeg_server(content_length=content_length, boundary=boundary_dashes + "bnd")
    frames, failures = read_frames(server.url(), 5)
    assert len(frames) == 5
    assert failures == 0
    for img in frames:
        assert img.shape == (SIZE[1], SIZE[0], 3) and img.dtype == np.uint8
    greens = [int(img[0, 0, 1]) for img in frames]
    assert len(set(greens)) == 5  # five distinct frames, in order of the server


def read_until_error(src: object, n: int, timeout_s: float) -> None:
    """Read up to ``n`` frames; the error of a failing source raises out of here."""
    for _ in range(n):
        src.read(timeout_s)  # type: ignore[attr-defined]


def test_corrupt_parts_are_counted_and_skipped(mjpeg_server) -> None:
    server = mjpeg_server(bad_every=3)
    frames, failures = read_frames(server.url(), 6)
    assert len(frames) == 6
    assert failures >= 2


def test_jpeg_size_reads_the_frame_header() -> None:
    from edge_daemon.sources.jpeg import jpeg_size

    assert jpeg_size(jpeg(1)) == SIZE
    assert jpeg_size(bomb(10_000)) == (10_000, 10_000)
    for junk in (b"", b"not a jpeg", b"\xff\xd8", jpeg(1)[:20], b"\xff\xd8\xff\xd9"):
        assert jpeg_size(junk) is None


def test_decompression_bombs_are_refused_before_decoding(mjpeg_server) -> None:
    # Before: each 10000x10000 frame was decoded (RSS +300 MB with one camera).
    server = mjpeg_server(bomb_every=2)
    src = open_source(MjpegSpec(server.url(), open_timeout_s=2.0), read_timeout_s=2.0)
    try:
        frames = collect(src, 6)
        assert len(frames) == 6
        assert all(f.shape == (SIZE[1], SIZE[0], 3) for f in frames)
        backend = src._backend  # type: ignore[attr-defined]
        assert backend.oversized >= 2 and src.decode_failures == backend.oversized
    finally:
        src.close()


def test_basic_auth_is_sent_and_password_redacted(mjpeg_server) -> None:
    server = mjpeg_server()
    url = server.url("user:s3cret@")
    frames, _ = read_frames(url, 1)
    assert frames
    assert server.auth_headers[0] == "Basic dXNlcjpzM2NyZXQ="
    assert "s3cret" not in redact_url(url) and "user:***@" in redact_url(url)


@pytest.mark.parametrize(
    ("kwargs", "message", "permanent"),
    [
        ({"status": 404}, "HTTP 404", True),
        ({"content_type": "text/html"}, "not an MJPEG stream", True),
    ],
)
def test_http_errors_are_clear(mjpeg_server, kwargs, message: str, permanent: bool) -> None:
    server = mjpeg_server(**kwargs)
    src = open_source(MjpegSpec(server.url(), open_timeout_s=2.0), read_timeout_s=2.0)
    with pytest.raises(SourceError, match=message) as info:
        read_until_error(src, 20, timeout_s=0.5)
    assert info.value.permanent is permanent
    src.close()


def test_connection_refused_is_a_transient_error() -> None:
    src = open_source(MjpegSpec("http://127.0.0.1:9/x", open_timeout_s=1.0), read_timeout_s=1.0)
    with pytest.raises(SourceError, match="cannot connect") as info:
        src.read(3.0)
    assert not info.value.permanent


def test_worker_online_stall_reconnect_and_recover(mjpeg_server) -> None:
    server = mjpeg_server(stall_after=10, fps=50.0)
    events: list[StreamStatus] = []
    stop = threading.Event()
    q = FrameQueue(2)
    spec = MjpegSpec(server.url(), open_timeout_s=2.0)
    worker = CaptureWorker("door", spec, SETTINGS, q, stop, lambda c, s, e: events.append(s))
    worker.start()
    try:
        # Each connection gets 10 frames, then silence: the worker must notice the stall
        # (1 s), reconnect and get frames again.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and worker.reconnects < 2:
            time.sleep(0.05)
        assert worker.reconnects >= 2
        assert server.requests >= 2
        assert "no data" in (worker.last_error or "") or "stall" in (worker.last_error or "")
        assert worker.frames >= 20
        assert events[:3] == [StreamStatus.STARTING, StreamStatus.ONLINE, StreamStatus.RECONNECTING]
        assert events.count(StreamStatus.ONLINE) >= 2
        assert q.dropped > 0  # nobody consumed: the queue dropped old frames
    finally:
        t0 = time.monotonic()
        stop.set()
        worker.join(3)
        assert not worker.is_alive() and time.monotonic() - t0 < 2.0
    assert events[-1] is StreamStatus.STOPPED


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
@pytest.mark.parametrize("phase", ["headers", "body"])
def test_closing_a_dripping_stream_ends_its_thread_and_socket(mjpeg_server, phase: str) -> None:
    # Before: a camera that trickles bytes never trips the socket timeout, so each
    # abandoned connection kept its reader thread and socket for ever (about 2,900
    # threads per camera per day at the default backoff).
    server = mjpeg_server(drip=phase)
    spec = MjpegSpec(server.url(), open_timeout_s=0.3)
    fds_before = open_fds()
    for i in range(50):
        src = open_source(spec, read_timeout_s=0.3, name="drip-reader")
        assert src.read(0.15) is None  # bytes trickle in, no frame
        src.close()
        assert src.join(2.0), f"reader thread still blocked after close (connection {i})"
    assert not [t for t in threading.enumerate() if t.name == "drip-reader"]
    # The server's handler threads notice the hang-up at their next write.
    assert settle(lambda: open_fds() <= fds_before + 2), (fds_before, open_fds())


def test_worker_reconnects_a_dripping_camera_without_piling_up_threads(mjpeg_server) -> None:
    server = mjpeg_server(drip="body")
    settings = CaptureSettings(stall_timeout_s=0.3, reconnect_initial_s=0.01, reconnect_max_s=0.02)
    stop = threading.Event()
    spec = MjpegSpec(server.url(), open_timeout_s=0.3)
    worker = CaptureWorker("slow", spec, settings, FrameQueue(1), stop, lambda *a: None)
    worker.start()
    try:
        assert settle(lambda: worker.reconnects >= 8, timeout=15.0)
        # One connection at a time, however many were abandoned.
        readers = [t for t in threading.enumerate() if t.name == "capture-slow-io"]
        assert len(readers) <= 2, len(readers)
        assert "no frame within" in (worker.last_error or "")
    finally:
        stop.set()
        worker.join(3)
    assert settle(lambda: not [t for t in threading.enumerate() if t.name == "capture-slow-io"])


def test_worker_counts_decode_failures(mjpeg_server) -> None:
    server = mjpeg_server(bad_every=3, fps=60.0)
    stop = threading.Event()
    spec = MjpegSpec(server.url(), open_timeout_s=2.0)
    worker = CaptureWorker("c", spec, SETTINGS, FrameQueue(1), stop, lambda *a: None)
    worker.start()
    deadline = time.monotonic() + 5
    while worker.decode_failures < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = worker.stats()
    stop.set()
    worker.join(2)
    assert stats.decode_failures >= 3
    assert stats.frames >= 3 and stats.status is StreamStatus.ONLINE
    assert stats.reconnects == 0 and stats.last_error is None
    assert worker.decode_failures >= stats.decode_failures  # kept after the source closed
