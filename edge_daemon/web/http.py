"""A small threaded HTTP service: start/stop with the app, optional bearer token.

Each endpoint (metrics, live view) is one :class:`HttpService` with its own
``ThreadingHTTPServer`` thread. Handlers are plain functions of a :class:`Request`; they
must not block longer than one response (streams check :attr:`HttpService.stopping`).
A failure inside a handler is logged with its traceback (a bug, not a user mistake) and
answered with 500; it never stops the server.

Hostile or careless clients cannot hold it: every socket read and write times out after
:data:`IO_TIMEOUT_S` (a half-sent request, or a viewer that stopped reading a stream,
is dropped), at most :data:`MAX_CONNECTIONS` connections are served at once (more are
closed at once and counted), and a request whose ``Host`` header names neither a
loopback name, the address the client connected to, this machine's name nor one of
``allowed_hosts`` is refused with 421: a web page the operator visits cannot read the
live pictures through a DNS name that it rebinds to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

#: Seconds a socket read or write may block before the connection is dropped.
IO_TIMEOUT_S = 10.0
#: Connections served at once per endpoint; more are closed on accept and counted.
MAX_CONNECTIONS = 64
_QUERY_RE = re.compile(r"\?\S*")
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})


def host_of(header: str) -> str:
    """The host part of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


class HttpStartError(RuntimeError):
    """The endpoint could not listen (port taken, bad address); the message says which."""


@dataclass
class Request:
    handler: BaseHTTPRequestHandler
    path: str
    query: dict[str, list[str]]

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def send_json(self, status: int, data: Any) -> None:
        self.send(status, json.dumps(data).encode(), "application/json")

    def send_text(self, status: int, text: str) -> None:
        self.send(status, text.encode(), "text/plain; charset=utf-8")


Route = Callable[[Request], None]


class HttpService:
    """One listening HTTP endpoint with exact-path and prefix routes."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        token: str | None = None,
        public_paths: tuple[str, ...] = (),
        allowed_hosts: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.host, self.port = host, port
        names = {socket.gethostname(), socket.getfqdn()}
        self._allowed_hosts = frozenset(
            h.lower().rstrip(".") for h in (*_LOOPBACK_NAMES, *names, *allowed_hosts) if h
        )
        self.refused_connections = 0  # over MAX_CONNECTIONS
        self.refused_hosts = 0  # Host header not allowed
        self.timeouts = 0  # connections dropped by IO_TIMEOUT_S
        self._token = token
        self._public = public_paths  # reachable without the token (e.g. health probes)
        self._routes: dict[str, Route] = {}
        self._prefix_routes: list[tuple[str, Route]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def route(self, path: str, fn: Route) -> None:
        self._routes[path] = fn

    def route_prefix(self, prefix: str, fn: Route) -> None:
        self._prefix_routes.append((prefix, fn))

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "edge-daemon"
            protocol_version = "HTTP/1.1"
            timeout = IO_TIMEOUT_S  # socket.settimeout: every read and write

            def log_error(self, format: str, *args: Any) -> None:
                # http.server reports a read that timed out only through this hook.
                if format.startswith("Request timed out"):
                    service.timeouts += 1
                text = _QUERY_RE.sub(" ", format % args)
                log.debug("%s: %s %s", service.name, self.address_string(), text)

            def do_GET(self) -> None:
                service._dispatch(self)

            def do_HEAD(self) -> None:
                service._dispatch(self)

            def log_message(self, fmt: str, *args: Any) -> None:
                # Query strings can hold ?token=...: never in the log.
                text = _QUERY_RE.sub(" ", fmt % args)
                log.debug("%s: %s %s", service.name, self.address_string(), text)

        active = threading.BoundedSemaphore(MAX_CONNECTIONS)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

            def process_request(self, request: Any, client_address: Any) -> None:
                if not active.acquire(blocking=False):
                    service.refused_connections += 1
                    self.shutdown_request(request)
                    return
                try:
                    super().process_request(request, client_address)
                except BaseException:
                    active.release()
                    raise

            def process_request_thread(self, request: Any, client_address: Any) -> None:
                try:
                    super().process_request_thread(request, client_address)
                finally:
                    active.release()

        try:
            self._server = Server((self.host, self.port), Handler)
        except OSError as exc:
            raise HttpStartError(
                f"{self.name}: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
                " (is the port taken by another program? choose another port)"
            ) from None
        self.port = self._server.server_address[1]  # resolves port 0 (tests)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"http-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _authorized(self, h: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        if self._token is None:
            return True
        given = query.get("token", [""])[0]
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth.removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), self._token.encode())

    def host_allowed(self, h: BaseHTTPRequestHandler) -> bool:
        """Whether the request's ``Host`` names this service (see the module docstring)."""
        header = h.headers.get("Host")
        if header is None:
            return h.request_version == "HTTP/1.0"  # 1.0 clients may omit it
        host = host_of(header)
        if host in self._allowed_hosts:
            return True
        with contextlib.suppress(OSError):
            if host == str(h.connection.getsockname()[0]).lower():
                return True  # the address the client connected to (bound to 0.0.0.0)
        return False

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        req = Request(h, parts.path, parse_qs(parts.query))
        try:
            if not self.host_allowed(h):
                self.refused_hosts += 1
                req.send_text(
                    HTTPStatus.MISDIRECTED_REQUEST,
                    "unknown Host: add it to allowed_hosts in the config to serve it\n",
                )
                return
            if parts.path not in self._public and not self._authorized(h, req.query):
                req.send_text(
                    HTTPStatus.UNAUTHORIZED, "token required: add ?token=... to the URL\n"
                )
                return
            fn = self._routes.get(parts.path)
            if fn is None:
                fn = next((f for p, f in self._prefix_routes if parts.path.startswith(p)), None)
            if fn is None:
                req.send_text(HTTPStatus.NOT_FOUND, "not found\n")
                return
            fn(req)
        except TimeoutError:
            self.timeouts += 1  # a client that stopped reading (or sending): dropped
            h.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away
        except Exception:
            log.exception("%s: error serving %s", self.name, parts.path)
            with contextlib.suppress(OSError):  # the response may have been half sent
                req.send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
