"""The tile page as a WSGI app: the page, its static assets and the JSON API.

Mounted on the metrics server (:class:`~tilewatch.exporters.prometheus.http.MetricsServer`
``routes``: :meth:`TilePage.routes`), so it is served with the same TLS and basic auth as
``/metrics``. Every answer carries a restrictive Content-Security-Policy (:data:`CSP`: only this
origin's own script and style files, no inline script, no framing, no plugins) and
``X-Content-Type-Options: nosniff``. The assets are package data (``exporters/web/static``), read
once; there is no build step and the page loads nothing from another origin.

API errors are JSON: ``400 {"error": reason}`` for a bad query parameter, ``404`` for an unknown
endpoint, ``405`` for a method other than GET or HEAD, ``500`` (logged) for a failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import orjson

from tilewatch.exporters.web.api import ENDPOINTS, Api
from tilewatch.exporters.web.query import QueryError, parse_query

__all__ = ["ASSETS", "CSP", "TilePage"]

log = logging.getLogger(__name__)

#: Content-Security-Policy of every answer.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'"
)
#: Served asset -> content type (``/`` is ``index.html``).
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "tiles.js": "text/javascript; charset=utf-8",
    "tiles.css": "text/css; charset=utf-8",
}

_COMMON = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
]


def _read_assets() -> dict[str, bytes]:
    folder = resources.files("tilewatch.exporters.web").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in ASSETS}


class TilePage:
    """The page's WSGI app over an :class:`~tilewatch.exporters.web.api.Api`."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self._assets = _read_assets()

    def routes(self) -> dict[str, Callable[..., Iterable[bytes]]]:
        """Paths to mount on the metrics server: the page, the assets, the API."""
        return {"/": self, "/static/": self, "/api/": self}

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        if method not in ("GET", "HEAD"):
            return self._json(
                start_response,
                "405 Method Not Allowed",
                {"error": "GET only"},
                method,
                [("Allow", "GET, HEAD")],
            )
        if path.startswith("/api/"):
            return self._api(environ, start_response, path.removeprefix("/api/"), method)
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        if name not in ASSETS or (path != "/" and name == "index.html"):
            body = b"404 Not Found\n"
            start_response(
                "404 Not Found",
                [*_COMMON, ("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body] if method == "GET" else []
        body = self._assets[name]
        start_response(
            "200 OK",
            [
                *_COMMON,
                ("Content-Type", ASSETS[name]),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
            ],
        )
        return [body] if method == "GET" else []

    def _api(
        self, environ: dict[str, Any], start_response: Callable[..., Any], name: str, method: str
    ) -> Iterable[bytes]:
        endpoint = ENDPOINTS.get(name)
        if endpoint is None:
            return self._json(
                start_response,
                "404 Not Found",
                {"error": f"no endpoint /api/{name[:64]}; endpoints: {', '.join(ENDPOINTS)}"},
                method,
            )
        try:
            doc = endpoint(self.api, parse_query(environ.get("QUERY_STRING", "")))
        except QueryError as exc:
            return self._json(start_response, "400 Bad Request", {"error": str(exc)}, method)
        except Exception:
            log.exception("tile page: /api/%s failed", name)
            return self._json(
                start_response, "500 Internal Server Error", {"error": "internal error"}, method
            )
        return self._json(start_response, "200 OK", doc, method)

    @staticmethod
    def _json(
        start_response: Callable[..., Any],
        status: str,
        doc: dict[str, Any],
        method: str,
        extra: list[tuple[str, str]] | None = None,
    ) -> Iterable[bytes]:
        body = orjson.dumps(doc)
        start_response(
            status,
            [
                *_COMMON,
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                *(extra or []),
            ],
        )
        return [body] if method == "GET" else []
