"""Confidence intervals for many cells at once: the mean (Student t) and a proportion (Wilson).

Vectorized over cells like :mod:`tilewatch.aggregators.stats.divergence`; an interval that is
undefined (fewer than two values, no trials) is NaN. ``scipy.special`` supplies the t and
normal quantiles.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

from tilewatch.aggregators.arrays import FloatArray, as_floats

__all__ = ["t_interval", "wilson_interval"]


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
    m, var, n = np.broadcast_arrays(as_floats(mean), as_floats(variance), as_floats(count))
    ok = n >= 2
    df = np.where(ok, n - 1.0, 1.0)
    crit = as_floats(special.stdtrit(df, (1.0 + confidence) / 2.0))
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
    s, n = np.broadcast_arrays(as_floats(successes), as_floats(trials))
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
