"""Decisions on a multi-class model's error rate per cell: did its window get more wrong?

A cell's window is compared with its reference (its own trailing windows): the window's labeled
events that were wrong (off the diagonal of its confusion counts) against the reference's, with
the one-sided exact test of :func:`~tilewatch.aggregators.stats.homogeneity.proportion_pvalue`.
Benjamini-Hochberg runs over every tested cell of the window (leaves and roll-ups) at
``fdr_rate``, and a tile is flagged only when its p-value is rejected **and** its error rate
rose by more than ``min_increase``: when labels of one class start being confused with
another, the cells where it happens are flagged, the others are not.

Cells with fewer than ``min_samples`` labeled window events, or an empty reference, are not
tested (NaN p-value and effect, no flag).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.stats.decisions import benjamini_hochberg
from tilewatch.aggregators.stats.homogeneity import proportion_pvalue

__all__ = ["MIN_ERROR_INCREASE", "ClassErrorDecisions", "class_error_decisions"]

#: The smallest rise of the error rate a flag needs (an absolute share).
MIN_ERROR_INCREASE = 0.05


@dataclass(frozen=True)
class ClassErrorDecisions:
    """Per cell: p-value of "no rise of the error rate", the rise, and the flag."""

    pvalue: FloatArray
    increase: FloatArray
    flag: BoolArray


def class_error_decisions(
    window: IntArray,
    reference: FloatArray,
    min_samples: int,
    fdr_rate: float,
    min_increase: float = MIN_ERROR_INCREASE,
) -> ClassErrorDecisions:
    """Decide for every cell; ``window`` and ``reference`` are confusion counts, ``(cells, k *
    k)`` (label-major) or ``(cells, k, k)``.

    Examples
    --------
    >>> eye = np.eye(3).ravel()
    >>> ref = np.array([eye * 300, eye * 300]) + 10  # 60 of 990 wrong
    >>> win = np.array([eye * 60 + 2, eye * 60 + 2], dtype=np.int64)  # 12 of 198: as often
    >>> win[1, 1] += 60  # label 0 predicted as 1: the second cell gets much worse
    >>> d = class_error_decisions(win, ref, min_samples=30, fdr_rate=0.01)
    >>> d.flag.tolist(), [round(x, 3) for x in d.increase.tolist()]
    ([False, True], [0.0, 0.218])
    """
    n = len(window)
    if n == 0:  # no cell yet (a snapshot before the first event)
        return ClassErrorDecisions(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.bool_))
    w = np.asarray(window).reshape(n, -1)
    r = np.asarray(reference, dtype=np.float64).reshape(n, -1)
    k = math.isqrt(w.shape[1])
    diagonal = np.arange(k) * (k + 1)
    w_total, r_total = w.sum(axis=1), r.sum(axis=1)
    w_wrong = w_total - w[:, diagonal].sum(axis=1)
    r_wrong = r_total - r[:, diagonal].sum(axis=1)
    pvalue, increase = np.full(n, math.nan), np.full(n, math.nan)
    rows = np.flatnonzero((w_total >= min_samples) & (w_total > 0) & (r_total > 0))
    if rows.size:
        pvalue[rows] = proportion_pvalue(
            r_wrong[rows], r_total[rows], w_wrong[rows], w_total[rows], alternative="greater"
        )
        increase[rows] = w_wrong[rows] / w_total[rows] - r_wrong[rows] / r_total[rows]
    rejected = benjamini_hochberg(pvalue, fdr_rate)
    with np.errstate(invalid="ignore"):
        flag = np.asarray(rejected & (increase > min_increase), dtype=np.bool_)
    return ClassErrorDecisions(pvalue, increase, flag)
