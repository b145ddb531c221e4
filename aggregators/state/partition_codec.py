"""The checkpoint of one partition: its plain-data form and its complete, pure validation.

:func:`partition_to_dict` writes a :class:`~tilewatch.aggregators.state.partition.PartitionState`
as plain JSON data, cells named by key (never by index)::

    {"offset": 1200, "max_event_time": 180.5,
     "cells": [[key, events, late, last event time], ...],
     "open": [[window, [[key, count, mean, m2], ...], {histogram: [[key, counts], ...]}], ...],
     "closed": [...], "rolling": {"size": 1000, "block": 50,
                                  "cells": [[key, total, block means, block m2s], ...]},
     "violations": [[model, feature, kind, count], ...], "detectors": [...],
     "versions": [...], "labels": {...} or null, "classes": {model: [class names]} or null,
     "labeling": {...}}

``labeling`` (the labeling queue, :mod:`tilewatch.aggregators.labeling.queue_codec`) is there
only with a ``[labeling]`` section; checkpoints without it restore an empty queue.

``classes`` (since multi-class checkpoints name their classes; absent in older ones) is the
class table the class histograms' columns follow: each model's class names in column order.

:func:`parse_partition` checks all of it (every type, range and cell key) before anything is
built, so ``PartitionState.from_dict`` cannot fail half-way and bad data never creates cells.
The label side is checked by :mod:`tilewatch.aggregators.labels.label_state_codec`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tilewatch.aggregators.arrays import resized
from tilewatch.aggregators.codec import Check, finite_or_none
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.state.unit_columns import ColumnTable, HistTable, RollingTable
from tilewatch.aggregators.state.versions import VersionTable, parse_versions, version_rows
from tilewatch.aggregators.stats.detections import DetectionRow, parse_detections
from tilewatch.aggregators.stats.rolling import block_length

if TYPE_CHECKING:
    from tilewatch.aggregators.state.partition import PartitionState
    from tilewatch.aggregators.state.window_acc import WindowAcc

__all__ = ["CHECK", "ParsedPartition", "parse_partition", "partition_to_dict"]

#: The checks of a partition checkpoint (``partition state is malformed: <where>: <why>``).
CHECK = Check("partition state")

CellKey = tuple[str, ...]
#: One cell of a window: ``(key, count, mean, m2)``.
MomentRow = tuple[CellKey, int, float, float]
#: Histograms of a window: name -> ``[(key, counts), ...]`` (JSON units) or a table (binary).
HistRows = dict[str, list[tuple[CellKey, list[int]]] | HistTable]

#: Most bins a checkpointed histogram row may have.
_MAX_BINS = 4096


def partition_to_dict(state: PartitionState) -> dict[str, Any]:
    """Plain JSON data (numbers, strings, lists, null) for a checkpoint; cells by key."""
    keys = state.registry.keys
    n = len(keys)
    events, late = resized(state.events, n), resized(state.late, n)
    touched = np.flatnonzero((events > 0) | (late > 0)).tolist()
    # One list per key, shared by every row that names the cell (JSON writes each in full).
    key_lists = [list(k) for k in keys]

    def windows(table: dict[int, WindowAcc]) -> list[Any]:
        out = []
        for w, acc in sorted(table.items()):
            c, m, s = acc.sized(n)
            at = np.flatnonzero(c)
            entry: list[Any] = [
                w,
                [
                    [key_lists[i], ci, mi, si]
                    for i, ci, mi, si in zip(
                        at.tolist(), c[at].tolist(), m[at].tolist(), s[at].tolist(), strict=True
                    )
                ],
            ]
            if acc.hist:
                hists = {}
                for name in sorted(acc.hist):
                    cells, h = acc.hist_of(name)
                    at_h = np.flatnonzero(h.any(axis=1) & (cells < n))
                    at_h = at_h[np.argsort(cells[at_h], kind="stable")]  # by cell, as before
                    if len(at_h):
                        hists[name] = [
                            [key_lists[i], row]
                            for i, row in zip(cells[at_h].tolist(), h[at_h].tolist(), strict=True)
                        ]
                entry.append(hists)
            out.append(entry)
        return out

    return {
        "offset": state.offset,
        "max_event_time": finite_or_none(state.max_event_time),
        "cells": [
            [key_lists[i], e, lt, finite_or_none(t)]
            for i, e, lt, t in zip(
                touched,
                events[touched].tolist(),
                late[touched].tolist(),
                resized(state.last_event_time, n)[touched].tolist(),
                strict=True,
            )
        ],
        "open": windows(state.open),
        "closed": windows(state.closed),
        "rolling": state.rolling.to_dict(key_lists),
        "violations": [[*k, count] for k, count in sorted(state.violations.items())],
        "detectors": [] if state.detectors is None else state.detectors.to_dict(keys),
        "versions": version_rows(state.versions),
        "labels": None if state.labels is None else state.labels.to_dict(keys),
        "classes": None if state.classes is None else state.classes.to_dict(),
        # The labeling queue's part (tilewatch.aggregators.labeling.queue_codec), when it is on.
        **({} if state.labeling is None else {"labeling": state.labeling.to_dict(keys)}),
    }


#: A rolling window of a checkpoint: ``(key, values)`` or ``(key, total, block means, m2s)``.
RollingRow = tuple[CellKey, list[float]] | tuple[CellKey, int, list[float], list[float]]


def _rolling(rolling: Any, size: int, key: Any, table_keys: Any) -> list[RollingRow] | RollingTable:
    """Check the rolling windows: blocks (``{"size", "block", "cells": [[key, total, means,
    m2s], ...]}``, newest block first; a :class:`RollingTable` of binary units) or the raw
    values of earlier checkpoints (no ``block``: ``[[key, values], ...]``)."""
    check = CHECK
    cells = rolling.get("cells") if type(rolling) is dict else None
    if type(cells) is not list and not isinstance(cells, RollingTable):
        raise check.fail("rolling", "expected an object with a list of cells")
    if rolling.get("size") != size:
        raise StateError(
            f"rolling window size {rolling.get('size')!r} in the checkpoint differs from "
            f"the configured {size}"
        )
    out: list[RollingRow] = []
    if "block" not in rolling and type(cells) is list:
        for j, row in enumerate(cells):
            at = f"rolling.cells[{j}]"
            if type(row) is not list or len(row) != 2 or type(row[1]) is not list:
                raise check.fail(at, "expected [key, values]")
            out.append((key(row[0], at), check.floats(row[1][-size:], at)))
        return out
    block = block_length(size)
    if rolling["block"] != block:
        raise StateError(
            f"rolling block length {rolling['block']!r} in the checkpoint differs from the "
            f"{block} of a {size}-event window"
        )
    if isinstance(cells, RollingTable):
        return _rolling_table(cells, size, block, table_keys)
    for j, row in enumerate(cells):
        at = f"rolling.cells[{j}]"
        if type(row) is not list or len(row) != 4 or type(row[2]) is not list:
            raise check.fail(at, "expected [key, total, means, m2s]")
        total = check.integer(row[1], at, 1)
        newest = (total - 1) // block
        blocks = min(newest, (size - (total - newest * block)) // block) + 1
        means = check.floats(row[2], at)
        m2s = check.floats(row[3], at) if type(row[3]) is list else None
        if m2s is None or len(means) != blocks or len(m2s) != blocks or min(m2s) < 0:
            raise check.fail(at, f"expected {blocks} block means and m2s (>= 0) for {total}")
        out.append((key(row[0], at), total, means, m2s))
    return out


def _rolling_table(t: RollingTable, size: int, block: int, table_keys: Any) -> RollingTable:
    """A binary unit's rolling blocks, checked in bulk as the rows are one by one."""
    check = CHECK
    where = "rolling.cells"
    n = len(t)
    if any(c.ndim != 1 for c in (t.total, t.lengths, t.means, t.m2s)) or not (
        len(t.total) == len(t.lengths) == n
        and t.total.dtype.kind in "iu"
        and t.lengths.dtype.kind in "iu"
        and t.means.dtype.kind == "f"
        and t.m2s.dtype.kind == "f"
    ):
        raise check.fail(where, "expected integer totals and lengths, float means and m2s")
    bad_total = np.flatnonzero((t.total < 1) | (t.total.astype(np.float64) >= 2.0**63))
    if len(bad_total):
        raise check.fail(f"{where}[{int(bad_total[0])}]", "expected an integer >= 1")
    total, lengths = t.total.astype(np.int64), t.lengths.astype(np.int64)
    newest = (total - 1) // block
    blocks = np.minimum(newest, (size - (total - newest * block)) // block) + 1
    bad = lengths != blocks
    if not bad.any():  # every length is right: the blocks can be matched to their rows
        if int(lengths.sum()) != len(t.means) or len(t.means) != len(t.m2s):
            raise check.fail(where, "expected as many block means and m2s as the lengths say")
        bad_block = ~np.isfinite(t.means) | ~np.isfinite(t.m2s) | (t.m2s < 0)
        if bad_block.any():
            bad[np.repeat(np.arange(n), lengths)[bad_block]] = True
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise check.fail(
            f"{where}[{r}]",
            f"expected {int(blocks[r])} block means and m2s (>= 0) for {int(t.total[r])}",
        )
    return RollingTable(
        table_keys(t.keys, where),
        total,
        lengths,
        t.means.astype(np.float64),
        t.m2s.astype(np.float64),
    )


class ParsedPartition:
    """A checked partition checkpoint, cells still named by key (nothing resolved yet)."""

    __slots__ = (
        "cells",
        "classes",
        "closed",
        "detections",
        "hists",
        "keys",
        "max_event_time",
        "offset",
        "open",
        "rolling",
        "versions",
        "violations",
    )

    def __init__(self) -> None:
        self.offset: int | None = None
        self.max_event_time = -math.inf
        #: Every cell key met, in order of first appearance.
        self.keys: dict[CellKey, None] = {}
        #: ``(key, events, late, last event time)`` per cell, or one table (binary units;
        #: ``last`` -inf for none).
        self.cells: list[tuple[CellKey, int, int, float]] | ColumnTable = []
        #: ``(window, rows)``: ``(key, count, mean, m2)`` tuples, or one table (binary units).
        self.open: list[tuple[int, list[MomentRow] | ColumnTable]] = []
        self.closed: list[tuple[int, list[MomentRow] | ColumnTable]] = []
        #: ``(key, values)`` (raw values, version 1) or ``(key, total, means, m2s)`` (blocks).
        self.rolling: list[RollingRow] | RollingTable = []
        #: ``("open" | "closed", window)`` -> its histograms.
        self.hists: dict[tuple[str, int], HistRows] = {}
        self.violations: list[tuple[tuple[str, str, str], int]] = []
        self.detections: list[DetectionRow] = []
        self.versions: VersionTable = {}
        #: Each model's class names in column order (None: the checkpoint names none).
        self.classes: dict[str, list[str]] | None = None


def parse_partition(data: Any, key_len: int, rolling_size: int) -> ParsedPartition:
    """Check the shape and every value of a partition checkpoint; pure, raises StateError.

    ``key_len`` is the number of parts of a cell key (model plus dimensions); the rolling
    windows must have ``rolling_size`` events, as configured.
    """
    out = ParsedPartition()
    check = CHECK

    def key(v: Any, where: str) -> CellKey:
        t = check.key(v, where, key_len)
        out.keys[t] = None
        return t

    def time(v: Any, where: str) -> float:
        t = check.number_or_none(v, where)
        return -math.inf if t is None else t

    def hists(v: Any, where: str) -> HistRows:
        out_h: HistRows = {}
        for name, hrows in check.mapping(v, where, "an object of histograms").items():
            if isinstance(hrows, HistTable):
                out_h[str(name)] = table(hrows, f"{where}.{name}")
                continue
            if type(hrows) is not list or not hrows:
                raise check.fail(f"{where}.{name}", "expected a non-empty list of [key, counts]")
            parsed_rows = []
            for r, row in enumerate(hrows):
                at = f"{where}.{name}[{r}]"
                if type(row) is not list or len(row) != 2 or type(row[1]) is not list:
                    raise check.fail(at, "expected [key, counts]")
                if not row[1] or len(row[1]) > _MAX_BINS:
                    raise check.fail(at, f"expected 1 to {_MAX_BINS} counts")
                parsed_rows.append((key(row[0], at), [check.integer(x, at) for x in row[1]]))
            out_h[str(name)] = parsed_rows
        return out_h

    def table_keys(keys: list[Any], where: str) -> list[CellKey]:
        """A table's cell keys, each checked once (the rows of a unit share their key lists)."""
        seen: dict[int, CellKey] = {}
        out_k = []
        for r, k in enumerate(keys):
            got = seen.get(id(k))
            if got is None:
                got = seen[id(k)] = key(k, f"{where}[{r}]")
            out_k.append(got)
        return out_k

    def table(t: HistTable, where: str) -> HistTable:
        """A histogram as a table (a binary unit's): checked in bulk, each key once."""
        counts = t.table
        if not len(t) or counts.ndim != 2 or len(counts) != len(t):
            raise check.fail(where, "expected a non-empty table of [key, counts] rows")
        if counts.dtype.kind not in "iu" or not 1 <= counts.shape[1] <= _MAX_BINS:
            raise check.fail(where, f"expected 1 to {_MAX_BINS} integer counts per row")
        if counts.dtype.kind == "i" and (counts < 0).any():
            r = int(np.flatnonzero((counts < 0).any(axis=1))[0])
            raise check.fail(f"{where}[{r}]", "expected counts >= 0")
        return HistTable(table_keys(t.keys, where), counts)

    def columns(t: ColumnTable, where: str, ints: tuple[str, ...], lo: int) -> ColumnTable:
        """A section's rows as columns (a binary unit's): checked in bulk, each key once.
        ``ints`` are the integer columns (each in ``[lo, 2**63)``), the others floats."""
        if any(c.ndim != 1 or len(c) != len(t) for c in t.columns.values()):
            raise check.fail(where, "expected columns of one value per row")
        out_c: dict[str, np.ndarray] = {}
        for name, c in t.columns.items():
            if name in ints:
                if c.dtype.kind not in "iu":
                    raise check.fail(where, f"expected integer {name} values")
                bad = np.flatnonzero((c < lo) | (c.astype(np.float64) >= 2.0**63))
                if len(bad):
                    raise check.fail(f"{where}[{int(bad[0])}]", f"expected an integer >= {lo}")
                out_c[name] = c.astype(np.int64)
            else:
                if c.dtype.kind != "f":
                    raise check.fail(where, f"expected float {name} values")
                out_c[name] = c.astype(np.float64)
        return ColumnTable(table_keys(t.keys, where), out_c)

    def moments(t: ColumnTable, where: str) -> ColumnTable:
        """A window's moments as columns: counts >= 1, finite means, m2 finite (>= 0)."""
        rows = columns(t, where, ("count",), 1)
        for name in ("mean", "m2"):
            bad = np.flatnonzero(~np.isfinite(rows.columns[name]))
            if len(bad):
                raise check.fail(f"{where}[{int(bad[0])}]", "expected a finite number")
        rows.columns["m2"] = np.maximum(rows.columns["m2"], 0.0)
        return rows

    def windows(v: Any, where: str) -> list[tuple[int, list[MomentRow] | ColumnTable]]:
        parsed: list[tuple[int, list[MomentRow] | ColumnTable]] = []
        for j, item in enumerate(check.array(v, where)):
            at = f"{where}[{j}]"
            if (
                type(item) is not list
                or len(item) not in (2, 3)
                or not (type(item[1]) is list or isinstance(item[1], ColumnTable))
            ):
                raise check.fail(at, "expected [window, cells] or [window, cells, hists]")
            w = item[0]
            if type(w) is not int or abs(w) >= 2**53:
                raise check.fail(at, f"expected a window number, got {w!r:.40}")
            if isinstance(item[1], ColumnTable):
                parsed.append((w, moments(item[1], f"{at}[1]")))
            else:
                parsed.append((w, window_rows(item[1], at)))
            if len(item) == 3:
                out.hists[(where, w)] = hists(item[2], f"{at}[2]")
        return parsed

    def window_rows(v: list[Any], at: str) -> list[MomentRow]:
        """A window's ``[key, count, mean, m2]`` rows (a JSON unit's), checked one by one."""
        cells = []
        for r, row in enumerate(v):
            cell_at = f"{at}[{r}]"
            check.row(row, cell_at, 4, "[key, count, mean, m2]")
            cells.append(
                (
                    key(row[0], cell_at),
                    check.integer(row[1], cell_at, 1),
                    check.number(row[2], cell_at),
                    max(check.number(row[3], cell_at), 0.0),
                )
            )
        return cells

    check.mapping(data, "checkpoint")
    try:
        offset = data["offset"]
        out.offset = None if offset is None else check.integer(offset, "offset")
        out.max_event_time = time(data["max_event_time"], "max_event_time")
        if isinstance(data["cells"], ColumnTable):
            cell_table = columns(data["cells"], "cells", ("events", "late"), 0)
            last = cell_table.columns["last"]
            if np.isinf(last).any():  # null (NaN) reads as no event time, as in the rows
                r = int(np.flatnonzero(np.isinf(last))[0])
                raise check.fail(f"cells[{r}]", "expected a finite number or null")
            cell_table.columns["last"] = np.where(np.isnan(last), -math.inf, last)
            out.cells = cell_table
        else:
            rows: list[tuple[CellKey, int, int, float]] = []
            for j, row in enumerate(check.array(data["cells"], "cells")):
                at = f"cells[{j}]"
                check.row(row, at, 4, "[key, events, late, last_event_time]")
                rows.append(
                    (
                        key(row[0], at),
                        check.integer(row[1], at),
                        check.integer(row[2], at),
                        time(row[3], at),
                    )
                )
            out.cells = rows
        out.open = windows(data["open"], "open")
        out.closed = windows(data["closed"], "closed")
        out.rolling = _rolling(data["rolling"], rolling_size, key, table_keys)
        for j, row in enumerate(check.array(data["violations"], "violations")):
            at = f"violations[{j}]"
            if type(row) is not list or len(row) != 4 or not all(type(x) is str for x in row[:3]):
                raise check.fail(at, "expected [model, feature, kind, count]")
            out.violations.append(((row[0], row[1], row[2]), check.integer(row[3], at)))
        out.detections = parse_detections(data["detectors"], check, "detectors", key_len)
        for cell_key, *_rest in out.detections:
            out.keys[cell_key] = None
        out.versions = parse_versions(data["versions"], check)
        if data["labels"] is not None:
            check.mapping(data["labels"], "labels", "an object or null")
        if data.get("classes") is not None:
            out.classes = _classes(data["classes"])
    except KeyError as exc:
        raise check.fail("checkpoint", f"missing key {exc}") from None
    return out


def _classes(v: Any) -> dict[str, list[str]]:
    """A checkpoint's class table: model -> distinct non-empty class names."""
    table = CHECK.mapping(v, "classes", "an object of model -> class names")
    for model, names in table.items():
        at = f"classes.{model}"
        if type(names) is not list or not all(type(n) is str and n for n in names):
            raise CHECK.fail(at, "expected a list of class names")
        if len(set(names)) != len(names):
            raise CHECK.fail(at, "repeated class names")
    return {str(m): list(ns) for m, ns in table.items()}
