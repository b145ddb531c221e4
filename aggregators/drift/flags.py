"""Drift flags as decisions: significant under "no change" at both sample sizes, and large.

For every cell of a reported window and every signal (the score histogram, the predicted-class
shares, each monitored feature's values and its missing share) this module computes a p-value
against the cell's own reference (:mod:`tilewatch.aggregators.stats.homogeneity`: a pooled
two-sample test for histograms, an exact one-sided test for the missing share) and an effect
size with its small-sample bias removed (:func:`~tilewatch.aggregators.stats.psi_bias.psi_effect`
for histograms; the window's missing share for missing values). Benjamini-Hochberg runs once
over all of the window's p-values, every tested cell (leaves and roll-ups) and every signal, at
``[drift] fdr_rate``. A tile is flagged for a signal only when its p-value is rejected **and**
the effect passes the signal's threshold:

=============  ========================================  ===========================
signal         effect                                    flagged above
=============  ========================================  ===========================
score_psi      debiased PSI of the score histogram       ``[drift] psi_alert``
feature_psi    debiased PSI of a feature's values        ``[drift] psi_alert``
class_shift    debiased PSI of the predicted-class mix   ``[drift] class_alert``
missing        the window's missing share of a feature   ``[drift] missing_alert``
=============  ========================================  ===========================

Cells below ``min_samples`` window events, or without a reference, are not tested (NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.drift.profile import DriftSettings
from tilewatch.aggregators.stats.decisions import benjamini_hochberg
from tilewatch.aggregators.stats.homogeneity import homogeneity_pvalue, proportion_pvalue
from tilewatch.aggregators.stats.psi_bias import psi_effect

__all__ = ["SIGNALS", "Decisions", "decide"]

#: The flag signals, in export order.
SIGNALS = ("score_psi", "feature_psi", "class_shift", "missing")


@dataclass(frozen=True)
class Decisions:
    """P-values, effects and flags of one reported window, per cell (and per feature).

    ``pvalue`` and ``effect`` hold one array per signal; for the per-feature signals the cell's
    smallest p-value and largest effect over its features. ``feature_effect`` and
    ``feature_pvalue`` are ``(cells, features)``.
    """

    pvalue: dict[str, FloatArray]
    effect: dict[str, FloatArray]
    flags: dict[str, BoolArray]
    feature_pvalue: FloatArray
    feature_effect: FloatArray


def _tested(ref: FloatArray, window: IntArray, eligible: BoolArray) -> BoolArray:
    """Cells with enough window events and a non-empty reference row."""
    has_ref = np.nan_to_num(ref, nan=0.0).sum(axis=1) > 0
    out: BoolArray = eligible & has_ref & (window.sum(axis=1) > 0)
    return out


def _histogram(
    ref: FloatArray, window: IntArray, eligible: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """(p-value, debiased PSI) per cell; NaN where not tested."""
    n = len(window)
    p, e = np.full(n, math.nan), np.full(n, math.nan)
    rows = np.flatnonzero(_tested(ref, window, eligible))
    if rows.size:
        p[rows] = homogeneity_pvalue(ref[rows], window[rows])
        e[rows] = psi_effect(ref[rows], window[rows])
    return p, e


def decide(
    settings: DriftSettings,
    features: list[str],
    count: IntArray,
    hists: dict[str, IntArray],
    reference: dict[str, FloatArray],
) -> Decisions:
    """The decisions of one reported window over all cells; see the module docstring.

    Examples
    --------
    >>> s = DriftSettings(min_samples=10)
    >>> ref = {"score": np.array([[500.0, 500.0], [500.0, 500.0]]),
    ...        "class": np.zeros((2, 3))}
    >>> win = {"score": np.array([[48, 52], [95, 5]]), "class": np.zeros((2, 3), dtype=int)}
    >>> d = decide(s, [], np.array([100, 100]), win, ref)
    >>> d.flags["score_psi"].tolist(), d.pvalue["score_psi"] < 1e-6
    ([False, True], array([False,  True]))
    """
    n = len(count)
    eligible = count >= settings.min_samples
    nf = len(features)
    pvalue: dict[str, FloatArray] = {}
    effect: dict[str, FloatArray] = {}
    pvalue["score_psi"], effect["score_psi"] = _histogram(
        reference["score"], hists["score"], eligible
    )
    pvalue["class_shift"], effect["class_shift"] = _histogram(
        reference["class"], hists["class"], eligible
    )
    f_p, f_e = np.full((n, nf), math.nan), np.full((n, nf), math.nan)
    m_p, m_ratio = np.full((n, nf), math.nan), np.full((n, nf), math.nan)
    for j, name in enumerate(features):
        ref, win = reference[f"f:{name}"], hists[f"f:{name}"]
        f_p[:, j], f_e[:, j] = _histogram(ref[:, :-1], win[:, :-1], eligible)
        ref_rows = ref.sum(axis=1)
        rows = np.flatnonzero(eligible & (ref_rows > 0) & (count > 0))
        if rows.size:
            m_p[rows, j] = proportion_pvalue(
                ref[rows, -1], ref_rows[rows], win[rows, -1], count[rows], alternative="greater"
            )
            m_ratio[rows, j] = win[rows, -1] / count[rows]
    # One family: every tested cell and signal of the window.
    family = np.concatenate([pvalue["score_psi"], pvalue["class_shift"], f_p.ravel(), m_p.ravel()])
    rejected = benjamini_hochberg(family, settings.fdr_rate)
    r_score, r_class = rejected[:n], rejected[n : 2 * n]
    r_feat = rejected[2 * n : 2 * n + n * nf].reshape(n, nf)
    r_miss = rejected[2 * n + n * nf :].reshape(n, nf)
    with np.errstate(invalid="ignore"):
        flags: dict[str, BoolArray] = {
            "score_psi": _both(r_score, effect["score_psi"] > settings.psi_alert),
            "feature_psi": _rows_any(_both(r_feat, f_e > settings.psi_alert)),
            "class_shift": _both(r_class, effect["class_shift"] > settings.class_alert),
            "missing": _rows_any(_both(r_miss, m_ratio > settings.missing_alert)),
        }
    pvalue["feature_psi"] = _nanmin(f_p)
    effect["feature_psi"] = _nanmax(f_e)
    pvalue["missing"] = _nanmin(m_p)
    effect["missing"] = _nanmax(m_ratio)
    return Decisions(pvalue, effect, flags, f_p, f_e)


def _both(a: Any, b: Any) -> BoolArray:
    return np.asarray(a & b, dtype=np.bool_)


def _rows_any(values: BoolArray) -> BoolArray:
    return np.asarray(values.any(axis=1), dtype=np.bool_)


def _nanmin(values: FloatArray) -> FloatArray:
    out = np.full(values.shape[0], math.nan)
    if values.shape[1]:
        ok = ~np.isnan(values).all(axis=1)
        out[ok] = np.nanmin(values[ok], axis=1)
    return out


def _nanmax(values: FloatArray) -> FloatArray:
    out = np.full(values.shape[0], math.nan)
    if values.shape[1]:
        ok = ~np.isnan(values).all(axis=1)
        out[ok] = np.nanmax(values[ok], axis=1)
    return out
