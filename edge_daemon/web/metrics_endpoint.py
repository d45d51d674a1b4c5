"""``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz`` on the daemon's
HTTP service; the collector and the health logic are :mod:`edge_daemon.ops.prometheus`'s."""

from __future__ import annotations

from http import HTTPStatus

from prometheus_client import CollectorRegistry, generate_latest

from edge_daemon.ops.prometheus import CONTENT_TYPE, DaemonCollector
from edge_daemon.web.http import HttpService, Request


class MetricsEndpoint:
    """``/metrics`` (Prometheus text format), ``/healthz`` (200/503), ``/readyz`` (200/503)."""

    def __init__(self, service: HttpService, collector: DaemonCollector) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._collector = collector
        service.route("/metrics", self._metrics)
        service.route("/healthz", self._healthz)
        service.route("/readyz", self._readyz)

    def _metrics(self, req: Request) -> None:
        req.send(HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE)

    def _healthz(self, req: Request) -> None:
        h = self._collector.health()
        req.send_json(HTTPStatus.OK if h.healthy else HTTPStatus.SERVICE_UNAVAILABLE, h.as_dict())

    def _readyz(self, req: Request) -> None:
        h = self._collector.health()
        ok = h.ready and h.healthy
        req.send_json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, h.as_dict())
