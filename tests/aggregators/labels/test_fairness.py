"""performance_gaps: which cells are compared, worst and best, ties, order, against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tilewatch.aggregators.cells.settings import ALL, OTHER
from tilewatch.aggregators.labels.fairness import Gap, performance_gaps

DIMS = ("segment", "region")


def _gaps(
    cells: list[tuple[tuple[str, ...], int, float]], min_samples: int = 30, dims: tuple = DIMS
) -> list[Gap]:
    keys = [k for k, _n, _a in cells]
    labeled = np.array([n for _k, n, _a in cells], dtype=np.int64)
    accuracy = np.array([a for _k, _n, a in cells], dtype=np.float64)
    return performance_gaps(keys, dims, labeled, accuracy, 1.0 - accuracy, min_samples)


def test_only_qualifying_one_dimensional_rollups_are_compared() -> None:
    cells = [
        (("m", "a", ALL), 100, 0.90),
        (("m", "b", ALL), 100, 0.70),
        (("m", "c", ALL), 29, 0.10),  # below min_samples
        (("m", OTHER, ALL), 500, 0.05),  # overflow mix, not a value
        (("m", "d", ALL), 100, math.nan),  # no metric
        (("m", "a", "x"), 100, 0.01),  # a leaf
        (("m", ALL, ALL), 300, 0.99),  # the model total
        (("m", ALL, "x"), 80, 0.60),  # only one region qualifies -> no region gap
        (("m", ALL, "y"), 10, 0.95),
        (("n", "a", ALL), 50, 0.5),  # a single segment for model n -> no gap
    ]
    gaps = _gaps(cells)
    assert [(g.model, g.dimension, g.metric) for g in gaps] == [
        ("m", "segment", "accuracy"),
        ("m", "segment", "error"),
    ]
    acc, err = gaps
    assert (acc.worst, acc.best, acc.cells) == ("b", "a", 2)
    assert acc.worst_value == pytest.approx(0.70) and acc.best_value == pytest.approx(0.90)
    assert acc.gap == pytest.approx(0.20)
    assert (err.worst, err.best) == ("b", "a")
    assert err.worst_value == pytest.approx(0.30) and err.best_value == pytest.approx(0.10)
    assert err.gap == pytest.approx(0.20)


def test_min_samples_is_inclusive() -> None:
    cells = [(("m", "a", ALL), 30, 0.9), (("m", "b", ALL), 30, 0.8)]
    assert len(_gaps(cells, min_samples=30)) == 2
    assert _gaps(cells, min_samples=31) == []


def test_ties_are_broken_by_label_and_worst_differs_from_best() -> None:
    cells = [(("m", v, ALL), 100, 0.8) for v in ("c", "a", "b")]
    acc = _gaps(cells)[0]
    assert (acc.worst, acc.best, acc.gap) == ("a", "c", 0.0)
    cells = [(("m", "b", ALL), 100, 0.5), (("m", "a", ALL), 100, 0.5), (("m", "z", ALL), 100, 0.9)]
    acc, err = _gaps(cells)
    assert (acc.worst, acc.best) == ("a", "z")
    assert (err.worst, err.best) == ("a", "z")


def test_order_is_model_dimension_metric() -> None:
    cells = []
    for model in ("zeta", "alpha"):
        cells += [((model, s, ALL), 100, 0.5 + 0.1 * i) for i, s in enumerate("ab")]
        cells += [((model, ALL, r), 100, 0.5 + 0.2 * i) for i, r in enumerate("xy")]
    got = [(g.model, g.dimension, g.metric) for g in _gaps(cells)]
    assert got == [
        (m, d, k) for m in ("alpha", "zeta") for d in DIMS for k in ("accuracy", "error")
    ]
    region = _gaps(cells)[2]
    assert (region.dimension, region.worst, region.best) == ("region", "x", "y")
    assert region.gap == pytest.approx(0.2)


def test_regression_gaps_use_the_error_alone() -> None:
    keys = [("m", "a"), ("m", "b"), ("m", "c"), ("m", ALL)]
    mae = np.array([1.5, 0.5, 4.0, 2.0])
    gaps = performance_gaps(
        keys, ("segment",), np.full(4, 100), np.full(4, np.nan), mae, min_samples=30
    )
    assert len(gaps) == 1
    g = gaps[0]
    assert (g.metric, g.worst, g.best, g.cells) == ("error", "c", "b", 3)
    assert (g.worst_value, g.best_value, g.gap) == (4.0, 0.5, 3.5)


def test_no_dimensions_means_no_gaps_and_bad_input_is_refused() -> None:
    one = np.array([0.9])
    assert performance_gaps([("m",)], (), np.array([100]), one, 1 - one, 1) == []
    with pytest.raises(ValueError, match="one entry per cell"):
        performance_gaps([("m", "a")], ("s",), np.array([1, 2]), np.zeros(1), np.zeros(1), 1)
    with pytest.raises(ValueError, match="2 parts"):
        performance_gaps([("m", "a", "b")], ("s",), np.ones(1), np.zeros(1), np.zeros(1), 1)


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_on_a_random_grid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dims = ("segment", "region", "device")
    values = [["a", "b", "c", "d"], ["x", "y"], ["p", "q", "r"]]
    keys = []
    for model in ("m1", "m2", "m3"):
        for combo in itertools.product(*[[*v, ALL] for v in values]):
            if rng.random() < 0.9:
                keys.append((model, *combo))
    n = len(keys)
    labeled = rng.choice([0, 29, 30, 200, 500], size=n)
    accuracy = np.round(rng.random(n), 2)  # rounded so ties occur
    accuracy[rng.random(n) < 0.05] = np.nan
    error = 1.0 - accuracy
    got = performance_gaps(keys, dims, labeled, accuracy, error, min_samples=30)

    want = []
    for model in ("m1", "m2", "m3"):
        for j, dim in enumerate(dims):
            pool = [
                i
                for i, k in enumerate(keys)
                if k[0] == model
                and k[1 + j] != ALL
                and all(k[1 + o] == ALL for o in range(len(dims)) if o != j)
                and labeled[i] >= 30
                and not np.isnan(accuracy[i])
            ]
            if len(pool) < 2:
                continue
            for metric, vals in (("accuracy", accuracy), ("error", error)):
                hi, lo = max(vals[i] for i in pool), min(vals[i] for i in pool)
                worst_v = lo if metric == "accuracy" else hi
                best_v = hi if metric == "accuracy" else lo
                worst = min(keys[i][1 + j] for i in pool if vals[i] == worst_v)
                best = max(keys[i][1 + j] for i in pool if vals[i] == best_v)
                gap = Gap(model, dim, metric, hi - lo, worst, best, worst_v, best_v, len(pool))
                want.append(gap)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert (g.model, g.dimension, g.metric, g.worst, g.best, g.cells) == (
            w.model, w.dimension, w.metric, w.worst, w.best, w.cells
        )  # fmt: skip
        assert g.gap == pytest.approx(w.gap, abs=1e-12)
        assert g.worst_value == pytest.approx(w.worst_value, abs=1e-12)
        assert g.best_value == pytest.approx(w.best_value, abs=1e-12)
