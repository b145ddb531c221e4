"""The sufficient statistics of one event-time window, per cell: score moments and histograms.

A :class:`WindowAcc` holds, for every cell with events in the window, the count, mean and m2 of
the scores and one count per bin of each histogram (score, predicted class, features, latency).
Batches, partitions and replicas combine windows exactly: moments merge with Chan et al.'s
formula, histograms add.
"""

from __future__ import annotations

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray, grow, resized
from tilewatch.aggregators.stats.moments import group_moments, merge_moments

__all__ = ["WindowAcc"]


class WindowAcc:
    """Count, mean and m2 of the score per cell for one event-time window, and histograms.

    ``hist`` maps a histogram name (``score``, ``class``, ``f:<feature>``, ``latency``) to a
    ``(cells, bins)`` count array; histograms merge by adding.

    Examples
    --------
    >>> acc = WindowAcc()
    >>> acc.add(np.array([0, 0, 1]), np.array([1.0, 3.0, 5.0]), n_cells=2)
    >>> acc.add_hist("score", np.array([0, 1, 1]), np.array([0, 2, -1]), n_cells=2, n_bins=3)
    >>> [a.tolist() for a in acc.sized(2)], acc.hist_sized("score", 2, 3).tolist()
    ([[2, 1], [2.0, 5.0], [2.0, 0.0]], [[1, 0, 0], [0, 0, 1]])
    """

    __slots__ = ("count", "hist", "m2", "mean")

    def __init__(self, n: int = 0) -> None:
        self.count = np.zeros(n, dtype=np.int64)
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)
        self.hist: dict[str, IntArray] = {}

    def add(self, cells: IntArray, values: FloatArray, n_cells: int) -> None:
        """Merge the moments of ``values`` grouped by ``cells`` into this window."""
        c, m, s = group_moments(cells, values, n_cells)
        self.count = grow(self.count, n_cells)
        self.mean = grow(self.mean, n_cells)
        self.m2 = grow(self.m2, n_cells)
        k = n_cells
        self.count[:k], self.mean[:k], self.m2[:k] = merge_moments(
            self.count[:k], self.mean[:k], self.m2[:k], c, m, s
        )

    def add_moments(
        self, cells: list[int], moments: list[tuple[int, float, float]], n_cells: int
    ) -> None:
        """Merge per-cell ``(count, mean, m2)`` into this window; ``cells`` may repeat (restore:
        two keys of a checkpoint that name one cell here)."""
        c = np.zeros(n_cells, dtype=np.int64)
        m, s = np.zeros(n_cells), np.zeros(n_cells)
        for cell, (ci, mi, si) in zip(cells, moments, strict=True):
            at = slice(cell, cell + 1)
            c[at], m[at], s[at] = merge_moments(
                c[at], m[at], s[at], np.array([ci]), np.array([mi]), np.array([si])
            )
        self.count, self.mean, self.m2 = merge_moments(*self.sized(n_cells), c, m, s)

    def add_hist(
        self,
        name: str,
        cells: IntArray,
        bins: IntArray,
        n_cells: int,
        n_bins: int,
        weights: IntArray | None = None,
    ) -> None:
        """Count ``bins[i]`` for cell ``cells[i]`` (negative bins are not counted), adding
        ``weights[i]`` (non-negative integers, exact below 2**53 per batch) instead of 1."""
        ok = bins >= 0
        at = cells[ok] * n_bins + bins[ok]
        if weights is None:
            flat = np.bincount(at, minlength=n_cells * n_bins)
        else:
            flat = np.rint(np.bincount(at, weights=weights[ok], minlength=n_cells * n_bins))
        self.add_counts(name, flat.reshape(n_cells, n_bins).astype(np.int64))

    def add_counts(self, name: str, counts: IntArray) -> None:
        """Add a ``(cells, bins)`` table to histogram ``name``, growing it as needed."""
        acc = self.hist.get(name)
        if acc is None:
            self.hist[name] = counts
            return
        rows, bins = max(acc.shape[0], counts.shape[0]), max(acc.shape[1], counts.shape[1])
        if acc.shape != (rows, bins):
            acc = resized(acc, (rows, bins))
        acc[: counts.shape[0], : counts.shape[1]] += counts
        self.hist[name] = acc

    def hist_sized(self, name: str, n: int, n_bins: int) -> IntArray:
        """Histogram ``name`` cut or zero-padded to ``n`` cells (zeros if absent)."""
        h = self.hist.get(name)
        return np.zeros((n, n_bins), dtype=np.int64) if h is None else resized(h, (n, n_bins))

    def sized(self, n: int) -> tuple[IntArray, FloatArray, FloatArray]:
        """The arrays cut or zero-padded to ``n`` cells."""
        return resized(self.count, n), resized(self.mean, n), resized(self.m2, n)
