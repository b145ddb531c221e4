"""CellCollector's performance families: every documented name, label names, values, promtool.

Classification with labels from a topic exports every performance metric but the regression
ones; regression exports its three metrics instead of the classification ones and no
label-free estimate; without ``[labels]`` none is exported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.helpers import promtool_check_metrics
from tilewatch.aggregators import CellSettings, ReplicaState, Snapshot
from tilewatch.aggregators.labels.join import JoinSettings
from tilewatch.aggregators.labels.settings import LabelSettings, PerformanceSettings
from tilewatch.exporters.prometheus.catalog import PERFORMANCE_METRICS
from tilewatch.exporters.prometheus.cell_collector import CellCollector

DIMS = ("segment", "region")
CELLS = CellSettings(dimensions=DIMS, window_seconds=10, grace_seconds=0)
CELL = ["model", *DIMS]
REGRESSION_ONLY = {"tilewatch_window_mae", "tilewatch_window_rmse", "tilewatch_window_mean_error"}
CLASSIFICATION_ONLY = {
    d.name
    for d in PERFORMANCE_METRICS
    if d.name.startswith(("tilewatch_window_accuracy_ratio", "tilewatch_window_error_ratio"))
    or d.name
    in {
        "tilewatch_window_precision_ratio",
        "tilewatch_window_recall_ratio",
        "tilewatch_window_f1",
        "tilewatch_window_brier_score",
        "tilewatch_window_log_loss",
        "tilewatch_window_calibration_error",
        "tilewatch_window_estimate_gap_ratio",
        "tilewatch_window_estimate_gap_bound",
        "tilewatch_window_estimated_accuracy_ratio",
        "tilewatch_window_estimated_accuracy_bound",
        "tilewatch_label_errors_total",
        # Gaps compare accuracy and error rates (regression gaps would need another unit).
        "tilewatch_window_accuracy_gap_ratio",
        "tilewatch_window_error_gap_ratio",
        "tilewatch_window_gap_info",
        # Decisions against the cell's reference error rate, and the calibration test.
        "tilewatch_window_reference_error_ratio",
        "tilewatch_window_error_excess_ratio",
        "tilewatch_window_error_excess_rate",
        "tilewatch_window_calibration_error_debiased",
        "tilewatch_window_performance_flag",
        "tilewatch_window_performance_pvalue",
    }
}
TOPIC_ONLY = {
    "tilewatch_labels_joined_total",
    "tilewatch_labels_expired_total",
    "tilewatch_labels_orphaned_total",
    "tilewatch_labels_duplicates_total",
    "tilewatch_labels_missing_id_total",
    "tilewatch_labels_pending",
    "tilewatch_labels_held",
    "tilewatch_labels_join_bytes",
    "tilewatch_label_records_total",
    "tilewatch_invalid_labels_total",
}


def _state(task: str, source: str) -> ReplicaState:
    """Two windows of model m over 3 segments x 2 regions, labeled; both are final."""
    labels = LabelSettings(
        source=source,
        grace_seconds=5.0,
        threshold=None,
        thresholds={"m": 0.5} if task == "classification" else {},  # none for model x
        error_detector="ddm" if task == "classification" else None,
        performance=PerformanceSettings(task=task, min_samples=20),
        join=JoinSettings(ttl_seconds=100.0, orphan_ttl_seconds=100.0),
    )
    rs = ReplicaState(CELLS, labels=labels)
    rng = np.random.default_rng(8)
    leaves = [("m", s, r) for s in ("s1", "s2", "s3") for r in ("eu", "us")]
    n = 3000
    keys = [leaves[i] for i in rng.integers(0, len(leaves), n)]
    times = np.sort(rng.uniform(0.0, 19.0, n))
    if task == "classification":
        scores = rng.uniform(size=n)
        wrong = np.array([0.4 if k[1] == "s3" else 0.1 for k in keys])
        y = np.where(rng.uniform(size=n) < wrong, scores < 0.5, scores >= 0.5).astype(int)
        raw: list[Any] = y.tolist()
    else:
        scores = rng.normal(5.0, 1.0, n)
        raw = (scores + rng.normal(0.0, 0.5, n)).tolist()
    ids = [f"e{i}" for i in range(n)]
    key = ("t", 0)
    if source == "inline":
        rs.apply(key, keys, times, scores, n, labels=raw)
    else:
        rs.apply(key, keys, times, scores, n, event_ids=ids)
        label_ids = [*ids[: n - 100], "ghost", ids[0]]  # 100 never labeled, a duplicate
        # Each label 0.5 s after its prediction; the last two at t = 30 move the label clock
        # past both windows' end plus the grace.
        label_times = np.r_[times[: n - 100] + 0.5, 30.0, 30.0]
        label_times[:50] += 20.0  # past window 0's end plus the grace: late
        rs.apply_labels(key, label_ids, [*raw[: n - 100], 1, 1], label_times, n)
        rs.ingest.label_records = n - 98
        rs.ingest.invalid_labels = {"bad_label": 3, "not_json": 1}
    # A model with no threshold (classification): its labels are counted as invalid.
    x = ([("x", "s1", "eu")], np.array([19.5]), np.array([0.5]), n + 1)
    if source == "inline":
        rs.apply(key, *x, labels=[1])
    else:
        rs.apply(key, *x, event_ids=["x1"])
        rs.apply_labels(key, ["x1"], [1], np.array([19.5]), n + 1)
    rs.apply(key, [("m", "s1", "eu")], np.array([30.0]), np.array([0.5]), n + 2, event_ids=[None])
    rs.refresh()
    return rs


def _scrape(rs: ReplicaState) -> tuple[CollectorRegistry, dict[str, list[Any]]]:
    registry = CollectorRegistry()
    registry.register(CellCollector(rs.snapshot, DIMS))
    samples: dict[str, list[Any]] = {}
    for fam in registry.collect():
        for s in fam.samples:
            samples.setdefault(s.name, []).append(s)
    return registry, samples


def _label_names(doc_labels: str) -> list[str]:
    out: list[str] = []
    for part in doc_labels.split(", ") if doc_labels else []:
        out += CELL if part == "cell" else [part]
    return out


CASES = [("classification", "topic"), ("classification", "inline"), ("regression", "topic")]


@pytest.mark.parametrize(("task", "source"), CASES)
def test_performance_families_and_label_names(task: str, source: str) -> None:
    rs = _state(task, source)
    _registry, samples = _scrape(rs)
    expected = {d.name for d in PERFORMANCE_METRICS}
    expected -= REGRESSION_ONLY if task == "classification" else CLASSIFICATION_ONLY
    if source == "inline":
        expected -= TOPIC_ONLY
    present = {d.name for d in PERFORMANCE_METRICS} & set(samples)
    assert present == expected
    for doc in PERFORMANCE_METRICS:
        for s in samples.get(doc.name, []):
            assert list(s.labels) == _label_names(doc.labels), doc.name


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_task_decides_the_families_before_any_window_is_final(task: str) -> None:
    labels = LabelSettings(
        threshold=0.5 if task == "classification" else None,
        performance=PerformanceSettings(task=task),
    )
    rs = ReplicaState(CELLS, labels=labels)
    rs.apply(("t", 0), [("m", "s1", "eu")], np.array([1.0]), np.array([0.5]), 1, labels=[1])
    snap = rs.snapshot()
    assert snap.performance is not None and snap.performance.window_end == {}
    _registry, samples = _scrape(rs)
    names = {d.name for d in PERFORMANCE_METRICS} & set(samples)
    if task == "classification":
        assert "tilewatch_window_accuracy_ratio" in names and not names & REGRESSION_ONLY
    else:
        assert "tilewatch_window_mae" in names and not names & CLASSIFICATION_ONLY


def test_every_performance_metric_is_exported_by_some_labels_setup() -> None:
    names: set[str] = set()
    for task, source in CASES:
        names |= set(_scrape(_state(task, source))[1])
    assert {d.name for d in PERFORMANCE_METRICS} <= names


def test_none_without_labels() -> None:
    rs = ReplicaState(CELLS)
    rs.apply(("t", 0), [("m", "s1", "eu")] * 3, np.array([1.0, 2.0, 15.0]), np.ones(3) / 2, 3)
    _registry, samples = _scrape(rs)
    assert samples  # the cell families are there
    assert not {d.name for d in PERFORMANCE_METRICS} & set(samples)
    assert "tilewatch_drift_detections_total" not in samples


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    assert got is not None, (name, labels)
    return got


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_values_are_the_snapshots() -> None:
    rs = _state("classification", "topic")
    registry, _samples = _scrape(rs)
    snap: Snapshot = rs.snapshot()
    perf = snap.performance
    assert perf is not None
    per_cell = {
        "tilewatch_window_labeled_events": perf.stats.labeled,
        "tilewatch_window_accuracy_ratio": perf.stats.accuracy,
        "tilewatch_window_accuracy_ratio_lower": perf.stats.accuracy_lower,
        "tilewatch_window_error_ratio_upper": perf.stats.error_upper,
        "tilewatch_window_f1": perf.stats.f1,
        "tilewatch_window_calibration_error": perf.stats.calibration_error,
        "tilewatch_window_estimate_gap_ratio": perf.stats.estimate_gap,
        "tilewatch_window_estimated_accuracy_ratio": perf.estimate,
        "tilewatch_window_estimated_accuracy_bound": perf.estimate_bound,
        "tilewatch_labeled_events_total": perf.labeled_total,
        "tilewatch_label_errors_total": perf.errors_total,
    }
    checked = 0
    for i, key in enumerate(snap.keys):
        if snap.events_total[i] == 0:
            continue
        labels = dict(zip(CELL, key, strict=True))
        for name, arr in per_cell.items():
            assert _same(_value(registry, name, **labels), float(arr[i])), (name, key)
        checked += 1
    assert checked == len(snap.keys) > 12
    a = snap.cell(("m", "s1", "eu"))
    assert perf.stats.labeled[a] >= 20 and not math.isnan(perf.stats.accuracy[a])
    # The segment gap: s3 is wrong 40% of the time, the others 10%.
    assert (
        _value(registry, "tilewatch_window_accuracy_gap_ratio", model="m", dimension="segment")
        > 0.2
    )
    info = {
        (s.labels["dimension"], s.labels["metric"]): (s.labels["worst"], s.labels["best"])
        for s in _samples["tilewatch_window_gap_info"]
    }
    assert info[("segment", "accuracy")][0] == "s3" and info[("segment", "error")][0] == "s3"
    # Window 1 is final: the event and the labels at t = 30 passed its end plus the grace.
    assert _value(registry, "tilewatch_performance_window_end_timestamp_seconds", model="m") == 20.0
    c = perf.counters
    assert _value(registry, "tilewatch_labels_joined_total") == c["joined"] == 2901
    assert _value(registry, "tilewatch_labels_duplicates_total", side="label") == 1
    assert _value(registry, "tilewatch_labels_duplicates_total", side="prediction") == 0
    assert _value(registry, "tilewatch_labels_held") == 1  # the ghost
    assert _value(registry, "tilewatch_labels_pending") == 100
    assert _value(registry, "tilewatch_labels_missing_id_total") == 1
    assert _value(registry, "tilewatch_labels_late_total") == c["late"] == 50
    assert _value(registry, "tilewatch_label_records_total") == 2902
    assert _value(registry, "tilewatch_invalid_labels_total", reason="bad_label") == 3
    # The no-threshold label of model x is an invalid value of the label field.
    assert _value(registry, "tilewatch_invalid_values_total", field="label") == 1


def test_error_detections_are_exported_without_drift() -> None:
    rs = _state("classification", "inline")
    snap = rs.snapshot()
    registry, samples = _scrape(rs)
    assert snap.drift is None
    for (cell, detector), (n, when, on) in snap.detections.items():
        labels = {**dict(zip(CELL, snap.keys[cell], strict=True)), "detector": detector}
        assert _value(registry, "tilewatch_drift_detections_total", **labels) == n
        assert _value(registry, "tilewatch_drift_last_timestamp_seconds", **labels) == when
        assert _value(registry, "tilewatch_drift_active", **labels) == float(on)
    assert "tilewatch_window_score_psi" not in samples


def _forced_detection(rs: ReplicaState) -> None:
    part = rs.partitions[("t", 0)]
    assert part.labels is not None and part.labels.detectors is not None
    cell = rs.registry.lookup(("m", "s3", "us"))
    assert cell is not None
    part.labels.detectors._found(cell, part.labels.detectors.kind, 12.5)


def test_error_detection_samples() -> None:
    rs = _state("classification", "inline")
    _forced_detection(rs)
    registry, _samples = _scrape(rs)
    labels = {"model": "m", "segment": "s3", "region": "us", "detector": "ddm"}
    assert _value(registry, "tilewatch_drift_detections_total", **labels) >= 1
    assert _value(registry, "tilewatch_drift_last_timestamp_seconds", **labels) >= 12.5


@pytest.mark.prometheus
@pytest.mark.parametrize(("task", "source"), CASES)
def test_promtool_lints_a_performance_scrape(promtool_bin: str, task: str, source: str) -> None:
    rs = _state(task, source)
    if task == "classification":
        _forced_detection(rs)
    registry, _samples = _scrape(rs)
    text = generate_latest(registry).decode()
    assert "tilewatch_window_labeled_events{" in text
    assert promtool_check_metrics(promtool_bin, text) == (0, "", "")
