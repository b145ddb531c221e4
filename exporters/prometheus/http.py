"""The metrics endpoint: prometheus-client's threaded WSGI server on ``[exporter] listen``.

Optionally over TLS (``tls_cert`` / ``tls_key``), with required client certificates (mutual
TLS, ``tls_client_ca``), and behind HTTP basic auth (:mod:`tilewatch.exporters.prometheus.auth`).
Other WSGI apps (the tile page) may be mounted on paths beside ``/metrics``
(:class:`MetricsServer` ``routes``); they are served by the same server, with the same TLS and
the same basic auth, and every other path is answered with the metrics, written by
:mod:`tilewatch.exporters.prometheus.exposition`.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import (
    ThreadingWSGIServer,
    _get_best_family,
    _get_ssl_ctx,
    _SilentHandler,
)

from tilewatch.aggregators.errors import TilewatchError
from tilewatch.exporters.prometheus.auth import BasicAuthMiddleware
from tilewatch.exporters.prometheus.exposition import exposition_app
from tilewatch.exporters.prometheus.settings import BasicAuth, TLSFiles

__all__ = ["ExporterError", "MetricsServer", "WSGIApp"]

#: A WSGI application.
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

log = logging.getLogger(__name__)

#: prometheus-client's private helper picking the address family of ``host`` (IPv4 or IPv6).
_best_family: Callable[[str, int], tuple[socket.AddressFamily, str]] = _get_best_family

#: Seconds a client may take for the TLS handshake and for sending its request.
CLIENT_TIMEOUT = 10.0


class ExporterError(TilewatchError):
    """The metrics endpoint or a generated file could not be produced."""


class _Handler(_SilentHandler):
    """prometheus-client's quiet request handler, with a timeout and the TLS handshake.

    The handshake runs here, on the request's own thread with a timeout, rather than in
    ``accept()`` on the serving thread, where one client that connects and sends nothing
    would block every scrape.
    """

    timeout = CLIENT_TIMEOUT

    def setup(self) -> None:
        super().setup()  # applies self.timeout to the connection
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()


class _Server(ThreadingWSGIServer):
    """A thread per request; clients that fail the handshake or time out are logged at DEBUG."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics request from %s failed", client_address, exc_info=True)


def _serve(
    host: str, port: int, app: Callable[..., Any], context: ssl.SSLContext | None
) -> WSGIServer:
    """Bind prometheus-client's threaded WSGI server to ``host:port`` serving ``app``.

    The same steps as ``prometheus_client.exposition.start_wsgi_server``, which cannot wrap
    its WSGI app (for basic auth) and does the TLS handshake inside ``accept()``; its
    address-family helper is private, hence this one function.
    """

    class Server(_Server):
        """A class per server, since ``address_family`` is a class attribute."""

    Server.address_family, addr = _best_family(host, port)
    server = make_server(addr, port, app, Server, handler_class=_Handler)
    if context is not None:
        try:
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        except BaseException:
            server.server_close()
            raise
    return server


class _Router:
    """Sends a request to the app mounted on its path, else to the metrics app.

    A route ending in ``/`` other than ``/`` itself is a prefix (``/api/`` takes ``/api/cells``);
    any other route is an exact path (``/`` is the page, never a prefix).
    """

    def __init__(self, metrics: WSGIApp, routes: Mapping[str, WSGIApp]) -> None:
        self._metrics = metrics
        self._exact = {p: app for p, app in routes.items() if p == "/" or not p.endswith("/")}
        self._prefixes = sorted(
            ((p, app) for p, app in routes.items() if p != "/" and p.endswith("/")),
            key=lambda item: -len(item[0]),
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        app = self._exact.get(path)
        if app is None:
            app = next((a for p, a in self._prefixes if path.startswith(p)), self._metrics)
        return app(environ, start_response)


def _ssl_context(tls: TLSFiles) -> ssl.SSLContext:
    """A server context for ``tls``; raises ExporterError naming the file that failed."""
    try:
        return _get_ssl_ctx(
            tls.cert,
            tls.key,
            ssl.PROTOCOL_TLS_SERVER,
            cafile=tls.client_ca,
            client_auth_required=tls.client_ca is not None,
            tls_min_version=ssl.TLSVersion.TLSv1_2,
        )
    except (OSError, ValueError) as exc:
        # prometheus-client's messages name the files: "Cannot load server certificate file
        # 'x.pem' or its private key file 'x.key': ..." or "Cannot load CA certificate ...".
        raise ExporterError(f"cannot serve metrics over TLS: {exc}") from exc


class MetricsServer:
    """Serves ``registry`` at ``http(s)://host:port/metrics`` from a daemon thread.

    Port 0 picks a free port; :attr:`port` tells which. Nothing starts before :meth:`start`.

    Parameters
    ----------
    registry, host, port
        What to serve and where.
    tls
        Certificate and key to serve HTTPS with; with ``client_ca``, clients must present a
        certificate signed by it. ``None`` serves plain HTTP.
    auth
        Credentials every request must present (HTTP basic auth). ``None`` lets anyone in.
    routes
        WSGI apps served beside the metrics, by path (``/``) or path prefix (``/api/``); they
        sit behind the same TLS and basic auth. Every other path serves the metrics.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = "0.0.0.0",
        port: int = 9464,
        *,
        tls: TLSFiles | None = None,
        auth: BasicAuth | None = None,
        routes: Mapping[str, WSGIApp] | None = None,
    ) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.tls = tls
        self.auth = auth
        self.routes = dict(routes or {})
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        """Bind and serve; raises ExporterError if the address cannot be bound or TLS fails."""
        context = _ssl_context(self.tls) if self.tls is not None else None
        app: Callable[..., Any] = exposition_app(self.registry)
        if self.routes:
            app = _Router(app, self.routes)
        if self.auth is not None:
            app = BasicAuthMiddleware(app, self.auth.user, self.auth.password)
            if context is None:
                log.warning(
                    "metrics endpoint: basic auth without TLS sends the credentials in clear "
                    "text; set [exporter] tls_cert and tls_key"
                )
        try:
            self._server = _serve(self.host, self.port, app, context)
        except OSError as exc:
            raise ExporterError(
                f"cannot listen on {self.host}:{self.port} for metrics: {exc}"
            ) from exc
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tilewatch-metrics", daemon=True
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """The metrics URL, with a loopback host when listening on every address."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}/metrics"

    @property
    def page_url(self) -> str:
        """The URL of ``/`` (the tile page when one is mounted)."""
        return self.url.removesuffix("metrics")

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
