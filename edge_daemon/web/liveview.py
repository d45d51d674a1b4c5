"""The live view: one page with every camera's picture, faces, fps and latest events.

Routes: ``/`` (the page), ``/timeline`` (per camera, the share of time each emotion was
dominant per minute or hour, drawn from ``/api/events``), ``/api/state`` (JSON the page
polls), ``/stream/<camera>.mjpg`` (multipart MJPEG at ``live_view.fps``),
``/snapshot/<camera>.jpg``, ``/api/events`` (the event history: ``camera since until type
limit order``, see :mod:`edge_daemon.publish.history`), ``/api/picture?camera=&seq=`` (the
picture kept with an alert). Bound to 127.0.0.1 unless configured otherwise; with
``token`` set every route needs ``?token=...`` (the page forwards its own token to the
picture and state URLs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any

from edge_daemon import __version__
from edge_daemon.publish.history import HistoryError, HistoryQuery
from edge_daemon.publish.history import picture as history_picture
from edge_daemon.publish.history import query as query_history
from edge_daemon.web.http import HttpService, Request
from edge_daemon.web.live import LiveSlot

BOUNDARY = "edgeframe"


class LiveView:
    """Serves the page and streams; cameras come from ``cameras()`` at each request.

    ``cameras()`` returns ``{name: (slot, status)}``; asking at request time keeps the
    view right across hot reloads (a camera added by SIGHUP appears on the next poll).
    """

    def __init__(
        self,
        service: HttpService,
        cameras: Callable[[], dict[str, tuple[LiveSlot, str]]],
        fps: float,
        max_clients: int,
        history_dir: Path | None = None,
    ) -> None:
        self.service = service
        self._history_dir = history_dir  # the state directory; None: no history kept
        self._cameras = cameras
        self._interval = 1.0 / fps
        self._clients = threading.BoundedSemaphore(max_clients)
        self.streams_refused = 0
        pages = resources.files("edge_daemon.web")
        self._page = pages.joinpath("live.html").read_text(encoding="utf-8")
        self._timeline = pages.joinpath("timeline.html").read_text(encoding="utf-8")
        service.route("/", self._index)
        service.route("/timeline", self._timeline_page)
        service.route("/api/state", self._state)
        service.route("/api/events", self._events)
        service.route("/api/picture", self._picture)
        service.route_prefix("/stream/", self._stream)
        service.route_prefix("/snapshot/", self._snapshot)

    def _index(self, req: Request) -> None:
        page = self._page.replace("{{version}}", __version__)
        req.send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _timeline_page(self, req: Request) -> None:
        page = self._timeline.replace("{{version}}", __version__)
        req.send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _state(self, req: Request) -> None:
        cams: dict[str, Any] = {}
        for name, (slot, status) in sorted(self._cameras().items()):
            cams[name] = {"status": status, **slot.state()}
        req.send_json(HTTPStatus.OK, {"version": __version__, "cameras": cams})

    def _events(self, req: Request) -> None:
        if self._history_dir is None:
            req.send_json(
                HTTPStatus.NOT_FOUND,
                {
                    "error": "no event history: the daemon runs without a state directory "
                    "(state.dir)"
                },
            )
            return
        params = {k: v[-1] for k, v in req.query.items()}
        try:
            q = HistoryQuery.from_params(params)
            events, truncated = query_history(self._history_dir, q)
        except HistoryError as exc:
            req.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        req.send_json(
            HTTPStatus.OK, {"events": events, "count": len(events), "truncated": truncated}
        )

    def _picture(self, req: Request) -> None:
        """``/api/picture?camera=C&seq=N``: the JPEG kept with that alert."""
        if self._history_dir is None:
            req.send_json(HTTPStatus.NOT_FOUND, {"error": "no event history"})
            return
        camera = req.query.get("camera", [""])[-1]
        try:
            seq = int(req.query.get("seq", [""])[-1])
            jpeg = history_picture(self._history_dir, camera, seq)
        except ValueError:
            req.send_json(HTTPStatus.BAD_REQUEST, {"error": "give camera=NAME&seq=NUMBER"})
            return
        if jpeg is None:
            req.send_json(HTTPStatus.NOT_FOUND, {"error": f"no picture for {camera} #{seq}"})
            return
        req.send(HTTPStatus.OK, jpeg, "image/jpeg")

    def _slot(self, req: Request, prefix: str, suffix: str) -> LiveSlot | None:
        name = req.path.removeprefix(prefix)
        if not name.endswith(suffix):
            req.send_text(HTTPStatus.NOT_FOUND, "not found\n")
            return None
        entry = self._cameras().get(name.removesuffix(suffix))
        if entry is None:
            req.send_text(HTTPStatus.NOT_FOUND, f"no camera {name.removesuffix(suffix)!r}\n")
            return None
        return entry[0]

    def _snapshot(self, req: Request) -> None:
        slot = self._slot(req, "/snapshot/", ".jpg")
        if slot is None:
            return
        picture = slot.jpeg()
        if picture is None:
            req.send_text(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet\n")
            return
        req.send(HTTPStatus.OK, picture[1], "image/jpeg")

    def _stream(self, req: Request) -> None:
        slot = self._slot(req, "/stream/", ".mjpg")
        if slot is None:
            return
        if not self._clients.acquire(blocking=False):
            self.streams_refused += 1
            req.send_text(HTTPStatus.SERVICE_UNAVAILABLE, "too many live viewers\n")
            return
        try:
            self._send_stream(req, slot)
        finally:
            self._clients.release()

    def _send_stream(self, req: Request, slot: LiveSlot) -> None:
        h = req.handler
        h.send_response(HTTPStatus.OK)
        h.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        h.send_header("Cache-Control", "no-store")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        last_seq = -1
        stopping = self.service.stopping
        while not stopping.is_set():
            started = time.monotonic()
            picture = slot.jpeg()
            if picture is not None and picture[0] != last_seq:
                last_seq = picture[0]
                h.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(picture[1])}\r\n\r\n".encode()
                )
                h.wfile.write(picture[1])
                h.wfile.write(b"\r\n")
                h.wfile.flush()
            stopping.wait(max(0.0, self._interval - (time.monotonic() - started)))
