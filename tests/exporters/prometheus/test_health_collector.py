"""HealthCollector: the statistics it reads, the families it yields, NaN without a verdict,
drivers at every level and the aging gauges, from crafted replica state (no broker)."""

from __future__ import annotations

import dataclasses
import math
import subprocess

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelColumns,
    build_model_baseline,
)
from tilewatch.aggregators.health.inputs import STATISTICS, cell_statistics, model_gaps
from tilewatch.aggregators.health.settings import (
    BaseMetric,
    Component,
    HierarchySettings,
    Indicator,
    parse_statistic,
)
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.catalog import HEALTH_METRICS
from tilewatch.exporters.prometheus.health_collector import HealthCollector

DIMS = ("segment", "region")
CELLS = CellSettings(dimensions=DIMS, window_seconds=10, grace_seconds=0)
NOW = 1000.0
MEAN = "tilewatch_window_score_mean"


def _profile() -> DriftProfile:
    rng = np.random.default_rng(1)
    n = 500
    cols = ModelColumns(
        scores=list(rng.uniform(0, 1, n)),
        labels=[None] * n,
        predictions=list(rng.choice(["0", "1"], n)),
        features=[{"plan": str(rng.choice(["a", "b"]))} for _ in range(n)],
    )
    mb = build_model_baseline(cols, BaselineSettings(), 0.0, 1.0)
    baseline = Baseline("t", [], (0.0, 1.0), BaselineSettings(), {"m": mb})
    return DriftProfile(DriftSettings(min_samples=5), (0.0, 1.0), baseline)


def _state(profile: DriftProfile | None = None) -> ReplicaState:
    """Model m, window [0, 10) closed: (a, x) 20 events scoring 0.9, (b, x) 20 scoring 0.1,
    (c, x) 2 events (too few for a verdict); then one event at t=15 closes the window."""
    rs = ReplicaState(CELLS, profile)
    key = ("t", 0)
    rs.assign(key)
    keys = [("m", "a", "x")] * 20 + [("m", "b", "x")] * 20 + [("m", "c", "x")] * 2
    n = len(keys)
    times = np.linspace(0.5, 9.5, n)
    scores = np.array([0.9] * 20 + [0.1] * 20 + [0.9] * 2)
    bins = violations = None
    if profile is not None:
        feats = [{"plan": "a"} if i % 4 else {} for i in range(n)]
        bins, violations = profile.encode(["m"] * n, scores, ["1"] * n, feats)
    rs.apply(key, keys, times, scores, n, bins, violations)
    flush = None
    if profile is not None:
        flush, _ = profile.encode(["m"], np.array([0.5]), ["1"], [{"plan": "a"}])
    rs.apply(key, [("m", "a", "x")], np.array([15.0]), np.array([0.5]), n + 1, flush, {})
    part = rs.partitions[key]
    if part.detectors is not None:
        a = rs.registry.lookup(("m", "a", "x"))
        assert a is not None
        part.detectors._found(a, "adwin", 14.0)
    return rs


def _with_versions(snap: Snapshot) -> Snapshot:
    return dataclasses.replace(
        snap, model_versions={("m", "v1"): [0.0, 5.0, 3], ("m", "v2"): [400.0, 15.0 + 500, 40]}
    )


HIERARCHY = HierarchySettings(
    metrics=(
        BaseMetric("mean", MEAN, amber=0.5, red=0.7, min_samples=10),
        BaseMetric("stale", "tilewatch_cell_silence_seconds", amber=5.0, red=20.0),
        BaseMetric("psi", "tilewatch_window_score_psi", amber=0.1, red=0.25, min_samples=10_000),
    ),
    components=(
        Component("quality", (("mean", 1.0),)),
        Component("aging", (("stale", 1.0),)),
        Component("drift", (("psi", 1.0),)),  # never enough samples: no verdict anywhere
    ),
    indicators=(Indicator("red_share", "red_traffic_share", amber=0.05, red=0.4),),
)


def _scrape(rs: ReplicaState, hierarchy: HierarchySettings = HIERARCHY) -> dict:
    registry = CollectorRegistry()
    registry.register(
        HealthCollector(lambda: _with_versions(rs.snapshot()), DIMS, hierarchy, clock=lambda: NOW)
    )
    out: dict = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


def cell(model: str, segment: str, region: str, **extra: str) -> frozenset:
    return frozenset({"model": model, "segment": segment, "region": region, **extra}.items())


