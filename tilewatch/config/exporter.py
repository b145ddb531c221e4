"""The ``[exporter]`` section: the metrics endpoint's address, TLS and basic auth.

Maps to :class:`tilewatch.exporters.prometheus.settings.ExporterSettings`; reference in
``docs/configuration.md``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from tilewatch.config.base import ConfigError, Table, resolve_env
from tilewatch.exporters.prometheus.settings import BasicAuth, ExporterSettings, TLSFiles

__all__ = ["KEYS", "parse_exporter"]

KEYS = (
    "listen",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "basic_auth_user",
    "basic_auth_password",
    "max_exported_cells",
)
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_LISTEN_EXPECTED = '"host:port", "[ipv6]:port" or ":port" with a port in 0..65535'


def parse_exporter(data: Mapping[str, Any], source: str) -> ExporterSettings:
    table = Table(source, "exporter", data, KEYS)
    defaults = ExporterSettings()
    host, port = defaults.host, defaults.port
    if "listen" in table.data:
        listen = table.data["listen"]
        address = _parse_listen(listen) if isinstance(listen, str) else None
        if address is None:
            raise table.error("listen", _LISTEN_EXPECTED, listen)
        host, port = address[0] or defaults.host, address[1]
    return ExporterSettings(
        host=host,
        port=port,
        tls=_parse_exporter_tls(table),
        basic_auth=_parse_basic_auth(table),
        max_exported_cells=table.integer("max_exported_cells", defaults.max_exported_cells, 0),
    )


def _parse_exporter_tls(table: Table) -> TLSFiles | None:
    cert, key, client_ca = (
        _readable_file(table, k) for k in ("tls_cert", "tls_key", "tls_client_ca")
    )
    if (cert is None) != (key is None):
        present, missing = ("tls_cert", "tls_key") if key is None else ("tls_key", "tls_cert")
        raise ConfigError(
            f"{table.where(missing)}: expected a PEM file path since {present} is set, got no key"
        )
    if cert is None or key is None:
        if client_ca is not None:
            raise ConfigError(
                f"{table.where('tls_client_ca')}: expected tls_cert and tls_key to be set too "
                "(client certificates need TLS), got neither"
            )
        return None
    return TLSFiles(cert=cert, key=key, client_ca=client_ca)


def _readable_file(table: Table, key: str) -> str | None:
    """A path that names a readable file, or ``None`` when ``key`` is absent."""
    if key not in table.data:
        return None
    path = table.data[key]
    if not isinstance(path, str) or not path.strip():
        raise table.error(key, "a path to a PEM file", path)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise table.error(key, f"a readable PEM file ({exc.strerror or exc})", path) from None
    return path


def _parse_basic_auth(table: Table) -> BasicAuth | None:
    """``basic_auth_user`` and ``basic_auth_password``, both or neither; ``${env:NAME}`` allowed.

    Errors never show the password, nor the value of an environment variable.
    """
    user = resolve_env(table.data.get("basic_auth_user"), table.where("basic_auth_user"))
    password = resolve_env(
        table.data.get("basic_auth_password"), table.where("basic_auth_password")
    )
    if user is None and password is None:
        return None
    if user is None:
        raise ConfigError(
            f"{table.where('basic_auth_user')}: expected a user name since "
            "basic_auth_password is set, got no key"
        )
    if not isinstance(user, str) or not user or ":" in user or not user.isprintable():
        raise ConfigError(
            f"{table.where('basic_auth_user')}: expected a non-empty printable user name "
            "without ':', got another value"
        )
    if password is None:
        raise ConfigError(
            f"{table.where('basic_auth_password')}: expected a password (or "
            '"${env:NAME}") since basic_auth_user is set, got no key'
        )
    if not isinstance(password, str) or not password:
        raise ConfigError(
            f"{table.where('basic_auth_password')}: expected a non-empty string, got another value"
        )
    return BasicAuth(user=user, password=password)


def _parse_listen(text: str) -> tuple[str, int] | None:
    """Split ``host:port``, ``[ipv6]:port`` or ``:port``; ``None`` if it is none of them."""
    if text.startswith("["):
        host, bracket, port_text = text[1:].partition("]:")
        if not bracket:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or (host and _HOST.fullmatch(host) is None):
            return None
    if _PORT.fullmatch(port_text) is None or int(port_text) > 65535:
        return None
    return host, int(port_text)
