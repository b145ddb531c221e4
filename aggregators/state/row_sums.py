"""Histogram rows of several partitions, per cell: summed, or read for their latency quantiles.

Each partition's copy of a window's histogram is compact (``(cells, rows)``: the rows of the
cells with data in that partition). Leaf cells live in one partition, roll-up cells in
several; :func:`latency_by_cell` reads each leaf's rows where they are and adds up only the
rows of the cells found in more than one piece.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.stats.latency import latency_quantiles_many

__all__ = ["latency_by_cell", "sum_rows"]


def sum_rows(pieces: Sequence[tuple[IntArray, IntArray]], n: int) -> tuple[IntArray, IntArray]:
    """The rows of ``pieces`` (each ``(cells, rows)``, a cell at most once per piece, cell
    indices below ``n``) summed per cell: ``(cells, table)``, each cell once, in the order
    first met, the table as wide as the widest piece (int64).

    Examples
    --------
    >>> cells, table = sum_rows([(np.array([3, 1]), np.array([[1, 0], [0, 2]])),
    ...                          (np.array([3, 0]), np.array([[5, 5, 1], [0, 0, 7]]))], 4)
    >>> cells.tolist(), table.tolist()
    ([3, 1, 0], [[6, 5, 1], [0, 2, 0], [0, 0, 7]])
    """
    width = max((h.shape[1] for _c, h in pieces), default=0)
    slot = np.full(n, -1, dtype=np.int64)  # cell -> its row in the table
    table = np.zeros((sum(len(c) for c, _h in pieces), width), dtype=np.int64)
    used = 0
    for cells, rows in pieces:
        at = slot[cells]
        new = at < 0
        k = int(new.sum())
        at[new] = np.arange(used, used + k)
        slot[cells[new]] = at[new]
        used += k
        table[at, : rows.shape[1]] += rows  # each row of the table once per piece
    order = np.flatnonzero(slot >= 0)
    cells = np.empty(used, dtype=np.int64)
    cells[slot[order]] = order
    return cells, table[:used]


def latency_by_cell(
    pieces: Sequence[tuple[IntArray, IntArray]], n: int, qs: tuple[float, ...]
) -> list[FloatArray]:
    """Latency quantiles ``qs`` of each of ``n`` cells from the latency histogram rows of
    ``pieces`` (as :func:`sum_rows`): each cell's quantiles are those of its rows summed over
    the pieces, NaN for a cell without rows. A cell in one piece (a leaf: one partition holds
    it) is read from its piece as it is; only the rows of cells in several pieces (roll-ups)
    are summed, so no table of every cell's rows is built (50 MB of int64 at 100,000 cells).

    Examples
    --------
    >>> from tilewatch.aggregators.stats.latency import LATENCY_BINS
    >>> one = np.eye(LATENCY_BINS, dtype=np.int64)
    >>> a = (np.array([0, 2]), one[[10, 20]])  # cell 0: an event in bin 10, cell 2: bin 20
    >>> b = (np.array([2]), one[[30]] * 3)  # three more of cell 2, in bin 30
    >>> got = latency_by_cell([a, b], 3, (0.5,))[0]
    >>> want = latency_by_cell([sum_rows([a, b], 3)], 3, (0.5,))[0]
    >>> bool(np.array_equal(got, want, equal_nan=True)), bool(np.isnan(got[1]))
    (True, True)
    """
    out = [np.full(n, math.nan) for _q in qs]
    if not pieces:
        return out
    seen = np.zeros(n, dtype=np.int64)
    for cells, _rows in pieces:
        seen[cells] += 1  # a cell at most once per piece
    shared: list[tuple[IntArray, IntArray]] = []
    for cells, rows in pieces:
        several = seen[cells] > 1
        if several.any():
            shared.append((cells[several], rows[several]))
            _read(out, cells[~several], rows[~several], qs)
        else:
            _read(out, cells, rows, qs)
    if shared:
        _read(out, *sum_rows(shared, n), qs)
    return out


def _read(out: list[FloatArray], cells: IntArray, rows: IntArray, qs: tuple[float, ...]) -> None:
    for res, values in zip(out, latency_quantiles_many(rows, qs), strict=True):
        res[cells] = values