def test_cell_statistics_produce_the_catalog_with_the_snapshot_values() -> None:
    rs = _state(_profile())
    snap = _with_versions(rs.snapshot())
    stats = cell_statistics(snap, NOW, detectors=("adwin", "page_hinkley"))
    names = {parse_statistic(k)[0] for k in stats}
    assert names <= set(STATISTICS)
    wanted = {n for n, info in STATISTICS.items() if info.needs in ("always", "drift", "baseline")}
    assert wanted - names == set(), "statistics the catalog promises but the snapshot lacks"
    a = snap.cell(("m", "a", "x"))
    b = snap.cell(("m", "b", "x"))
    assert stats[MEAN][a] == pytest.approx(0.9)
    assert stats["tilewatch_window_events"][a] == 20
    assert stats['tilewatch_window_feature_missing_ratio{feature="plan"}'][a] == pytest.approx(
        5 / 20
    )
    assert stats['tilewatch_drift_active{detector="adwin"}'][[a, b]].tolist() == [1.0, 0.0]
    assert stats['tilewatch_drift_active{detector="page_hinkley"}'][a] == 0.0
    # silence: behind the model's event-time clock (its latest event, 15.0 in cell a)
    assert stats["tilewatch_cell_silence_seconds"][a] == 0.0
    assert stats["tilewatch_model_pipeline_lag_seconds"][a] == pytest.approx(NOW - 15.0)
    # the current version is v2 (seen last), first seen at 400
    assert stats["tilewatch_model_version_age_seconds"][a] == pytest.approx(600.0)


def test_every_documented_family_is_exported_and_nothing_else() -> None:
    got = _scrape(_state())
    assert set(got) == {m.name for m in HEALTH_METRICS}


def test_scores_statuses_and_no_status_without_a_verdict() -> None:
    got = _scrape(_state())
    score, status = got["tilewatch_component_score"], got["tilewatch_component_status"]
    assert status[cell("m", "a", "x", component="quality")] == 2.0
    assert status[cell("m", "b", "x", component="quality")] == 0.0
    assert score[cell("m", "b", "x", component="quality")] == pytest.approx(0.9)  # risk 0.1
    # (c, x) has 2 events: NaN score, no status row
    assert math.isnan(score[cell("m", "c", "x", component="quality")])
    assert cell("m", "c", "x", component="quality") not in status
    # the drift component never has a verdict: NaN everywhere, no status at all
    drift = {k: v for k, v in score.items() if ("component", "drift") in k}
    assert drift and all(math.isnan(v) for v in drift.values())
    assert not any(("component", "drift") in k for k in status)
    model_status = got["tilewatch_model_component_status"]
    assert model_status == {
        frozenset({"component": "quality", "model": "m"}.items()): 2.0,
        frozenset({"component": "aging", "model": "m"}.items()): 1.0,
    }
    assert math.isnan(
        got["tilewatch_model_component_score"][
            frozenset({"component": "drift", "model": "m"}.items())
        ]
    )
    cells = got["tilewatch_model_component_cells"]
    assert cells[frozenset({"component": "quality", "model": "m"}.items())] == 2.0
    assert cells[frozenset({"component": "drift", "model": "m"}.items())] == 0.0


def test_business_indicator_and_its_status() -> None:
    got = _scrape(_state())
    key = frozenset({"indicator": "red_share", "model": "m"}.items())
    # the window holds 20 (a) + 20 (b) + 2 (c) events of the leaf cells; a is red: 20 / 42
    assert got["tilewatch_business_indicator"][key] == pytest.approx(20 / 42)
    assert got["tilewatch_business_status"][key] == 2.0


def test_drivers_lead_from_the_business_status_to_the_base_metric_and_tile() -> None:
    info = _scrape(_state())["tilewatch_health_driver_info"]
    rows = [dict(k) for k in info]
    business = [r for r in rows if r["level"] == "business"]
    assert business == [
        {
            "level": "business",
            "component": "quality",
            "indicator": "red_share",
            "model": "m",
            "segment": "a",
            "region": "x",
            "driver": "mean",
            "statistic": MEAN,
        }
    ]
    model = {r["component"]: r for r in rows if r["level"] == "model"}
    assert (model["quality"]["segment"], model["quality"]["driver"]) == ("a", "mean")
    assert (model["aging"]["segment"], model["aging"]["driver"]) == ("b", "stale")
    assert "drift" not in model
    per_cell = [r for r in rows if r["level"] == "cell" and r["component"] == "quality"]
    # one row per cell with a verdict (leaf a, b and their roll-ups), none for (c, x)
    assert {(r["segment"], r["region"]) for r in per_cell} >= {("a", "x"), ("b", "x")}
    assert ("c", "x") not in {(r["segment"], r["region"]) for r in per_cell}
    assert all(v == 1.0 for v in info.values())


