"""WindowAcc histograms: counts in int32, summed weights (multi-class sums) in int64."""

from __future__ import annotations

import numpy as np

from tilewatch.aggregators.state.window_acc import HIST_DTYPE, SUMMED_HISTOGRAMS, WindowAcc
from tilewatch.aggregators.stats.multiclass_window import SUM_SCALE, window_weights


def test_summed_histograms_are_exactly_the_weighted_ones() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=5)
    labels = np.array([0, 1, 2, 3, 0])
    weighted = window_weights(p, labels)
    assert set(weighted) == SUMMED_HISTOGRAMS


def test_weighted_sums_do_not_overflow_and_counts_stay_small() -> None:
    acc = WindowAcc()
    n = 50_000
    cells = np.zeros(n, dtype=np.int64)
    bins = np.zeros(n, dtype=np.int64)
    weights = np.full(n, 20 * SUM_SCALE, dtype=np.int64)  # a log loss of 20 per event
    acc.add_hist("mc_logloss", cells, bins, 1, 1, weights)
    acc.add_hist("score", cells, bins, 1, 10)
    assert acc.hist["mc_logloss"].dtype == np.int64
    assert int(acc.hist["mc_logloss"][0, 0]) == n * 20 * SUM_SCALE
    assert acc.hist["score"].dtype == HIST_DTYPE
    assert int(acc.hist["score"][0, 0]) == n
    # restoring (add_counts) keeps the wide table wide
    restored = WindowAcc()
    restored.add_counts("mc_logloss", acc.hist["mc_logloss"].astype(np.int64))
    assert int(restored.hist["mc_logloss"][0, 0]) == n * 20 * SUM_SCALE
