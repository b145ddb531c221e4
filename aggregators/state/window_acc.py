"""The sufficient statistics of one event-time window, per cell: score moments and histograms.

A :class:`WindowAcc` holds, for every cell with events in the window, the count, mean and m2 of
the scores and one count per bin of each histogram (score, predicted class, features, latency).
Batches, partitions and replicas combine windows exactly: moments merge with Chan et al.'s
formula, histograms add.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import (
    GROWTH,
    BoolArray,
    FloatArray,
    IntArray,
    group,
    grow,
    resized,
)
from tilewatch.aggregators.state.unit_columns import pad_rows
from tilewatch.aggregators.stats.moments import group_moments, merge_moments

#: Bin counts of the histograms (latency, drift): int32.
HIST_DTYPE = np.int32
#: Histograms whose "counts" are sums of weights in micro-units (multi-class confidence, Brier
#: and log loss sums): int64, since an int32 would overflow after a few thousand events.
SUMMED_HISTOGRAMS = frozenset({"mc_top_sum", "mc_calib_conf", "mc_brier", "mc_logloss"})

#: A batch's histogram counts go through a dense count of the table's rows in use
#: (``np.bincount``) when the table has at most this many positions per counted event, else
#: through a sort of the positions (which costs the batch, not the table).
DENSE_FACTOR = 16
#: A compacted table keeps its rows with a count of 256 or more apart when they are at most
#: one in this many (:meth:`WindowAcc.compact`).
WIDE_SHARE = 8

__all__ = ["WindowAcc", "per_variant"]


def _grown(rows: int) -> int:
    """Rows a growing histogram table gets (as :func:`~tilewatch.aggregators.arrays.grow`)."""
    return rows + rows // GROWTH


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

    __slots__ = (
        "_expect",
        "_row_cells",
        "_rows",
        "_used",
        "_wide",
        "count",
        "hist",
        "m2",
        "mean",
        "models",
    )

    def __init__(self, n: int = 0, expect_rows: int = 0) -> None:
        """``n`` cells' moments, zero; ``expect_rows``: histogram rows to allocate for at
        once (the rows the window before had), so the tables of a window that fills as its
        predecessor did are not copied a quarter at a time as its cells arrive."""
        #: The model ids with events in this window, once it is closed (its counts no longer
        #: change): kept by :meth:`PartitionState.window_models`, None until first asked.
        self.models: set[int] | None = None
        self.count = np.zeros(n, dtype=np.int64)
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)
        #: Histogram tables by name: ``(rows, bins)`` counts, int32 (4 bytes a bin: a cell's
        #: window holds fewer than 2**31 events). Rows are compact: one per cell with a
        #: histogram count in this window (:meth:`hist_cells`), not one per registry cell, and
        #: allocated ahead (a quarter more at a time).
        self.hist: dict[str, npt.NDArray[np.signedinteger]] = {}
        #: Per compacted table whose few large rows were kept apart (:meth:`compact`): those
        #: rows' positions and their counts; the table holds zeros in their place.
        self._wide: dict[str, tuple[IntArray, npt.NDArray[Any]]] = {}
        #: Cell -> its histogram row (-1: none), and row -> cell.
        self._rows = np.full(0, -1, dtype=np.int32)
        self._row_cells = np.zeros(0, dtype=np.int64)
        self._used = 0
        self._expect = expect_rows

    @property
    def hist_row_count(self) -> int:
        """Histogram rows in use (cells with a histogram row in this window)."""
        return self._used

    def hist_cells(self) -> IntArray:
        """The cell of each histogram row in use, in row order."""
        return self._row_cells[: self.hist_row_count]

    def _rows_of(self, cells: IntArray, n_cells: int) -> IntArray:
        """Histogram rows of ``cells``, allocating rows for cells that have none yet."""
        if len(self._rows) < n_cells:
            self._rows = grow(self._rows, n_cells, fill=-1)
        rows = self._rows[cells]
        new = rows < 0
        if new.any():
            fresh = np.sort(group(cells[new], n_cells)[0])  # rows in cell order
            used = self.hist_row_count
            need = used + len(fresh)
            if len(self._row_cells) < need:
                self._row_cells = resized(self._row_cells, max(need, _grown(len(self._row_cells))))
            self._row_cells[used:need] = fresh
            self._rows[fresh] = np.arange(used, need, dtype=np.int32)
            self._used = need
            rows = self._rows[cells]
        return rows.astype(np.int64)

    def add(self, cells: IntArray, values: FloatArray, n_cells: int) -> None:
        """Merge the moments of ``values`` grouped by ``cells`` into this window."""
        self.count = grow(self.count, n_cells)
        self.mean = grow(self.mean, n_cells)
        self.m2 = grow(self.m2, n_cells)
        if n_cells > 2 * len(cells):
            # Few cells touched among many: merge only the touched rows, so a batch costs
            # what it holds, not the size of the cell table.
            touched, local = group(cells, n_cells)
            c, m, s = group_moments(local, values, len(touched))
            self.count[touched], self.mean[touched], self.m2[touched] = merge_moments(
                self.count[touched], self.mean[touched], self.m2[touched], c, m, s
            )
            return
        c, m, s = group_moments(cells, values, n_cells)
        k = n_cells
        self.count[:k], self.mean[:k], self.m2[:k] = merge_moments(
            self.count[:k], self.mean[:k], self.m2[:k], c, m, s
        )

    def add_moments(
        self,
        cells: list[int],
        moments: list[tuple[int, float, float]] | FloatArray,
        n_cells: int,
    ) -> None:
        """Merge per-cell ``(count, mean, m2)`` into this window; ``cells`` may repeat (restore:
        two keys of a checkpoint that name one cell here)."""
        idx = np.asarray(cells, dtype=np.int64)
        rows = np.asarray(moments, dtype=np.float64).reshape(-1, 3)
        c = np.zeros(n_cells, dtype=np.int64)
        m, s = np.zeros(n_cells), np.zeros(n_cells)
        # Each cell named once: its moments as they are (the common case, no rounding).
        c[idx] = rows[:, 0].astype(np.int64)
        m[idx] = rows[:, 1]
        s[idx] = rows[:, 2]
        if len(np.unique(idx)) < len(idx):  # some cell named more than once: Chan's merge
            ci, mi = rows[:, 0], rows[:, 1]
            c = np.bincount(idx, weights=ci, minlength=n_cells).astype(np.int64)
            total = np.bincount(idx, weights=ci * mi, minlength=n_cells)
            m = np.divide(total, c, out=np.zeros(n_cells), where=c > 0)
            dev = mi - m[idx]
            s = np.asarray(
                np.bincount(idx, weights=rows[:, 2] + ci * dev * dev, minlength=n_cells),
                dtype=np.float64,
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
        ``weights[i]`` (non-negative integers) instead of 1 where given; one histogram of
        :meth:`add_hists`."""
        self.add_hists(cells, [(name, bins, n_bins, weights)], n_cells)

    def add_hists(
        self,
        cells: IntArray,
        hists: list[tuple[str, IntArray, int, IntArray | None]],
        n_cells: int,
    ) -> None:
        """Count several histograms of the same events: ``(name, bins, n_bins, weights)``,
        ``bins[i]`` for cell ``cells[i]`` (negative bins are not counted), adding ``weights[i]``
        (non-negative integers) instead of 1 where given.

        Counted in place, so a batch costs its events, not cells x bins: the flat positions
        are sorted and each distinct one added once (about 3 times faster than ``np.add.at``),
        or, for a table of at most :data:`DENSE_FACTOR` positions per event, counted densely
        with ``np.bincount`` (about 10 times faster than the sort there). The cells' rows are
        looked up once for all the histograms. Weighted histograms (sums in micro-units,
        :data:`SUMMED_HISTOGRAMS`) are int64 tables.
        """
        if not len(cells) or not hists:
            return
        masks = [bins >= 0 for _name, bins, _n, _w in hists]
        counted = masks[0] if len(masks) == 1 else np.logical_or.reduce(masks)
        # Rows for the cells with a count in any of them (allocated once), then their rows.
        if counted.all():
            rows = self._rows_of(cells, n_cells)
        else:
            self._rows_of(cells[counted], n_cells)
            rows = self._rows[cells].astype(np.int64)  # -1 only where nothing is counted
        used = self.hist_row_count
        for (name, bins, n_bins, weights), ok in zip(hists, masks, strict=True):
            everything = ok.all()
            if not everything and not ok.any():
                continue
            table = self._hist_table(name, used, n_bins)
            if everything:
                at = rows * table.shape[1] + bins
            else:
                at = rows[ok] * table.shape[1] + bins[ok]
            if weights is not None and not everything:
                weights = weights[ok]
            flat = table.reshape(-1)  # a view: the tables are C-contiguous (made by np.zeros)
            size = used * table.shape[1]
            if size <= DENSE_FACTOR * len(at):
                # A small table against the batch: one count per position of the rows in use.
                if weights is None:
                    counts = np.bincount(at, minlength=size)
                else:  # integer weights, summed exactly in float64 (far below 2**53)
                    counts = np.bincount(at, weights=weights, minlength=size).astype(np.int64)
                flat[:size] += counts.astype(table.dtype, copy=False)
                continue
            if weights is None:
                at.sort()
                first = _run_starts(at)
                add = np.diff(first, append=len(at))
            else:
                order = np.argsort(at)  # integer weights: any order sums exactly
                at = at[order]
                first = _run_starts(at)
                add = np.add.reduceat(weights[order], first)
            flat[at[first]] += add.astype(table.dtype, copy=False)

    def _hist_table(self, name: str, rows: int, bins: int) -> npt.NDArray[np.signedinteger]:
        """Histogram ``name``'s table with at least ``rows`` rows and ``bins`` bins (rows grow
        by a quarter, so cells first seen one batch at a time cost amortized O(1)); a table
        narrowed by :meth:`compact` is widened back to its written dtype first."""
        table = self.hist.get(name)
        dtype = np.int64 if name in SUMMED_HISTOGRAMS else HIST_DTYPE
        if name in self._wide:  # compacted with its large rows apart: one table again
            table = self._joined(name)
            del self._wide[name]
        if table is None:
            table = np.zeros((max(rows, self._expect), bins), dtype=dtype)
        elif table.dtype != dtype:
            table = table.astype(dtype)
        if table.shape[0] < rows or table.shape[1] < bins:
            grown_rows = max(rows, _grown(table.shape[0])) if table.shape[0] < rows else rows
            table = resized(table, (max(grown_rows, table.shape[0]), max(bins, table.shape[1])))
        self.hist[name] = table
        return table

    def compact(self) -> None:
        """Trim the histogram tables to the rows in use and store each in the narrowest
        unsigned dtype that holds its largest count (``uint8``, ``uint16``, else as written).

        Called when the window closes: a closed window rarely changes again (labels joined
        from the outcomes topic may still add to it; :meth:`_hist_table` then widens the
        table back), and at 100,000 cells most of its counts are below 256, so its latency
        table takes a quarter of the int32 bytes and no doubling slack. The few rows with a
        larger count (roll-up cells: thousands of events a window) are kept apart in their
        own dtype (at most one row in :data:`WIDE_SHARE`), so they do not double the bytes of
        every other row. Values are unchanged: :meth:`hist_of` joins the rows back, and every
        reader adds the counts into int64 or converts them to Python ints.
        """
        used = self._used
        self._row_cells = self._row_cells[:used].copy()
        for name, table in self.hist.items():
            table = table[: min(used, table.shape[0])]
            if table.dtype.kind == "u":  # compacted before (a restore compacts again)
                continue
            top_row = table.max(axis=1) if table.size else np.zeros(0, dtype=table.dtype)
            top = int(top_row.max()) if len(top_row) else 0
            wide = np.flatnonzero(top_row >= 2**8)
            if len(wide) and len(wide) * WIDE_SHARE <= len(table) and top < 2**32:
                counts: npt.NDArray[Any] = table[wide].astype(
                    np.uint16 if top < 2**16 else np.uint32
                )
                narrow: npt.NDArray[Any] = table.astype(np.uint8)  # a copy: rows freed
                narrow[wide] = 0
                self.hist[name] = narrow
                self._wide[name] = (wide, counts)
                continue
            if top < 2**8:
                dtype: type[np.integer] = np.uint8
            elif top < 2**16:
                dtype = np.uint16
            else:
                dtype = table.dtype.type
            self.hist[name] = table.astype(dtype)  # a copy: the allocated rows are freed

    def _joined(self, name: str) -> npt.NDArray[Any]:
        """Histogram ``name``'s table with its large rows back in place (a copy in their
        dtype)."""
        rows, counts = self._wide[name]
        out = self.hist[name].astype(counts.dtype)
        out[rows] = counts
        return out

    @property
    def nbytes(self) -> int:
        """Bytes held by the window's arrays (moments, row maps and histogram tables)."""
        arrays = (self.count, self.mean, self.m2, self._rows, self._row_cells)
        wide = sum(r.nbytes + c.nbytes for r, c in self._wide.values())
        return sum(a.nbytes for a in arrays) + sum(t.nbytes for t in self.hist.values()) + wide

    def add_counts(self, name: str, counts: IntArray) -> None:
        """Add a ``(cells, bins)`` table (dense: row i is cell i) to histogram ``name``."""
        cells = np.flatnonzero(counts.any(axis=1))
        rows = self._rows_of(cells, counts.shape[0])
        table = self._hist_table(name, self.hist_row_count, counts.shape[1])
        table[rows, : counts.shape[1]] += counts[cells].astype(table.dtype)

    def add_rows(
        self, name: str, cells: list[int], rows: list[list[int]], width: int, n_cells: int
    ) -> None:
        """Add ``rows[i]`` (a list of at most ``width`` counts) to histogram ``name``'s row of
        cell ``cells[i]`` (``cells`` may repeat: the rows add), as :meth:`add_counts` adds a
        dense table with those rows: cells whose counts are all zero get no row."""
        self.add_table(name, cells, pad_rows(rows, width), n_cells)

    def add_table(
        self, name: str, cells: list[int], counts: npt.NDArray[np.integer], n_cells: int
    ) -> None:
        """:meth:`add_rows` of a table: row ``counts[i]`` added to cell ``cells[i]``'s."""
        width = counts.shape[1]
        at = np.asarray(cells, dtype=np.int64)
        keep = counts.any(axis=1)
        at, counts = at[keep], counts[keep]
        table_rows = self._rows_of(at, n_cells)
        table = self._hist_table(name, self.hist_row_count, width)
        np.add.at(table[:, :width], table_rows, counts.astype(table.dtype))

    def hist_of(self, name: str) -> tuple[IntArray, npt.NDArray[np.signedinteger]]:
        """Histogram ``name`` as ``(cells, counts)``: the cell of each row in use and its
        counts (no copy, except for a compacted table with large rows apart; empty if
        absent)."""
        h = self.hist.get(name)
        if h is None:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=HIST_DTYPE)
        if name in self._wide:  # a copy with the large rows in place
            h = self._joined(name)
        # The rows are shared by every histogram of the window, but a table grows only when
        # its own histogram is written: rows past its end have no count in it.
        used = min(self.hist_row_count, h.shape[0])
        return self._row_cells[:used], h[:used]

    def hist_copy(self, name: str, n: int, n_bins: int) -> tuple[IntArray, IntArray]:
        """Histogram ``name`` as copied ``(cells, counts)`` for the cells below ``n``, at most
        ``n_bins`` bins (compact: the rows in use only; take it under the state's lock)."""
        cells, h = self.hist_of(name)
        keep = cells < n
        return cells[keep], h[keep, :n_bins]

    def hist_sized(self, name: str, n: int, n_bins: int) -> IntArray:
        """Histogram ``name`` as a dense ``(n, n_bins)`` int64 table, row i for cell i (cells
        at ``n`` or beyond and bins beyond ``n_bins`` cut; zeros if absent)."""
        out = np.zeros((n, n_bins), dtype=np.int64)
        cells, h = self.hist_of(name)
        if len(cells):
            keep = cells < n
            width = min(n_bins, h.shape[1])
            out[cells[keep], :width] = h[keep, :width]
        return out

    def sized(self, n: int) -> tuple[IntArray, FloatArray, FloatArray]:
        """The arrays cut or zero-padded to ``n`` cells."""
        return resized(self.count, n), resized(self.mean, n), resized(self.m2, n)


def _run_starts(at: IntArray) -> IntArray:
    """Where each run of equal values of the sorted ``at`` starts."""
    new = np.empty(len(at), dtype=np.bool_)
    new[0] = True
    np.not_equal(at[1:], at[:-1], out=new[1:])
    return np.flatnonzero(new)


def per_variant(values: IntArray, selected: BoolArray | None, k: int) -> IntArray:
    """One value per event of the selection (None: every event), repeated for its ``k`` cells
    (the leaf and its roll-ups, in the order of ``registry.rollups`` rows)."""
    return np.repeat(values if selected is None else values[selected], k)