def test_aging_gauges() -> None:
    got = _scrape(_state())
    silent = got["tilewatch_cell_silence_seconds"]
    assert silent[cell("m", "a", "x")] == 0.0  # a holds the model's latest event (15.0)
    last_b = np.linspace(0.5, 9.5, 42)[39]
    assert silent[cell("m", "b", "x")] == pytest.approx(15.0 - last_b)
    # The lag of the model's data behind the wall clock: one series per model.
    assert got["tilewatch_model_pipeline_lag_seconds"] == {
        frozenset({"model": "m"}.items()): pytest.approx(NOW - 15.0)
    }
    assert got["tilewatch_model_version_age_seconds"] == {
        frozenset({"model": "m"}.items()): pytest.approx(600.0)
    }


def test_scraping_changes_nothing() -> None:
    rs = _state()
    assert _scrape(rs).keys() == _scrape(rs).keys()
    first, second = _scrape(rs), _scrape(rs)
    assert {k: {kk: str(vv) for kk, vv in v.items()} for k, v in first.items()} == {
        k: {kk: str(vv) for kk, vv in v.items()} for k, v in second.items()
    }


@pytest.mark.prometheus
def test_promtool_check_metrics_accepts_the_exposition(promtool_bin: str) -> None:
    registry = CollectorRegistry()
    registry.register(HealthCollector(_state().snapshot, DIMS, HIERARCHY, clock=lambda: NOW))
    text = generate_latest(registry)
    proc = subprocess.run(
        [promtool_bin, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def _labeled_state() -> ReplicaState:
    """Window [0, 10) of model m with inline labels: (a, x) 20 events, (b, x) 20 events."""
    from tilewatch.aggregators.labels.settings import LabelSettings, PerformanceSettings

    rs = ReplicaState(
        CELLS,
        labels=LabelSettings(threshold=0.5, performance=PerformanceSettings(min_samples=2)),
    )
    rng = np.random.default_rng(0)
    keys = [("m", "a", "x")] * 20 + [("m", "b", "x")] * 20
    n = len(keys)
    labels = [int(v) for v in rng.integers(0, 2, n)]
    rs.apply(
        ("t", 0),
        keys,
        np.linspace(0.5, 9.5, n),
        rng.uniform(0, 1, n),
        n,
        labels=labels,
        latencies=[10.0] * n,
        versions=["v1"] * n,
    )
    rs.apply(
        ("t", 0),
        [("m", "a", "x")],
        np.array([25.0]),
        np.array([0.5]),
        n + 1,
        labels=[1],
        latencies=[5.0],
        versions=["v1"],
    )
    return rs


def test_performance_statistics_follow_the_label_stage() -> None:
    snap = _labeled_state().snapshot()
    perf = snap.performance
    assert perf is not None
    stats = cell_statistics(snap, NOW, detectors=("ddm",))
    produced = {parse_statistic(k)[0] for k in stats}
    labels = {n for n, info in STATISTICS.items() if info.needs == "labels"}
    assert labels <= produced
    a = snap.cell(("m", "a", "x"))
    assert stats["tilewatch_window_labeled_events"][a] == perf.stats.labeled[a] == 20
    assert stats["tilewatch_window_error_ratio"][a] == perf.stats.error[a]
    assert stats["tilewatch_window_calibration_error"][a] == perf.stats.calibration_error[a]
    assert stats["tilewatch_window_estimated_accuracy_ratio"][a] == perf.estimate[a]
    assert stats["tilewatch_labeled_events_total"][a] == perf.labeled_total[a]
    gaps = {(g.metric, g.dimension): g for g in model_gaps(snap)}
    by_lead = {(g.metric, g.dimension): g for g in perf.gaps}
    assert gaps[("tilewatch_window_error_gap_ratio", "segment")].value == (
        by_lead[("error", "segment")].gap
    )
    assert gaps[("tilewatch_window_error_gap_ratio", "segment")].worst == (
        by_lead[("error", "segment")].worst
    )
