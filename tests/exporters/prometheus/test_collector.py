"""CellCollector: every metric of METRICS, read from crafted replica state (no broker)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tilewatch.aggregators.cells.settings import ALL, OTHER, CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.catalog import (
    DRIFT_METRICS,
    FORECAST_METRICS,
    METRICS,
    MULTICLASS_METRICS,
    PERFORMANCE_METRICS,
)
from tilewatch.exporters.prometheus.cell_collector import CellCollector

DIMS = ("segment", "region")
GOLDEN = Path(__file__).parent / "golden" / "small.prom"
SNAKE = re.compile(r"[a-z_][a-z0-9_]*")


def _base(name: str, kind: str) -> str:
    """Family name of a documented metric: counters' families drop ``_total``."""
    return name.removesuffix("_total") if kind == "counter" else name


def make_state() -> ReplicaState:
    """Two partitions, two models; window 0 ([0, 10)) of model m closed in both partitions.

    Partition ("t", 0):
      window 0: (m,a,x) 0.1 @1, (m,a,y) 0.3 @2, (m,b,x) 0.5 @3
      window 1: (m,a,x) 0.9 @12, 0.8 @12.5, 0.6 @13, 0.4 @14, 0.2 @16, 0.0 @17; (m,c,z) 0.4 @13.5
      late:     (m,a,x) 0.5 @5 (window 0 closed by then)
    Partition ("t", 1):
      window 0: (m,a,x) 0.2 @4, (m,b,y) 0.7 @5
      window 1: (m,b,y) 0.6 @15, (n,a,x) 0.5 @18
    """
    state = ReplicaState(
        CellSettings(dimensions=DIMS, window_seconds=10, grace_seconds=0, rolling_events=5)
    )
    p0, p1 = ("t", 0), ("t", 1)
    state.apply(
        p0,
        [("m", "a", "x"), ("m", "a", "y"), ("m", "b", "x")],
        np.array([1.0, 2.0, 3.0]),
        np.array([0.1, 0.3, 0.5]),
        next_offset=3,
    )
    state.apply(
        p1,
        [("m", "a", "x"), ("m", "b", "y")],
        np.array([4.0, 5.0]),
        np.array([0.2, 0.7]),
        next_offset=2,
    )
    result = state.apply(
        p0,
        [("m", "a", "x")] * 6 + [("m", "c", "z"), ("m", "a", "x")],
        np.array([12.0, 12.5, 13.0, 14.0, 16.0, 17.0, 13.5, 5.0]),
        np.array([0.9, 0.8, 0.6, 0.4, 0.2, 0.0, 0.4, 0.5]),
        next_offset=11,
    )
    assert (result.valid, result.late) == (7, 1)
    state.apply(
        p1,
        [("m", "b", "y"), ("n", "a", "x")],
        np.array([15.0, 18.0]),
        np.array([0.6, 0.5]),
        next_offset=4,
    )
    state.refresh()
    with state.lock:
        ing = state.ingest
        ing.read = 20
        ing.invalid = {"not_json": 3, "score_out_of_range": 2}
        ing.dead_lettered = 4
        ing.dead_letter_failures = {"not_json": 1}
        ing.lag = {p0: 7, p1: 0}
        ing.kafka_up = 1
    return state


@pytest.fixture
def state() -> ReplicaState:
    return make_state()


@pytest.fixture
def registry(state: ReplicaState) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(CellCollector(state.snapshot, DIMS))
    return reg


def cell(model: str, segment: str, region: str) -> dict[str, str]:
    return {"model": model, "segment": segment, "region": region}


def _var(xs: list[float]) -> float:
    return float(np.var(xs, ddof=1))


