"""Divergences and goodness-of-fit tests of a window against a reference, for many cells at once.

Every function is vectorized over a leading cell axis: distributions are 2-D arrays of shape
``(cells, bins)`` (a 1-D array is one row), and scalars per cell are 1-D arrays. The reference
side (``expected_shares``) may be a single row, broadcast to every cell, or one row per cell.
Results have the broadcast shape of the inputs without the bin axis, so two 1-D inputs give a
0-d array. Nothing loops over cells in Python.

Undefined results are NaN, never an exception or a warning: a cell with no observations, a
test with no degrees of freedom. Confidence intervals are in
:mod:`tilewatch.aggregators.stats.intervals`; the small-sample gate and the false discovery rate
control across cells in :mod:`tilewatch.aggregators.stats.decisions`.

Closed forms are written out with numpy; ``scipy.special`` supplies the chi-square tail and
``rel_entr``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

from tilewatch.aggregators.arrays import FloatArray, as_floats

__all__ = ["chi2_pvalue", "js_distance", "mean_zscore", "psi"]


def _rows(
    expected_shares: npt.ArrayLike, observed_counts: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Broadcast to ``(..., bins)``; return normalised expected shares, counts and row totals.

    Rows of ``expected_shares`` that sum to zero become NaN.
    """
    e = as_floats(expected_shares)
    o = as_floats(observed_counts)
    if e.ndim == 0 or o.ndim == 0:
        raise ValueError("expected_shares and observed_counts need a bin axis")
    if e.shape[-1] != o.shape[-1]:
        raise ValueError(f"bin counts differ: {e.shape[-1]} expected, {o.shape[-1]} observed")
    e, o = np.broadcast_arrays(e, o)
    e_total = e.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(e_total > 0, e / e_total, np.nan)
    return p, o, o.sum(axis=-1)


def psi(
    expected_shares: npt.ArrayLike, observed_counts: npt.ArrayLike, eps: float = 1e-4
) -> FloatArray:
    """Population stability index of observed counts against expected shares, per row.

    ``PSI = sum_b (q_b - p_b) * ln(q_b / p_b)`` over the bins, with ``p`` the expected and
    ``q`` the observed shares. An empty bin on either side would make a term infinite (or
    undefined), and a cell's window routinely leaves bins empty, so both distributions are
    smoothed first: ``p_b <- (p_b + eps) / (1 + k * eps)`` for ``k`` bins, and the same for
    ``q``. Each term is then finite and non-negative; identical distributions give exactly 0.
    An empty bin contributes about ``share * ln(share / eps)``, so ``eps`` bounds how much one
    empty bin can weigh.

    Parameters
    ----------
    expected_shares : array_like, shape (bins,) or (cells, bins)
        Reference shares (normalised to sum to 1 per row, so reference counts work too).
    observed_counts : array_like, shape (bins,) or (cells, bins)
        Window counts per bin.
    eps : float, default 1e-4
        Additive smoothing added to every share of both distributions.

    Returns
    -------
    numpy.ndarray of float64, shape (cells,)
        NaN for rows without observations (or with an all-zero expected row).

    Examples
    --------
    >>> p = [0.5, 0.5]
    >>> psi(p, [[50, 50], [80, 20], [0, 0]]).tolist()
    [0.0, 0.416..., nan]
    """
    p, o, n = _rows(expected_shares, observed_counts)
    k = p.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = o / n[..., None]
        ps = (p + eps) / (1.0 + k * eps)
        qs = (q + eps) / (1.0 + k * eps)
        out = np.sum((qs - ps) * np.log(qs / ps), axis=-1)
    return np.where(n > 0, out, np.nan)


