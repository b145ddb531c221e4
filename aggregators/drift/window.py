"""Statistics of each cell's last closed window against its own reference, for the whole grid.

Inputs are merged sufficient statistics (counts, moments, histograms) of every cell's model's
latest reported window, as arrays over cells, and each cell's reference histograms (from
:class:`~tilewatch.aggregators.drift.cell_reference.CellReferences`, or the cell's own trailing
windows); outputs are arrays over cells (``(cells, features)`` for per-feature statistics).
Every statistic is gated by ``min_samples`` (NaN below it: an empty heatmap tile rather than a
noisy number). Flags are decisions (:mod:`tilewatch.aggregators.drift.flags`): significant
after Benjamini-Hochberg over the whole window, and larger than the signal's effect threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.drift.flags import decide
from tilewatch.aggregators.drift.profile import DriftProfile
from tilewatch.aggregators.stats.decisions import gate
from tilewatch.aggregators.stats.divergence import js_distance, mean_zscore, psi
from tilewatch.aggregators.stats.intervals import t_interval, wilson_interval

__all__ = ["FLAG_SIGNALS", "FlagSignal", "Reference", "WindowDrift", "derive_window_drift"]


#: Why a window tile is flagged (the ``signal`` label of ``tilewatch_window_drift_flag``).
FlagSignal = Literal["score_psi", "feature_psi", "class_shift", "missing"]
#: Each flag signal and what raises it.
FLAG_SIGNALS: dict[FlagSignal, str] = {
    "score_psi": "the score histogram differs from the cell's reference (significant after "
    "Benjamini-Hochberg, debiased PSI above [drift].psi_alert)",
    "feature_psi": "a monitored feature's histogram differs from the cell's reference "
    "(significant, debiased PSI above [drift].psi_alert)",
    "class_shift": "predicted-class shares differ from the cell's reference (significant, "
    "debiased PSI above [drift].class_alert)",
    "missing": "a monitored feature is missing more often than in the cell's reference "
    "(significant) and in more than [drift].missing_alert of events",
}


@dataclass(frozen=True)
class Reference:
    """Each cell's reference: pseudo-counts per histogram (row sums: the effective size) and
    the reference score mean and standard deviation (NaN: none)."""

    hists: dict[str, FloatArray]
    mean: FloatArray
    std: FloatArray


@dataclass(frozen=True)
class WindowDrift:
    """Per-cell window statistics against each cell's reference (NaN where undefined or gated).

    ``pvalue`` and ``effect`` hold, per flag signal, the p-value under "no change" and the
    debiased effect size behind the flag (for per-feature signals, the smallest p-value and the
    largest effect over the features); ``feature_effect`` is the debiased PSI per feature.
    """

    features: list[str]
    score_psi: FloatArray
    score_js_distance: FloatArray
    mean_zscore: FloatArray
    mean_lower: FloatArray
    mean_upper: FloatArray
    mean_change: FloatArray
    class_pvalue: FloatArray
    class_significant: BoolArray
    feature_psi: FloatArray  # (cells, features)
    missing_ratio: FloatArray  # (cells, features)
    missing_lower: FloatArray
    missing_upper: FloatArray
    flags: dict[FlagSignal, BoolArray] = field(default_factory=dict)
    pvalue: dict[FlagSignal, FloatArray] = field(default_factory=dict)
    effect: dict[FlagSignal, FloatArray] = field(default_factory=dict)
    feature_effect: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))


def _raw(reference: FloatArray, window: IntArray, fn: str) -> FloatArray:
    """Raw PSI or JS distance of each window row against its reference row (NaN: none)."""
    out = np.full(len(window), math.nan)
    has = np.nan_to_num(reference, nan=0.0).sum(axis=1) > 0
    if has.any():
        e, o = reference[has], window[has]
        out[has] = psi(e, o) if fn == "psi" else js_distance(e, o)
    return out


def window_score_psi(
    profile: DriftProfile, count: IntArray, score_hist: IntArray, reference: Reference
) -> FloatArray:
    """Each cell's debiased score PSI against its reference (NaN below ``min_samples``): the
    one drift statistic the forecasts read of a past window, without the decisions."""
    raw = _raw(reference.hists["score"], score_hist, "psi")
    return gate(raw, count, profile.settings.min_samples)


def derive_window_drift(
    profile: DriftProfile,
    count: IntArray,
    mean: FloatArray,
    variance: FloatArray,
    hists: dict[str, IntArray],
    prev_mean: FloatArray,
    prev_count: IntArray,
    reference: Reference,
) -> WindowDrift:
    """All window statistics of the grid; see the module docstring."""
    s = profile.settings
    n = len(count)
    k = s.min_samples
    ref = reference.hists

    score_hist = hists["score"]
    score_psi = window_score_psi(profile, count, score_hist, reference)
    score_js = gate(_raw(ref["score"], score_hist, "js"), count, k)
    zscore = gate(mean_zscore(mean, count, reference.mean, reference.std), count, k)
    lower, upper = t_interval(mean, variance, count)
    lower, upper = gate(lower, count, k), gate(upper, count, k)
    change = np.where(prev_count >= k, mean - prev_mean, math.nan)
    change = gate(change, count, k)

    nf = len(profile.features)
    feature_psi = np.full((n, nf), np.nan)
    missing = np.full((n, nf), np.nan)
    m_lower = np.full((n, nf), np.nan)
    m_upper = np.full((n, nf), np.nan)
    for j, name in enumerate(profile.features):
        h = hists[f"f:{name}"]
        values, miss = h[:, :-1], h[:, -1]
        feature_psi[:, j] = gate(
            _raw(ref[f"f:{name}"][:, :-1], values, "psi"), values.sum(axis=1), k
        )
        ratio = np.divide(miss, count, out=np.full(n, np.nan), where=count > 0)
        lo, hi = wilson_interval(miss, count)
        missing[:, j] = gate(ratio, count, k)
        m_lower[:, j], m_upper[:, j] = gate(lo, count, k), gate(hi, count, k)

    d = decide(s, list(profile.features), count, hists, ref)
    flags: dict[FlagSignal, BoolArray] = {
        "score_psi": d.flags["score_psi"],
        "feature_psi": d.flags["feature_psi"],
        "class_shift": d.flags["class_shift"],
        "missing": d.flags["missing"],
    }
    if nf:
        # Without a reference a missing share cannot be tested: flag it on its share alone.
        no_ref = np.isnan(d.pvalue["missing"])
        with np.errstate(invalid="ignore"):
            alone = (np.nan_to_num(missing, nan=0.0) > s.missing_alert).any(axis=1)
        flags["missing"] = flags["missing"] | (no_ref & alone)
    return WindowDrift(
        features=list(profile.features),
        score_psi=score_psi,
        score_js_distance=score_js,
        mean_zscore=zscore,
        mean_lower=lower,
        mean_upper=upper,
        mean_change=change,
        class_pvalue=d.pvalue["class_shift"],
        class_significant=flags["class_shift"],
        feature_psi=feature_psi,
        missing_ratio=missing,
        missing_lower=m_lower,
        missing_upper=m_upper,
        flags=flags,
        pvalue={
            "score_psi": d.pvalue["score_psi"],
            "feature_psi": d.pvalue["feature_psi"],
            "class_shift": d.pvalue["class_shift"],
            "missing": d.pvalue["missing"],
        },
        effect={
            "score_psi": d.effect["score_psi"],
            "feature_psi": d.effect["feature_psi"],
            "class_shift": d.effect["class_shift"],
            "missing": d.effect["missing"],
        },
        feature_effect=d.feature_effect,
    )