# Hand-computed expectations. Window 0 of model m merges both partitions.
WINDOW_0 = {
    ("m", "a", "x"): [0.1, 0.2],
    ("m", "a", "y"): [0.3],
    ("m", "b", "x"): [0.5],
    ("m", "b", "y"): [0.7],
    ("m", ALL, "x"): [0.1, 0.5, 0.2],
    ("m", ALL, "y"): [0.3, 0.7],
    ("m", "a", ALL): [0.1, 0.3, 0.2],
    ("m", "b", ALL): [0.5, 0.7],
    ("m", ALL, ALL): [0.1, 0.3, 0.5, 0.2, 0.7],
}
# Rolling: last 5 values per (partition, cell), then merged over partitions.
ROLLING = {
    ("m", "a", "x"): [0.8, 0.6, 0.4, 0.2, 0.0, 0.2],  # p0 last 5, then p1
    ("m", ALL, ALL): [0.6, 0.4, 0.2, 0.0, 0.4, 0.2, 0.7, 0.6],  # p0 last 5, then p1
    ("m", "b", "y"): [0.7, 0.6],
    ("m", ALL, "y"): [0.3, 0.7, 0.6],  # p0, then p1
    ("m", "c", "z"): [0.4],
    ("n", "a", "x"): [0.5],
}
EVENTS_TOTAL = {
    ("m", "a", "x"): 8,  # 7 on p0 (the late event is not counted) + 1 on p1
    ("m", "a", "y"): 1,
    ("m", "b", "x"): 1,
    ("m", "b", "y"): 2,
    ("m", "c", "z"): 1,
    ("m", ALL, "x"): 9,
    ("m", "a", ALL): 9,
    ("m", ALL, ALL): 13,
    ("n", "a", "x"): 1,
    ("n", ALL, ALL): 1,
}
LAST_EVENT = {
    ("m", "a", "x"): 17.0,
    ("m", "a", "y"): 2.0,
    ("m", ALL, "y"): 15.0,
    ("m", "b", ALL): 15.0,
    ("m", "c", "z"): 13.5,
    ("n", ALL, ALL): 18.0,
}


def test_events_total_per_leaf_and_rollup(registry: CollectorRegistry) -> None:
    for key, n in EVENTS_TOTAL.items():
        assert registry.get_sample_value("tilewatch_events_total", cell(*key)) == n, key


def test_last_closed_window_statistics(registry: CollectorRegistry) -> None:
    get = registry.get_sample_value
    for key, xs in WINDOW_0.items():
        labels = cell(*key)
        assert get("tilewatch_window_events", labels) == len(xs), key
        assert get("tilewatch_window_score_mean", labels) == pytest.approx(np.mean(xs)), key
        variance = get("tilewatch_window_score_variance", labels)
        if len(xs) < 2:
            assert variance is not None and math.isnan(variance), key
        else:
            assert variance == pytest.approx(_var(xs)), key


def test_cells_without_events_in_the_window_are_nan(registry: CollectorRegistry) -> None:
    get = registry.get_sample_value
    # (m,c,z) only has events in the still open window 1; model n has no closed window at all.
    for key in [
        ("m", "c", "z"),
        ("m", "c", ALL),
        ("m", ALL, "z"),
        ("n", "a", "x"),
        ("n", ALL, ALL),
    ]:
        labels = cell(*key)
        assert get("tilewatch_window_events", labels) == 0, key
        mean = get("tilewatch_window_score_mean", labels)
        variance = get("tilewatch_window_score_variance", labels)
        assert mean is not None and math.isnan(mean), key
        assert variance is not None and math.isnan(variance), key


def test_rolling_statistics(registry: CollectorRegistry) -> None:
    get = registry.get_sample_value
    for key, xs in ROLLING.items():
        labels = cell(*key)
        assert get("tilewatch_rolling_events", labels) == len(xs), key
        assert get("tilewatch_rolling_score_mean", labels) == pytest.approx(np.mean(xs)), key
        variance = get("tilewatch_rolling_score_variance", labels)
        if len(xs) < 2:
            assert variance is not None and math.isnan(variance), key
        else:
            assert variance == pytest.approx(_var(xs)), key


