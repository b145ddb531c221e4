"""Latency histograms: binning, exact merging, quantiles against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from tilewatch.aggregators.stats.latency import (
    LATENCY_BINS,
    LATENCY_QUANTILES,
    latency_bins,
    latency_quantiles,
    latency_quantiles_many,
)


def _hist(values_ms: list[float]) -> np.ndarray:
    h = np.zeros((1, LATENCY_BINS), dtype=np.int64)
    bins, bad = latency_bins(values_ms)
    assert bad == 0
    np.add.at(h[0], bins[bins >= 0], 1)
    return h


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("q", LATENCY_QUANTILES)
def test_quantiles_within_one_bin_of_numpy(seed: int, q: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(rng.uniform(0, 5), rng.uniform(0.2, 1.5), 20_000)
    got = latency_quantiles(_hist(x.tolist()), q)[0] * 1000
    want = float(np.quantile(x, q))
    assert abs(np.log(got / want)) <= np.log(10**0.1)  # within one bin's width


def test_histograms_merge_by_adding() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(1, 1, 5000).tolist()
    both = _hist(x)
    split = _hist(x[:1234]) + _hist(x[1234:])
    np.testing.assert_array_equal(both, split)
    for q in LATENCY_QUANTILES:
        assert latency_quantiles(both, q)[0] == latency_quantiles(split, q)[0]


def test_bad_and_absent_values_are_not_counted() -> None:
    bins, bad = latency_bins([None, -1.0, float("nan"), float("inf"), "3", True, [1], 2.0, 0])
    assert bad == 6  # None is absent, not bad; True is a bool, not a number
    assert bins[:7].tolist() == [-1] * 7
    assert (bins[7:] >= 0).all()


def test_open_end_bins_report_their_edge_and_empty_rows_nan() -> None:
    h = np.zeros((3, LATENCY_BINS), dtype=np.int64)
    h[0, 0] = 5  # all below 0.1 ms
    h[1, -1] = 5  # all 100 s or more
    assert latency_quantiles(h, 0.5)[0] == pytest.approx(1e-4)
    assert latency_quantiles(h, 0.5)[1] == pytest.approx(100.0)
    assert np.isnan(latency_quantiles(h, 0.5)[2])


def test_numeric_fast_path_agrees_with_the_checked_path() -> None:
    # A batch of plain numbers and None takes the vectorized path; one odd value (a string)
    # sends the whole batch through the per-value checks. Both must bin and count alike.
    values: list[object] = [0.05, 1.0, 250.0, None, -3, 1e9, float("nan"), float("inf"), 0, 5]
    fast_bins, fast_bad = latency_bins(values)
    slow_bins, slow_bad = latency_bins([*values, "x"])
    assert fast_bins.tolist() == slow_bins[:-1].tolist()
    assert (fast_bad, slow_bad) == (3, 4)  # -3, nan, inf (+ "x"); None is absent, not bad


def test_quantiles_read_in_blocks_of_rows_equal_each_row_alone() -> None:
    """``latency_quantiles_many`` converts and sums a block of rows at a time: each row's
    quantile is the one of that row alone, empty rows NaN, across the blocks' edges."""
    from tilewatch.aggregators.stats import latency as mod

    rng = np.random.default_rng(5)
    h = rng.integers(0, 3, (2 * mod._CHUNK + 17, LATENCY_BINS))
    h[rng.random(len(h)) < 0.3] = 0
    got = mod.latency_quantiles_many(h, LATENCY_QUANTILES)
    edges = [0, mod._CHUNK - 1, mod._CHUNK, 2 * mod._CHUNK, len(h) - 1]
    for i in [*edges, *rng.integers(0, len(h), 200).tolist()]:
        for q, res in zip(LATENCY_QUANTILES, got, strict=True):
            alone = latency_quantiles(h[i : i + 1], q)[0]
            assert (np.isnan(alone) and np.isnan(res[i])) or res[i] == alone
    assert np.isnan(got[0][h.sum(axis=1) == 0]).all()


def _float_reference(row: np.ndarray, q: float) -> float:
    """A row's quantile written out in floats, the bin found by comparing float sums with the
    float target (what the integer comparison must agree with)."""
    from tilewatch.aggregators.stats.latency import _EDGES

    cum = np.cumsum(row.astype(np.float64))
    target = q * cum[-1]
    b = min(int((cum < target).sum()), LATENCY_BINS - 1)
    if b == 0:
        return float(_EDGES[0])
    if b == LATENCY_BINS - 1:
        return float(_EDGES[-1])
    below, inside = cum[b - 1], float(row[b])
    frac = min(max((target - below) / inside, 0.0), 1.0) if inside > 0 else 0.0
    lo, hi = _EDGES[b - 1], _EDGES[min(b, len(_EDGES) - 1)]
    return float(lo * (hi / lo) ** frac)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_quantiles_of_every_table_dtype_equal_the_float_reference(dtype: type) -> None:
    """Closed windows keep one-byte tables: the sums are taken in integers from any dtype,
    the bin found by comparing them with the target's ceiling; each quantile equals the one
    found in floats, targets that fall exactly on a bin's sum included (q * n an integer)."""
    rng = np.random.default_rng(6)
    h = rng.integers(0, 4, (600, LATENCY_BINS)) * (rng.random((600, LATENCY_BINS)) < 0.2)
    h[:50] = 0
    h[50:100, 20] = 2  # n = 2 x (1 + the others): 0.5 x n lands on bin sums
    h[100:110] = 0
    h[100:110, 0] = 1  # everything in the lowest bin, or the highest
    h[105:110, 0], h[105:110, -1] = 0, 7
    qs = (0.0, 0.5, 0.95, 0.99, 1.0)
    got = latency_quantiles_many(h.astype(dtype), qs)
    for q, res in zip(qs, got, strict=True):
        for i in range(len(h)):
            if h[i].sum() == 0:
                assert np.isnan(res[i])
            else:
                # The same bin and fraction; numpy's vectorized power may round the last
                # bit apart from Python's.
                assert res[i] == pytest.approx(_float_reference(h[i], q), rel=1e-14), (q, i)
