"""PerfAcc and derive_performance against straightforward per-cell references.

The references (``tests.oracles``) are written the way scikit-learn defines the metrics
(accuracy_score, precision/recall/f1, brier_score_loss, log_loss, an ECE over equal-width bins,
MAE, RMSE), one cell at a time with plain numpy, on the same random arrays the accumulator sees
in batches.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats

from tests import oracles
from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.cells.settings import ALL, CellSettings
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.labels.metrics import PerformanceStats, derive_performance, estimate_all
from tilewatch.aggregators.labels.settings import PerformanceSettings
from tilewatch.aggregators.labels.sums import PerfAcc, correct_probability

SEEDS = [0, 1, 2, 3]
CELLS = 7


def _classified(seed: int, threshold: float, n: int = 3000) -> dict[str, np.ndarray]:
    """Random events over CELLS cells: one cell empty, one tiny, scores including 0 and 1."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(CELLS, size=n, p=[0.3, 0.25, 0.2, 0.15, 0.0, 0.095, 0.005])
    scores = rng.beta(0.8, 0.8, size=n)
    scores[:4] = [0.0, 1.0, 1.0, 0.0]
    labels = (rng.random(n) < np.clip(scores + rng.normal(0, 0.2, n), 0, 1)).astype(np.float64)
    return {"cells": cells.astype(np.int64), "scores": scores, "labels": labels,
            "predicted": scores >= threshold}  # fmt: skip


def _feed(acc: PerfAcc, ev: dict[str, np.ndarray], batches: int = 5, n_cells: int = CELLS) -> None:
    for part in np.array_split(np.arange(len(ev["cells"])), batches):
        c, s = ev["cells"][part], ev["scores"][part]
        acc.add_predictions(c, correct_probability(s, ev["predicted"][part]), n_cells)
        acc.add_classified(c, s, ev["labels"][part], ev["predicted"][part], n_cells)


def _nan_equal(a: Any, b: Any, **kw: Any) -> None:
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), equal_nan=True, **kw)


# --- settings and small API ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task": "ranking"},
        {"calibration_bins": 0},
        {"calibration_bins": 2.5},
        {"min_samples": 0},
        {"min_samples": True},
        {"confidence": 1.0},
        {"confidence": 0.0},
    ],
)
def test_settings_refuse_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PerformanceSettings(**kwargs)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_z_is_the_normal_quantile(confidence: float) -> None:
    want = stats.norm.ppf((1 + confidence) / 2)
    assert PerformanceSettings(confidence=confidence).z == pytest.approx(want, rel=1e-12)


def test_correct_probability() -> None:
    s = np.array([0.0, 0.3, 0.5, 0.7, 1.0])
    got = correct_probability(s, s >= 0.5)
    np.testing.assert_array_equal(got, [1.0, 0.7, 0.5, 0.7, 1.0])