def test_last_event_timestamp(registry: CollectorRegistry) -> None:
    for key, t in LAST_EVENT.items():
        assert (
            registry.get_sample_value("tilewatch_last_event_timestamp_seconds", cell(*key)) == t
        ), key


def test_cells_never_seen_are_not_exported(registry: CollectorRegistry) -> None:
    assert registry.get_sample_value("tilewatch_events_total", cell("m", "c", "x")) is None
    assert registry.get_sample_value("tilewatch_window_events", cell("z", ALL, ALL)) is None


def test_per_model_metrics(registry: CollectorRegistry) -> None:
    get = registry.get_sample_value
    assert get("tilewatch_window_end_timestamp_seconds", {"model": "m"}) == 10.0
    # Model n has no closed window yet: no window end is exported for it.
    assert get("tilewatch_window_end_timestamp_seconds", {"model": "n"}) is None
    assert get("tilewatch_late_events_total", {"model": "m"}) == 1
    assert get("tilewatch_late_events_total", {"model": "n"}) == 0


def test_ingest_metrics(registry: CollectorRegistry) -> None:
    get = registry.get_sample_value
    assert get("tilewatch_invalid_events_total", {"reason": "not_json"}) == 3
    assert get("tilewatch_invalid_events_total", {"reason": "score_out_of_range"}) == 2
    assert get("tilewatch_consumer_lag_events", {"topic": "t", "partition": "0"}) == 7
    assert get("tilewatch_consumer_lag_events", {"topic": "t", "partition": "1"}) == 0
    assert get("tilewatch_kafka_up") == 1
    assert get("tilewatch_read_events_total") == 20
    assert get("tilewatch_dead_letter_events_total") == 4
    assert get("tilewatch_dead_letter_failures_total", {"reason": "not_json"}) == 1
    assert get("tilewatch_partitions_assigned") == 2


def test_cell_counts_by_kind(registry: CollectorRegistry) -> None:
    # Leaves: m/a/x m/a/y m/b/x m/b/y m/c/z n/a/x. Roll-ups of m: */x a/* */* */y b/* */z c/*;
    # of n: */x a/* */*.
    assert registry.get_sample_value("tilewatch_cells", {"kind": "leaf"}) == 6
    assert registry.get_sample_value("tilewatch_cells", {"kind": "rollup"}) == 10


def test_overflow_counter_per_model() -> None:
    state = ReplicaState(
        CellSettings(
            dimensions=DIMS, window_seconds=10, grace_seconds=0, rolling_events=5, max_cells=1
        )
    )
    state.apply(
        ("t", 0),
        [("m", "a", "x"), ("m", "b", "x"), ("m", "c", "y"), ("m", "a", "x")],
        np.array([1.0, 2.0, 3.0, 4.0]),
        np.ones(4) * 0.5,
        next_offset=4,
    )
    reg = CollectorRegistry()
    reg.register(CellCollector(state.snapshot, DIMS))
    assert reg.get_sample_value("tilewatch_cells_overflow_total", {"model": "m"}) == 2
    assert reg.get_sample_value("tilewatch_events_total", cell("m", OTHER, OTHER)) == 2
    assert reg.get_sample_value("tilewatch_events_total", cell("m", "a", "x")) == 2


# -- golden exposition ---------------------------------------------------------------------


