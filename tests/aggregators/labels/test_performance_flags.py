"""Performance flags: error excess over each cell's reference, calibration tested, BH + effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tilewatch.aggregators.labels.performance_flags import PVALUE_FLOOR, decide_performance

SETTINGS = {"min_samples": 30, "fdr_rate": 0.01, "error_alert": 0.2, "calibration_alert": 0.05}


def _calibration_bins(
    rng: np.random.Generator, n: int, cells: int, bins: int = 10, bend: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin sums of ``n`` events per cell; labels drawn from ``(1 - bend) s + bend / 2``."""
    count, score, pos = (np.zeros((cells, bins)) for _ in range(3))
    for c in range(cells):
        s = rng.beta(2, 5, n)
        y = rng.random(n) < (1 - bend) * s + bend * 0.5
        b = np.minimum((s * bins).astype(int), bins - 1)
        count[c] = np.bincount(b, minlength=bins)
        score[c] = np.bincount(b, weights=s, minlength=bins)
        pos[c] = np.bincount(b, weights=y, minlength=bins)
    return count, score, pos


def test_error_pvalue_is_fishers_exact_test_against_the_reference_rows() -> None:
    labeled, errors = np.array([200, 150, 60]), np.array([31, 40, 9])
    rate, rows = np.array([0.1, 0.2, 0.15]), np.array([4000, 300, 1000])
    d = decide_performance(labeled, errors, rate, rows, None, **SETTINGS)
    for i in range(3):
        ref_err = round(rate[i] * rows[i])
        table = [[errors[i], labeled[i] - errors[i]], [ref_err, rows[i] - ref_err]]
        expected = stats.fisher_exact(table, alternative="greater").pvalue
        assert d.pvalue["error_rate"][i] == pytest.approx(expected, rel=1e-9)
        assert d.excess[i] == pytest.approx(errors[i] / labeled[i] / rate[i] - 1)


def test_flags_need_significance_and_effect_and_untested_cells_have_none() -> None:
    # 0: 12% vs 10% on 100k events: significant, but 20% excess is not reached
    # 1: 40% vs 10% on 200 events: flagged; 2: 40% vs 10% on 20 events: below min_samples
    # 3: no reference; 4: 13% vs 10% on 200 events: 30% excess, not significant
    labeled = np.array([100_000, 200, 20, 200, 200])
    errors = np.array([12_000, 80, 8, 80, 26])
    rate = np.array([0.1, 0.1, 0.1, math.nan, 0.1])
    d = decide_performance(labeled, errors, rate, np.full(5, 50_000.0), None, **SETTINGS)
    assert d.flags["error_rate"].tolist() == [False, True, False, False, False]
    assert d.pvalue["error_rate"][0] < 1e-10 and d.pvalue["error_rate"][4] > 0.01
    assert np.isnan(d.pvalue["error_rate"][[2, 3]]).all()
    assert d.pvalue["error_rate"][1] >= PVALUE_FLOOR
    assert d.excess_rate[:2] == pytest.approx([0.02, 0.3])
    assert d.excess_rate[4] == 0.0 and np.isnan(d.excess_rate[[2, 3]]).all()


def test_calibrated_cells_are_not_flagged_and_bent_ones_are() -> None:
    rng = np.random.default_rng(3)
    cells = 400
    count, score, pos = _calibration_bins(rng, 150, cells)
    labeled = count.sum(axis=1)
    rate = np.full(cells, 0.3)
    d = decide_performance(
        labeled, np.zeros(cells), rate, np.full(cells, 1e4), (count, score, pos), **SETTINGS
    )
    assert not d.flags["calibration"].any()
    assert (d.pvalue["calibration"] < 0.01).mean() < 0.03
    count2, score2, pos2 = _calibration_bins(rng, 400, 5, bend=0.8)
    d2 = decide_performance(
        count2.sum(axis=1), np.zeros(5), np.full(5, 0.3), np.full(5, 1e4),
        (count2, score2, pos2), **SETTINGS,
    )  # fmt: skip
    assert d2.flags["calibration"].all()
    assert (d2.calibration_effect > 0.05).all()


def test_clean_error_streams_give_no_false_flags() -> None:
    """4,000 clean cells (window 30..2,000 labels against a 2,000-row reference): no flag."""
    rng = np.random.default_rng(11)
    cells = 4000
    truth = rng.uniform(0.02, 0.45, cells)
    rows = np.full(cells, 2000.0)
    ref = rng.binomial(2000, truth) / rows
    labeled = rng.integers(30, 2000, cells)
    errors = rng.binomial(labeled, truth)
    d = decide_performance(labeled, errors, ref, rows, None, **SETTINGS)
    assert d.flags["error_rate"].sum() == 0
    # Under no change the one-sided p-values are (conservatively) uniform.
    assert (d.pvalue["error_rate"] < 0.05).mean() < 0.06
