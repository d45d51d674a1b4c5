"""HTTP MJPEG (``multipart/x-mixed-replace``) backend: a small reader over http.client.

No FFmpeg involved: IP cameras' MJPEG streams are often slightly off-spec (boundary with
or without leading dashes, missing Content-Length, preamble text), and a hand-written
reader can be lenient about exactly those things while keeping hard socket timeouts.

Deadlines. A socket timeout bounds one ``recv``, not a whole frame: a camera (or anything
on its address) that trickles a byte a second never trips it. Total deadlines therefore
come from above: the capture worker gives up when no frame arrived within ``open_timeout_s
+ stall_timeout_s`` of opening (response headers included) or ``stall_timeout_s`` after
the last frame, and closing the source shuts the socket down (:meth:`MjpegBackend.
interrupt`), which ends the blocked read at once. Within a part the reader also checks a
deadline of ``read_timeout_s`` between lines, for callers without a worker.
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import http.client
import logging
import socket
import threading
import time
import urllib.parse

import cv2
import numpy as np

from edge_daemon.redact import redact_url
from edge_daemon.sources.base import SourceError
from edge_daemon.sources.jpeg import jpeg_size
from edge_daemon.sources.spec import MjpegSpec

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 8192
MAX_PART_BYTES = 32 * 1024 * 1024  # a 4K JPEG is a few MB; anything bigger is garbage
MAX_HEADER_LINES = 64
MAX_CONSECUTIVE_DECODE_FAILURES = 50
# HTTP statuses that will not go away without the user changing the configuration.
PERMANENT_HTTP_STATUSES = frozenset({400, 401, 403, 404, 405, 410})


class MjpegBackend:
    """Reads JPEG parts from a multipart HTTP response and decodes them with OpenCV."""

    def __init__(self, spec: MjpegSpec, read_timeout_s: float) -> None:
        self.spec = spec
        self.fps: float | None = None  # MJPEG over HTTP carries no frame rate
        self.decode_failures = 0
        self.oversized = 0  # frames refused by max_frame_side (also in decode_failures)
        self._read_timeout_s = read_timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._boundary = b""
        self._at_headers = False  # True when the boundary line was already consumed
        self._part_deadline = float("inf")  # monotonic; see the module docstring
        # interrupt() runs in another thread: it may only see the socket under this lock,
        # and once it has run no new socket may be connected.
        self._io_lock = threading.Lock()
        self._interrupted = False
        self._sock: socket.socket | None = None

    def describe(self) -> str:
        return f"mjpeg {redact_url(self.spec.url)}"

    # -- connection ------------------------------------------------------------------

    def open(self, cancel: threading.Event) -> None:
        url = urllib.parse.urlsplit(self.spec.url)
        red = redact_url(self.spec.url)
        if not url.hostname:
            raise SourceError(f"MJPEG URL has no host: {red}", permanent=True)
        conn_cls = (
            http.client.HTTPSConnection
            if url.scheme.lower() == "https"
            else http.client.HTTPConnection
        )
        conn = conn_cls(url.hostname, url.port, timeout=self.spec.open_timeout_s)
        self._conn = conn
        try:
            conn.connect()  # one bounded syscall (plus TLS); the reads after it are not
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"cannot connect to MJPEG stream {red}: {_why(exc)}") from exc
        with self._io_lock:
            if self._interrupted:
                raise SourceError(f"MJPEG stream {red}: closed while connecting")
            self._sock = conn.sock
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = {"User-Agent": "edge-daemon", "Accept": "multipart/x-mixed-replace, */*"}
        if url.username is not None:
            creds = (
                f"{urllib.parse.unquote(url.username)}:{urllib.parse.unquote(url.password or '')}"
            )
            headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"cannot connect to MJPEG stream {red}: {_why(exc)}") from exc
        self._resp = resp
        if resp.status != 200:
            raise SourceError(
                f"MJPEG stream {red} answered HTTP {resp.status} {resp.reason}",
                permanent=resp.status in PERMANENT_HTTP_STATUSES,
            )
        ctype = resp.getheader("Content-Type", "")
        msg = email.message.Message()
        msg["Content-Type"] = ctype
        if not msg.get_content_type().startswith("multipart/"):
            raise SourceError(
                f"{red} is not an MJPEG stream: Content-Type {ctype!r} "
                "(expected multipart/x-mixed-replace)",
                permanent=True,
            )
        boundary = msg.get_param("boundary")
        # Some cameras omit the boundary parameter; then the first "--" line defines it.
        self._boundary = str(boundary).strip().lstrip("-").encode() if boundary else b""
        self._at_headers = False
        # From now on the stall timeout applies: a stream that goes quiet this long is
        # dead. (A timeout leaves the buffered reader in an undefined state, so it is
        # always fatal for this connection; the worker reconnects.)
        if conn.sock is not None:
            conn.sock.settimeout(self._read_timeout_s)

    def interrupt(self) -> None:
        """Shut the socket down so that a read blocked in it returns now (EOF)."""
        with self._io_lock:
            self._interrupted = True
            if self._sock is not None:
                # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would
                # change TLS state that the reading thread is using. OSError: the peer
                # already closed it.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def close(self) -> None:
        with self._io_lock:
            self._sock = None  # interrupt() must not shut down a closed (reused) fd
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- reading ---------------------------------------------------------------------

    def read(self, cancel: threading.Event, pixels: bool = True) -> np.ndarray:
        # Every part is a whole JPEG: always decoded (simple, rare source).
        consecutive = 0
        while True:
            try:
                data = self._read_part()
            except TimeoutError as exc:
                raise SourceError(
                    f"MJPEG stream {redact_url(self.spec.url)} sent no data for "
                    f"{self._read_timeout_s:g} s"
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise SourceError(
                    f"MJPEG stream {redact_url(self.spec.url)} broke: {_why(exc)}"
                ) from exc
            size = jpeg_size(data)
            limit = self.spec.max_frame_side
            if size is not None and max(size) > limit:
                # Checked before decoding: a tiny file can declare a 300 MB picture.
                self.decode_failures += 1
                self.oversized += 1
                if self.oversized == 1 or self.oversized % 100 == 0:
                    log.warning(
                        "%s: frame of %dx%d refused (max_frame_side %d), %d so far",
                        self.describe(),
                        *size,
                        limit,
                        self.oversized,
                    )
                consecutive += 1
                if consecutive >= MAX_CONSECUTIVE_DECODE_FAILURES:
                    raise SourceError(
                        f"{self.describe()}: {consecutive} frames in a row are larger than "
                        f"max_frame_side {limit} ({size[0]}x{size[1]})"
                    )
                continue
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is not None and image.size:
                return image
            self.decode_failures += 1
            consecutive += 1
            log.debug("%s: undecodable part of %d bytes", self.describe(), len(data))
            if consecutive >= MAX_CONSECUTIVE_DECODE_FAILURES:
                raise SourceError(f"{self.describe()}: {consecutive} parts in a row are not JPEG")

    def _readline(self) -> bytes:
        assert self._resp is not None, "read() before open()"
        if time.monotonic() > self._part_deadline:
            raise SourceError(
                f"MJPEG stream {redact_url(self.spec.url)}: no complete frame within "
                f"{self._read_timeout_s:g} s"
            )
        line = self._resp.readline(MAX_LINE_BYTES)
        if not line:
            raise SourceError(f"MJPEG stream {redact_url(self.spec.url)} closed by the server")
        return line

    def _is_boundary(self, line: bytes) -> bool:
        stripped = line.strip()
        if not stripped.startswith(b"--"):
            return False
        token = stripped.lstrip(b"-")
        if not self._boundary:
            if not token:
                return False
            self._boundary = token.removesuffix(b"--")
            return True
        # Lenient: accept "--b", "b" with extra dashes, and the closing "--b--".
        return token.startswith(self._boundary)

    def _read_part(self) -> bytes:
        """Bytes of the next part's body (normally one JPEG)."""
        self._part_deadline = time.monotonic() + self._read_timeout_s
        if not self._at_headers:
            skipped = 0
            while True:
                line = self._readline()
                if self._is_boundary(line):
                    break
                skipped += len(line)
                if skipped > MAX_PART_BYTES:
                    raise SourceError(f"{self.describe()}: no multipart boundary found")
        self._at_headers = False
        length: int | None = None
        for _ in range(MAX_HEADER_LINES):
            line = self._readline()
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    length = None  # fall back to scanning for the boundary
        else:
            raise SourceError(f"{self.describe()}: part headers too long")
        if length is not None:
            if not 0 <= length <= MAX_PART_BYTES:
                raise SourceError(f"{self.describe()}: implausible part size {length}")
            assert self._resp is not None
            data = self._resp.read(length)
            if len(data) < length:
                raise SourceError(f"MJPEG stream {redact_url(self.spec.url)} closed mid-frame")
            return data
        # No Content-Length: the body runs until the next boundary line.
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self._readline()
            if self._is_boundary(line):
                self._at_headers = True
                break
            chunks.append(line)
            total += len(line)
            if total > MAX_PART_BYTES:
                raise SourceError(f"{self.describe()}: part larger than {MAX_PART_BYTES} bytes")
        # The CRLF before the boundary belongs to the delimiter, not to the JPEG (which
        # ends with FF D9, so stripping CR/LF cannot cut image data).
        return b"".join(chunks).rstrip(b"\r\n")


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