def make_small_state() -> ReplicaState:
    """One dimension, one partition, max_cells=2 so that segment c overflows; every family
    has at least one sample. Scores are binary fractions so the text is exact."""
    state = ReplicaState(
        CellSettings(
            dimensions=("segment",),
            window_seconds=10,
            grace_seconds=0,
            rolling_events=5,
            max_cells=2,
        )
    )
    state.apply(
        ("t", 0),
        [("m", "a"), ("m", "a"), ("m", "b"), ("m", "c"), ("m", "a"), ("m", "a")],
        np.array([1.0, 2.0, 3.0, 4.0, 11.0, 5.0]),  # 11 closes window 0, then 5 is late
        np.array([0.25, 0.75, 0.5, 0.5, 0.5, 1.0]),
        next_offset=6,
        latencies=[1.0, 3.0, 2.0, None, 5.0, "slow"],  # "slow" is an invalid latency
        versions=["v1", "v1", "v1", "v1", "v2", None],
    )
    state.refresh()
    with state.lock:
        ing = state.ingest
        ing.read = 9
        ing.invalid = {"not_json": 2, "score_range": 1}
        ing.lag = {("t", 0): 4}
        ing.kafka_up = 1
        ing.dead_lettered = 2
        ing.dead_letter_failures = {"not_json": 1}
        ing.checkpoints_written = 3
        ing.checkpoint_last_bytes = 2048
        ing.checkpoint_last_time = 1_767_225_600.0
        ing.checkpoint_restores = {"empty": 1, "restored": 2}
        ing.checkpoint_errors = {"corrupt": 1}
        ing.class_scores = {"bad_sum": 2, "pooled": 1}
    return state


def small_exposition() -> str:
    reg = CollectorRegistry()
    reg.register(CellCollector(make_small_state().snapshot, ("segment",)))
    return generate_latest(reg).decode()


def test_golden_exposition() -> None:
    """The exact text of a scrape of :func:`make_small_state`.

    To regenerate after a deliberate change of the exposition, run
    ``TILEWATCH_UPDATE_GOLDEN=1 .venv/bin/python -m pytest
    tests/exporters/prometheus/test_collector.py -k golden``, then read
    ``tests/exporters/prometheus/golden/small.prom`` line by line against the events in
    :func:`make_small_state` before committing it.
    """
    text = small_exposition()
    if os.environ.get("TILEWATCH_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


# -- naming contract -------------------------------------------------------------------------


def _families(text: str) -> dict[str, prometheus_client.Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_documented_metric_is_exposed_and_nothing_else(registry: CollectorRegistry) -> None:
    families = _families(generate_latest(registry).decode())
    documented = {_base(m.name, m.kind) for m in METRICS}
    assert set(families) == documented
    # The golden state has a sample in every family.
    small = _families(small_exposition())
    assert set(small) == documented
    assert all(f.samples for f in small.values()), [n for n, f in small.items() if not f.samples]


def test_documented_types_labels_and_help_match_the_exposition() -> None:
    families = _families(small_exposition())
    cell_labels = {"model", "segment"}
    for doc in METRICS:
        fam = families[_base(doc.name, doc.kind)]
        assert fam.type == doc.kind, doc.name
        assert fam.documentation.strip(), doc.name
        assert fam.documentation == doc.help, doc.name
        parts = {part.strip() for part in doc.labels.split(",") if part.strip()}
        expected = (parts - {"cell"}) | (cell_labels if "cell" in parts else set())
        for sample in fam.samples:
            assert set(sample.labels) == expected, (doc.name, sample)


def test_naming_conventions(registry: CollectorRegistry) -> None:
    for doc in METRICS:
        assert doc.name.startswith("tilewatch_"), doc.name
        assert doc.help.strip(), doc.name
        assert doc.kind in ("counter", "gauge"), doc.name
        assert doc.name.endswith("_total") == (doc.kind == "counter"), doc.name
    assert len({m.name for m in METRICS}) == len(METRICS)
    for fam in registry.collect():
        assert SNAKE.fullmatch(fam.name), fam.name
        assert fam.documentation.strip(), fam.name
        for sample in fam.samples:
            for label in sample.labels:
                assert SNAKE.fullmatch(label), (fam.name, label)
            if fam.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            else:
                assert not sample.name.endswith("_total"), sample.name


# -- scraping is read-only -------------------------------------------------------------------


def _assert_snapshots_equal(a: Snapshot, b: Snapshot) -> None:
    for name in Snapshot.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=name)  # NaN == NaN here
        else:
            assert x == y, name


def test_scraping_does_not_change_state(state: ReplicaState, registry: CollectorRegistry) -> None:
    before = state.snapshot()
    texts = [generate_latest(registry) for _ in range(3)]
    after = state.snapshot()
    _assert_snapshots_equal(before, after)
    assert texts[0] == texts[1] == texts[2]


def test_describe_does_not_take_a_snapshot() -> None:
    def boom() -> Snapshot:
        raise AssertionError("describe() must not call the snapshot function")

    collector = CellCollector(boom, DIMS)
    names = {fam.name for fam in collector.describe()}
    documented = (
        *METRICS,
        *DRIFT_METRICS,
        *PERFORMANCE_METRICS,
        *MULTICLASS_METRICS,
        *FORECAST_METRICS,
    )
    assert names == {_base(m.name, m.kind) for m in documented}
    CollectorRegistry().register(collector)  # registering describes, never collects


def test_one_collector_in_two_registries(state: ReplicaState) -> None:
    collector = CellCollector(state.snapshot, DIMS)
    first, second = CollectorRegistry(), CollectorRegistry()
    first.register(collector)
    second.register(CellCollector(state.snapshot, DIMS))
    second_text = generate_latest(second)
    assert generate_latest(first) == second_text
    assert first.get_sample_value("tilewatch_events_total", cell("m", ALL, ALL)) == 13


def test_app_never_uses_the_global_registry() -> None:
    from tilewatch.app import App
    from tilewatch.config import parse_config

    config = parse_config(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["predictions"]},
            "exporter": {"listen": "127.0.0.1:0"},
        }
    )
    apps = [App(config), App(config)]  # a second App would clash on a shared registry
    global_names = {fam.name for fam in prometheus_client.REGISTRY.collect()}
    assert not [n for n in global_names if n.startswith("tilewatch")]
    assert b"tilewatch" not in generate_latest(prometheus_client.REGISTRY)
    for app in apps:
        assert app.registry is not prometheus_client.REGISTRY
        assert app.registry.get_sample_value("tilewatch_kafka_up") == 0
        assert app.server._server is None  # nothing started


