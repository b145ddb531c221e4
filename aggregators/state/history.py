"""The last few reported windows of every cell: a small ring of float32 columns per cell.

A snapshot holds each model's latest reported window only; the tile page's time strip and its
"segments x time" views need the windows before it. :class:`WindowHistory` keeps, for every cell,
the values of a few named columns (the window's event count and the statistics the page shows)
for the last :attr:`~WindowHistory.depth` windows its model reported.

Layout: one ``(depth, cells)`` float32 array per column; window ``w`` of a model is written in
row ``w % depth``, and ``slot_window[model, row]`` says which window a row holds for that model's
cells, so models that report different windows share the arrays. Memory is ``depth x columns x 4``
bytes per cell (30 windows x 10 columns: 1.2 KiB), plus 8 bytes per model and row.

Which columns, and how they are read from a snapshot, is the caller's choice (a function given to
the constructor): this package does not know what the exporters show. :meth:`record` is called in
the consumer thread (``ReplicaState.refresh``, at most about once a second), under the state lock;
it rewrites the row of each model's current window, so a window whose labels are still arriving
is kept up to date until its model reports the next one. Scrapes and page requests only read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import FloatArray, IntArray, grow
from tilewatch.aggregators.state.snapshot import Snapshot

__all__ = ["HistoryColumns", "WindowHistory"]

#: Reads the recorded columns from a snapshot, in groups that share their windows: each group is
#: ``(window start per model, {column: float array over snapshot.keys})`` (the score statistics
#: belong to the reported window, the label statistics to the later final performance window).
HistoryColumns = Callable[[Snapshot], list[tuple[dict[str, float], dict[str, FloatArray]]]]

Float32Array = npt.NDArray[np.float32]

_NONE = np.iinfo(np.int64).min


class WindowHistory:
    """Per cell, ``columns`` of the last ``depth`` windows each model reported.

    Parameters
    ----------
    columns
        Names of the recorded columns.
    read
        Reads them from a snapshot (every name of ``columns`` must be in its result).
    depth
        Windows kept per model.

    Examples
    --------
    >>> from tilewatch.aggregators.cells.settings import CellSettings
    >>> from tilewatch.aggregators.state.replica import ReplicaState
    >>> rs = ReplicaState(CellSettings(dimensions=("segment",), window_seconds=10,
    ...                                grace_seconds=0))
    >>> rs.history = WindowHistory(
    ...     ["events"], lambda s: [(s.window_start, {"events": s.window_count.astype(float)})],
    ...     depth=3)
    >>> for t in (1.0, 2.0, 11.0, 25.0):
    ...     _ = rs.apply(("p", 0), [("m", "a")], np.array([t]), np.array([0.5]), next_offset=0)
    ...     rs.refresh()
    >>> snap = rs.snapshot()
    >>> windows, values = rs.history.read(snap.model_ids, [snap.cell(("m", "a"))])
    >>> windows.tolist(), values["events"].tolist()
    ([[-1, 0, 1]], [[nan, 2.0, 1.0]])
    """

    def __init__(self, columns: Sequence[str], read: HistoryColumns, depth: int = 30) -> None:
        if depth < 2:
            raise ValueError(f"a window history needs depth >= 2, got {depth}")
        self.depth = depth
        self.columns = tuple(columns)
        self._read = read
        self._values: dict[str, Float32Array] = {
            c: np.full((depth, 0), np.nan, dtype=np.float32) for c in self.columns
        }
        self.slot_window: IntArray = np.full((0, depth), _NONE, dtype=np.int64)
        #: Latest window recorded per model id.
        self.latest: dict[int, int] = {}

    @property
    def nbytes(self) -> int:
        """Bytes held by the ring (the capacity, which grows by a quarter at a time)."""
        return sum(v.nbytes for v in self._values.values()) + self.slot_window.nbytes

    def record(self, snap: Snapshot, window_seconds: float) -> None:
        """Write each model's reported windows of ``snap`` into their rows (under the lock).

        A row that held an older window of the model is cleared first (every column), so a
        group that has no value yet for a window (labels not final) reads NaN, never a value of
        the window ``depth`` earlier. Windows older than the model's latest minus ``depth`` are
        not written.
        """
        n = len(snap.keys)
        nm = len(snap.model_names)
        if n == 0:
            return
        for c in self.columns:
            self._values[c] = grow(self._values[c], n, axis=1, fill=np.nan)
        self.slot_window = grow(self.slot_window, nm, fill=_NONE)
        model_ids = snap.model_ids[:n]
        for starts, values in self._read(snap):
            windows = np.full(nm, _NONE, dtype=np.int64)
            for mid, model in enumerate(snap.model_names):
                start = starts.get(model)
                if start is None:
                    continue
                w = math.floor(start / window_seconds + 0.5)
                if w <= self.latest.get(mid, w) - self.depth:
                    continue
                windows[mid] = w
                row = w % self.depth
                if self.slot_window[mid, row] != w:
                    mine = np.flatnonzero(model_ids == mid)
                    for c in self.columns:
                        self._values[c][row, mine] = np.nan
                    self.slot_window[mid, row] = w
                self.latest[mid] = max(self.latest.get(mid, w), w)
            cell_window = windows[model_ids]
            cells = np.flatnonzero(cell_window != _NONE)
            rows = cell_window[cells] % self.depth
            for c, column in values.items():
                self._values[c][rows, cells] = column[cells]

    def read(
        self, model_ids: IntArray, cells: Sequence[int], last: int | None = None
    ) -> tuple[IntArray, dict[str, FloatArray]]:
        """The recorded windows of ``cells``, oldest first, up to ``last`` (default: latest).

        Returns ``(windows, values)``: ``windows`` is ``(len(cells), depth)`` window numbers
        (-1 where nothing was recorded), ``values[column]`` the matching float64 values (NaN
        where nothing was recorded). Copies, so the caller may release the lock.
        """
        idx = np.asarray(cells, dtype=np.int64)
        k = len(idx)
        out_w = np.full((k, self.depth), -1, dtype=np.int64)
        out_v = {c: np.full((k, self.depth), np.nan) for c in self.columns}
        if k == 0:
            return out_w, out_v
        mids = model_ids[idx]
        known = (mids < self.slot_window.shape[0]) & (idx < self._values[self.columns[0]].shape[1])
        latest = np.array([self.latest.get(m, _NONE) for m in range(self.slot_window.shape[0])])
        top = np.full(k, _NONE, dtype=np.int64)
        top[known] = latest[mids[known]] if last is None else last
        known &= top != _NONE
        if not known.any():
            return out_w, out_v
        sel, cm = idx[known], mids[known]
        wanted = top[known][:, None] - self.depth + 1 + np.arange(self.depth)[None, :]
        rows = wanted % self.depth
        held = self.slot_window[cm[:, None], rows] == wanted
        out_w[known] = np.where(held, wanted, -1)
        for c in self.columns:
            col = self._values[c][rows, sel[:, None]].astype(np.float64)
            out_v[c][known] = np.where(held, col, np.nan)
        return out_w, out_v
