"""From per-cell statistics to decisions across the grid: the small-sample gate and the false
discovery rate.

A statistic is a decision only together with its sample size: :func:`gate` reports it only
where a cell has at least ``min_samples`` values behind it (NaN elsewhere: an empty heatmap tile
rather than a noisy number). Flags from p-values test every cell of the grid at once, so
:func:`benjamini_hochberg` controls the false discovery rate across all the cells' p-values,
ignoring the NaNs (untested cells).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import BoolArray, FloatArray, as_floats

__all__ = ["benjamini_hochberg", "gate"]


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
    p = as_floats(pvalues)
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
    v, c = np.broadcast_arrays(as_floats(values), np.asarray(counts))
    return np.where(c >= min_samples, v, np.nan)
