"""HTTP basic auth for the metrics endpoint, as WSGI middleware (prometheus-client has none)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["BasicAuthMiddleware"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_UNAUTHORIZED = b"401 Unauthorized: this endpoint needs HTTP basic auth credentials\n"


def _digest(credentials: bytes) -> bytes:
    return hashlib.sha256(credentials).digest()


class BasicAuthMiddleware:
    """Wraps a WSGI app (e.g. ``make_wsgi_app(registry)``) and lets only ``user:password`` in.

    Every request, whatever its path or method, needs an ``Authorization: Basic ...`` header
    with exactly these credentials; any other request gets ``401`` with a
    ``WWW-Authenticate: Basic realm="..."`` challenge and never reaches ``app``.

    Only a SHA-256 digest of ``user:password`` is kept, and it is compared with the digest of
    what the client sent using :func:`hmac.compare_digest`: the comparison takes the same time
    however much of the credentials is right, and their length is not revealed either.

    Examples
    --------
    >>> def app(environ, start_response):
    ...     start_response("200 OK", [])
    ...     return [b"metrics"]
    >>> guarded = BasicAuthMiddleware(app, "prometheus", "s3cret")
    >>> statuses = []
    >>> guarded({}, lambda status, headers: statuses.append(status))
    [b'401 Unauthorized: this endpoint needs HTTP basic auth credentials\\n']
    >>> token = base64.b64encode(b"prometheus:s3cret").decode()
    >>> guarded({"HTTP_AUTHORIZATION": f"Basic {token}"}, lambda s, h: statuses.append(s))
    [b'metrics']
    >>> statuses
    ['401 Unauthorized', '200 OK']
    """

    def __init__(self, app: WSGIApp, user: str, password: str, realm: str = "tilewatch") -> None:
        if ":" in user:
            raise ValueError("a basic-auth user name cannot contain ':'")
        if '"' in realm or "\\" in realm:
            raise ValueError("a basic-auth realm cannot contain '\"' or '\\'")
        self._app = app
        self._expected = _digest(f"{user}:{password}".encode())
        self._challenge = f'Basic realm="{realm}", charset="UTF-8"'

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self._authorized(environ.get("HTTP_AUTHORIZATION", "")):
            return self._app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [
                ("WWW-Authenticate", self._challenge),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(_UNAUTHORIZED))),
            ],
        )
        return [_UNAUTHORIZED]

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            credentials = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(_digest(credentials), self._expected)