# -- many cells ------------------------------------------------------------------------------


def test_two_thousand_cells_export_completely() -> None:
    """39 segments x 49 regions = 1911 leaves; with roll-ups (39+1) * (49+1) = 2000 cells."""
    state = ReplicaState(
        CellSettings(dimensions=DIMS, window_seconds=10, grace_seconds=0, rolling_events=5)
    )
    keys = [("m", f"s{i:02d}", f"r{j:02d}") for i in range(39) for j in range(49)]
    n = len(keys)
    times = np.full(n, 1.0)
    scores = np.linspace(0.0, 1.0, n)
    state.apply(("t", 0), keys, times, scores, next_offset=n)
    state.apply(("t", 0), keys, times + 10, scores, next_offset=2 * n)  # closes window 0
    state.refresh()
    reg = CollectorRegistry()
    reg.register(CellCollector(state.snapshot, DIMS))
    families = {fam.name: fam for fam in reg.collect()}
    per_cell = [_base(m.name, m.kind) for m in METRICS if m.labels == "cell"]
    for name in per_cell:
        assert len(families[name].samples) == 2000, name
    assert reg.get_sample_value("tilewatch_cells", {"kind": "leaf"}) == 1911
    assert reg.get_sample_value("tilewatch_cells", {"kind": "rollup"}) == 89
    assert reg.get_sample_value("tilewatch_events_total", cell("m", ALL, ALL)) == 2 * n
    assert reg.get_sample_value("tilewatch_window_events", cell("m", ALL, ALL)) == n
    assert reg.get_sample_value("tilewatch_window_events", cell("m", "s07", "r11")) == 1
    text = generate_latest(reg).decode()
    assert sum(1 for line in text.splitlines() if not line.startswith("#")) == (
        len(per_cell) * 2000 + 2 + 1 + 1 + 1 + 8  # cells{kind}, unexported, late, window_end,
        # ingest singles
    )
