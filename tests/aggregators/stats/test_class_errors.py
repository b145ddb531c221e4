"""Error-rate decisions of multi-class cells against scipy's Fisher test and BH."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tilewatch.aggregators.stats.class_errors import class_error_decisions


@pytest.mark.parametrize("k", [3, 10, 50])
def test_decisions_equal_scipy(k: int) -> None:
    rng = np.random.default_rng(k)
    cells = 40
    ref = rng.integers(0, 30, (cells, k, k)).astype(float)
    ref[:, np.arange(k), np.arange(k)] += 200
    win = rng.integers(0, 4, (cells, k, k))
    win[:, np.arange(k), np.arange(k)] += 20
    win[:5, 0, 1] += 3 * k * k + 200  # five cells confuse class 0 with class 1
    win[7] = 0  # no labels: not tested
    d = class_error_decisions(win, ref, min_samples=30, fdr_rate=0.01, min_increase=0.05)
    expected_p = []
    for c in range(cells):
        wt, rt = win[c].sum(), ref[c].sum()
        ww, rw = wt - np.trace(win[c]), rt - np.trace(ref[c])
        if wt < 30:
            expected_p.append(math.nan)
            continue
        table = [[ww, wt - ww], [rw, rt - rw]]
        expected_p.append(stats.fisher_exact(table, alternative="greater").pvalue)
        assert d.increase[c] == pytest.approx(ww / wt - rw / rt)
    np.testing.assert_allclose(d.pvalue, expected_p, rtol=1e-9)
    tested = ~np.isnan(d.pvalue)
    adjusted = stats.false_discovery_control(d.pvalue[tested], method="bh")
    rejected = np.zeros(cells, dtype=bool)
    rejected[tested] = adjusted <= 0.01
    assert d.flag.tolist() == (rejected & (np.nan_to_num(d.increase) > 0.05)).tolist()
    assert np.flatnonzero(d.flag).tolist() == [0, 1, 2, 3, 4]
    assert np.isnan(d.pvalue[7]) and not d.flag[7]


def test_no_reference_no_test() -> None:
    win = np.full((2, 9), 10, dtype=np.int64)
    d = class_error_decisions(win, np.zeros((2, 9)), min_samples=1, fdr_rate=0.05)
    assert np.isnan(d.pvalue).all() and not d.flag.any()


def test_an_empty_grid() -> None:
    """A snapshot before the first event has no cells: nothing to decide, nothing raised."""
    d = class_error_decisions(np.zeros((0, 16), dtype=np.int64), np.zeros((0, 16)), 30, 0.01)
    assert d.pvalue.shape == d.increase.shape == d.flag.shape == (0,)
