"""Drift of a multi-class model's confidence and margin per cell, against its trailing windows.

Each window keeps, per cell, the histograms of the top-class probability (``confidence``) and
of the margin top1 - top2 (``margin``) on equal-width bins over [0, 1]
(:func:`tilewatch.aggregators.stats.multiclass_window.window_bins`). Like the binary score's
histogram, each is tested against the cell's reference histogram: the p-value of the pooled
two-sample test of :func:`~tilewatch.aggregators.stats.homogeneity.homogeneity_pvalue`, and the
debiased PSI of :func:`~tilewatch.aggregators.stats.psi_bias.psi_effect` as the effect.
Benjamini-Hochberg runs once over both signals and every tested cell at ``fdr_rate``; a tile is
flagged for a signal when its p-value is rejected and its effect exceeds ``psi_alert``.
Cells below ``min_samples`` window events, or with an empty reference, are not tested (NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.stats.decisions import benjamini_hochberg
from tilewatch.aggregators.stats.homogeneity import homogeneity_pvalue
from tilewatch.aggregators.stats.psi_bias import psi_effect

__all__ = ["CLASS_DRIFT_SIGNALS", "ClassDrift", "class_drift_decisions"]

#: The signals (the ``signal`` label) and the window histogram each one tests.
CLASS_DRIFT_SIGNALS: dict[str, str] = {"confidence": "mc_top", "margin": "mc_margin"}


@dataclass(frozen=True)
class ClassDrift:
    """Per signal, per cell: p-value, debiased PSI and flag."""

    pvalue: dict[str, FloatArray]
    effect: dict[str, FloatArray]
    flag: dict[str, BoolArray]


def class_drift_decisions(
    window: dict[str, IntArray],
    reference: dict[str, FloatArray],
    min_samples: int,
    fdr_rate: float,
    psi_alert: float,
) -> ClassDrift:
    """Decide for every cell and signal; ``window`` and ``reference`` map the histogram names
    of :data:`CLASS_DRIFT_SIGNALS` to ``(cells, bins)`` counts.

    Examples
    --------
    >>> ref = np.array([[100.0, 300, 400, 200], [100, 300, 400, 200]])
    >>> win = np.array([[10, 30, 40, 20], [60, 30, 8, 2]])
    >>> d = class_drift_decisions({"mc_top": win, "mc_margin": win},
    ...                           {"mc_top": ref, "mc_margin": ref}, 30, 0.01, 0.25)
    >>> d.flag["confidence"].tolist(), d.flag["margin"].tolist()
    ([False, True], [False, True])
    """
    pvalue: dict[str, FloatArray] = {}
    effect: dict[str, FloatArray] = {}
    for signal, name in CLASS_DRIFT_SIGNALS.items():
        win = np.asarray(window[name])
        ref = np.asarray(reference[name], dtype=np.float64)
        n = len(win)
        p, e = np.full(n, math.nan), np.full(n, math.nan)
        if n:
            rows = np.flatnonzero(
                (win.sum(axis=1) >= min_samples) & (np.nan_to_num(ref).sum(axis=1) > 0)
            )
            if rows.size:
                p[rows] = homogeneity_pvalue(ref[rows], win[rows])
                e[rows] = psi_effect(ref[rows], win[rows])
        pvalue[signal], effect[signal] = p, e
    signals = list(CLASS_DRIFT_SIGNALS)
    rejected = benjamini_hochberg(np.stack([pvalue[s] for s in signals]), fdr_rate)
    flag: dict[str, BoolArray] = {}
    with np.errstate(invalid="ignore"):
        for j, signal in enumerate(signals):
            flag[signal] = np.asarray(rejected[j] & (effect[signal] > psi_alert), dtype=np.bool_)
    return ClassDrift(pvalue, effect, flag)
