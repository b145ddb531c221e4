"""tilewatch.streams.dev.scenarios: deterministic segmented traffic whose injected changes do
what their ground truth says, in their cells and nowhere else (checked on the columns)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from tilewatch.aggregators.stats.divergence import psi
from tilewatch.streams.decoding.predictions import EventDecoder
from tilewatch.streams.dev.scenario_spec import (
    ALL,
    CATEGORIES,
    FEATURES,
    SIGNALS,
    Change,
    ScenarioSpec,
    class_prior_shift,
    concept_drift,
    covariate_shift,
    default_changes,
    dropped_feature,
    slow_drift,
)
from tilewatch.streams.dev.scenarios import Scenario, ScenarioWindow
from tilewatch.streams.settings import EventFields

SPEC = ScenarioSpec(windows=40, seed=3)


@pytest.fixture(scope="module")
def changed() -> Scenario:
    return Scenario(SPEC)


@pytest.fixture(scope="module")
def clean() -> Scenario:
    return Scenario(SPEC, clean=True)


def _by_kind(scenario: Scenario) -> dict[str, Change]:
    return {c.kind: c for c in scenario.truth}


def _cells_of(scenario: Scenario, cells: tuple[tuple[str, str], ...]) -> np.ndarray:
    index = {cell: i for i, cell in enumerate(scenario.spec.cells)}
    return np.array([index[c] for c in cells])


def _only(scenario: Scenario, change: Change) -> np.ndarray:
    """Cell indices of ``change`` that no other change touches."""
    others = {c for ch in scenario.truth if ch is not change for c in ch.cells}
    return _cells_of(scenario, tuple(c for c in change.cells if c not in others))


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = Scenario(ScenarioSpec(windows=30, seed=5)).window(17).encode()
    b = Scenario(ScenarioSpec(windows=30, seed=5)).window(17).encode()
    c = Scenario(ScenarioSpec(windows=30, seed=6)).window(17).encode()
    assert a == b
    assert a[1] != c[1]
    # Windows are independent streams: generating window 17 alone or after others is the same.
    sc = Scenario(ScenarioSpec(windows=30, seed=5))
    assert [w.index for w in sc.windows(15, 18)] == [15, 16, 17]
    assert sc.window(17).encode() == a


def test_events_are_valid_for_the_default_event_fields(changed: Scenario) -> None:
    keys, values = changed.window(30).encode()  # after onsets: missing features included
    records = [
        SimpleNamespace(
            value=v, key=k, timestamp=None, topic="t", partition=0, offset=i, headers=[]
        )
        for i, (k, v) in enumerate(zip(keys, values, strict=True))
    ]
    batch = EventDecoder(EventFields(), capture=True).decode(records)
    assert not batch.rejected
    assert len(batch) == len(values)
    first = orjson.loads(values[0])
    assert keys[0] == changed.key_for(first["segment"], first["region"])
    assert set(first["features"]) <= set(FEATURES)
    assert len({orjson.loads(v)["event_id"] for v in values[:2000]}) == 2000


def test_cell_sizes_span_the_asked_range(clean: Scenario) -> None:
    rates = clean.cell_rates
    assert min(rates.values()) == pytest.approx(20.0)
    assert max(rates.values()) == pytest.approx(5000.0)
    w = clean.window(0)
    counts = np.bincount(w.cell, minlength=len(SPEC.cells))
    assert counts.min() < 40 and counts.max() > 4500
    assert counts.sum() == len(w) == pytest.approx(clean.events_per_window, rel=0.03)
    # Busier segments and regions first (Zipf-like), in both dimensions.
    grid = np.array([rates[c] for c in SPEC.cells]).reshape(len(SPEC.segments), -1)
    assert (np.diff(grid, axis=0) < 0).all() and (np.diff(grid, axis=1) < 0).all()


def test_event_time_order_within_a_few_seconds(clean: Scenario) -> None:
    w = clean.window(7)
    start = SPEC.start_time + 7 * SPEC.window_seconds
    assert (w.timestamp >= start).all() and (w.timestamp < start + SPEC.window_seconds).all()
    lag = np.maximum.accumulate(w.timestamp) - w.timestamp
    assert 0 < lag.max() <= SPEC.disorder_seconds + 1e-3


def _hist(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values), minlength=edges.size + 1)


def test_segments_and_regions_differ_by_nature(clean: Scenario) -> None:
    w = clean.window(1)
    seg = np.array([SPEC.segments.index(s) for s, _ in SPEC.cells])[w.cell]
    reg = np.array([SPEC.regions.index(r) for _, r in SPEC.cells])[w.cell]
    income = w.features["income"]
    edges = np.quantile(income, np.linspace(0.1, 0.9, 9))
    by_region = np.array([_hist(income[reg == r], edges) for r in range(len(SPEC.regions))])
    shares = by_region / by_region.sum(axis=1, keepdims=True)
    worst = max(float(psi(shares[i], by_region[j])) for i in range(12) for j in range(12))
    assert worst > 1.0  # income by region: PSI far above any alert threshold
    tenure_mean = [w.features["tenure"][seg == s].mean() for s in range(len(SPEC.segments))]
    assert max(tenure_mean) > 2 * min(tenure_mean)
    product = w.features["product"]
    mix = np.array([np.bincount(product[seg == s], minlength=6) for s in range(10)])
    assert max(float(psi(mix[0], m)) for m in mix) > 0.5
    score_mean = [w.score[seg == s].mean() for s in range(10)]
    assert max(score_mean) - min(score_mean) > 0.15
    merchants = np.unique(w.features["merchant"])
    assert merchants.size > 250  # many categories, Zipf: the head holds most events
    top = np.bincount(w.features["merchant"]).max() / len(w)
    assert 0.02 < top < 0.3


def test_clean_traffic_is_calibrated(clean: Scenario) -> None:
    w = clean.window(2)
    has = w.label >= 0
    assert 0.4 < has.mean() < 0.6
    assert np.array_equal(w.true_p, w.score)
    seg = np.array([SPEC.segments.index(s) for s, _ in SPEC.cells])[w.cell]
    for s in range(len(SPEC.segments)):
        m = has & (seg == s)
        se = np.sqrt((w.score[m] * (1 - w.score[m])).sum()) / m.sum()
        assert abs(w.label[m].mean() - w.score[m].mean()) < 4.5 * se
    assert np.array_equal(w.prediction, (w.score >= SPEC.threshold).astype(int))


def test_before_the_first_onset_changed_and_clean_are_identical(
    changed: Scenario, clean: Scenario
) -> None:
    first = min(c.onset_window for c in changed.truth)
    assert first >= 10
    for w in (0, first - 1):
        assert changed.window(w).encode() == clean.window(w).encode()


COLUMNS = ("score", "prediction", "label", "latency", "timestamp", "cell")


def _same(a: ScenarioWindow, b: ScenarioWindow, mask: np.ndarray, names: tuple[str, ...]) -> bool:
    for name in names:
        x = a.features[name] if name in FEATURES else getattr(a, name)
        y = b.features[name] if name in FEATURES else getattr(b, name)
        if not np.array_equal(x[mask], y[mask], equal_nan=x.dtype.kind == "f"):
            return False
    return True


@pytest.mark.parametrize("window", [12, 21, 25, 39])
def test_changes_touch_their_cells_and_nowhere_else(
    changed: Scenario, clean: Scenario, window: int
) -> None:
    a, b = changed.window(window), clean.window(window)
    assert np.array_equal(a.cell, b.cell) and np.array_equal(a.timestamp, b.timestamp)
    touched = set()
    for change in changed.truth:
        if change.active(window):
            touched |= set(_cells_of(changed, change.cells).tolist())
    outside = ~np.isin(a.cell, list(touched))
    assert outside.sum() > len(a) / 3
    assert _same(a, b, outside, (*COLUMNS, *FEATURES))
    assert _same(a, b, np.ones(len(a), bool), ("latency", "cell", "timestamp"))


def test_covariate_shift(changed: Scenario, clean: Scenario) -> None:
    change = _by_kind(changed)["covariate_shift"]
    assert change.signals == ("feature_psi", "score_psi") and len(change.cells) == 1
    a, b = changed.window(change.onset_window), clean.window(change.onset_window)
    m = np.isin(a.cell, _only(changed, change))
    assert m.sum() > 50
    ratio = np.median(a.features["income"][m] / b.features["income"][m])
    assert ratio == pytest.approx(np.exp(-0.7), rel=0.01)
    assert np.median(a.features["tenure"][m] / b.features["tenure"][m]) == pytest.approx(0.5, 0.05)
    assert a.score[m].mean() > b.score[m].mean() + 0.1  # lower income, shorter tenure: riskier
    assert _same(a, b, m, ("product", "merchant", "channel"))
    assert np.array_equal(a.true_p[m], a.score[m])  # the model still right: covariate shift
    before = changed.window(change.onset_window - 1)
    in_cell = np.isin(before.cell, _only(changed, change))
    assert _same(before, clean.window(change.onset_window - 1), in_cell, ("income", "score"))


def test_dropped_feature(changed: Scenario, clean: Scenario) -> None:
    change = _by_kind(changed)["dropped_feature"]
    assert change.feature == "tenure" and change.signals == ("missing",)
    assert len(change.cells) == len(SPEC.segments)
    a, b = changed.window(change.onset_window), clean.window(change.onset_window)
    m = np.isin(a.cell, _cells_of(changed, change.cells))
    assert np.isnan(a.features["tenure"][m]).all()
    assert not np.isnan(a.features["tenure"][~m]).any()
    assert not np.isnan(b.features["tenure"]).any()
    only = np.isin(a.cell, _only(changed, change))
    assert _same(a, b, only, ("income", "product", "merchant", "channel"))
    assert not np.array_equal(a.score[only], b.score[only])  # imputed by the model
    events = a.events()
    assert all("tenure" not in e["features"] for e, hit in zip(events, m, strict=True) if hit)


def test_class_prior_shift(changed: Scenario, clean: Scenario) -> None:
    change = _by_kind(changed)["class_prior_shift"]
    assert change.signals == ("class_shift", "score_psi")
    a, b = changed.window(change.onset_window), clean.window(change.onset_window)
    m = np.isin(a.cell, _only(changed, change))
    assert a.prediction[m].mean() > b.prediction[m].mean() + 0.1
    assert (a.score[m] >= b.score[m]).all()
    assert _same(a, b, m, FEATURES)
    has = m & (a.label >= 0)
    assert abs(a.label[has].mean() - a.score[has].mean()) < 0.03  # still calibrated


def test_concept_drift(changed: Scenario, clean: Scenario) -> None:
    change = _by_kind(changed)["concept_drift"]
    assert change.signals == ("error_rate", "calibration")
    w = change.onset_window
    a, b = changed.window(w), clean.window(w)
    m = np.isin(a.cell, _only(changed, change))
    assert _same(a, b, m, ("score", "prediction", *FEATURES))  # scores unchanged
    has = m & (a.label >= 0)
    err_a = (a.label[has] != a.prediction[has]).mean()
    err_b = (b.label[has] != b.prediction[has]).mean()
    assert err_a > err_b + 0.05
    # Labels no longer follow the score: weak correlation instead of a strong one.
    corr = np.corrcoef(a.score[has], a.label[has])[0, 1]
    assert corr < 0.5 * np.corrcoef(b.score[has], b.label[has])[0, 1]


def test_slow_drift_grows_linearly(changed: Scenario, clean: Scenario) -> None:
    change = _by_kind(changed)["slow_drift"]
    assert change.feature == "income" and change.ramp_windows == 60
    shifts = []
    for w in (change.onset_window, change.onset_window + 5, change.onset_window + 10):
        a, b = changed.window(w), clean.window(w)
        m = np.isin(a.cell, _only(changed, change))
        shifts.append(float(np.median(np.log(a.features["income"][m] / b.features["income"][m]))))
    step = change.size / change.ramp_windows
    assert shifts[0] == pytest.approx(step / 2, abs=0.01)
    assert shifts[1] == pytest.approx(5.5 * step, abs=0.01)
    assert shifts[2] == pytest.approx(10.5 * step, abs=0.01)


def test_holdout_is_clean_calibrated_and_independent(clean: Scenario, changed: Scenario) -> None:
    rows = changed.holdout(20_000)
    assert rows == clean.holdout(20_000)  # changes never reach the holdout
    assert rows != changed.holdout(20_000, seed=2)
    assert all(r["label"] in (0, 1) for r in rows)
    assert all(len(r["features"]) == len(FEATURES) for r in rows)
    assert max(r["timestamp"] for r in rows) < SPEC.start_time
    h = changed.holdout_window(20_000)
    seg = np.array([SPEC.segments.index(s) for s, _ in SPEC.cells])[h.cell]
    for s in range(len(SPEC.segments)):
        m = seg == s
        se = np.sqrt((h.score[m] * (1 - h.score[m])).sum()) / m.sum()
        assert abs(h.label[m].mean() - h.score[m].mean()) < 4.5 * se
    # Cells in proportion to their traffic.
    counts = np.bincount(h.cell, minlength=len(SPEC.cells))
    rates = np.array(list(changed.cell_rates.values()))
    assert counts[0] / 20_000 == pytest.approx(rates[0] / rates.sum(), rel=0.1)


def test_truth_lists_cells_signals_and_affected_rollups(changed: Scenario) -> None:
    for change in changed.truth:
        assert set(change.signals) <= set(SIGNALS)
        assert change.onset_window >= SPEC.windows // 4
        for seg, reg in change.cells:
            assert {(seg, reg), (seg, ALL), (ALL, reg), (ALL, ALL)} <= change.affected
    covered = {cell for c in changed.truth for cell in c.cells}
    assert len(SPEC.cells) - len(covered) == 79
    assert Scenario(SPEC, clean=True).truth == []
    assert [c.kind for c in default_changes(SPEC)] == [c.kind for c in changed.truth]


def test_factories_validate() -> None:
    with pytest.raises(ValueError, match="segment"):
        covariate_shift(SPEC, "nope", SPEC.regions[0], 3)
    with pytest.raises(ValueError, match="region"):
        dropped_feature(SPEC, "nope", 3)
    with pytest.raises(ValueError, match="feature"):
        dropped_feature(SPEC, SPEC.regions[0], 3, feature="age")
    with pytest.raises(ValueError, match="strength"):
        concept_drift(SPEC, SPEC.regions[0], 3, strength=0.0)
    with pytest.raises(ValueError, match="numeric"):
        slow_drift(SPEC, SPEC.segments[0], 3, feature="product")
    assert class_prior_shift(SPEC, SPEC.segments[0], 3).cells[0] == (
        SPEC.segments[0],
        SPEC.regions[0],
    )
    with pytest.raises(IndexError):
        Scenario(SPEC).window(SPEC.windows)
    with pytest.raises(ValueError):
        ScenarioSpec(min_cell_events=10, max_cell_events=5)


def test_dropped_categorical_feature_and_custom_changes() -> None:
    spec = ScenarioSpec(segments=("a", "b"), regions=("x", "y", "z"), windows=4, seed=1)
    change = dropped_feature(spec, "y", 1, feature="merchant")
    sc = Scenario(spec, changes=[change])
    w = sc.window(2)
    m = np.isin(w.cell, _cells_of(sc, change.cells))
    assert (w.features["merchant"][m] == -1).all() and (w.features["merchant"][~m] >= 0).all()
    assert all("merchant" not in e["features"] for e in np.array(w.events())[m])
    assert len(CATEGORIES["merchant"]) == 400
