"""MetricsServer: serves a registry over HTTP, reports its URL, stops cleanly."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge

from tilewatch.aggregators.errors import TilewatchError
from tilewatch.exporters.prometheus.http import ExporterError, MetricsServer


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Gauge("tilewatch_test_gauge", "A gauge for the endpoint test.", registry=reg).set(3)
    return reg


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[MetricsServer]:
    srv = MetricsServer(registry, "127.0.0.1", 0)
    yield srv
    srv.stop()


def test_serves_metrics_on_a_free_port(server: MetricsServer) -> None:
    assert server.start() is server
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    with urllib.request.urlopen(server.url, timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        body = resp.read().decode()
    assert "tilewatch_test_gauge 3.0" in body


def test_stop_is_idempotent_and_closes_the_port(server: MetricsServer) -> None:
    server.stop()  # before start: nothing to do
    server.start()
    url = server.url
    server.stop()
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)


def test_nothing_listens_before_start(registry: CollectorRegistry) -> None:
    srv = MetricsServer(registry, "127.0.0.1", 0)
    assert srv.port == 0
    assert srv._server is None


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:9464/metrics"),
        ("::", "http://[::1]:9464/metrics"),
        ("::1", "http://[::1]:9464/metrics"),
        ("localhost", "http://localhost:9464/metrics"),
        ("10.1.2.3", "http://10.1.2.3:9464/metrics"),
    ],
)
def test_url_uses_a_reachable_host(host: str, url: str) -> None:
    assert MetricsServer(CollectorRegistry(), host, 9464).url == url


def test_port_in_use_raises_exporter_error_naming_the_address(
    registry: CollectorRegistry,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        srv = MetricsServer(registry, "127.0.0.1", port)
        with pytest.raises(ExporterError, match=f"127.0.0.1:{port}") as info:
            srv.start()
        srv.stop()
    assert isinstance(info.value, TilewatchError)
    assert isinstance(info.value.__cause__, OSError)
    assert srv._server is None
