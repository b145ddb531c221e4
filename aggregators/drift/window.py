"""Statistics of each cell's last closed window against the baseline, for the whole grid at once.

Inputs are merged sufficient statistics (counts, moments, histograms) of every cell's model's
latest reported window, as arrays over cells; outputs are arrays over cells (``(cells,
features)`` for per-feature statistics). Every statistic is gated by ``min_samples`` (NaN below
it: an empty heatmap tile rather than a noisy number). The class-shift p-values of all leaf
cells of the grid form one family of hypotheses, controlled with Benjamini-Hochberg at
``fdr_rate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.drift.profile import DriftProfile
from tilewatch.aggregators.stats.decisions import benjamini_hochberg, gate
from tilewatch.aggregators.stats.divergence import chi2_pvalue, js_distance, mean_zscore, psi
from tilewatch.aggregators.stats.intervals import t_interval, wilson_interval

__all__ = ["FLAG_SIGNALS", "FlagSignal", "WindowDrift", "derive_window_drift"]


#: Why a window tile is flagged (the ``signal`` label of ``tilewatch_window_drift_flag``).
FlagSignal = Literal["score_psi", "feature_psi", "class_shift", "missing"]
#: Each flag signal and what raises it.
FLAG_SIGNALS: dict[FlagSignal, str] = {
    "score_psi": "score PSI against the baseline above [drift].psi_alert",
    "feature_psi": "a monitored feature's PSI above [drift].psi_alert",
    "class_shift": "predicted-class shares differ from the baseline (chi-square, BH-controlled)",
    "missing": "a monitored feature is missing in more than [drift].missing_alert of events",
}


@dataclass(frozen=True)
class WindowDrift:
    """Per-cell window statistics against the baseline (NaN where undefined or gated)."""

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


def _expected(
    profile: DriftProfile,
    model_names: list[str],
    model_ids: IntArray,
    which: str,
    width: int,
    feature: int = -1,
) -> tuple[FloatArray, BoolArray]:
    """Reference shares per cell (rows of its model), and which cells have a reference."""
    n = len(model_ids)
    out = np.full((n, width), np.nan)
    has = np.zeros(n, dtype=bool)
    for mid, model in enumerate(model_names):
        spec = profile.spec(model)
        if which == "score":
            ref = spec.score_ref
        elif which == "class":
            ref = spec.class_ref
        else:
            ref = spec.features[feature].ref_shares if spec.features else None
        if ref is None or len(ref) == 0:
            continue
        rows = model_ids == mid
        out[rows, : len(ref)] = ref
        out[rows, len(ref) :] = 0.0
        has[rows] = True
    return out, has


def _shift(expected: FloatArray, has: BoolArray, observed: IntArray, fn: str) -> FloatArray:
    out = np.full(len(has), np.nan)
    if has.any():
        e, o = expected[has], observed[has]
        out[has] = psi(e, o) if fn == "psi" else js_distance(e, o)
    return out


def derive_window_drift(
    profile: DriftProfile,
    model_names: list[str],
    model_ids: IntArray,
    is_leaf: BoolArray,
    count: IntArray,
    mean: FloatArray,
    variance: FloatArray,
    hists: dict[str, IntArray],
    prev_mean: FloatArray,
    prev_count: IntArray,
) -> WindowDrift:
    """All window statistics of the grid; see the module docstring."""
    s = profile.settings
    n = len(count)
    k = s.min_samples

    score_hist = hists["score"]
    e_score, has_score = _expected(profile, model_names, model_ids, "score", score_hist.shape[1])
    score_psi = gate(_shift(e_score, has_score, score_hist, "psi"), count, k)
    score_js = gate(_shift(e_score, has_score, score_hist, "js"), count, k)

    ref_mean = np.full(n, np.nan)
    ref_std = np.full(n, np.nan)
    for mid, model in enumerate(model_names):
        spec = profile.spec(model)
        if spec.score_mean is not None and spec.score_std is not None:
            ref_mean[model_ids == mid] = spec.score_mean
            ref_std[model_ids == mid] = spec.score_std
    zscore = gate(mean_zscore(mean, count, ref_mean, ref_std), count, k)
    lower, upper = t_interval(mean, variance, count)
    lower, upper = gate(lower, count, k), gate(upper, count, k)
    change = np.where(prev_count >= k, mean - prev_mean, math.nan)
    change = gate(change, count, k)

    class_hist = hists["class"]
    e_class, has_class = _expected(profile, model_names, model_ids, "class", class_hist.shape[1])
    pvalue = np.full(n, np.nan)
    if has_class.any():
        pvalue[has_class] = chi2_pvalue(e_class[has_class], class_hist[has_class])
    pvalue = gate(pvalue, class_hist.sum(axis=1), k)
    significant = np.zeros(n, dtype=bool)
    grid = is_leaf & ~np.isnan(pvalue)
    if grid.any():
        significant[grid] = benjamini_hochberg(pvalue[grid], s.fdr_rate)

    nf = len(profile.features)
    feature_psi = np.full((n, nf), np.nan)
    missing = np.full((n, nf), np.nan)
    m_lower = np.full((n, nf), np.nan)
    m_upper = np.full((n, nf), np.nan)
    for j, name in enumerate(profile.features):
        h = hists[f"f:{name}"]
        values, miss = h[:, :-1], h[:, -1]
        e_f, has_f = _expected(profile, model_names, model_ids, "feature", values.shape[1], j)
        feature_psi[:, j] = gate(_shift(e_f, has_f, values, "psi"), values.sum(axis=1), k)
        ratio = np.divide(miss, count, out=np.full(n, np.nan), where=count > 0)
        lo, hi = wilson_interval(miss, count)
        missing[:, j] = gate(ratio, count, k)
        m_lower[:, j], m_upper[:, j] = gate(lo, count, k), gate(hi, count, k)

    with np.errstate(invalid="ignore"):
        flags: dict[FlagSignal, BoolArray] = {
            "score_psi": np.nan_to_num(score_psi, nan=0.0) > s.psi_alert,
            "feature_psi": (np.nan_to_num(feature_psi, nan=0.0) > s.psi_alert).any(axis=1)
            if nf
            else np.zeros(n, dtype=bool),
            "class_shift": significant.copy(),
            "missing": (np.nan_to_num(missing, nan=0.0) > s.missing_alert).any(axis=1)
            if nf
            else np.zeros(n, dtype=bool),
        }
    return WindowDrift(
        features=list(profile.features),
        score_psi=score_psi,
        score_js_distance=score_js,
        mean_zscore=zscore,
        mean_lower=lower,
        mean_upper=upper,
        mean_change=change,
        class_pvalue=pvalue,
        class_significant=significant,
        feature_psi=feature_psi,
        missing_ratio=missing,
        missing_lower=m_lower,
        missing_upper=m_upper,
        flags=flags,
    )
