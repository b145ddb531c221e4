"""The metrics endpoint's security: HTTPS, mutual TLS and basic auth, from config to scrape.

Certificates are made per test module with the ``openssl`` command line (a throwaway CA, a
server certificate for 127.0.0.1 and localhost, client certificates from that CA and from
another one).
"""

from __future__ import annotations

import base64
import http.client
import logging
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge

from tilewatch.config import ConfigError, parse_config
from tilewatch.exporters.prometheus.auth import BasicAuthMiddleware
from tilewatch.exporters.prometheus.http import ExporterError, MetricsServer
from tilewatch.exporters.prometheus.settings import BasicAuth, ExporterSettings, TLSFiles

SOURCE = "tilewatch.toml"
PASSWORD = "correct horse battery staple"
#: What a failed TLS connection looks like from urllib, depending on where it fails.
REFUSED = (urllib.error.URLError, ssl.SSLError, ConnectionError, http.client.HTTPException)


# --- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Pki:
    """A CA with a server certificate (127.0.0.1, localhost) and a client one; a rogue client."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    ca = _ca(directory, "test-ca")
    server = _leaf(
        directory,
        "server",
        ca,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    client = _leaf(directory, "prometheus", ca, "extendedKeyUsage=clientAuth\n")
    rogue_ca = _ca(directory, "rogue-ca")
    rogue = _leaf(directory, "rogue", rogue_ca, "extendedKeyUsage=clientAuth\n")
    return Pki(ca[0], *server, *client, *rogue)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Gauge("tilewatch_test_gauge", "A gauge for the endpoint test.", registry=reg).set(3)
    return reg


@pytest.fixture
def serve(registry: CollectorRegistry) -> Iterator[type[MetricsServer]]:
    """``serve(tls=..., auth=...)`` starts a MetricsServer on a free port; all are stopped."""
    started: list[MetricsServer] = []

    def start(**options: object) -> MetricsServer:
        server = MetricsServer(registry, "127.0.0.1", 0, **options)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start  # type: ignore[misc]
    for server in started:
        server.stop()


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def get(
    url: str,
    context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, str]:
    """Status, headers and body of a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read().decode()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --- TLS -------------------------------------------------------------------------------------


def test_https_with_a_certificate_the_client_trusts(serve: type[MetricsServer], pki: Pki) -> None:
    server = serve(tls=TLSFiles(str(pki.server_cert), str(pki.server_key)))
    assert server.url == f"https://127.0.0.1:{server.port}/metrics"
    status, headers, body = get(server.url, client_context(pki))
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "tilewatch_test_gauge 3.0" in body
    # The certificate names localhost too.
    assert get(f"https://localhost:{server.port}/metrics", client_context(pki))[0] == 200


def test_plain_http_and_untrusted_clients_are_refused(serve: type[MetricsServer], pki: Pki) -> None:
    server = serve(tls=TLSFiles(str(pki.server_cert), str(pki.server_key)))
    with pytest.raises(REFUSED):
        get(f"http://127.0.0.1:{server.port}/metrics")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(server.url, ssl.create_default_context())  # does not trust the test CA
    assert get(server.url, client_context(pki))[0] == 200  # and the server still serves


