"""Performance flags as decisions: each cell against its own reference error rate, calibration
tested rather than thresholded.

A fixed error-rate threshold is wrong for most cells of a segmented model (a hard segment's
normal error rate is above an easy segment's alarm level), and the expected calibration error of
~150 labelled events over 10 bins is 0.07 to 0.24 by chance alone. So, for every cell of a
reported performance window with at least ``min_samples`` labelled events:

``error_rate``
    One-sided exact test of "the window's error rate is no higher than the cell's reference
    rate" (Fisher's exact test against the reference's labelled rows, see
    :func:`~tilewatch.aggregators.stats.homogeneity.proportion_pvalue`), effect the relative
    excess ``error / reference - 1`` (0.2: 20 % more errors than the reference). Cells without
    a reference error rate are not tested.
``calibration``
    The test of "the scores are calibrated" from the per-bin sums
    (:func:`~tilewatch.aggregators.stats.calibration_error.calibration_pvalue`), effect the
    debiased ECE (:func:`~tilewatch.aggregators.stats.calibration_error.debiased_ece`): the ECE
    minus its expectation for calibrated scores at the bins' counts.

Benjamini-Hochberg runs once over all of the window's p-values (every tested cell, leaf or
roll-up, both signals) at ``fdr_rate``; a cell is flagged for a signal only when its p-value is
rejected **and** its effect is above the signal's threshold (``error_alert``,
``calibration_alert``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import BoolArray, FloatArray
from tilewatch.aggregators.stats.calibration_error import calibration_pvalue, debiased_ece
from tilewatch.aggregators.stats.decisions import benjamini_hochberg
from tilewatch.aggregators.stats.homogeneity import proportion_pvalue

__all__ = ["PERFORMANCE_SIGNALS", "PVALUE_FLOOR", "PerformanceDecisions", "decide_performance"]

#: The performance flag signals, in export order.
PERFORMANCE_SIGNALS = ("error_rate", "calibration")
#: Smallest p-value exported (exact tails underflow to 0; a floor keeps them plottable).
PVALUE_FLOOR = 1e-300


@dataclass(frozen=True)
class PerformanceDecisions:
    """P-values, effects and flags of one performance window, per cell and signal.

    ``excess`` is the relative error excess over the reference (NaN: not tested),
    ``calibration_effect`` the debiased ECE; ``pvalue[signal]`` is floored at
    :data:`PVALUE_FLOOR`; ``flags[signal]`` is False where a cell is not tested.
    ``excess_rate`` is ``max(0, error - reference)`` where the error flag's test is rejected,
    0 where tested and not rejected (what money at risk is computed from).
    """

    pvalue: dict[str, FloatArray]
    flags: dict[str, BoolArray]
    excess: FloatArray
    excess_rate: FloatArray
    reference_error: FloatArray
    calibration_effect: FloatArray


def decide_performance(
    labeled: npt.ArrayLike,
    errors: npt.ArrayLike,
    reference_error: npt.ArrayLike,
    reference_labeled: npt.ArrayLike,
    bins: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike] | None,
    *,
    min_samples: int,
    fdr_rate: float,
    error_alert: float,
    calibration_alert: float,
    score_squares: npt.ArrayLike | None = None,
) -> PerformanceDecisions:
    """The performance decisions of one window over all cells (see the module docstring).

    Parameters
    ----------
    labeled, errors : array_like, shape (cells,)
        Labelled events of the window and how many of them were wrong.
    reference_error, reference_labeled : array_like, shape (cells,)
        Each cell's reference error rate (NaN: none) and its effective labelled rows (0: a rate
        known exactly is not assumed; such a cell is not tested).
    bins : tuple or None
        ``(bin_count, bin_score, bin_positives)``, each ``(cells, bins)``; None: regression
        (no calibration test).
    min_samples
        Labelled events a cell needs to be tested.
    fdr_rate
        Benjamini-Hochberg rate over the window's tests.
    error_alert, calibration_alert
        Effect thresholds: relative error excess, debiased ECE.
    score_squares : array_like, optional
        Sum of squared scores per bin (the exact variance for the calibration test).

    Examples
    --------
    >>> d = decide_performance([200, 200, 200], [20, 40, 12], [0.1, 0.1, 0.1],
    ...                        [5000, 5000, 5000], None, min_samples=30, fdr_rate=0.01,
    ...                        error_alert=0.2, calibration_alert=0.05)
    >>> d.flags["error_rate"].tolist(), d.excess.round(2).tolist()
    ([False, True, False], [0.0, 1.0, -0.4])
    >>> d.excess_rate.round(2).tolist()
    [0.0, 0.1, 0.0]
    """
    n_lab = np.asarray(labeled, dtype=np.float64)
    n = n_lab.shape[0]
    err = np.asarray(errors, dtype=np.float64)
    ref = np.asarray(reference_error, dtype=np.float64)
    ref_n = np.asarray(reference_labeled, dtype=np.float64)
    eligible = n_lab >= min_samples
    tested = eligible & np.isfinite(ref) & (ref_n > 0) & (ref >= 0) & (ref <= 1)
    p_err = np.full(n, math.nan)
    excess = np.full(n, math.nan)
    rows = np.flatnonzero(tested)
    if rows.size:
        p_err[rows] = proportion_pvalue(
            ref[rows] * ref_n[rows], ref_n[rows], err[rows], n_lab[rows], alternative="greater"
        )
        rate = err[rows] / n_lab[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            excess[rows] = np.where(
                ref[rows] > 0, rate / ref[rows] - 1.0, np.where(rate > 0, math.inf, 0.0)
            )
    p_cal = np.full(n, math.nan)
    effect = np.full(n, math.nan)
    if bins is not None:
        count, score, pos = (np.asarray(b, dtype=np.float64) for b in bins)
        rows = np.flatnonzero(eligible)
        if rows.size:
            squares = None if score_squares is None else np.asarray(score_squares)[rows]
            p_cal[rows] = calibration_pvalue(count[rows], score[rows], pos[rows], squares)
            effect[rows] = debiased_ece(count[rows], score[rows], pos[rows])
    rejected = benjamini_hochberg(np.concatenate([p_err, p_cal]), fdr_rate)
    r_err, r_cal = rejected[:n], rejected[n:]
    with np.errstate(invalid="ignore"):
        flags = {
            "error_rate": np.asarray(r_err & (excess > error_alert), dtype=np.bool_),
            "calibration": np.asarray(r_cal & (effect > calibration_alert), dtype=np.bool_),
        }
        absolute = np.where(tested, np.maximum(err / np.maximum(n_lab, 1) - ref, 0.0), math.nan)
    excess_rate = np.where(r_err, absolute, np.where(tested, 0.0, math.nan))
    pvalue = {
        "error_rate": np.where(np.isnan(p_err), math.nan, np.maximum(p_err, PVALUE_FLOOR)),
        "calibration": np.where(np.isnan(p_cal), math.nan, np.maximum(p_cal, PVALUE_FLOOR)),
    }
    return PerformanceDecisions(
        pvalue, flags, excess, excess_rate, np.where(tested, ref, math.nan), effect
    )
