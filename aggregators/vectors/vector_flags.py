"""Decisions of one closed window of a model's vector signals, per group (cell, class).

=====================  =================================================  =======================
signal                 p-value under "no change"                          effect, flagged above
=====================  =================================================  =======================
embedding_psi          per component: homogeneity test of its histogram   debiased PSI,
                       on the reference's equal-mass bins                 ``psi_alert``
embedding_distance     the window mean's Mahalanobis distance ``d`` in    ``d``,
                       component space: ``n m / (n + m) d^2 ~ chi2(k)``   ``distance_alert``
attribution_shift      per feature: Welch z-test of its mean ``|a|``      change of its share,
                                                                          ``attribution_alert``
=====================  =================================================  =======================

``n`` is the window's count, ``m`` the reference's rows (the reference mean's own sampling
error); the covariance is the reference's (ridge 1e-9 of its trace). Benjamini-Hochberg runs
once over every p-value of the window (every tested group, component and feature) at
``fdr_rate``; a group is flagged for a signal when one of its p-values is rejected **and** its
effect passes the threshold. Groups below ``min_samples`` events or without a reference are
not tested (NaN). The Spearman correlation of the window's and the reference's mean ``|a|``
is reported with the explanations (not a flag).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.stats.decisions import benjamini_hochberg
from tilewatch.aggregators.stats.homogeneity import homogeneity_pvalue
from tilewatch.aggregators.stats.psi_bias import psi_effect
from tilewatch.aggregators.vectors.attributions import (
    mean_difference_pvalue,
    shares,
    spearman,
)
from tilewatch.aggregators.vectors.settings import VectorSettings
from tilewatch.aggregators.vectors.vector_reference import GroupKey, ModelVectors

__all__ = ["VECTOR_SIGNALS", "VectorDecisions", "decide_vectors", "mahalanobis"]

#: The flag signals of vectors, in export order.
VECTOR_SIGNALS = ("embedding_psi", "embedding_distance", "attribution_shift")


@dataclass(frozen=True)
class VectorDecisions:
    """Statistics and flags of one window, one row per group of ``keys``."""

    keys: list[GroupKey]
    count: IntArray
    psi: FloatArray  # (groups, k): debiased PSI per component
    psi_pvalue: FloatArray  # (groups, k)
    distance: FloatArray
    distance_pvalue: FloatArray
    attr_count: IntArray
    attr_mean: FloatArray  # (groups, features)
    attr_share: FloatArray
    ref_share: FloatArray
    share_pvalue: FloatArray
    rank_correlation: FloatArray
    flags: dict[str, BoolArray]


def mahalanobis(diff: FloatArray, cov: FloatArray) -> float:
    """``sqrt(diff' cov^-1 diff)`` with a ridge of 1e-9 of the trace (a singular reference).

    Examples
    --------
    >>> round(mahalanobis(np.array([2.0, 0.0]), np.array([[4.0, 0.0], [0.0, 1.0]])), 6)
    1.0
    """
    k = len(diff)
    ridge = 1e-9 * max(float(np.trace(cov)) / max(k, 1), 1e-300)
    solved = np.linalg.solve(cov + ridge * np.eye(k), diff)
    return math.sqrt(max(float(diff @ solved), 0.0))


def decide_vectors(
    settings: VectorSettings,
    reference: ModelVectors,
    keys: list[GroupKey],
    count: IntArray,
    zsum: FloatArray,
    hist: IntArray,
    attr_count: IntArray,
    attr_sum: FloatArray,
    attr_sq: FloatArray,
) -> VectorDecisions:
    """The decisions of one window; see the module docstring.

    ``zsum`` (groups, k) sums the projected vectors, ``hist`` (groups, k, bins) counts them per
    component bin; ``attr_sum`` / ``attr_sq`` (groups, features) sum ``|a|`` and ``a^2``.

    Examples
    --------
    >>> from tilewatch.aggregators.vectors.vector_reference import build_model_vectors
    >>> from tilewatch.aggregators.vectors.projection import bin_components
    >>> rng = np.random.default_rng(3)
    >>> x = rng.normal(size=(4000, 4))
    >>> mv = build_model_vectors(VectorSettings(components=2, bins=5), [("c",)] * 4000,
    ...                          [None] * 4000, x, range(4000), None)
    >>> live = [rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 1.0]
    >>> z = [mv.projection.project(v) for v in live]
    >>> h = np.stack([[np.bincount(b, minlength=5) for b in bin_components(zi, mv.edges).T]
    ...               for zi in z])
    >>> keys = [(("c",), "__all__"), (("__all__",), "__all__")]
    >>> d = decide_vectors(VectorSettings(components=2, bins=5), mv, keys, np.array([300, 300]),
    ...                    np.stack([zi.sum(axis=0) for zi in z]), h, np.zeros(2, int),
    ...                    np.zeros((2, 0)), np.zeros((2, 0)))
    >>> d.flags["embedding_distance"].tolist(), d.flags["embedding_psi"].tolist()
    ([False, True], [False, True])
    """
    g = len(keys)
    k = 0 if reference.projection is None else reference.projection.k
    nf = len(reference.features)
    psi = np.full((g, k), math.nan)
    psi_p = np.full((g, k), math.nan)
    distance = np.full(g, math.nan)
    distance_p = np.full(g, math.nan)
    attr_mean = np.full((g, nf), math.nan)
    attr_share = np.full((g, nf), math.nan)
    ref_share = np.full((g, nf), math.nan)
    share_p = np.full((g, nf), math.nan)
    rank = np.full(g, math.nan)

    # One pass of dict lookups for the references; the statistics are vectorised over groups.
    emb_rows, emb_refs, attr_rows, attr_refs = [], [], [], []
    for i, key in enumerate(keys):
        if k and count[i] >= settings.min_samples:
            ref = reference.reference_of(key)
            if ref is not None:
                emb_rows.append(i)
                emb_refs.append(ref)
        if nf and attr_count[i] >= settings.min_samples:
            ref = reference.reference_of(key, embedding=False)
            if ref is not None:
                attr_rows.append(i)
                attr_refs.append(ref)
    if emb_rows:
        rows = np.asarray(emb_rows)
        n = count[rows].astype(np.float64)
        m = np.array([r.rows for r in emb_refs], dtype=np.float64)
        diff = zsum[rows] / n[:, None] - np.stack([r.mean for r in emb_refs])
        inverse = np.stack([r.precision for r in emb_refs])
        d2 = np.maximum(np.einsum("ei,eij,ej->e", diff, inverse, diff), 0.0)
        distance[rows] = np.sqrt(d2)
        distance_p[rows] = special.chdtrc(k, d2 * n * m / (n + m))
        r = np.concatenate([ref.bins for ref in emb_refs]).reshape(len(rows) * k, -1)
        w = hist[rows].reshape(len(rows) * k, -1)
        psi_p[rows] = homogeneity_pvalue(r, w).reshape(len(rows), k)
        psi[rows] = psi_effect(r, w).reshape(len(rows), k)
    if attr_rows:
        rows = np.asarray(attr_rows)
        na = attr_count[rows].astype(np.float64)[:, None]
        mean = attr_sum[rows] / na
        var = np.maximum(attr_sq[rows] - na * mean * mean, 0.0) / np.maximum(na - 1, 1)
        ref_mean = np.stack([r.attr_mean for r in attr_refs])
        ref_var = np.stack([r.attr_var for r in attr_refs])
        ref_n = np.array([r.attr_rows for r in attr_refs], dtype=np.float64)[:, None]
        attr_mean[rows] = mean
        attr_share[rows] = shares(mean)
        ref_share[rows] = shares(ref_mean)
        share_p[rows] = mean_difference_pvalue(
            mean,
            var,
            np.broadcast_to(na, mean.shape),
            ref_mean,
            ref_var,
            np.broadcast_to(ref_n, mean.shape),
        )
        rank[rows] = spearman(mean, ref_mean)

    family = np.concatenate([psi_p.ravel(), distance_p, share_p.ravel()])
    rejected = benjamini_hochberg(family, settings.fdr_rate)
    r_psi = rejected[: g * k].reshape(g, k)
    r_dist = rejected[g * k : g * k + g]
    r_attr = rejected[g * k + g :].reshape(g, nf)
    with np.errstate(invalid="ignore"):
        change = np.abs(attr_share - ref_share)
        flags = {
            "embedding_psi": np.asarray((r_psi & (psi > settings.psi_alert)).any(axis=1)),
            "embedding_distance": np.asarray(r_dist & (distance > settings.distance_alert)),
            "attribution_shift": np.asarray(
                (r_attr & (change > settings.attribution_alert)).any(axis=1)
            ),
        }
    return VectorDecisions(
        keys,
        np.asarray(count, dtype=np.int64),
        psi,
        psi_p,
        distance,
        distance_p,
        np.asarray(attr_count, dtype=np.int64),
        attr_mean,
        attr_share,
        ref_share,
        share_p,
        rank,
        {name: np.asarray(f, dtype=np.bool_) for name, f in flags.items()},
    )
