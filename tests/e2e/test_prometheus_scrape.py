"""A real Prometheus scrapes ``tilewatch run``; ``promtool check metrics`` lints a real scrape."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support.events import (
    BadRecord,
    Event,
    far_future_events,
    interleave,
    make_bad_records,
    make_stream,
    records_of,
)
from tests.e2e.support.layout import ALL
from tests.e2e.support.process import TilewatchProcess
from tests.e2e.support.scrape import value
from tests.helpers import PrometheusServer, produce
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

SEED = 424242
N_VALID = 3_000
N_BAD = 17


def _produce_stream(broker: EmbeddedBroker, topic: str) -> tuple[list[Event], list[BadRecord]]:
    data = make_stream(SEED, N_VALID, 30.0)
    far = far_future_events(data, first_index=N_VALID, after=1000.0)
    bad = make_bad_records(N_BAD)
    values, keys = records_of([*interleave(SEED, data, bad), *far])
    produce(broker.bootstrap, topic, values, keys)
    return [*data, *far], bad


def _leaf(metric: dict[str, str]) -> tuple[str, str, str]:
    return metric["model"], metric["segment"], metric["region"]


@pytest.mark.prometheus
def test_prometheus_stores_every_leaf_cell_with_its_count(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    prometheus_bin: str,
) -> None:
    topic = make_topic(3)
    valid, bad = _produce_stream(broker, topic)
    expected = Counter(e.cell for e in valid)
    monitor = start_tilewatch(tilewatch_config(topic))
    target = monitor.url.removeprefix("http://").removesuffix("/metrics")
    with PrometheusServer([target], binary=prometheus_bin) as prometheus:
        monitor.wait_read(len(valid) + len(bad))

        def all_leaves(result: list[dict[str, Any]]) -> bool:
            got = {_leaf(r["metric"]): float(r["value"][1]) for r in result}
            return got == {cell: float(n) for cell, n in expected.items()}

        leaf_query = 'tilewatch_events_total{segment!="__all__",region!="__all__"}'
        result = prometheus.wait_for(leaf_query, all_leaves, timeout=40)
        for r in result:
            assert r["metric"]["job"] == "tilewatch"
            assert r["metric"]["instance"] == target

        total = prometheus.query(f"sum({leaf_query})")
        assert float(total[0]["value"][1]) == len(valid)
        rollup = prometheus.query(f'tilewatch_events_total{{segment="{ALL}",region="{ALL}"}}')
        by_model = Counter(e.cell[0] for e in valid)
        assert {r["metric"]["model"]: float(r["value"][1]) for r in rollup} == {
            m: float(n) for m, n in by_model.items()
        }

        means = prometheus.query("tilewatch_window_score_mean")
        assert means, "no tilewatch_window_score_mean series in Prometheus"
        for r in means:
            assert {"model", "segment", "region"} <= set(r["metric"])
        labels = {
            (r["metric"]["model"], r["metric"]["segment"], r["metric"]["region"]) for r in means
        }
        assert {(m, ALL, ALL) for m in by_model} <= labels

        invalid = prometheus.query("sum(tilewatch_invalid_events_total)")
        assert float(invalid[0]["value"][1]) == len(bad)


@pytest.mark.prometheus
def test_promtool_check_metrics_passes_on_a_real_scrape(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    promtool_bin: str,
) -> None:
    topic = make_topic(3)
    valid, bad = _produce_stream(broker, topic)
    monitor = start_tilewatch(tilewatch_config(topic))
    # Every family has samples once the data is read and the late counter is non-empty.
    metrics = monitor.wait_read(len(valid) + len(bad))
    assert value(metrics, "tilewatch_read_events_total") == len(valid) + len(bad)
    text = monitor.scrape()
    assert "tilewatch_window_score_mean{" in text
    done = subprocess.run(
        [promtool_bin, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout.decode(), done.stderr.decode()) == (0, "", "")
