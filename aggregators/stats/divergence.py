"""Drift scores, tests and intervals for many cells at once.

Every function is vectorized over a leading cell axis: distributions are 2-D arrays of shape
``(cells, bins)`` (a 1-D array is one row), and scalars per cell are 1-D arrays. The reference
side (``expected_shares``) may be a single row, broadcast to every cell, or one row per cell.
Results have the broadcast shape of the inputs without the bin axis, so two 1-D inputs give a
0-d array. Nothing loops over cells in Python.

Undefined results are NaN, never an exception or a warning: a cell with no observations, a
test with no degrees of freedom, an interval from fewer than two values. :func:`gate` applies
the small-sample rule (NaN below a minimum count) and :func:`benjamini_hochberg` controls the
false discovery rate across all the cells' p-values, ignoring the NaNs.

Closed forms are written out with numpy; ``scipy.special`` supplies the distribution tails and
quantiles (chi-square, Student t, normal) and ``rel_entr``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

from tilewatch.aggregators.arrays import BoolArray, FloatArray

__all__ = [
    "benjamini_hochberg",
    "chi2_pvalue",
    "gate",
    "js_distance",
    "mean_zscore",
    "psi",
    "t_interval",
    "wilson_interval",
]


def _float(x: npt.ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def _rows(
    expected_shares: npt.ArrayLike, observed_counts: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Broadcast to ``(..., bins)``; return normalised expected shares, counts and row totals.

    Rows of ``expected_shares`` that sum to zero become NaN.
    """
    e = _float(expected_shares)
    o = _float(observed_counts)
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
        pvalue = _float(special.chdtrc(np.maximum(df, 1), stat))
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
        _float(window_mean), _float(window_count), _float(ref_mean), _float(ref_std)
    )
    ok = (n > 0) & (sd > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (mean - mu) / (sd / np.sqrt(n))
    return np.where(ok, z, np.nan)


def t_interval(
    mean: npt.ArrayLike, variance: npt.ArrayLike, count: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Student-t confidence interval of the mean, per cell.

    ``mean -+ t_{(1 + confidence) / 2, n - 1} * sqrt(variance / n)``, as
    ``scipy.stats.t.interval(confidence, n - 1, loc=mean, scale=sqrt(variance / n))``.
    ``variance`` is the sample variance (``ddof=1``), e.g. ``variance(count, m2)`` from
    :mod:`tilewatch.aggregators.stats.moments`.

    Parameters
    ----------
    mean, variance, count : array_like, shape (cells,)
        Sufficient statistics per cell.
    confidence : float, default 0.95
        Coverage of the interval, in ``(0, 1)``.

    Returns
    -------
    (lower, upper) : tuple of numpy.ndarray of float64, shape (cells,)
        NaN where ``count < 2``.

    Examples
    --------
    >>> lo, hi = t_interval([10.0, 5.0], [4.0, 1.0], [16, 1])
    >>> lo.tolist(), hi.tolist()
    ([8.934..., nan], [11.065..., nan])
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    m, var, n = np.broadcast_arrays(_float(mean), _float(variance), _float(count))
    ok = n >= 2
    df = np.where(ok, n - 1.0, 1.0)
    crit = _float(special.stdtrit(df, (1.0 + confidence) / 2.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = crit * np.sqrt(var / n)
    return np.where(ok, m - half, np.nan), np.where(ok, m + half, np.nan)


def wilson_interval(
    successes: npt.ArrayLike, trials: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score confidence interval of a proportion, per cell.

    With ``z`` the normal ``(1 + confidence) / 2`` quantile and ``p = successes / trials``:
    ``(p + z^2 / 2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)``. Unlike the
    normal (Wald) interval it stays inside ``[0, 1]`` and is not degenerate at ``p = 0`` or 1,
    which matters for the small counts of a single cell.

    Parameters
    ----------
    successes, trials : array_like, shape (cells,)
        Counts per cell, ``0 <= successes <= trials``.
    confidence : float, default 0.95
        Coverage of the interval, in ``(0, 1)``.

    Returns
    -------
    (lower, upper) : tuple of numpy.ndarray of float64, shape (cells,)
        NaN where ``trials == 0``.

    Examples
    --------
    >>> lo, hi = wilson_interval([0, 5, 3], [10, 10, 0])
    >>> lo.tolist(), hi.tolist()
    ([0.0, 0.2365..., nan], [0.2775..., 0.7634..., nan])
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    s, n = np.broadcast_arrays(_float(successes), _float(trials))
    z = float(special.ndtri((1.0 + confidence) / 2.0))
    z2 = z * z
    ok = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        p = s / n
        denom = 1.0 + z2 / n
        center = (p + z2 / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # Exact at the ends (0 successes: lower 0; all successes: upper 1), not off by rounding.
    lower = np.where(s == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    upper = np.where(s == n, 1.0, np.clip(center + half, 0.0, 1.0))
    return np.where(ok, lower, np.nan), np.where(ok, upper, np.nan)


def benjamini_hochberg(pvalues: npt.ArrayLike, rate: float = 0.05) -> BoolArray:
    """Benjamini-Hochberg step-up: which p-values are rejected at false discovery ``rate``.

    All entries, of any shape, form one family. NaN p-values (untested cells) are never
    rejected and do not count towards the number of tests ``m``. With the ``m`` p-values
    sorted, ``p_(1) <= ... <= p_(m)``, the ``k`` smallest are rejected for the largest ``k``
    with ``p_(k) <= k rate / m``; computed through the adjusted p-values, so the result is
    exactly ``scipy.stats.false_discovery_control(p, method="bh") <= rate``.

    Parameters
    ----------
    pvalues : array_like of float
        P-values in ``[0, 1]``, or NaN.
    rate : float, default 0.05
        The false discovery rate, in ``(0, 1)``.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as ``pvalues``; True where rejected.

    Raises
    ------
    ValueError
        If a p-value is outside ``[0, 1]`` or ``rate`` outside ``(0, 1)``.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.03, 0.02, 0.5, float("nan")], rate=0.05).tolist()
    [True, True, True, False, False]
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    p = _float(pvalues)
    flat = p.ravel()
    tested = ~np.isnan(flat)
    ps = flat[tested]
    if ((ps < 0.0) | (ps > 1.0)).any():
        raise ValueError("p-values must lie in [0, 1] (or be NaN)")
    m = ps.size
    out = np.zeros(flat.shape, dtype=np.bool_)
    if m:
        order = np.argsort(ps, kind="stable")
        adjusted = ps[order] * (m / np.arange(1, m + 1, dtype=np.float64))
        adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
        rejected = np.empty(m, dtype=np.bool_)
        rejected[order] = np.clip(adjusted, 0.0, 1.0) <= rate
        out[tested] = rejected
    return out.reshape(p.shape)


def gate(values: npt.ArrayLike, counts: npt.ArrayLike, min_samples: int) -> FloatArray:
    """The small-sample rule: ``values`` where ``counts >= min_samples``, NaN elsewhere.

    Parameters
    ----------
    values : array_like of float, shape (cells,)
        A statistic per cell.
    counts : array_like of int, shape (cells,)
        The number of values behind each cell's statistic.
    min_samples : int
        The smallest count for which the statistic is reported.

    Returns
    -------
    numpy.ndarray of float64, shape (cells,)

    Examples
    --------
    >>> gate([0.1, 0.2, 0.3], [100, 5, 30], min_samples=30).tolist()
    [0.1, nan, 0.3]
    """
    v, c = np.broadcast_arrays(_float(values), np.asarray(counts))
    return np.where(c >= min_samples, v, np.nan)
