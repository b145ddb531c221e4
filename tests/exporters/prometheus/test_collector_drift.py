"""CellCollector's drift families: names, label names, values equal to the snapshot's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.helpers import promtool_check_metrics
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelColumns,
    build_model_baseline,
)
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.exporters.prometheus.catalog import DRIFT_METRICS, METRICS
from tilewatch.exporters.prometheus.cell_collector import CellCollector

DIMS = ("segment",)
CELLS = CellSettings(dimensions=DIMS, window_seconds=10, grace_seconds=0)


def _base(name: str, kind: str) -> str:
    return name.removesuffix("_total") if kind == "counter" else name


def _profile() -> DriftProfile:
    rng = np.random.default_rng(1)
    n = 1000
    cols = ModelColumns(
        scores=list(rng.uniform(0, 1, n)),
        labels=[None] * n,
        predictions=list(rng.choice(["0", "1"], n)),
        features=[
            {"x": float(rng.normal()), "plan": str(rng.choice(["a", "b"]))} for _ in range(n)
        ],
    )
    mb = build_model_baseline(cols, BaselineSettings(), 0.0, 1.0)
    bl = Baseline("t", [], (0.0, 1.0), BaselineSettings(), {"m": mb})
    return DriftProfile(DriftSettings(min_samples=30), (0.0, 1.0), bl)


def _state(profile: DriftProfile | None) -> ReplicaState:
    """Window 0 of model m closed: segment a with 200 events, b with 10 (gated to NaN)."""
    rng = np.random.default_rng(2)
    rs = ReplicaState(CELLS, profile)
    key = ("t", 0)
    rs.assign(key)
    keys = [("m", "a")] * 200 + [("m", "b")] * 10
    n = len(keys)
    times = np.sort(rng.uniform(0, 10, n))
    order = rng.permutation(n)
    keys = [keys[i] for i in order]
    scores = rng.uniform(0.6, 1.0, n)
    preds = [str(i % 2) for i in range(n)]
    feats = [{"x": 0.1} if i % 3 else {"plan": 1} for i in range(n)]
    bins = violations = None
    if profile is not None:
        bins, violations = profile.encode(["m"] * n, scores, preds, feats)
    rs.apply(key, keys, times, scores, n, bins, violations)
    flush_bins = None
    if profile is not None:
        flush_bins, _ = profile.encode(["m"], np.array([0.5]), [None], [{}])
    rs.apply(key, [("m", "a")], np.array([15.0]), np.array([0.5]), n + 1, flush_bins, {})
    part = rs.partitions[key]
    if part.detectors is not None:
        a = rs.registry.lookup(("m", "a"))
        assert a is not None
        part.detectors._found(a, "adwin", 3.0)
        part.detectors._found(a, "adwin", 14.0)
        part.detectors._found(a, "page_hinkley", 2.0)
    return rs


def _families(registry: CollectorRegistry) -> dict[str, object]:
    return {fam.name: fam for fam in registry.collect()}


def test_drift_families_labels_and_values() -> None:
    rs = _state(_profile())
    registry = CollectorRegistry()
    registry.register(CellCollector(rs.snapshot, DIMS))
    fams = _families(registry)
    snap = rs.snapshot()
    d = snap.drift
    assert d is not None
    cell = ["model", "segment"]
    label_names = {
        "cell": cell,
        "cell, feature": [*cell, "feature"],
        "cell, signal": [*cell, "signal"],
        "cell, detector": [*cell, "detector"],
        "model, feature, kind": ["model", "feature", "kind"],
    }
    for doc in DRIFT_METRICS:
        fam = fams[_base(doc.name, doc.kind)]
        assert fam.type == doc.kind and fam.documentation == doc.help  # type: ignore[attr-defined]
        assert fam.samples, doc.name  # type: ignore[attr-defined]
        for sample in fam.samples:  # type: ignore[attr-defined]
            assert list(sample.labels) == label_names[doc.labels], doc.name
            assert sample.name == doc.name

    def value(name: str, labels: dict[str, str]) -> float:
        got = registry.get_sample_value(name, labels)
        assert got is not None, (name, labels)
        return got

    def same(a: float, b: float) -> bool:
        return (math.isnan(a) and math.isnan(b)) or a == b

    per_cell = {
        "tilewatch_window_score_psi": d.score_psi,
        "tilewatch_window_score_js_distance": d.score_js_distance,
        "tilewatch_window_score_mean_zscore": d.mean_zscore,
        "tilewatch_window_score_mean_lower": d.mean_lower,
        "tilewatch_window_score_mean_upper": d.mean_upper,
        "tilewatch_window_score_mean_change": d.mean_change,
        "tilewatch_window_class_shift_pvalue": d.class_pvalue,
        "tilewatch_window_class_shift_significant": d.class_significant.astype(float),
    }
    per_feature = {
        "tilewatch_window_feature_psi": d.feature_psi,
        "tilewatch_window_feature_missing_ratio": d.missing_ratio,
        "tilewatch_window_feature_missing_ratio_lower": d.missing_lower,
        "tilewatch_window_feature_missing_ratio_upper": d.missing_upper,
    }
    for i, key in enumerate(snap.keys):
        labels = dict(zip(cell, key, strict=True))
        for name, arr in per_cell.items():
            assert same(value(name, labels), float(arr[i])), (name, key)
        for name, table in per_feature.items():
            for j, feature in enumerate(d.features):
                assert same(value(name, {**labels, "feature": feature}), float(table[i, j]))
        for signal, mask in d.flags.items():
            got = value("tilewatch_window_drift_flag", {**labels, "signal": signal})
            assert got == float(mask[i])
    # NaN passes through: segment b has 10 events, below min_samples.
    b = {"model": "m", "segment": "b"}
    assert math.isnan(value("tilewatch_window_score_psi", b))
    assert math.isnan(value("tilewatch_window_feature_missing_ratio", {**b, "feature": "x"}))
    a = {"model": "m", "segment": "a"}
    assert value("tilewatch_window_score_psi", a) > 0.25
    assert value("tilewatch_window_drift_flag", {**a, "signal": "score_psi"}) == 1.0
    assert value("tilewatch_window_feature_missing_ratio", {**a, "feature": "x"}) == pytest.approx(
        d.missing_ratio[snap.cell(("m", "a")), d.features.index("x")]
    )
    # Violations and detections.
    for (model, feature, kind), n in snap.violations.items():
        got = value(
            "tilewatch_schema_violations_total", {"model": model, "feature": feature, "kind": kind}
        )
        assert got == n
    assert snap.violations[("m", "plan", "wrong_type")] == 70
    assert value("tilewatch_drift_detections_total", {**a, "detector": "adwin"}) == 2
    assert value("tilewatch_drift_last_timestamp_seconds", {**a, "detector": "adwin"}) == 14.0
    assert value("tilewatch_drift_active", {**a, "detector": "adwin"}) == 1.0
    assert value("tilewatch_drift_active", {**a, "detector": "page_hinkley"}) == 0.0
    assert value("tilewatch_drift_detections_total", {**a, "detector": "page_hinkley"}) == 1
    for (c, detector), (n, when, on) in snap.detections.items():
        labels = {**dict(zip(cell, snap.keys[c], strict=True)), "detector": detector}
        assert value("tilewatch_drift_detections_total", labels) == n
        assert value("tilewatch_drift_last_timestamp_seconds", labels) == when
        assert value("tilewatch_drift_active", labels) == float(on)


def test_nothing_undocumented_exposed() -> None:
    rs = _state(_profile())
    registry = CollectorRegistry()
    registry.register(CellCollector(rs.snapshot, DIMS))
    documented = {_base(m.name, m.kind) for m in (*METRICS, *DRIFT_METRICS)}
    names = set(_families(registry))
    assert names <= documented
    assert names == documented


def test_no_profile_no_drift_families() -> None:
    rs = _state(None)
    registry = CollectorRegistry()
    registry.register(CellCollector(rs.snapshot, DIMS))
    names = set(_families(registry))
    assert names == {_base(m.name, m.kind) for m in METRICS}
    assert not names & {_base(m.name, m.kind) for m in DRIFT_METRICS}


def test_scraping_does_not_change_state() -> None:
    rs = _state(_profile())
    registry = CollectorRegistry()
    registry.register(CellCollector(rs.snapshot, DIMS))
    first = [(s.name, s.labels, s.value) for f in registry.collect() for s in f.samples]
    second = [(s.name, s.labels, s.value) for f in registry.collect() for s in f.samples]
    assert len(first) == len(second)
    for (n1, l1, v1), (n2, l2, v2) in zip(first, second, strict=True):
        assert (n1, l1) == (n2, l2)
        assert v1 == v2 or (math.isnan(v1) and math.isnan(v2))


@pytest.mark.prometheus
def test_promtool_lints_an_exposition_with_every_drift_family(promtool_bin: str) -> None:
    """`promtool check metrics` passes on a scrape where drift is on (names, suffixes, types)."""

    cells = CellSettings(dimensions=("segment",), window_seconds=10, grace_seconds=0)
    state = ReplicaState(
        cells, DriftProfile(DriftSettings(features=("plan",), min_samples=1), (0.0, 1.0))
    )
    rng = np.random.default_rng(1)
    assert state.profile is not None
    for start in (0.0, 10.0, 20.0, 35.0):
        n = 200
        keys = [("m", "a" if i % 2 else "b") for i in range(n)]
        scores = rng.random(n)
        feats = [{"plan": "x"} if i % 3 else {} for i in range(n)]
        bins, violations = state.profile.encode(["m"] * n, scores, [1] * n, feats)
        state.apply(
            ("t", 0),
            keys,
            start + np.sort(rng.random(n)) * 5,
            scores,
            next_offset=1,
            bins=bins,
            violations=violations,
        )
    state.refresh()
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, cells.dimensions))
    text = generate_latest(registry).decode()
    assert "tilewatch_window_drift_flag{" in text and "tilewatch_schema_violations_total{" in text
    assert promtool_check_metrics(promtool_bin, text) == (0, "", "")