def test_batches_are_checked() -> None:
    acc = PerfAcc(PerformanceSettings())
    c = np.array([0, 1])
    with pytest.raises(ValueError, match="one value per cell"):
        acc.add_classified(c, np.array([0.5]), np.array([1.0, 0.0]), np.array([True, False]), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        acc.add_predictions(np.array([0, 2]), np.array([0.5, 0.5]), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        acc.add_predictions(np.array([-1, 0]), np.array([0.5, 0.5]), 2)
    with pytest.raises(ValueError, match="q must"):
        acc.add_predictions(c, np.array([0.5, 1.5]), 2)
    with pytest.raises(ValueError, match="scores"):
        acc.add_classified(c, np.array([0.5, np.nan]), np.array([1.0, 0.0]), c == 0, 2)
    with pytest.raises(ValueError, match="labels"):
        acc.add_classified(c, np.array([0.5, 0.2]), np.array([1.0, 0.5]), c == 0, 2)
    with pytest.raises(ValueError, match="not regression"):
        acc.add_regressed(c, np.array([1.0, 2.0]), np.array([1.0, 2.0]), 2)
    assert acc.size == 0 or not acc.touched().any(), "a refused batch must not count"
    reg = PerfAcc(PerformanceSettings(task="regression"))
    with pytest.raises(ValueError, match="not classification"):
        reg.add_classified(c, np.array([0.5, 0.2]), np.array([1.0, 0.0]), c == 0, 2)
    with pytest.raises(ValueError, match="finite"):
        reg.add_regressed(c, np.array([1.0, np.inf]), np.array([1.0, 2.0]), 2)
    assert not reg.touched().any()


def test_empty_batches_change_nothing() -> None:
    acc = PerfAcc(PerformanceSettings())
    e = np.zeros(0, dtype=np.int64)
    acc.add_predictions(e, np.zeros(0), 3)
    acc.add_classified(e, np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), 3)
    assert acc.to_rows([("m",)] * 3) == []
    assert derive_performance(acc, 3).labeled.tolist() == [0, 0, 0]


def test_sized_cuts_and_pads_and_copies() -> None:
    acc = PerfAcc(PerformanceSettings(min_samples=1))
    _feed(acc, _classified(0, 0.5))
    small, big = acc.sized(3), acc.sized(20)
    assert small.size == 3 and big.size == 20
    np.testing.assert_array_equal(small.labeled(), acc.labeled()[:3])
    np.testing.assert_array_equal(big.labeled()[:CELLS], acc.labeled())
    assert not big.labeled()[CELLS:].any()
    assert big.column("bin_count").shape == (20, 10)
    big.merge(acc)  # the copy is independent of the original
    np.testing.assert_array_equal(big.labeled()[:CELLS], 2 * acc.labeled())
    assert acc.labeled().sum() == 3000
    with pytest.raises(KeyError):
        acc.column("nope")


# --- every metric against the references ---------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.83])
@pytest.mark.parametrize("bins", [1, 5, 10, 17])
def test_classification_metrics_match_references(seed: int, threshold: float, bins: int) -> None:
    settings = PerformanceSettings(calibration_bins=bins, min_samples=20)
    ev = _classified(seed, threshold)
    acc = PerfAcc(settings)
    _feed(acc, ev)
    st = derive_performance(acc, CELLS + 2)  # two cells beyond those ever touched
    assert st.labeled.dtype == np.int64
    for i in range(CELLS + 2):
        sel = ev["cells"] == i
        y, s, p = ev["labels"][sel], ev["scores"][sel], ev["predicted"][sel].astype(float)
        assert st.labeled[i] == sel.sum()
        if sel.sum() < settings.min_samples:
            for f in ("accuracy", "precision", "recall", "f1", "brier", "log_loss"):
                assert math.isnan(getattr(st, f)[i]), f
            continue
        acc_i = oracles.accuracy(y, p)
        assert st.accuracy[i] == pytest.approx(acc_i, rel=1e-12)
        assert st.error[i] == pytest.approx(1 - acc_i, abs=1e-12)
        _nan_equal(st.precision[i], oracles.precision(y, p), rtol=1e-12)
        _nan_equal(st.recall[i], oracles.recall(y, p), rtol=1e-12)
        _nan_equal(st.f1[i], oracles.f1(y, p), rtol=1e-12)
        assert st.brier[i] == pytest.approx(oracles.brier(y, s), rel=1e-9)
        assert st.log_loss[i] == pytest.approx(oracles.log_loss(y, s), rel=1e-9)
        assert st.calibration_error[i] == pytest.approx(
            oracles.calibration_error(y, s, bins), rel=1e-9, abs=1e-12
        )
        q = np.where(p == 1, s, 1 - s)
        assert st.estimated_accuracy[i] == pytest.approx(q.mean(), rel=1e-9)
        assert st.estimate_gap[i] == pytest.approx(acc_i - q.mean(), abs=1e-9)
        want_bound = settings.z * math.sqrt(np.sum(q * (1 - q))) / len(q)
        assert st.estimate_bound[i] == pytest.approx(want_bound, rel=1e-9)
        assert math.isnan(st.mae[i]) and math.isnan(st.rmse[i]) and math.isnan(st.mean_error[i])
    # The per-bin sums are the histogram of the scores on equal-width bins.
    for i in range(CELLS):
        s = ev["scores"][ev["cells"] == i]
        hist, _ = np.histogram(s, bins=bins, range=(0.0, 1.0))
        np.testing.assert_array_equal(acc.column("bin_count")[i], hist)


def test_precision_recall_f1_on_zero_denominators() -> None:
    acc = PerfAcc(PerformanceSettings(min_samples=1))
    # cell 0: positives, none predicted -> precision NaN, recall 0, f1 0
    # cell 1: only negatives, none predicted -> precision, recall and f1 NaN (accuracy 1)
    # cell 2: only negatives, some predicted -> precision 0, recall NaN, f1 0
    cells = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array([0.1, 0.2, 0.1, 0.2, 0.9, 0.1])
    labels = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    acc.add_classified(cells, scores, labels, scores >= 0.5, 3)
    st = derive_performance(acc, 3)
    _nan_equal(st.precision, [np.nan, np.nan, 0.0])
    _nan_equal(st.recall, [0.0, np.nan, np.nan])
    _nan_equal(st.f1, [0.0, np.nan, 0.0])
    _nan_equal(st.accuracy, [0.5, 1.0, 0.5])


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics_match_references(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2000
    cells = rng.choice(CELLS, size=n, p=[0.3, 0.3, 0.2, 0.1, 0.0, 0.095, 0.005]).astype(np.int64)
    target = rng.normal(10, 3, n)
    pred = target + rng.standard_t(3, n) + 0.5
    settings = PerformanceSettings(task="regression", min_samples=15)
    acc = PerfAcc(settings)
    for part in np.array_split(np.arange(n), 4):
        acc.add_predictions(cells[part], pred[part], CELLS)
        acc.add_regressed(cells[part], pred[part], target[part], CELLS)
    st = derive_performance(acc, CELLS)
    for i in range(CELLS):
        sel = cells == i
        err = pred[sel] - target[sel]
        assert st.labeled[i] == sel.sum()
        if sel.sum() < settings.min_samples:
            assert math.isnan(st.mae[i]) and math.isnan(st.rmse[i])
            continue
        assert st.mae[i] == pytest.approx(np.mean(np.abs(err)), rel=1e-10)
        assert st.rmse[i] == pytest.approx(math.sqrt(np.mean(err**2)), rel=1e-10)
        assert st.mean_error[i] == pytest.approx(np.mean(err), rel=1e-9, abs=1e-12)
    for f in ("accuracy", "accuracy_lower", "f1", "brier", "calibration_error", "estimate_gap"):
        assert np.isnan(getattr(st, f)).all(), f
    count, est, bound = estimate_all(acc, CELLS, 1)
    np.testing.assert_array_equal(count, np.bincount(cells, minlength=CELLS))
    assert np.isnan(est).all() and np.isnan(bound).all()


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
@pytest.mark.parametrize("seed", SEEDS)
def test_wilson_bounds_match_scipy(confidence: float, seed: int) -> None:
    settings = PerformanceSettings(min_samples=20, confidence=confidence)
    ev = _classified(seed, 0.5)
    acc = PerfAcc(settings)
    _feed(acc, ev)
    # A cell that is always right and one that is always wrong: the interval ends are exact.
    acc.add_classified(np.full(25, 7), np.full(25, 0.9), np.ones(25), np.ones(25, bool), 9)
    acc.add_classified(np.full(25, 8), np.full(25, 0.9), np.zeros(25), np.ones(25, bool), 9)
    st = derive_performance(acc, 9)
    checked = 0
    for i in range(9):
        n = int(st.labeled[i])
        if n < settings.min_samples:
            assert math.isnan(st.accuracy_lower[i]) and math.isnan(st.error_upper[i])
            continue
        k = round(st.accuracy[i] * n)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
        assert st.accuracy_lower[i] == pytest.approx(ci.low, abs=1e-12)
        assert st.accuracy_upper[i] == pytest.approx(ci.high, abs=1e-12)
        ce = stats.binomtest(n - k, n).proportion_ci(confidence_level=confidence, method="wilson")
        assert st.error_lower[i] == pytest.approx(ce.low, abs=1e-12)
        assert st.error_upper[i] == pytest.approx(ce.high, abs=1e-12)
        assert st.accuracy_lower[i] <= st.accuracy[i] <= st.accuracy_upper[i]
        checked += 1
    assert checked >= 6
    assert st.accuracy_upper[7] == 1.0 and st.error_lower[7] == 0.0
    assert st.accuracy_lower[8] == 0.0 and st.error_upper[8] == 1.0


@pytest.mark.parametrize("min_samples", [1, 30, 31, 100])
def test_min_samples_gates_every_metric_but_counts(min_samples: int) -> None:
    acc = PerfAcc(PerformanceSettings(min_samples=min_samples))
    rng = np.random.default_rng(5)
    cells = np.repeat(np.arange(3), [29, 30, 31]).astype(np.int64)
    s = rng.random(len(cells))
    acc.add_predictions(cells, correct_probability(s, s >= 0.5), 3)
    acc.add_classified(cells, s, (rng.random(len(cells)) < s).astype(float), s >= 0.5, 3)
    st = derive_performance(acc, 3)
    assert st.labeled.tolist() == [29, 30, 31]
    reported = [n >= min_samples for n in (29, 30, 31)]
    for f in ("accuracy", "accuracy_lower", "accuracy_upper", "error", "error_lower",
              "error_upper", "brier", "log_loss", "calibration_error", "estimated_accuracy",
              "estimate_gap", "estimate_bound"):  # fmt: skip
        assert (~np.isnan(getattr(st, f))).tolist() == reported, f
    count, est, bound = estimate_all(acc, 3, min_samples)
    assert count.tolist() == [29, 30, 31]
    assert (~np.isnan(est)).tolist() == reported
    assert (~np.isnan(bound)).tolist() == reported


# --- merging, roll-ups ------------------------------------------------------------------------


def _assert_same_sums(a: PerfAcc, b: PerfAcc) -> None:
    assert a.size == b.size
    names = [*a.count_fields, "bin_count", "bin_positives"]
    for name in names:
        np.testing.assert_array_equal(a.column(name), b.column(name), err_msg=name)
    for name in [*a.sum_fields, "bin_score"]:
        np.testing.assert_allclose(a.column(name), b.column(name), rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("seed", SEEDS)
def test_merge_of_two_halves_equals_one_pass(seed: int) -> None:
    settings = PerformanceSettings(min_samples=10)
    ev = _classified(seed, 0.4)
    whole = PerfAcc(settings)
    _feed(whole, ev, batches=1)
    rng = np.random.default_rng(seed)
    half = rng.random(len(ev["cells"])) < 0.5
    first, second = PerfAcc(settings), PerfAcc(settings)
    _feed(first, {k: v[half] for k, v in ev.items()}, batches=3, n_cells=5)  # smaller n_cells
    _feed(second, {k: v[~half] for k, v in ev.items()}, batches=2)
    first.merge(second)  # grows first from its own size
    _assert_same_sums(first, whole)
    a, b = derive_performance(first, CELLS), derive_performance(whole, CELLS)
    for f in PerformanceStats.__dataclass_fields__:
        _nan_equal(getattr(a, f), getattr(b, f), rtol=1e-12, err_msg=f)


def test_merge_refuses_other_settings() -> None:
    a = PerfAcc(PerformanceSettings(calibration_bins=10))
    with pytest.raises(StateError, match="bins"):
        a.merge(PerfAcc(PerformanceSettings(calibration_bins=5)))
    with pytest.raises(StateError, match="regression"):
        a.merge(PerfAcc(PerformanceSettings(task="regression")))
    a.merge(PerfAcc(PerformanceSettings(calibration_bins=10, min_samples=3)))  # gating differs


def test_rollup_cells_via_repeated_indices_equal_their_events() -> None:
    reg = CellRegistry(CellSettings(dimensions=("segment", "region")))
    rng = np.random.default_rng(11)
    n = 4000
    leaves = [("m", s, r) for s in "abc" for r in "xyz"] + [("n", "a", "x")]
    keys = [leaves[i] for i in rng.integers(0, len(leaves), n)]
    leaf = reg.index_many(keys)
    scores = rng.random(n)
    labels = (rng.random(n) < scores).astype(float)
    predicted = scores >= 0.5
    variants = reg.rollups[leaf]  # (events, 4)
    k = variants.shape[1]
    flat = variants.ravel()
    acc = PerfAcc(PerformanceSettings(min_samples=1))
    acc.add_predictions(flat, np.repeat(correct_probability(scores, predicted), k), len(reg))
    acc.add_classified(
        flat, np.repeat(scores, k), np.repeat(labels, k), np.repeat(predicted, k), len(reg)
    )
    st = derive_performance(acc, len(reg))
    assert len(reg) == 9 + 3 + 3 + 1 + 4
    for i, key in enumerate(reg.keys):
        sel = np.array(
            [
                key[0] == e[0] and all(v in (ALL, w) for v, w in zip(key[1:], e[1:], strict=True))
                for e in keys
            ]
        )
        y, s, p = labels[sel], scores[sel], predicted[sel].astype(float)
        assert st.labeled[i] == sel.sum() > 0, key
        assert st.accuracy[i] == pytest.approx(oracles.accuracy(y, p), rel=1e-12)
        assert st.brier[i] == pytest.approx(oracles.brier(y, s), rel=1e-9)
        ece = oracles.calibration_error(y, s, 10)
        assert st.calibration_error[i] == pytest.approx(ece, rel=1e-9)
    top = reg.lookup(("m", ALL, ALL))
    assert top is not None and st.labeled[top] == sum(key[0] == "m" for key in keys)


# --- the label-free estimate -----------------------------------------------------------------


def _stream(seed: int, trials: int, n: int, calibrated: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cells = np.repeat(np.arange(trials), n).astype(np.int64)
    scores = rng.beta(2.0, 2.0, trials * n)
    p_true = scores if calibrated else np.clip(0.5 + 1.6 * (scores - 0.5), 0, 1)
    labels = (rng.random(trials * n) < p_true).astype(np.float64)
    return {"cells": cells, "scores": scores, "labels": labels, "predicted": scores >= 0.5}


@pytest.mark.parametrize(("confidence", "lo", "hi"), [(0.95, 0.90, 0.99), (0.8, 0.74, 0.86)])
def test_estimate_covers_true_accuracy_on_a_calibrated_stream(
    confidence: float, lo: float, hi: float
) -> None:
    """400 seeded trials (one cell each): |gap| <= bound in about ``confidence`` of them."""
    trials = 400
    ev = _stream(2024, trials, 250, calibrated=True)
    acc = PerfAcc(PerformanceSettings(confidence=confidence))
    _feed(acc, ev, batches=3, n_cells=trials)
    st = derive_performance(acc, trials)
    covered = np.abs(st.estimate_gap) <= st.estimate_bound
    assert lo <= covered.mean() <= hi, covered.mean()
    assert np.abs(st.estimate_gap).mean() < st.estimate_bound.mean()  # not a vacuous bound
    assert st.estimate_bound.max() < 0.08


def test_estimate_fails_on_a_miscalibrated_stream() -> None:
    trials = 400
    ev = _stream(2025, trials, 250, calibrated=False)  # overconfident-in-reverse: true p steeper
    acc = PerfAcc(PerformanceSettings())
    _feed(acc, ev, batches=3, n_cells=trials)
    st = derive_performance(acc, trials)
    covered = np.abs(st.estimate_gap) <= st.estimate_bound
    assert covered.mean() < 0.2, covered.mean()
    assert (st.estimate_gap > 0).mean() > 0.9  # the model is better than its scores say


def test_estimate_all_covers_accuracy_over_all_predictions() -> None:
    """Only a fifth of the predictions get labels; estimate_all speaks for all of them."""
    trials = 400
    ev = _stream(7, trials, 250, calibrated=True)
    acc = PerfAcc(PerformanceSettings())
    q = correct_probability(ev["scores"], ev["predicted"])
    acc.add_predictions(ev["cells"], q, trials)
    labeled = np.random.default_rng(8).random(len(q)) < 0.2
    acc.add_classified(
        ev["cells"][labeled],
        ev["scores"][labeled],
        ev["labels"][labeled],
        ev["predicted"][labeled],
        trials,
    )
    count, est, bound = estimate_all(acc, trials, 30)
    assert (count == 250).all()
    right = (ev["predicted"] == (ev["labels"] == 1)).astype(float)
    true_accuracy = np.bincount(ev["cells"], weights=right) / 250
    np.testing.assert_allclose(est, np.bincount(ev["cells"], weights=q) / 250, rtol=1e-12)
    covered = np.abs(true_accuracy - est) <= bound
    assert 0.92 <= covered.mean() <= 0.98, covered.mean()
    assert (derive_performance(acc, trials).labeled < 250).all()


# --- checkpoints -----------------------------------------------------------------------------


def _rows_and_keys(task: str = "classification") -> tuple[PerfAcc, list[tuple[str, ...]]]:
    settings = PerformanceSettings(task=task, min_samples=5, calibration_bins=4)
    acc = PerfAcc(settings)
    keys = [("m", f"s{i}") for i in range(CELLS)]
    ev = _classified(3, 0.5, n=500)
    if task == "classification":
        _feed(acc, ev)
    else:
        acc.add_predictions(ev["cells"], ev["scores"], CELLS)
        acc.add_regressed(ev["cells"], ev["scores"], ev["labels"], CELLS)
    return acc, keys


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_rows_round_trip_through_json(task: str) -> None:
    acc, keys = _rows_and_keys(task)
    rows = acc.to_rows(keys)
    assert len(rows) == CELLS - 1  # the untouched cell is left out
    text = json.dumps(rows, allow_nan=False)
    # Restore into a registry that orders the cells differently.
    order = {k: j for j, k in enumerate(reversed(keys))}
    back = PerfAcc.from_rows(acc.settings, json.loads(text), order.__getitem__, n=CELLS)
    perm = [order[k] for k in keys]
    want = acc.sized(CELLS)
    for name in [*acc.count_fields, *acc.sum_fields]:
        np.testing.assert_array_equal(back.column(name)[perm], want.column(name), err_msg=name)
    if task == "classification":
        for name in ("bin_count", "bin_positives", "bin_score", "bin_square"):
            np.testing.assert_array_equal(back.column(name)[perm], want.column(name))
    again = back.to_rows([keys[perm.index(j)] for j in range(CELLS)])
    assert sorted(again) == sorted(rows)  # written in the new registry's order


def test_from_rows_adds_keys_mapped_to_one_cell_and_grows_to_the_index() -> None:
    acc, keys = _rows_and_keys()
    rows = acc.to_rows(keys)
    back = PerfAcc.from_rows(acc.settings, rows, lambda key: 9, n=3)
    assert back.size == 10
    assert back.labeled()[9] == acc.labeled().sum() and back.labeled()[:9].sum() == 0
    empty = PerfAcc.from_rows(acc.settings, [], lambda key: 0, n=4)
    assert empty.size == 4 and not empty.touched().any()


def test_to_rows_needs_a_key_for_every_touched_cell() -> None:
    acc, keys = _rows_and_keys()
    with pytest.raises(ValueError, match="keys"):
        acc.to_rows(keys[:3])


Mutation = Callable[[list[Any]], Any]


def _set(path: tuple[int, ...], value: Any) -> Mutation:
    def mutate(rows: list[Any]) -> Any:
        target = rows
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
        return rows

    return mutate


def _bump(path: tuple[int, ...], delta: float) -> Mutation:
    def mutate(rows: list[Any]) -> Any:
        target = rows
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] += delta
        return rows

    return mutate


def _add_positive(rows: list[Any]) -> Any:
    """One more positive in a bin that has room for it: only the tp + fn identity breaks."""
    for row in rows:
        for b, (count, positives) in enumerate(zip(row[3], row[4], strict=True)):
            if positives < count:
                row[4][b] += 1
                return rows
    raise AssertionError("no bin with room")


# Row layout: [key, [pred, labeled, correct, tp, fp, fn], [q, q_var, lq, lqv, brier, log_loss],
#              bin counts, bin positives, bin score sums, bin squared score sums]
BAD_CLASSIFICATION: dict[str, tuple[Mutation, str]] = {
    "not a list": (lambda rows: {"rows": rows}, "rows: expected a list"),
    "row not a list": (_set((0,), "row"), r"rows\[0\]: expected"),
    "row too short": (lambda rows: [rows[0][:3], *rows[1:]], r"rows\[0\]: expected"),
    "key too long": (_set((1, 0), ["m", "s1", "x"]), r"rows\[1\]\.key"),
    "key empty string": (_set((1, 0), ["m", ""]), r"rows\[1\]\.key"),
    "key not strings": (_set((1, 0), ["m", 3]), r"rows\[1\]\.key"),
    "duplicate key": (lambda rows: [*rows, copy.deepcopy(rows[0])], "duplicate"),
    "counts short": (lambda rows: _set((0, 1), rows[0][1][:5])(rows), r"rows\[0\]\.counts"),
    "negative count": (_set((2, 1, 0), -1), r"rows\[2\]\.counts"),
    "bool count": (_set((2, 1, 0), True), r"rows\[2\]\.counts"),
    "float count": (_set((2, 1, 0), 3.0), r"rows\[2\]\.counts"),
    "huge count": (_set((2, 1, 0), 2**63), r"rows\[2\]\.counts"),
    "nan sum": (_set((0, 2, 4), math.nan), r"rows\[0\]\.sums: expected finite"),
    "inf sum": (_set((0, 2, 5), math.inf), r"rows\[0\]\.sums: expected finite"),
    "string sum": (_set((0, 2, 0), "1.0"), r"rows\[0\]\.sums"),
    "sums long": (lambda rows: _set((0, 2), [*rows[0][2], 0.0])(rows), r"rows\[0\]\.sums"),
    "bins of another width": (
        lambda rows: _set((0, 3), [*rows[0][3], 0])(rows),
        r"rows\[0\]\.bin_counts: expected a list of 4",
    ),
    "bin scores short": (lambda rows: _set((0, 5), rows[0][5][:3])(rows), r"\.bin_scores"),
    "bin squares short": (lambda rows: _set((0, 6), rows[0][6][:3])(rows), r"\.bin_squares"),
    "bin square over scores": (_bump((1, 6, 0), 10**6), "squared sum"),
    "negative bin square": (_set((1, 6, 0), -0.5), "squared sum"),
    "correct inconsistent": (_bump((1, 1, 2), 1), "correct differs"),
    "tp+fp+fn over labeled": (_bump((1, 1, 3), 10**6), "exceeds labeled"),
    "bins do not add up": (_bump((1, 3, 0), 1), "add up to labeled"),
    "positives over count": (_bump((1, 4, 0), 10**6), "more positives"),
    "positives not tp+fn": (_add_positive, r"positives differ from tp \+ fn"),
    "bin score over count": (_bump((1, 5, 0), 10**6), "score sum"),
    "negative bin score": (_set((1, 5, 0), -0.5), "score sum"),
    "q over predictions": (_bump((1, 2, 0), 10**6), "q outside"),
    "negative brier": (_set((1, 2, 4), -1.0), "brier outside"),
    "log loss too large": (_bump((1, 2, 5), 10**6), "log_loss outside"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLASSIFICATION))
def test_malformed_rows_are_refused_before_any_key_is_resolved(case: str) -> None:
    acc, keys = _rows_and_keys()
    mutate, message = BAD_CLASSIFICATION[case]
    rows = json.loads(json.dumps(acc.to_rows(keys)))
    assert PerfAcc.parse_rows(copy.deepcopy(rows), acc.settings, 2).keys  # valid as written
    bad = mutate(rows)
    calls: list[tuple[str, ...]] = []

    def index(key: tuple[str, ...]) -> int:
        calls.append(key)
        return len(calls) - 1

    with pytest.raises(StateError, match=message):
        PerfAcc.from_rows(acc.settings, bad, index, n=CELLS, key_len=2)
    assert calls == [], "index was called on bad data"
    with pytest.raises(StateError, match=r"^performance state is malformed: "):
        PerfAcc.parse_rows(bad, acc.settings, 2)


BAD_REGRESSION: dict[str, tuple[Mutation, str]] = {
    "regression row with bins": (lambda rows: [[*rows[0], [], [], []]], r"\[key, counts, sums\]"),
    "abs below |error|": (_set((0, 2, 1), 0.0), r"\|error\| exceeds"),
    "negative squared": (_set((0, 2, 2), -1.0), ">= 0"),
    "sums without labels": (
        lambda rows: _set((0, 1, 1), 0)(rows),
        "sums without labeled",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REGRESSION))
def test_malformed_regression_rows_are_refused(case: str) -> None:
    acc, keys = _rows_and_keys("regression")
    mutate, message = BAD_REGRESSION[case]
    bad = mutate(json.loads(json.dumps(acc.to_rows(keys))))
    calls: list[tuple[str, ...]] = []
    with pytest.raises(StateError, match=message):
        PerfAcc.from_rows(acc.settings, bad, lambda k: calls.append(k) or 0, n=CELLS)
    assert calls == []


def test_rows_of_another_task_or_width_are_refused() -> None:
    acc, keys = _rows_and_keys()
    rows = acc.to_rows(keys)
    with pytest.raises(StateError):
        PerfAcc.from_rows(PerformanceSettings(task="regression"), rows, lambda k: 0, n=CELLS)
    with pytest.raises(StateError, match="expected a list of 10"):
        PerfAcc.from_rows(PerformanceSettings(calibration_bins=10), rows, lambda k: 0, n=CELLS)
    parsed = PerfAcc.parse_rows(rows, acc.settings, 2)
    with pytest.raises(StateError, match="other performance settings"):
        PerfAcc.from_parsed(PerformanceSettings(calibration_bins=5), parsed, lambda k: 0, CELLS)


def test_squared_scores_per_bin_are_kept_and_rows_without_them_still_load() -> None:
    acc, keys = _rows_and_keys()
    rows = json.loads(json.dumps(acc.to_rows(keys)))
    index = {k: j for j, k in enumerate(keys)}.__getitem__
    back = PerfAcc.from_rows(acc.settings, rows, index, n=CELLS)
    want = acc.sized(CELLS)
    assert (want.column("bin_square") <= want.column("bin_score") + 1e-12).all()
    assert want.column("bin_square").sum() > 0
    np.testing.assert_array_equal(back.column("bin_square"), want.column("bin_square"))
    # A checkpoint written before the squares existed: they read as the score sums (the
    # calibration test then uses the binomial variance, as it did then).
    old = [row[:6] for row in rows]
    restored = PerfAcc.from_rows(acc.settings, old, index, n=CELLS)
    np.testing.assert_array_equal(restored.column("bin_square"), want.column("bin_score"))
    np.testing.assert_array_equal(restored.column("bin_count"), want.column("bin_count"))
