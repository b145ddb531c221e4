"""The metrics endpoint: prometheus-client's HTTP server on ``[exporter] listen``."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_http_server

from aggregators.errors import TilewatchError

__all__ = ["ExporterError", "MetricsServer"]


class ExporterError(TilewatchError):
    """The metrics endpoint or a generated file could not be produced."""


class MetricsServer:
    """Serves ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    Port 0 picks a free port; :attr:`port` tells which. Nothing starts before :meth:`start`.
    """

    def __init__(self, registry: CollectorRegistry, host: str = "0.0.0.0", port: int = 9464):
        self.registry = registry
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        """Bind and serve; raises ExporterError if the address cannot be bound."""
        try:
            self._server, self._thread = start_http_server(
                self.port, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            raise ExporterError(
                f"cannot listen on {self.host}:{self.port} for metrics: {exc}"
            ) from exc
        self.port = self._server.server_port
        return self

    @property
    def url(self) -> str:
        """The metrics URL, with a loopback host when listening on every address."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
