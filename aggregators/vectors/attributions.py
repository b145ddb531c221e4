"""Aggregated explanations: per-event attributions to mean absolute attribution per feature.

An event's attributions (an object feature -> number, e.g. SHAP values logged by the serving
side) enter as their absolute values over the model's tracked features (the reference's
largest, at most ``max_features``); a feature absent from an event counts 0. Per group
(cell, predicted class) the sufficient statistics are the count and the sums of ``|a|`` and
``a^2`` per feature, so windows, partitions and groups merge by adding.

Against the reference, per feature: the change of its **share** of the total mean absolute
attribution (the effect), and a two-sample z-test of its mean ``|a|`` (Welch, normal tail; the
p-value); over all features, the **Spearman rank correlation** of the window's and the
reference's mean ``|a|`` (1: the same ranking).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special, stats

from tilewatch.aggregators.arrays import BoolArray, FloatArray

__all__ = [
    "attribution_matrix",
    "mean_difference_pvalue",
    "shares",
    "spearman",
    "top_features",
]

_NUMBER = (int, float)


def top_features(matrix_rows: Sequence[Any], limit: int) -> tuple[str, ...]:
    """The ``limit`` features with the largest mean absolute attribution (ties by name).

    Examples
    --------
    >>> top_features([{"a": 1.0, "b": -3.0}, {"a": 0.5, "c": 0.1}, None], 2)
    ('b', 'a')
    """
    totals: dict[str, float] = {}
    for obj in matrix_rows:
        if type(obj) is not dict:
            continue
        for name, value in obj.items():
            if type(value) in _NUMBER and math.isfinite(value):
                totals[name] = totals.get(name, 0.0) + abs(value)
    ranked = sorted(totals, key=lambda name: (-totals[name], name))
    return tuple(ranked[:limit])


def attribution_matrix(
    objects: Sequence[Any], features: Sequence[str]
) -> tuple[FloatArray, BoolArray]:
    """``|a|`` per event and tracked feature, and which events have usable attributions.

    An event's object is usable when it is a dict whose tracked features, where present, are
    finite numbers; anything else is not (its row is 0). The common batch is one column per
    feature and one ``numpy.array`` call (a boolean among numbers reads as 0 or 1 there, the
    one laxity of that path); a batch holding anything else is checked row by row.

    Examples
    --------
    >>> m, ok = attribution_matrix([{"a": -2, "z": 9}, {"b": 0.5}, {"a": "x"}, None], ("a", "b"))
    >>> m.tolist(), ok.tolist()
    ([[2.0, 0.0], [0.0, 0.5], [0.0, 0.0], [0.0, 0.0]], [True, True, False, False])
    """
    n, f = len(objects), len(features)
    out = np.zeros((n, f), dtype=np.float64)
    ok = np.array([type(o) is dict for o in objects], dtype=np.bool_)
    rows = np.flatnonzero(ok)
    if not rows.size or not f:
        return out, ok
    dicts = [objects[i] for i in rows.tolist()]
    try:
        table = np.array([[d.get(name, 0.0) for d in dicts] for name in features])
    except (TypeError, ValueError, OverflowError):
        table = None
    if table is not None and table.dtype.kind in "fi" and table.shape == (f, len(dicts)):
        values = np.abs(table.T.astype(np.float64))
        finite = np.isfinite(values).all(axis=1)
        out[rows[finite]] = values[finite]
        ok[rows[~finite]] = False
        return out, ok
    for i in rows.tolist():  # an odd batch: row by row
        row = [objects[i].get(name, 0.0) for name in features]
        numbers = all(type(v) in _NUMBER for v in row)
        checked = np.abs(np.array(row, dtype=np.float64)) if numbers else np.full(f, np.nan)
        if np.isfinite(checked).all():
            out[i] = checked
        else:
            ok[i] = False
    return out, ok


def shares(means: FloatArray) -> FloatArray:
    """Each feature's share of the total mean absolute attribution, per row (NaN: total 0).

    Examples
    --------
    >>> shares(np.array([[1.0, 3.0], [0.0, 0.0]])).tolist()
    [[0.25, 0.75], [nan, nan]]
    """
    total = means.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, means / np.where(total > 0, total, 1.0), np.nan)


def mean_difference_pvalue(
    mean_a: FloatArray,
    var_a: FloatArray,
    n_a: FloatArray,
    mean_b: FloatArray,
    var_b: FloatArray,
    n_b: FloatArray,
) -> FloatArray:
    """Two-sided p-value of "equal means" (Welch's z: normal tail), element-wise.

    Equal means with zero variance give 1; different means with zero variance give 0.

    Examples
    --------
    >>> p = mean_difference_pvalue(np.array([1.0]), np.array([1.0]), np.array([100.0]),
    ...                            np.array([1.3]), np.array([1.0]), np.array([100.0]))
    >>> round(float(p[0]), 4)
    0.0339
    """
    se2 = var_a / np.maximum(n_a, 1.0) + var_b / np.maximum(n_b, 1.0)
    diff = np.abs(mean_a - mean_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(
            se2 > 0, diff / np.sqrt(np.where(se2 > 0, se2, 1.0)), np.where(diff > 0, np.inf, 0.0)
        )
    out: FloatArray = special.erfc(z / math.sqrt(2.0))
    return out


def spearman(a: FloatArray, b: FloatArray) -> FloatArray:
    """Spearman's rank correlation of the rows of ``a`` and ``b`` (average ranks for ties),
    as ``scipy.stats.spearmanr``; NaN where a row is constant.

    Examples
    --------
    >>> spearman(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), np.array([[1.0, 5.0, 9.0]] * 2))
    array([ 1., -1.])
    """
    ra, rb = _ranks(np.atleast_2d(a)), _ranks(np.atleast_2d(b))
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(
            den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan
        )
    return out


def _ranks(x: FloatArray) -> FloatArray:
    """Average ranks along the last axis (1-based), as ``scipy.stats.rankdata``."""
    out: FloatArray = stats.rankdata(x, axis=-1).astype(np.float64)
    return out