def test_a_silent_client_does_not_block_scrapes(serve: type[MetricsServer], pki: Pki) -> None:
    """The handshake runs on the request's thread, not in accept() on the serving thread."""
    server = serve(tls=TLSFiles(str(pki.server_cert), str(pki.server_key)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        assert get(server.url, client_context(pki))[0] == 200


def test_mutual_tls_requires_a_client_certificate_from_the_ca(
    serve: type[MetricsServer], pki: Pki
) -> None:
    tls = TLSFiles(str(pki.server_cert), str(pki.server_key), client_ca=str(pki.ca))
    server = serve(tls=tls)
    with pytest.raises(REFUSED):
        get(server.url, client_context(pki))  # no client certificate
    with pytest.raises(REFUSED):
        get(server.url, client_context(pki, pki.rogue_cert, pki.rogue_key))
    status, _, body = get(server.url, client_context(pki, pki.client_cert, pki.client_key))
    assert status == 200
    assert "tilewatch_test_gauge 3.0" in body


def test_bad_certificate_files_raise_exporter_error_naming_the_file(
    registry: CollectorRegistry, pki: Pki, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        (TLSFiles(str(garbage), str(pki.server_key)), str(garbage)),
        (TLSFiles(str(pki.server_cert), str(pki.client_key)), str(pki.client_key)),  # mismatch
        (TLSFiles(str(pki.server_cert), str(pki.server_key), str(garbage)), str(garbage)),
        (TLSFiles(str(tmp_path / "absent.pem"), str(pki.server_key)), "absent.pem"),
    ]
    for tls, named in cases:
        server = MetricsServer(registry, "127.0.0.1", 0, tls=tls)
        with pytest.raises(ExporterError, match="over TLS") as info:
            server.start()
        assert named in str(info.value)
        assert server._server is None


# --- basic auth --------------------------------------------------------------------------------


def test_basic_auth_challenges_rejects_and_admits(serve: type[MetricsServer]) -> None:
    server = serve(auth=BasicAuth("prometheus", PASSWORD))
    for headers in (
        {},
        basic("prometheus", "wrong"),
        basic("prometheus", PASSWORD + "x"),
        basic("grafana", PASSWORD),
        {"Authorization": "Bearer " + PASSWORD},
        {"Authorization": "Basic not-base64!"},
    ):
        status, answer, body = get(server.url, headers=headers)
        assert status == 401, headers
        assert answer["WWW-Authenticate"].startswith('Basic realm="tilewatch"')
        assert "tilewatch_test_gauge" not in body
    status, _, body = get(server.url, headers=basic("prometheus", PASSWORD))
    assert status == 200
    assert "tilewatch_test_gauge 3.0" in body


def test_basic_auth_over_tls(serve: type[MetricsServer], pki: Pki) -> None:
    tls = TLSFiles(str(pki.server_cert), str(pki.server_key))
    server = serve(tls=tls, auth=BasicAuth("prometheus", PASSWORD))
    assert get(server.url, client_context(pki))[0] == 401
    status, _, body = get(server.url, client_context(pki), basic("prometheus", PASSWORD))
    assert (status, "tilewatch_test_gauge 3.0" in body) == (200, True)


def test_basic_auth_without_tls_warns_once_at_start(
    serve: type[MetricsServer], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tilewatch.exporters.prometheus.http"):
        server = serve(auth=BasicAuth("prometheus", PASSWORD))
        get(server.url, headers=basic("prometheus", PASSWORD))
        get(server.url)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "clear text" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tilewatch.exporters.prometheus.http"):
        serve(tls=TLSFiles(str(pki.server_cert), str(pki.server_key)), auth=BasicAuth("p", "q"))
    assert not caplog.records


def test_middleware_rejects_a_user_name_with_a_colon() -> None:
    with pytest.raises(ValueError, match="':'"):
        BasicAuthMiddleware(lambda environ, start: [], "a:b", "pw")


# --- from config -----------------------------------------------------------------------------


def test_config_to_scrape_with_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    pki: Pki,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TILEWATCH_METRICS_PASSWORD", PASSWORD)
    config = parse_config(
        {
            "exporter": {
                "listen": "127.0.0.1:0",
                "tls_cert": str(pki.server_cert),
                "tls_key": str(pki.server_key),
                "tls_client_ca": str(pki.ca),
                "basic_auth_user": "prometheus",
                "basic_auth_password": "${env:TILEWATCH_METRICS_PASSWORD}",
            }
        },
        SOURCE,
    )
    exporter = config.exporter
    assert exporter == ExporterSettings(
        host="127.0.0.1",
        port=0,
        tls=TLSFiles(str(pki.server_cert), str(pki.server_key), str(pki.ca)),
        basic_auth=BasicAuth("prometheus", PASSWORD),
    )
    assert PASSWORD not in repr(config)
    assert "prometheus" in repr(config)
    context = client_context(pki, pki.client_cert, pki.client_key)
    with caplog.at_level(logging.DEBUG):
        server = MetricsServer(
            registry, exporter.host, exporter.port, tls=exporter.tls, auth=exporter.basic_auth
        ).start()
        try:
            logging.getLogger("test").info("started %r %r", server.__dict__, config)
            assert get(server.url, context)[0] == 401
            assert get(server.url, context, basic("prometheus", "nope"))[0] == 401
            assert get(server.url, context, basic("prometheus", PASSWORD))[0] == 200
        finally:
            server.stop()
    assert caplog.records
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(server.__dict__)


def test_config_without_security_keys_has_none() -> None:
    exporter = parse_config({"exporter": {"listen": ":9464"}}).exporter
    assert (exporter.tls, exporter.basic_auth) == (None, None)


def _error(exporter: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"exporter": exporter}, SOURCE)
    return str(info.value)


def test_config_errors(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key, ca = str(pki.server_cert), str(pki.server_key), str(pki.ca)
    where = f"{SOURCE}: [exporter]"
    assert _error({"tls_cert": cert}) == (
        f"{where}.tls_key: expected a PEM file path since tls_cert is set, got no key"
    )
    assert _error({"tls_key": key}).startswith(f"{where}.tls_cert: expected a PEM file path")
    assert _error({"tls_client_ca": ca}).startswith(
        f"{where}.tls_client_ca: expected tls_cert and tls_key to be set too"
    )
    missing = str(tmp_path / "missing.pem")
    assert _error({"tls_cert": missing, "tls_key": key}) == (
        f"{where}.tls_cert: expected a readable PEM file (No such file or directory), "
        f'got "{missing}"'
    )
    assert _error({"tls_cert": cert, "tls_key": key, "tls_client_ca": str(tmp_path)}) == (
        f'{where}.tls_client_ca: expected a readable PEM file (Is a directory), got "{tmp_path}"'
    )
    assert _error({"tls_cert": 1, "tls_key": key}) == (
        f"{where}.tls_cert: expected a path to a PEM file, got 1"
    )
    assert _error({"basic_auth_user": "prometheus"}) == (
        f'{where}.basic_auth_password: expected a password (or "${{env:NAME}}") since '
        "basic_auth_user is set, got no key"
    )
    assert _error({"basic_auth_password": PASSWORD}).startswith(
        f"{where}.basic_auth_user: expected a user name"
    )
    for user in ("", "a:b", 7):
        message = _error({"basic_auth_user": user, "basic_auth_password": PASSWORD})
        assert message.startswith(f"{where}.basic_auth_user: expected a non-empty printable")
        assert PASSWORD not in message
    for password in ("", 42):
        message = _error({"basic_auth_user": "u", "basic_auth_password": password})
        assert message.startswith(f"{where}.basic_auth_password: expected a non-empty string")
    monkeypatch.delenv("TILEWATCH_UNSET_PASSWORD", raising=False)
    assert _error(
        {"basic_auth_user": "u", "basic_auth_password": "${env:TILEWATCH_UNSET_PASSWORD}"}
    ) == (
        f"{where}.basic_auth_password: expected the environment variable "
        "TILEWATCH_UNSET_PASSWORD to be set, got it unset"
    )
    assert _error({"basic_auth_usr": "u"}).startswith(f"{where}.basic_auth_usr: unknown key")
