"""HttpService against hostile clients, over real sockets (robustness round 2, items 9
and 10): slow or silent clients time out, connections are capped, foreign Host headers
(DNS rebinding) are refused."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from edge_daemon.web import http as http_mod
from edge_daemon.web.http import HttpService, Request, host_of


def _raw(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                data = s.recv(4096)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpService]:
    monkeypatch.setattr(http_mod, "IO_TIMEOUT_S", 0.5)
    monkeypatch.setattr(http_mod, "MAX_CONNECTIONS", 4)
    svc = HttpService("test", "127.0.0.1", 0, allowed_hosts=("cam.example.org",))

    def hello(req: Request) -> None:
        req.send_text(200, "hello\n")

    svc.route("/", hello)
    svc.start()
    yield svc
    svc.stop()


def _get(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]", "cam.example.org", socket.gethostname()],
)
def test_known_host_names_are_served(service: HttpService, host: str) -> None:
    assert _raw(service.port, _get(f"{host}:{service.port}")).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io", "localhost.evil.example"])
def test_foreign_host_headers_are_refused(service: HttpService, host: str) -> None:
    # A page on evil.example whose name was rebound to 127.0.0.1 sends this Host.
    reply = _raw(service.port, _get(f"{host}:{service.port}"))
    assert reply.startswith(b"HTTP/1.1 421")
    assert service.refused_hosts >= 1


def test_host_of() -> None:
    assert host_of("Example.ORG:8080") == "example.org"
    assert host_of("[::1]:80") == "::1"
    assert host_of("::1") == "::1"


def _threads() -> int:
    return threading.active_count()


def test_half_sent_requests_time_out_and_release_their_threads(service: HttpService) -> None:
    before = _threads()
    socks = []
    for _ in range(3):  # three clients that never finish their request line
        s = socket.create_connection(("127.0.0.1", service.port), timeout=5)
        s.sendall(b"GET / HT")
        socks.append(s)
    time.sleep(0.2)
    assert _threads() >= before + 3  # each one holds a handler thread...
    deadline = time.monotonic() + 10
    while _threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _threads() <= before  # ...until IO_TIMEOUT_S drops it
    for s in socks:
        assert s.recv(16) == b""  # closed by the server
        s.close()
    assert service.timeouts >= 3
    assert _raw(service.port, _get("127.0.0.1")).startswith(b"HTTP/1.1 200")


def test_connections_over_the_cap_are_closed_at_once(service: HttpService) -> None:
    socks = []
    try:
        for _ in range(4):  # MAX_CONNECTIONS, all silent
            socks.append(socket.create_connection(("127.0.0.1", service.port), timeout=5))
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", service.port), timeout=5)
        assert extra.recv(16) == b""  # closed without a thread
        extra.close()
        assert service.refused_connections >= 1
    finally:
        for s in socks:
            s.close()


def test_a_stream_reader_that_stops_reading_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_mod, "IO_TIMEOUT_S", 0.5)
    svc = HttpService("stream", "127.0.0.1", 0)
    ended = threading.Event()

    def stream(req: Request) -> None:
        h = req.handler
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        try:
            while not svc.stopping.is_set():
                h.wfile.write(b"x" * 65536)  # blocks once the client's buffers are full
        finally:
            ended.set()

    svc.route("/s", stream)
    svc.start()
    try:
        s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        # Never read: the server's write must time out and end the handler.
        assert ended.wait(10)
        s.close()
    finally:
        svc.stop()


def test_query_strings_never_reach_the_access_log(
    service: HttpService, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.DEBUG, logger="edge_daemon.web.http"):
        reply = _raw(service.port, b"GET /?token=s3cret HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "GET /" in logged and "s3cret" not in logged
