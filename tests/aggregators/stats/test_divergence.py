"""Drift scores, tests and intervals against scipy and hand-written formulas, row by row."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from tests import oracles
from tilewatch.aggregators.stats.decisions import benjamini_hochberg, gate
from tilewatch.aggregators.stats.divergence import chi2_pvalue, js_distance, mean_zscore, psi
from tilewatch.aggregators.stats.intervals import t_interval, wilson_interval

RowScore = Callable[[Any, Any], np.ndarray]

SEEDS = [0, 1, 2, 3, 4]
SHAPES = [(1, 1), (1, 2), (7, 3), (50, 10), (400, 25)]


def _table(seed: int, shape: tuple[int, int], zero_share: bool) -> tuple[np.ndarray, np.ndarray]:
    """Expected shares (one row per cell) and observed counts with empty bins and empty rows."""
    rng = np.random.default_rng(seed)
    cells, bins = shape
    expected = rng.dirichlet(np.full(bins, 0.7), size=cells)
    if zero_share and bins > 2:
        expected[:, 0] = 0.0
        expected /= expected.sum(axis=1, keepdims=True)
    n = rng.choice([0, 1, 5, 40, 1000], size=cells)
    observed = np.stack(
        [rng.multinomial(int(k), rng.dirichlet(np.full(bins, 0.5))) for k in n]
    ).astype(np.int64)
    if cells > 2:
        observed[1] = 0  # an empty row
        observed[2] = rng.multinomial(200, expected[2])  # a row drawn from the reference
    return expected, observed


def _psi_reference(p: np.ndarray, counts: np.ndarray, eps: float = 1e-4) -> float:
    n = counts.sum()
    if n == 0:
        return math.nan
    k = len(p)
    p = p / p.sum()
    q = counts / n
    total = 0.0
    for pe, qo in zip(p, q, strict=True):
        e = (pe + eps) / (1 + k * eps)
        o = (qo + eps) / (1 + k * eps)
        total += (o - e) * math.log(o / e)
    return total


# --- psi -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("zero_share", [False, True])
def test_psi_matches_hand_formula(seed: int, shape: tuple[int, int], zero_share: bool) -> None:
    expected, observed = _table(seed, shape, zero_share)
    got = psi(expected, observed)
    assert got.shape == (shape[0],)
    want = [_psi_reference(e, o) for e, o in zip(expected, observed, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    assert np.all((got >= 0) | np.isnan(got))
    assert np.array_equal(np.isnan(got), observed.sum(axis=1) == 0)


@pytest.mark.parametrize("eps", [1e-6, 1e-4, 1e-2])
def test_psi_eps(eps: float) -> None:
    p = np.array([0.5, 0.3, 0.2, 0.0])
    o = np.array([[10, 0, 0, 5]])
    np.testing.assert_allclose(psi(p, o, eps=eps), [_psi_reference(p, o[0], eps)], rtol=1e-12)


def test_psi_identical_is_zero_and_shift_is_positive() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4])
    same = np.array([[10, 20, 30, 40], [1, 2, 3, 4]])
    assert psi(p, same).tolist() == [0.0, 0.0]
    assert psi([1.0], [[7], [0]]).tolist()[0] == 0.0  # single bin: no drift possible
    assert psi(p, [[40, 30, 20, 10]])[0] > 0.2


# --- js_distance -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("zero_share", [False, True])
def test_js_matches_scipy(seed: int, shape: tuple[int, int], zero_share: bool) -> None:
    expected, observed = _table(seed, shape, zero_share)
    got = js_distance(expected, observed)
    assert got.shape == (shape[0],)
    for i, (e, o) in enumerate(zip(expected, observed, strict=True)):
        if o.sum() == 0:
            assert math.isnan(got[i])
        else:
            assert got[i] == pytest.approx(jensenshannon(e, o, base=2), rel=1e-9, abs=1e-7)
    assert np.all((got >= 0) & (got <= 1) | np.isnan(got))


def test_js_identical_and_disjoint() -> None:
    p = np.array([0.25, 0.25, 0.5, 0.0, 0.0])
    obs = np.array([[1, 1, 2, 0, 0], [0, 0, 0, 3, 9], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    got = js_distance(p, obs)
    assert got[0] == 0.0
    assert got[1] == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(got[2])
    assert got[3] == pytest.approx(1.0, abs=1e-12)
    assert js_distance([1.0], [[3]]).tolist() == [0.0]  # single bin


# --- chi2_pvalue -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_chi2_matches_scipy(seed: int, shape: tuple[int, int]) -> None:
    expected, observed = _table(seed, shape, zero_share=False)
    got = chi2_pvalue(expected, observed)
    assert got.shape == (shape[0],)
    for i, (e, o) in enumerate(zip(expected, observed, strict=True)):
        n = o.sum()
        if n == 0 or len(e) < 2:
            assert math.isnan(got[i])
            continue
        want = stats.chisquare(o, f_exp=e * n).pvalue
        assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("seed", SEEDS)
def test_chi2_zero_share_bins(seed: int) -> None:
    """Bins the reference never saw drop out of the test, unless they hold observations."""
    rng = np.random.default_rng(seed)
    e = np.array([0.0, 0.2, 0.0, 0.5, 0.3])
    support = e > 0
    obs = np.zeros((30, 5), dtype=np.int64)
    obs[:, support] = rng.multinomial(60, e[support], size=30)
    obs[:10, 2] = rng.integers(1, 3, size=10)  # impossible under the reference
    got = chi2_pvalue(e, obs)
    assert np.all(got[:10] == 0.0)
    for i in range(10, 30):
        n = obs[i].sum()
        want = stats.chisquare(obs[i, support], f_exp=e[support] * n).pvalue
        assert got[i] == pytest.approx(want, rel=1e-9)


def test_chi2_degenerate_rows() -> None:
    # df = 2 - 1 = 1 with one zero-share bin; single-support rows have df = 0 -> NaN.
    got = chi2_pvalue(
        [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], [[3, 7, 0], [5, 0, 0], [0, 0, 0]]
    )
    assert got[0] == pytest.approx(stats.chisquare([3, 7], [5, 5]).pvalue, rel=1e-12)
    assert math.isnan(got[1])
    assert math.isnan(got[2])
    assert chi2_pvalue([0.2, 0.8], [20, 80]).tolist() == 1.0  # 1-D: a 0-d result


# --- vectorized equals per-row, broadcasting -------------------------------------------------


@pytest.mark.parametrize("func", [psi, js_distance, chi2_pvalue])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_vectorized_equals_row_loop(func: RowScore, seed: int) -> None:
    expected, observed = _table(seed, (60, 6), zero_share=True)
    got = func(expected, observed)
    rows = [float(func(e, o)) for e, o in zip(expected, observed, strict=True)]
    np.testing.assert_array_equal(got, rows)
    # 1-D inputs are one row: a 0-d result.
    assert func(expected[0], observed[0]).shape == ()
    # One shared reference row broadcasts like a per-cell copy of it.
    shared = expected[0]
    np.testing.assert_array_equal(
        func(shared, observed), func(np.tile(shared, (len(observed), 1)), observed)
    )
    # Reference counts work as well as shares.
    np.testing.assert_allclose(func(shared * 1234.0, observed), func(shared, observed), rtol=1e-12)


@pytest.mark.parametrize("func", [psi, js_distance, chi2_pvalue])
def test_bin_axis_mismatch_rejected(func: RowScore) -> None:
    with pytest.raises(ValueError):
        func([0.5, 0.5], [[1, 2, 3]])
    with pytest.raises(ValueError):
        func(0.5, 3)


@pytest.mark.parametrize("func", [psi, js_distance, chi2_pvalue])
def test_all_zero_expected_row_is_nan(func: RowScore) -> None:
    got = func([[0.0, 0.0], [0.5, 0.5]], [[1, 2], [1, 2]])
    assert math.isnan(got[0])
    assert not math.isnan(got[1])


# --- mean_zscore -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_mean_zscore_matches_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cells = 200
    mean = rng.normal(size=cells)
    count = rng.integers(0, 50, size=cells)
    ref_mean = rng.normal(size=cells)
    ref_std = np.where(rng.random(cells) < 0.1, 0.0, rng.gamma(2.0, size=cells))
    got = mean_zscore(mean, count, ref_mean, ref_std)
    for i in range(cells):
        if count[i] == 0 or ref_std[i] == 0:
            assert math.isnan(got[i])
        else:
            want = (mean[i] - ref_mean[i]) / (ref_std[i] / math.sqrt(count[i]))
            assert got[i] == pytest.approx(want, rel=1e-12)


def test_mean_zscore_scalar_reference() -> None:
    got = mean_zscore([0.0, 0.5], [4, 100], 0.0, 1.0)
    assert got.tolist() == [0.0, 5.0]


# --- t_interval ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.999])
def test_t_interval_matches_scipy(seed: int, confidence: float) -> None:
    rng = np.random.default_rng(seed)
    cells = 100
    mean = rng.normal(scale=10.0, size=cells)
    var = rng.gamma(1.0, size=cells)
    count = rng.choice([0, 1, 2, 3, 10, 1000], size=cells)
    lo, hi = t_interval(mean, var, count, confidence)
    for i in range(cells):
        if count[i] < 2:
            assert math.isnan(lo[i])
            assert math.isnan(hi[i])
            continue
        want = stats.t.interval(
            confidence, count[i] - 1, loc=mean[i], scale=math.sqrt(var[i] / count[i])
        )
        assert lo[i] == pytest.approx(want[0], rel=1e-9, abs=1e-12)
        assert hi[i] == pytest.approx(want[1], rel=1e-9, abs=1e-12)


def test_t_interval_zero_variance_and_bad_confidence() -> None:
    lo, hi = t_interval([3.0], [0.0], [5])
    assert (lo.tolist(), hi.tolist()) == ([3.0], [3.0])
    with pytest.raises(ValueError):
        t_interval([0.0], [1.0], [5], confidence=1.0)


# --- wilson_interval -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_reference_formula(seed: int, confidence: float) -> None:
    rng = np.random.default_rng(seed)
    trials = rng.choice([0, 1, 2, 10, 100, 10_000], size=200)
    successes = rng.binomial(trials, rng.random(200))
    successes[:5] = 0
    successes[5:10] = trials[5:10]
    lo, hi = wilson_interval(successes, trials, confidence)
    for i in range(200):
        want = oracles.wilson(int(successes[i]), int(trials[i]), confidence)
        if trials[i] == 0:
            assert math.isnan(lo[i])
            assert math.isnan(hi[i])
            continue
        assert lo[i] == pytest.approx(want[0], rel=1e-9, abs=1e-12)
        assert hi[i] == pytest.approx(want[1], rel=1e-9, abs=1e-12)
        p = successes[i] / trials[i]
        assert 0.0 <= lo[i] <= p <= hi[i] <= 1.0


def test_wilson_known_values() -> None:
    # statsmodels.stats.proportion.proportion_confint(5, 10, method="wilson")
    lo, hi = wilson_interval([5, 0, 10], [10, 10, 10])
    assert lo[0] == pytest.approx(0.236593090, rel=1e-8)
    assert hi[0] == pytest.approx(0.763406910, rel=1e-8)
    assert lo[1] == 0.0
    assert hi[2] == 1.0
    with pytest.raises(ValueError):
        wilson_interval([1], [2], confidence=0.0)


# --- benjamini_hochberg ----------------------------------------------------------------------


def test_bh_crafted_grid() -> None:
    """m = 10 tests at rate 0.05: thresholds k * 0.005.

    Sorted, p_(2) = 0.012 > 0.010 fails its own threshold but p_(4) = 0.019 <= 0.020 passes,
    so the step-up rejects the four smallest. The NaNs are not tests: counted as tests
    (m = 13), the thresholds would drop and only 0.0008 would be rejected.
    """
    p = np.array(
        [0.5, 0.019, math.nan, 0.0008, 0.3, 0.012, 0.9, math.nan, 0.014, 0.04, 0.6, 0.7, math.nan]
    )
    want = np.zeros(p.shape, dtype=bool)
    want[[1, 3, 5, 8]] = True
    np.testing.assert_array_equal(benjamini_hochberg(p, 0.05), want)
    # At rate 0.01 only 0.0008 survives (<= 0.001); at 0.25 also 0.04 (<= 5 * 0.025).
    assert np.flatnonzero(benjamini_hochberg(p, 0.01)).tolist() == [3]
    assert np.flatnonzero(benjamini_hochberg(p, 0.25)).tolist() == [1, 3, 5, 8, 9]
    with_nans_as_tests = np.nan_to_num(p, nan=1.0)
    assert np.flatnonzero(benjamini_hochberg(with_nans_as_tests, 0.05)).tolist() == [3]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m", [1, 2, 10, 500])
@pytest.mark.parametrize("rate", [0.01, 0.05, 0.2])
def test_bh_matches_scipy(seed: int, m: int, rate: float) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.random(m) ** 3, rng.random(m // 2)])
    p[rng.random(p.size) < 0.05] = 0.0
    p[rng.random(p.size) < 0.05] = 1.0
    k = m // 4
    p[:k] = p[k : 2 * k]  # ties
    nan = rng.random(p.size) < 0.2
    p[nan] = math.nan
    got = benjamini_hochberg(p, rate)
    assert not got[nan].any()
    if (~nan).any():
        want = stats.false_discovery_control(p[~nan], method="bh") <= rate
        np.testing.assert_array_equal(got[~nan], want)


def test_bh_shape_and_edge_cases() -> None:
    p = np.array([[0.001, 0.5], [math.nan, 0.002]])
    assert benjamini_hochberg(p).tolist() == [[True, False], [False, True]]
    assert benjamini_hochberg([math.nan, math.nan]).tolist() == [False, False]
    assert benjamini_hochberg([]).shape == (0,)
    with pytest.raises(ValueError):
        benjamini_hochberg([0.5, 1.5])
    with pytest.raises(ValueError):
        benjamini_hochberg([0.5], rate=0.0)


# --- gate ------------------------------------------------------------------------------------


def test_gate() -> None:
    values = np.array([0.1, 0.2, math.nan, 0.4])
    counts = np.array([30, 29, 100, 0])
    got = gate(values, counts, 30)
    assert got[0] == 0.1
    assert np.isnan(got[1:]).all()
    assert gate([1.0, 2.0], [0, 0], 0).tolist() == [1.0, 2.0]
    grid = gate(np.ones((2, 3)), np.array([[5], [50]]), 10)  # broadcasts like numpy
    assert np.isnan(grid[0]).all()
    assert grid[1].tolist() == [1.0, 1.0, 1.0]


def test_many_cells_no_python_loop_needed() -> None:
    """A realistic window: 5000 cells x 20 bins in one call each."""
    expected, observed = _table(9, (5000, 20), zero_share=False)
    for func in (psi, js_distance, chi2_pvalue):
        assert func(expected, observed).shape == (5000,)
    p = chi2_pvalue(expected[0], observed)
    assert benjamini_hochberg(gate(p, observed.sum(axis=1), 30)).shape == (5000,)
