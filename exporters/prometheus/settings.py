"""Settings of the metrics endpoint (the ``[exporter]`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BasicAuth", "ExporterSettings", "TLSFiles"]


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """PEM files that turn the endpoint into HTTPS.

    ``client_ca``, when set, makes client certificates signed by that CA mandatory (mutual
    TLS); without it any client may connect.
    """

    cert: str
    key: str
    client_ca: str | None = None


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP basic-auth credentials every scrape must present. The password is never shown."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExporterSettings:
    """Address the Prometheus endpoint listens on (port 0 picks a free port), and its security.

    ``tls`` and ``basic_auth`` are ``None`` when not configured (plain HTTP, no auth).
    ``max_exported_cells`` bounds the leaf cells one scrape exports (``0``: no bound); see
    :mod:`tilewatch.exporters.prometheus.budget`.
    """

    host: str = "0.0.0.0"
    port: int = 9464
    tls: TLSFiles | None = None
    basic_auth: BasicAuth | None = None
    max_exported_cells: int = 10_000
