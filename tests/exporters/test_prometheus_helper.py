"""The PrometheusServer test helper, against the real Debian prometheus binary."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.helpers import PrometheusServer, free_port


@pytest.mark.prometheus
def test_prometheus_scrapes_itself_and_answers_queries(prometheus_bin: str) -> None:
    port = free_port()
    instance = f"127.0.0.1:{port}"
    with PrometheusServer([instance], binary=prometheus_bin, port=port) as prometheus:
        assert prometheus.address == instance
        assert prometheus.log_path is not None
        work_dir = prometheus.log_path.parent
        assert (work_dir / "prometheus.yml").is_file()

        result = prometheus.wait_for(
            'up{job="tilewatch"}',
            lambda r: len(r) == 1 and r[0]["value"][1] == "1",
            timeout=30,
        )
        assert result[0]["metric"]["instance"] == instance

        scalar = prometheus.query("scalar(vector(2))")
        assert scalar[0]["value"][1] == "2"

        with pytest.raises(pytest.fail.Exception, match="rejected"):
            prometheus.query("up{")
        with pytest.raises(pytest.fail.Exception, match="did not match"):
            prometheus.wait_for("up", lambda r: False, timeout=0.5)

    assert not work_dir.exists()  # config, data and log removed by stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{instance}/-/ready", timeout=1)
