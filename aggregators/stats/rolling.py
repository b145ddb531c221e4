"""Rolling windows over about the last N events of each cell, kept as blocks of moments.

river's ``utils.Rolling(stats.Var, window_size=N)`` gives the statistics of exactly the last N
values one event at a time, but costs about 0.7 us per update and keeps N values per cell:
8 KB per cell at N = 1000, most of a replica's memory at 100,000 cells. :class:`RollingWindows`
instead cuts each cell's stream into consecutive **blocks** of ``b`` events and keeps, per
block, the mean and m2 of its events (count: ``b``, except the newest block). The window is the
newest block (``c`` events, ``1 <= c <= b``) plus as many of the blocks before it as fit in N:

    W = c + b * min(blocks before, (N - c) // b),   so   N - b < W <= N once N events arrived.

**Semantics.** The statistics are *exactly* those of the last ``W`` events (count ``W``, mean,
and m2 merged from the blocks with Chan et al.'s formula), and ``W`` is what ``moments`` reports
as the count (exported as ``tilewatch_rolling_events``). ``b = N // 20`` for ``N >= 40`` (at most
5 % fewer events than configured; 20 or 21 blocks per cell, 16 bytes each) and ``b = 1`` below,
where the window is exactly the last N events. ``tests/aggregators/stats/test_rolling.py``
checks the count, mean and variance against pandas ``Series.rolling(W).mean()/.var()`` and,
for ``b = 1``, against river.

Rows are allocated on first use, so a partition only pays for the cells it saw. A batch is
written with a few numpy calls (one sort, grouped moments per (cell, block)); :meth:`refresh`
merges the blocks of the cells written since the last call, which the runtime calls at most
about once a second and whenever it is idle, never per event. A snapshot takes :meth:`copy`
under the state's lock (the merged moments and the blocks of the cells written since) and
merges those blocks outside it, so its rolling statistics cover the same batches as its counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray, grow
from tilewatch.aggregators.errors import StateError

__all__ = ["BLOCKS", "RollingCopy", "RollingWindows", "block_length"]

#: Blocks of a window (about): the block length is ``size // BLOCKS``.
BLOCKS = 20


def block_length(size: int) -> int:
    """Events per block for a window of ``size`` events: ``size // 20``, at least 1.

    Examples
    --------
    >>> block_length(1000), block_length(39), block_length(40)
    (50, 1, 2)
    """
    return max(1, size // BLOCKS)


class RollingWindows:
    """About the last ``size`` values of each cell, as blocks, with their count, mean and m2.

    Parameters
    ----------
    size
        Largest number of most recent values in a cell's window (see the module docstring
        for the window actually used, ``size - block + 1`` to ``size`` values).

    Examples
    --------
    >>> rw = RollingWindows(size=3)
    >>> rw.update(np.array([0, 1, 0, 0, 0]), np.array([1.0, 10.0, 2.0, 3.0, 4.0]))
    >>> rw.values(0).tolist(), rw.values(1).tolist()
    ([2.0, 3.0, 4.0], [10.0])
    >>> rw.refresh()
    >>> count, mean, m2 = rw.moments(2)
    >>> count.tolist(), mean.tolist(), m2.tolist()
    ([3, 1], [3.0, 10.0], [2.0, 0.0])
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.block = block_length(size)
        #: Block slots per cell: the newest block and the full ones that may precede it.
        self.slots = (size - 1) // self.block + 1
        self._row_of = np.full(0, -1, dtype=np.int64)  # cell index -> row, -1 if none
        self._cells = np.zeros(0, dtype=np.int64)  # row -> cell index
        self._bmean = np.zeros((0, self.slots))  # block k of a row lives in slot k % slots
        self._bm2 = np.zeros((0, self.slots))
        self._total = np.zeros(0, dtype=np.int64)  # events ever written per row
        self._dirty = np.zeros(0, dtype=bool)
        self._count = np.zeros(0, dtype=np.int64)  # as of the last refresh
        self._mean = np.zeros(0)
        self._m2 = np.zeros(0)
        self._nrows = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (allocated rows included)."""
        arrays = (self._row_of, self._cells, self._bmean, self._bm2, self._total, self._dirty)
        return sum(a.nbytes for a in (*arrays, self._count, self._mean, self._m2))

    def _rows_for(self, cells: IntArray) -> IntArray:
        top = int(cells.max()) + 1 if len(cells) else 0
        self._row_of = grow(self._row_of, top, fill=-1, minimum=0)
        rows = self._row_of[cells]
        if (rows < 0).any():
            new_cells = np.unique(cells[rows < 0])
            self._allocate(new_cells)
            rows = self._row_of[cells]
        return rows

    def _allocate(self, new_cells: IntArray) -> None:
        need = self._nrows + len(new_cells)
        if need > len(self._bmean):  # every row table has as many rows as the blocks
            self._bmean = grow(self._bmean, need)
            self._bm2 = grow(self._bm2, need)
            for name in ("_cells", "_total", "_count", "_mean", "_m2", "_dirty"):
                setattr(self, name, grow(getattr(self, name), need))
        rows = np.arange(self._nrows, need)
        self._row_of[new_cells] = rows
        self._cells[rows] = new_cells
        self._nrows = need

    def update(self, cells: IntArray, values: FloatArray) -> None:
        """Append ``values[i]`` to cell ``cells[i]``, in array order (oldest first)."""
        if len(cells) == 0:
            return
        rows = self._rows_for(cells)
        # numpy's stable sort is a radix sort for 16-bit keys: linear time for small tables.
        sort_key = rows.astype(np.uint16) if self._nrows <= 65536 else rows
        order = np.argsort(sort_key, kind="stable")
        r, v = rows[order], np.asarray(values, dtype=np.float64)[order]
        n = len(r)
        starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        counts = np.diff(np.r_[starts, n])
        uniq = r[starts]
        before = self._total[uniq]
        # Position of each event in its cell's stream, and its block number.
        pos = np.repeat(before - starts, counts) + np.arange(n)
        blk = pos // self.block
        # Groups: runs of one (row, block); rows are sorted and blocks ascend within a row.
        gstart = np.flatnonzero(np.r_[True, (r[1:] != r[:-1]) | (blk[1:] != blk[:-1])])
        gcount = np.diff(np.r_[gstart, n])
        gid = np.repeat(np.arange(len(gstart)), gcount)
        gmean = np.bincount(gid, weights=v) / gcount
        dev = v - gmean[gid]
        gm2 = np.bincount(gid, weights=dev * dev)
        grow_ = r[gstart]
        gblk = blk[gstart]
        after = before + counts
        # Keep only the blocks that can still be in a window: the last `slots` of the row.
        last_blk = np.repeat(
            (after - 1) // self.block, np.diff(np.r_[np.searchsorted(gstart, starts), len(gstart)])
        )
        keep = gblk > last_blk - self.slots
        grow_, gblk, gcount, gmean, gm2 = (
            grow_[keep],
            gblk[keep],
            gcount[keep],
            gmean[keep],
            gm2[keep],
        )
        slot = gblk % self.slots
        # A group continues the row's newest block when that block was not full.
        old_total = self._total[grow_]
        old_fill = old_total - (old_total // self.block) * self.block
        cont = (old_fill > 0) & (gblk == old_total // self.block)
        if cont.any():
            cr, cs = grow_[cont], slot[cont]
            na = old_fill[cont].astype(np.float64)
            nb = gcount[cont].astype(np.float64)
            ma, mb = self._bmean[cr, cs], gmean[cont]
            delta = mb - ma
            tot = na + nb
            gmean[cont] = ma + delta * nb / tot
            gm2[cont] = self._bm2[cr, cs] + gm2[cont] + delta * delta * na * nb / tot
        self._bmean[grow_, slot] = gmean
        self._bm2[grow_, slot] = gm2
        self._total[uniq] = after
        self._dirty[uniq] = True

    def _window(self, rows: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """Per row: events in its window, in its newest block, and full blocks before it."""
        total = self._total[rows]
        newest = (total - 1) // self.block
        fill = total - newest * self.block
        full = np.minimum(newest, (self.size - fill) // self.block)
        return fill + full * self.block, fill, full

    def refresh(self) -> None:
        """Merge the blocks of the cells written since the last call."""
        rows = np.flatnonzero(self._dirty[: self._nrows])
        if len(rows) == 0:
            return
        one, rest = self._split(rows)
        self._count[one], self._mean[one], self._m2[one] = self._first_blocks(one)
        if len(rest):
            count, mean, m2 = self._merge(self._total[rest], self._bmean[rest], self._bm2[rest])
            self._count[rest], self._mean[rest], self._m2[rest] = count, mean, m2
        self._dirty[rows] = False

    def _split(self, rows: IntArray) -> tuple[IntArray, IntArray]:
        """``rows`` with at most one block of values (their window is that block), and the
        others; the block tables of the first are never gathered whole (at 100,000 cells,
        (rows, slots) copies of 80 MB)."""
        total = self._total[rows]
        one = (total >= 1) & (total <= self.block)
        return rows[one], rows[~one]

    def _first_blocks(self, rows: IntArray) -> tuple[IntArray, FloatArray, FloatArray]:
        """Count, mean and m2 of rows whose values all lie in their first block."""
        return self._total[rows], self._bmean[rows, 0], self._bm2[rows, 0]

    def _merge(
        self, total: IntArray, bmean: FloatArray, bm2: FloatArray
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Count, mean and m2 of the windows of rows with these totals and block tables (rows
        of more than one block: :meth:`_split` takes the others apart)."""
        newest = (total - 1) // self.block
        fill = total - newest * self.block
        full = np.minimum(newest, (self.size - fill) // self.block)
        count = fill + full * self.block
        age = np.arange(self.slots)[None, :]  # 0: newest block, 1: the one before, ...
        slot = (newest[:, None] - age) % self.slots
        used = age <= full[:, None]
        n_blk = np.where(age == 0, fill[:, None], self.block) * used
        index = np.arange(len(total))[:, None]
        means = bmean[index, slot]
        m2s = bm2[index, slot]
        mean = (n_blk * means).sum(axis=1) / count
        dev = np.where(used, means - mean[:, None], 0.0)
        m2 = np.where(used, m2s, 0.0).sum(axis=1) + (n_blk * dev * dev).sum(axis=1)
        return count, mean, m2

    def copy(self, n_cells: int) -> RollingCopy:
        """What :meth:`current` needs, copied (to take under the state's lock): the moments as
        of the last refresh and the blocks of the cells written since."""
        rows = np.flatnonzero(self._dirty[: self._nrows])
        one, rest = self._split(rows[self._cells[rows] < n_cells])
        return RollingCopy(
            self,
            self.moments(n_cells),
            self._cells[rest],
            self._total[rest],
            self._bmean[rest],
            self._bm2[rest],
            (self._cells[one], *self._first_blocks(one)),
        )

    def moments(self, n_cells: int) -> tuple[IntArray, FloatArray, FloatArray]:
        """Count, mean and m2 per cell index ``0 .. n_cells - 1`` as of the last refresh.

        A cell written since then keeps reporting its previous values (count 0 only before
        its first refresh), so a scrape between refreshes never loses a busy cell.
        """
        count = np.zeros(n_cells, dtype=np.int64)
        mean = np.zeros(n_cells)
        m2 = np.zeros(n_cells)
        cells = self._cells[: self._nrows]
        ok = cells < n_cells
        count[cells[ok]] = self._count[: self._nrows][ok]
        mean[cells[ok]] = self._mean[: self._nrows][ok]
        m2[cells[ok]] = self._m2[: self._nrows][ok]
        return count, mean, m2

    def values(self, cell: int) -> FloatArray:
        """The values of one cell's window, oldest first, when blocks hold one event each
        (``size < 40``); empty if the cell was never written. Raises ValueError otherwise."""
        if self.block != 1:
            raise ValueError("values are kept only for windows of fewer than 40 events")
        if cell >= len(self._row_of) or self._row_of[cell] < 0:
            return np.zeros(0)
        row = int(self._row_of[cell])
        count = int(self._window(np.array([row]))[0][0])
        total = int(self._total[row])
        slots = np.arange(total - count, total) % self.slots
        out: FloatArray = self._bmean[row, slots].copy()
        return out

    def subset(self, select: BoolArray) -> RollingWindows:
        """A copy holding only the cells where ``select`` (indexed by cell) is true: their
        totals and blocks, enough for :meth:`to_dict` (not for updates or moments)."""
        rows = np.flatnonzero(select[self._cells[: self._nrows]])
        out = RollingWindows(self.size)
        out._cells = self._cells[rows]
        out._total = self._total[rows]
        out._bmean = self._bmean[rows]
        out._bm2 = self._bm2[rows]
        out._nrows = len(rows)
        return out

    def cells(self) -> IntArray:
        """Indices of the cells that have a row."""
        return self._cells[: self._nrows].copy()

    def columns(
        self, select: BoolArray | None = None
    ) -> tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray]:
        """``(cells, events written, blocks per cell, block means, block m2s)`` of the cells
        where ``select`` (indexed by cell) is true (all without it): each cell's blocks in the
        window, newest first, one cell after the other in the flat mean and m2 arrays."""
        rows = np.arange(self._nrows)
        if select is not None:
            rows = rows[select[self._cells[: self._nrows]]]
        total = self._total[rows]
        newest = (total - 1) // self.block
        fill = total - newest * self.block
        lengths = np.minimum(newest, (self.size - fill) // self.block) + 1
        flat_rows = np.repeat(rows, lengths)
        ends = np.cumsum(lengths)
        age = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lengths, lengths)
        slots = (np.repeat(newest, lengths) - age) % self.slots
        return (
            self._cells[rows],
            total,
            lengths,
            self._bmean[flat_rows, slots],
            self._bm2[flat_rows, slots],
        )

    def to_dict(
        self, keys: Sequence[Sequence[str]], select: BoolArray | None = None
    ) -> dict[str, Any]:
        """Plain data: the window size, the block length and, by cell key, the events written
        and the mean and m2 of each block in the window, newest first (only the cells where
        ``select``, indexed by cell, is true, if given)."""
        cells, total, lengths, bmeans, bm2s = self.columns(select)
        means, m2s = bmeans.tolist(), bm2s.tolist()
        out: list[list[Any]] = []
        end = 0
        for cell, t, n in zip(cells.tolist(), total.tolist(), lengths.tolist(), strict=True):
            out.append([list(keys[cell]), t, means[end : end + n], m2s[end : end + n]])
            end += n
        return {"size": self.size, "block": self.block, "cells": out}

    def load_many(self, rows: list[tuple[int, int, list[float], list[float]]]) -> None:
        """Add cells of :meth:`to_dict` output (checked by the caller): ``(cell, total, block
        means, block m2s)``, newest block first. Blocks cannot be interleaved, so when a cell
        already has a window, or is named twice (several checkpointed cells restored into one
        overflow cell of a full registry), the window with more events is kept."""
        self.load_arrays(
            np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([len(r[2]) for r in rows], dtype=np.int64),
            np.array([x for r in rows for x in r[2]], dtype=np.float64),
            np.array([x for r in rows for x in r[3]], dtype=np.float64),
        )

    def load_arrays(
        self,
        cells: IntArray,
        totals: IntArray,
        lengths: IntArray,
        means: FloatArray,
        m2s: FloatArray,
    ) -> None:
        """:meth:`load_many` of columns: row ``i`` is cell ``cells[i]``, ``totals[i]`` events,
        ``lengths[i]`` blocks, whose means and m2s follow the earlier rows' in ``means`` and
        ``m2s`` (newest block first); checked by the caller.

        >>> w = RollingWindows(40)  # blocks of 2 events
        >>> w.load_arrays(np.array([3, 3]), np.array([3, 4]), np.array([2, 2]),
        ...               np.array([9.0, 9.0, 2.5, 1.0]), np.array([0.0, 0.0, 0.5, 0.5]))
        >>> w.refresh()
        >>> [a.tolist() for a in w.moments(4)]  # the row with more events is kept
        [[0, 0, 0, 4], [0.0, 0.0, 0.0, 1.75], [0.0, 0.0, 0.0, 3.25]]
        """
        if not len(cells):
            return
        starts = np.cumsum(lengths) - lengths
        # One row per cell: the most events, the first of equals (as the rows' order had it).
        order = np.lexsort((np.arange(len(cells)), -totals, cells))
        first = np.ones(len(order), dtype=bool)
        first[1:] = cells[order[1:]] != cells[order[:-1]]
        pick = order[first]
        row_idx = self._rows_for(cells[pick])
        take = totals[pick] > self._total[row_idx]
        if not take.any():
            return
        pick, row_idx = pick[take], row_idx[take]
        picked = lengths[pick]
        n = int(picked.sum())
        age = np.arange(n) - np.repeat(np.cumsum(picked) - picked, picked)
        source = np.repeat(starts[pick], picked) + age
        flat_rows = np.repeat(row_idx, picked)
        newest = np.repeat((totals[pick] - 1) // self.block, picked)
        slots = (newest - age) % self.slots
        self._bmean[flat_rows, slots] = means[source]
        self._bm2[flat_rows, slots] = m2s[source]
        self._total[row_idx] = totals[pick]
        self._dirty[row_idx] = True

    def load(self, data: dict[str, Any], index_of: dict[tuple[str, ...], int]) -> None:
        """Add the cells of :meth:`to_dict` output, mapping keys to indices with ``index_of``.

        Also reads the raw-values form of earlier versions (``[key, values]`` per cell),
        replaying the values.
        """
        if int(data.get("size", -1)) != self.size:
            raise StateError(
                f"rolling window size {data.get('size')!r} in the checkpoint differs from the "
                f"configured {self.size}"
            )
        for row in data["cells"]:
            cell = index_of[tuple(row[0])]
            if len(row) == 2:
                arr = np.asarray(row[1], dtype=np.float64)[-self.size :]
                self.update(np.full(len(arr), cell, dtype=np.int64), arr)
            else:
                self.load_many([(cell, int(row[1]), list(row[2]), list(row[3]))])


class RollingCopy:
    """A copy of a :class:`RollingWindows` taken by :meth:`RollingWindows.copy`.

    :meth:`current` merges the copied blocks of the cells written since the last refresh, so
    the moments it returns cover every event the windows had received when the copy was
    taken: the same batches as the counts copied with it. The merge runs on the copy, outside
    the state's lock.
    """

    def __init__(
        self,
        windows: RollingWindows,
        refreshed: tuple[IntArray, FloatArray, FloatArray],
        cells: IntArray,
        total: IntArray,
        bmean: FloatArray,
        bm2: FloatArray,
        single: tuple[IntArray, IntArray, FloatArray, FloatArray],
    ) -> None:
        self._merge = windows._merge
        self._refreshed = refreshed
        self._cells, self._total, self._bmean, self._bm2 = cells, total, bmean, bm2
        #: Cells written since the refresh whose window is one block: (cells, moments), as
        #: they are (nothing to merge).
        self._single = single

    def current(self) -> tuple[IntArray, FloatArray, FloatArray]:
        """Count, mean and m2 per cell index, as of the copy."""
        count, mean, m2 = (
            self._refreshed[0].copy(),
            self._refreshed[1].copy(),
            self._refreshed[2].copy(),
        )
        cells, c, m, s = self._single
        count[cells], mean[cells], m2[cells] = c, m, s
        if len(self._cells):
            c, m, s = self._merge(self._total, self._bmean, self._bm2)
            count[self._cells], mean[self._cells], m2[self._cells] = c, m, s
        return count, mean, m2
