"""Every query of every generated dashboard runs against a real Prometheus and finds data.

Embedded broker -> ``tilewatch run`` (drift with a baseline, inline labels, the default hierarchy)
-> Prometheus (1 s scrape, the generated recording rules evaluated every second). Synthetic traffic
(``tilewatch.streams.dev.traffic``: one model, 3 segments x 2 regions, labels, latency, features, a
few invalid records, the busiest cell degrading half way so detectors fire) covers the last ~70 s of
event time, so Prometheus's time axis and the event time agree.

Then, for each generated dashboard, every template variable is resolved through Prometheus
the way Grafana would (``label_values`` -> the values present; the default if it is among them,
else the first; every option of a custom variable for the panels that use it), and every panel
target is run (a range query for time series, an instant query for instant/table targets), as
is every annotation. A target fails when it returns no series, when no series has a finite
value, or when a series lacks a label that the panel's legend, transformations or data links
use. All failures are reported together, each with its dashboard, panel and query.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.support.dashboards import (
    build_baseline,
    check_dashboard,
    panels,
    spec,
    write_dashboard_config,
)
from tests.e2e.support.process import TilewatchProcess
from tests.helpers import PrometheusServer, produce
from tilewatch.config import load_config
from tilewatch.generate import render
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.traffic import TrafficGenerator

pytestmark = [pytest.mark.broker, pytest.mark.prometheus, pytest.mark.timeout(300)]

SPAN = 70  # seconds of event time, ending now
RATE = 250  # events per second of event time


def _busiest_cell() -> tuple[str, str]:
    weights = TrafficGenerator(spec(degrade_cell=None), start_time=0.0).cell_weights
    _model, segment, region = max(weights, key=lambda c: weights[c])
    return segment, region


def _produce_traffic(bootstrap: str, topic: str, degrade: tuple[str, str]) -> int:
    """``SPAN`` s of traffic ending now, keyed by cell; returns the records produced."""
    start = math.floor(time.time()) - SPAN
    gen = TrafficGenerator(spec(degrade_cell=degrade), start_time=start)
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    for _ in range(SPAN):
        k, v = gen.keyed_batch(RATE, spread_seconds=1.0)
        keys += k
        values += v
    produce(bootstrap, topic, values, keys)
    return len(values)


def test_every_panel_query_returns_series(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    prometheus_bin: str,
    tmp_path: Path,
) -> None:
    topic = make_topic(3)
    baseline_path = tmp_path / "baseline.json"
    config_path = write_dashboard_config(topic, baseline_path, tilewatch_config)
    build_baseline(tmp_path, config_path, baseline_path)
    config = load_config(config_path)
    files = render(config)  # every generator: the dashboards' rules load with the alert rules
    rules = []
    for path, text in files.items():
        if path.startswith("deploy/prometheus/rules/"):
            rules.append(tmp_path / Path(path).name)
            rules[-1].write_text(text)
    assert tmp_path / "tilewatch-dashboards.rules.yml" in rules
    dashboards = [
        json.loads(t)
        for p, t in files.items()
        if p.startswith("deploy/grafana/dashboards/") and p.endswith(".json")
    ]
    assert len(dashboards) == 3

    monitor = start_tilewatch(config_path)
    records = _produce_traffic(broker.bootstrap, topic, _busiest_cell())
    monitor.wait_read(records, timeout=120)
    target = monitor.url.removeprefix("http://").removesuffix("/metrics")
    with PrometheusServer([target], binary=prometheus_bin, rule_files=rules) as prometheus:
        prometheus.wait_for(
            'tilewatch_cell:statistic:merged{statistic="score_mean"}',
            lambda r: len(r) > 0,
            timeout=60,
        )
        # rate() over 1m needs a few samples, and every recording rule a first evaluation
        prometheus.wait_for("rate(tilewatch_events_total[1m])", lambda r: len(r) > 0, timeout=60)
        time.sleep(3.0)
        problems = [p for d in dashboards for p in check_dashboard(prometheus, d)]
    total = sum(len(p["targets"]) for d in dashboards for p in panels(d))
    assert total >= 50, f"only {total} panel targets: the dashboards lost their statistics"
    assert not problems, (
        f"{len(problems)} of the {total} panel targets (and annotations) of the generated "
        "dashboards found no data:\n" + "\n".join(problems)
    )