def js_distance(expected_shares: npt.ArrayLike, observed_counts: npt.ArrayLike) -> FloatArray:
    """Jensen-Shannon distance (base 2, in ``[0, 1]``) between expected and observed, per row.

    The square root of the Jensen-Shannon divergence ``(KL(p || m) + KL(q || m)) / 2`` with
    ``m = (p + q) / 2``, logarithms base 2; it equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. It needs no smoothing (``m`` is
    positive wherever ``p`` or ``q`` is); identical distributions give 0, disjoint ones 1.

    Parameters
    ----------
    expected_shares : array_like, shape (bins,) or (cells, bins)
        Reference shares (normalised per row).
    observed_counts : array_like, shape (bins,) or (cells, bins)
        Window counts per bin (normalised per row).

    Returns
    -------
    numpy.ndarray of float64, shape (cells,)
        NaN for rows without observations.

    Examples
    --------
    >>> js_distance([0.5, 0.5, 0.0], [[5, 5, 0], [0, 0, 7], [3, 1, 0]]).tolist()
    [0.0, 1.0, 0.2208...]
    """
    p, o, n = _rows(expected_shares, observed_counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = o / n[..., None]
        m = (p + q) / 2.0
        div = np.sum(special.rel_entr(p, m) + special.rel_entr(q, m), axis=-1) / math.log(2.0)
    out = np.sqrt(np.clip(div / 2.0, 0.0, 1.0))
    return np.where(n > 0, out, np.nan)


def chi2_pvalue(expected_shares: npt.ArrayLike, observed_counts: npt.ArrayLike) -> FloatArray:
    """Pearson chi-square goodness-of-fit p-value of observed counts against expected shares.

    With ``n`` observations per row, the statistic is ``sum_b (o_b - n p_b)^2 / (n p_b)`` over
    the bins with ``p_b > 0``, on ``df = #{b: p_b > 0} - 1`` degrees of freedom; this is
    ``scipy.stats.chisquare(o, f_exp=p * n).pvalue``. A bin with ``p_b = 0`` takes no part in
    the test, unless it holds observations: those are impossible under the reference, so
    the p-value is 0.

    Parameters
    ----------
    expected_shares : array_like, shape (bins,) or (cells, bins)
        Reference shares (normalised per row).
    observed_counts : array_like, shape (bins,) or (cells, bins)
        Window counts per bin.

    Returns
    -------
    numpy.ndarray of float64, shape (cells,)
        NaN for rows with ``n == 0`` or ``df < 1``.

    Examples
    --------
    >>> chi2_pvalue([0.25, 0.75], [[25, 75], [40, 60], [0, 0]]).tolist()
    [1.0, 0.000532..., nan]
    >>> chi2_pvalue([0.5, 0.5, 0.0], [10, 10, 1]).tolist()  # observed where none expected
    0.0
    """
    p, o, n = _rows(expected_shares, observed_counts)
    support = p > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f_exp = p * n[..., None]
        terms = np.where(support, (o - f_exp) ** 2 / f_exp, 0.0)
    stat = terms.sum(axis=-1)
    df = support.sum(axis=-1) - 1
    impossible = np.any(~support & (o > 0), axis=-1)
    with np.errstate(invalid="ignore"):
        pvalue = as_floats(special.chdtrc(np.maximum(df, 1), stat))
    pvalue = np.where(impossible, 0.0, pvalue)
    return np.where((n > 0) & (df >= 1), pvalue, np.nan)


def mean_zscore(
    window_mean: npt.ArrayLike,
    window_count: npt.ArrayLike,
    ref_mean: npt.ArrayLike,
    ref_std: npt.ArrayLike,
) -> FloatArray:
    """Z-score of a window's mean against the reference mean, per cell.

    ``z = (window_mean - ref_mean) / (ref_std / sqrt(n))``. The standard error treats the
    reference mean and standard deviation as known, which is right when the reference holds
    many more values than a window.

    Parameters
    ----------
    window_mean, window_count : array_like, shape (cells,)
        The window's mean and number of values per cell.
    ref_mean, ref_std : array_like, shape (cells,) or scalar
        The reference's mean and standard deviation.

    Returns
    -------
    numpy.ndarray of float64, shape (cells,)
        NaN where ``n == 0`` or ``ref_std == 0``.

    Examples
    --------
    >>> mean_zscore([1.2, 1.0, 3.0], [100, 0, 4], 1.0, [1.0, 1.0, 0.0]).tolist()
    [2.0, nan, nan]
    """
    mean, n, mu, sd = np.broadcast_arrays(
        as_floats(window_mean), as_floats(window_count), as_floats(ref_mean), as_floats(ref_std)
    )
    ok = (n > 0) & (sd > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (mean - mu) / (sd / np.sqrt(n))
    return np.where(ok, z, np.nan)
