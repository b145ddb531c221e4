"""Bin ids for drift histograms: numeric edges, categories, and per-cell bin counts.

A cell's window is compared with a reference baseline bin by bin. This module turns raw values
into bin ids and counts them for every cell of a batch at once:

- :func:`numeric_edges` derives bin edges from reference quantiles, :func:`bin_numeric` maps
  values to bins with them, and :func:`finite_mask` selects the values that can be binned
  (missing values are counted separately by the caller, not given a bin here);
- :class:`CategoryIndex` maps category strings to the reference's top categories, an
  "other" bin and an "unseen" bin;
- :func:`bin_counts` counts ``(cell id, bin id)`` pairs into a ``(cells, bins)`` table with one
  :func:`numpy.bincount`, so tables from batches, partitions and replicas merge by addition.

Numeric bins are half-open on the right: with inner edges ``e1 < ... < ek`` the bins are
``(-inf, e1), [e1, e2), ..., [ek, +inf)``, so there are ``k + 1`` bins and the outer two are
open-ended.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray

__all__ = ["CategoryIndex", "bin_counts", "bin_numeric", "finite_mask", "numeric_edges"]


def finite_mask(values: npt.ArrayLike) -> BoolArray:
    """True where a value is finite, i.e. can be binned; False for NaN and +-inf.

    Callers count the ``~finite_mask(values)`` entries as missing (a data-quality statistic of
    their own) and pass only ``values[finite_mask(values)]`` to :func:`bin_numeric`.

    Parameters
    ----------
    values : array_like of float
        Raw feature values.

    Returns
    -------
    numpy.ndarray of bool
        Same shape as ``values``.

    Examples
    --------
    >>> finite_mask([1.0, float("nan"), float("inf"), -2.0]).tolist()
    [True, False, False, True]
    """
    return np.isfinite(np.asarray(values, dtype=np.float64))


def numeric_edges(reference: npt.ArrayLike, n_bins: int = 10) -> FloatArray:
    """Inner bin edges at the reference's quantiles: unique, strictly increasing.

    Bins are ``(-inf, e1), [e1, e2), ..., [ek, +inf)`` (see :func:`bin_numeric`), and every
    edge is a reference value. Three cases, by the number of distinct reference values:

    - **more than** ``n_bins``: with the ``n`` values sorted, ``x[0] <= ... <= x[n - 1]``, the
      candidate edges are the ``j / n_bins`` quantiles ``x[floor(j * n / n_bins)]``,
      ``j = 1 .. n_bins - 1``, so without ties the bin below the ``j``-th edge holds exactly
      the ``floor(j * n / n_bins)`` smallest values. Duplicate candidates merge, so ties give
      fewer bins. A heavy tie (a value two or more candidates land on, i.e. holding about
      ``2 / n_bins`` of the mass or more, or the minimum when a candidate lands on it) gets a
      bin of its own: the next larger reference value is added as an edge, so the tie does
      not swallow the values just above it. Edges at the minimum are dropped.
    - **2 to** ``n_bins``: each distinct value gets its own bin, however rare (the edges are
      the distinct values but the smallest), as suits discrete features with a few levels.
    - **1** (a constant ``c``): ``[c, nextafter(c, +inf)]``, three bins "below c", "exactly c"
      and "above c", so that any departure from the constant shows as drift instead of
      disappearing into a single bin (unless ``n_bins == 1``).

    In the first two cases every bin holds at least one reference value (so no expected
    share is 0) and there are at most ``n_bins`` bins.

    Parameters
    ----------
    reference : array_like of float
        Finite reference values (filter with :func:`finite_mask` first); at least one.
    n_bins : int, default 10
        The largest number of bins wanted (``>= 1``); ``1`` gives no edges.

    Returns
    -------
    numpy.ndarray of float64
        The inner edges, strictly increasing; ``len(edges) + 1`` bins.

    Raises
    ------
    ValueError
        If ``reference`` is empty or holds a non-finite value, or ``n_bins < 1``.

    Examples
    --------
    >>> numeric_edges(np.arange(100.0), n_bins=4).tolist()
    [25.0, 50.0, 75.0]
    >>> numeric_edges([1.0, 2.0, 2.0, 3.0, 3.0, 3.0]).tolist()  # few distinct values
    [2.0, 3.0]
    >>> numeric_edges([0.0] * 90 + list(range(1, 11)), n_bins=4).tolist()  # heavy tie at 0
    [1.0]
    >>> e = numeric_edges([5.0, 5.0, 5.0])  # constant: below / exactly 5 / above
    >>> float(e[0]), bool(e[1] > 5.0)
    (5.0, True)
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    x = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    if x.size == 0:
        raise ValueError("reference is empty")
    if not np.isfinite(x).all():
        raise ValueError("reference holds non-finite values; filter them with finite_mask")
    lo = x[0]
    if x[-1] == lo:
        if n_bins == 1:
            return np.empty(0, dtype=np.float64)
        return np.array([lo, np.nextafter(lo, np.inf)])
    if n_bins == 1:
        return np.empty(0, dtype=np.float64)
    distinct = x[np.concatenate([[True], np.diff(x) > 0])]
    if distinct.size <= n_bins:
        few: FloatArray = distinct[1:]
        return few
    quantiles = x[(np.arange(1, n_bins) * x.size) // n_bins]
    values, repeats = np.unique(quantiles, return_counts=True)
    heavy = values[(repeats > 1) | (values == lo)]
    # The next larger reference value after each heavy value (absent after the maximum).
    after = np.searchsorted(x, heavy, side="right")
    successors = x[after[after < x.size]]
    edges = np.unique(np.concatenate([values, successors]))
    out: FloatArray = edges[edges > lo].astype(np.float64)
    return out


def bin_numeric(values: npt.ArrayLike, edges: npt.ArrayLike) -> IntArray:
    """Bin id of each value: ``0 .. len(edges)``, bins closed on the left.

    Value ``v`` goes to bin ``i`` when ``edges[i - 1] <= v < edges[i]`` (with
    ``edges[-1] = -inf`` and ``edges[len(edges)] = +inf``), which is
    ``np.searchsorted(edges, v, side="right")``. A value equal to an edge belongs to the bin
    that starts at that edge.

    Pass finite values only (see :func:`finite_mask`): missing values are tracked separately,
    not binned. (NaN would land in the last bin, silently.)

    Parameters
    ----------
    values : array_like of float
        Finite values to bin, any shape.
    edges : array_like of float
        Strictly increasing inner edges, as from :func:`numeric_edges`.

    Returns
    -------
    numpy.ndarray of int64
        Same shape as ``values``.

    Examples
    --------
    >>> bin_numeric([-5.0, 1.0, 1.5, 2.0, 9.0], [1.0, 2.0]).tolist()
    [0, 1, 1, 2, 2]
    """
    idx = np.searchsorted(
        np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right"
    )
    return np.asarray(idx, dtype=np.int64)


class CategoryIndex:
    """Maps category strings to bin ids: top categories, "other" and "unseen".

    With ``k = len(top)`` the bins are:

    - ``0 .. k - 1``: the reference's top categories, in the order given;
    - ``k`` (:attr:`other`): a category seen in the reference but not among the top ones,
      i.e. a member of ``known_other``;
    - ``k + 1`` (:attr:`unseen`): a category never seen in the reference.

    ``known_other`` is the set of every other category the reference held. When it is
    ``None`` that set was not kept: every category outside ``top`` then maps to "other", and
    the unseen bin stays empty (new categories cannot be told apart from rare old ones). An
    empty ``frozenset()`` means the reference held no other category, so everything outside
    ``top`` is unseen. Use :meth:`from_reference` to build one from reference values.

    Parameters
    ----------
    top : sequence of str
        The top categories, distinct.
    known_other : frozenset of str or None, default None
        The reference's other categories, disjoint from ``top``; ``None`` if unknown.

    Raises
    ------
    ValueError
        If ``top`` has duplicates or ``known_other`` overlaps it.

    Examples
    --------
    >>> idx = CategoryIndex(["fr", "de"], known_other=frozenset({"it"}))
    >>> idx.n_bins, idx.other, idx.unseen
    (4, 2, 3)
    >>> idx.index(["de", "fr", "it", "xx"]).tolist()
    [1, 0, 2, 3]
    >>> CategoryIndex(["fr"]).index(["fr", "xx"]).tolist()  # others unknown: no unseen
    [0, 1]
    >>> CategoryIndex.from_dict(idx.to_dict()) == idx
    True
    """

    __slots__ = ("_ids", "known_other", "top")

    def __init__(self, top: Sequence[str], known_other: frozenset[str] | None = None) -> None:
        self.top: tuple[str, ...] = tuple(top)
        if len(set(self.top)) != len(self.top):
            raise ValueError(f"duplicate categories in top: {list(self.top)}")
        self.known_other = None if known_other is None else frozenset(known_other)
        if self.known_other is not None:
            overlap = self.known_other.intersection(self.top)
            if overlap:
                raise ValueError(f"known_other overlaps top: {sorted(overlap)}")
        self._ids: dict[str, int] = {c: i for i, c in enumerate(self.top)}

    @classmethod
    def from_reference(cls, values: Iterable[str], k: int) -> CategoryIndex:
        """The ``k`` most frequent reference categories as top, the rest as known others.

        Ties in frequency are broken by the category string, so the result is deterministic.

        Examples
        --------
        >>> idx = CategoryIndex.from_reference(["b", "a", "b", "c", "a", "b"], k=2)
        >>> idx.top, sorted(idx.known_other or ())
        (('b', 'a'), ['c'])
        """
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        counts = Counter(values)
        ranked = sorted(counts, key=lambda c: (-counts[c], c))
        return cls(ranked[:k], known_other=frozenset(ranked[k:]))

    @property
    def other(self) -> int:
        """Bin id of reference categories outside the top ones (``len(top)``)."""
        return len(self.top)

    @property
    def unseen(self) -> int:
        """Bin id of categories absent from the reference (``len(top) + 1``)."""
        return len(self.top) + 1

    @property
    def n_bins(self) -> int:
        """Number of bins, ``len(top) + 2``."""
        return len(self.top) + 2

    def get(self, category: str) -> int:
        """Bin id of one category."""
        found = self._ids.get(category)
        if found is not None:
            return found
        if self.known_other is None or category in self.known_other:
            return self.other
        return self.unseen

    def index(self, categories: Iterable[str]) -> IntArray:
        """Bin ids of many categories (one dictionary look-up each).

        Examples
        --------
        >>> CategoryIndex(["a"], frozenset()).index(["a", "b"]).tolist()
        [0, 2]
        """
        return np.fromiter((self.get(c) for c in categories), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint (``known_other`` sorted, or None)."""
        known = None if self.known_other is None else sorted(self.known_other)
        return {"top": list(self.top), "known_other": known}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CategoryIndex:
        """Inverse of :meth:`to_dict`."""
        known = data.get("known_other")
        return cls(
            [str(c) for c in data["top"]],
            None if known is None else frozenset(str(c) for c in known),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoryIndex):
            return NotImplemented
        return self.top == other.top and self.known_other == other.known_other

    def __hash__(self) -> int:
        return hash((self.top, self.known_other))

    def __repr__(self) -> str:
        return f"CategoryIndex(top={list(self.top)!r}, known_other={self.known_other!r})"


def bin_counts(
    cell_ids: npt.ArrayLike, bin_ids: npt.ArrayLike, n_cells: int, n_bins: int
) -> IntArray:
    """Count ``(cell, bin)`` pairs into a ``(n_cells, n_bins)`` table with one bincount.

    The flat index ``cell_ids * n_bins + bin_ids`` is counted by a single
    :func:`numpy.bincount`, so the cost is linear in the batch and independent of the number
    of cells. Tables add: a window's table is the sum of its batches' tables.

    Parameters
    ----------
    cell_ids : array_like of int
        Cell id of each value, in ``0 .. n_cells - 1``.
    bin_ids : array_like of int
        Bin id of each value, in ``0 .. n_bins - 1``; same length as ``cell_ids``.
    n_cells, n_bins : int
        The table's shape.

    Returns
    -------
    numpy.ndarray of int64, shape (n_cells, n_bins)

    Raises
    ------
    ValueError
        If the lengths differ or an id is out of range.

    Examples
    --------
    >>> bin_counts([0, 0, 2, 0], [1, 1, 0, 2], n_cells=3, n_bins=3).tolist()
    [[0, 2, 1], [0, 0, 0], [1, 0, 0]]
    """
    cells = np.asarray(cell_ids, dtype=np.int64).ravel()
    bins = np.asarray(bin_ids, dtype=np.int64).ravel()
    if cells.shape != bins.shape:
        raise ValueError(f"cell_ids and bin_ids differ in length: {cells.size} != {bins.size}")
    if cells.size:
        if cells.min() < 0 or cells.max() >= n_cells:
            raise ValueError(f"cell id out of range 0..{n_cells - 1}")
        if bins.min() < 0 or bins.max() >= n_bins:
            raise ValueError(f"bin id out of range 0..{n_bins - 1}")
    flat = np.bincount(cells * n_bins + bins, minlength=n_cells * n_bins)
    return flat.astype(np.int64, copy=False).reshape(n_cells, n_bins)
