"""Mergeable count, mean and variance: one stream (:class:`Moments`) or many cells at once.

The sufficient statistics are ``(count, mean, m2)`` where ``m2`` is the sum of squared deviations
from the mean. Two sets combine exactly with Chan et al.'s parallel formula, so windows,
partitions and replicas merge by adding sufficient statistics, never by averaging means.

The array functions :func:`group_moments` and :func:`merge_moments` do the same for every cell
of a batch at once with numpy; they are what the per-batch path uses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray

__all__ = ["Moments", "group_moments", "merge_moments", "variance"]


class Moments:
    """Running count, mean and variance of one stream (Welford), mergeable and revertible.

    Follows river's protocol: ``update(x)`` returns None and ``get()`` returns the variance
    (``None`` before two values). ``ddof`` is the delta degrees of freedom of the variance.

    Examples
    --------
    >>> m = Moments()
    >>> for x in [1.0, 2.0, 4.0]:
    ...     m.update(x)
    >>> m.count, m.mean, m.get()
    (3, 2.333333333, 2.333333333)
    >>> other = Moments()
    >>> other.update(7.0)
    >>> m += other
    >>> m.count, m.mean
    (4, 3.5)
    >>> m.revert(7.0)
    >>> m.mean
    2.333333333
    """

    __slots__ = ("count", "ddof", "m2", "mean")

    def __init__(self, ddof: int = 1) -> None:
        self.ddof = ddof
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, x: float, w: int = 1) -> None:
        """Add ``x`` (``w`` times)."""
        for _ in range(w):
            self.count += 1
            delta = x - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (x - self.mean)

    def revert(self, x: float) -> None:
        """Remove one earlier ``x``; the inverse of :meth:`update`."""
        if self.count <= 1:
            self.count, self.mean, self.m2 = 0, 0.0, 0.0
            return
        delta = x - self.mean
        self.count -= 1
        self.mean -= delta / self.count
        self.m2 = max(self.m2 - delta * (x - self.mean), 0.0)

    def get(self) -> float | None:
        """The variance, or ``None`` while ``count <= ddof``."""
        if self.count <= self.ddof:
            return None
        return self.m2 / (self.count - self.ddof)

    def __iadd__(self, other: Moments) -> Moments:
        c, m, m2 = _merge_scalar(self.count, self.mean, self.m2, other.count, other.mean, other.m2)
        self.count, self.mean, self.m2 = c, m, m2
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {"count": self.count, "mean": self.mean, "m2": self.m2, "ddof": self.ddof}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Moments:
        """Inverse of :meth:`to_dict`."""
        out = cls(ddof=int(data["ddof"]))
        out.count, out.mean, out.m2 = int(data["count"]), float(data["mean"]), float(data["m2"])
        return out


def _merge_scalar(
    c1: int, m1: float, s1: float, c2: int, m2: float, s2: float
) -> tuple[int, float, float]:
    if c2 == 0:
        return c1, m1, s1
    if c1 == 0:
        return c2, m2, s2
    c = c1 + c2
    delta = m2 - m1
    return c, m1 + delta * c2 / c, s1 + s2 + delta * delta * c1 * c2 / c


def group_moments(
    groups: IntArray, values: FloatArray, n_groups: int
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Count, mean and m2 of ``values`` per group id, for group ids ``0 .. n_groups - 1``.

    Two passes (mean first, then squared deviations from it), so the result does not suffer
    the cancellation of the sum-of-squares formula. Empty groups get count 0, mean 0, m2 0.

    Examples
    --------
    >>> c, m, s = group_moments(np.array([0, 1, 0]), np.array([1.0, 5.0, 3.0]), 3)
    >>> c.tolist(), m.tolist(), s.tolist()
    ([2, 1, 0], [2.0, 5.0, 0.0], [2.0, 0.0, 0.0])
    """
    count = np.bincount(groups, minlength=n_groups).astype(np.int64)
    total = np.bincount(groups, weights=values, minlength=n_groups)
    mean: FloatArray = np.divide(total, count, out=np.zeros(n_groups), where=count > 0)
    dev = values - mean[groups]
    m2: FloatArray = np.bincount(groups, weights=dev * dev, minlength=n_groups).astype(np.float64)
    return count, mean, m2


def merge_moments(
    c1: IntArray, m1: FloatArray, s1: FloatArray, c2: IntArray, m2: FloatArray, s2: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Element-wise exact merge of two sets of sufficient statistics (Chan et al.).

    Examples
    --------
    >>> a = group_moments(np.array([0, 0]), np.array([1.0, 3.0]), 1)
    >>> b = group_moments(np.array([0]), np.array([8.0]), 1)
    >>> c, m, s = merge_moments(*a, *b)
    >>> int(c[0]), float(m[0]), float(s[0])
    (3, 4.0, 26.0)
    """
    c = c1 + c2
    safe = np.where(c > 0, c, 1)
    delta = m2 - m1
    mean = m1 + delta * (c2 / safe)
    m2_out = s1 + s2 + delta * delta * (c1 * (c2 / safe))
    return c, np.where(c > 0, mean, 0.0), np.where(c > 0, m2_out, 0.0)


def variance(count: IntArray, m2: FloatArray, ddof: int = 1) -> FloatArray:
    """Variance from sufficient statistics; NaN where ``count <= ddof``.

    Examples
    --------
    >>> variance(np.array([3, 1]), np.array([2.0, 0.0])).tolist()
    [1.0, nan]
    """
    out = np.full(count.shape, math.nan)
    ok = count > ddof
    out[ok] = m2[ok] / (count[ok] - ddof)
    return out
