"""One delta-checkpoint unit as columns.

A unit (:mod:`tilewatch.aggregators.state.partition_delta`) holds rows of cells: a cells unit
their counts and rolling blocks, a window unit their moments and histograms. Written as JSON,
each row repeated its cell's key and became a Python list before it became text: at 100,000
cells a round built millions of small objects (about 3 s of CPU per partition). A
:class:`UnitColumns` keeps the unit's cell keys once (the *key table*) and each section as numpy
columns whose ``pos`` column points into that table. Its binary form is written and read by
:mod:`tilewatch.streams.changelog.unit_codec`; :meth:`~UnitColumns.plain` gives the unit's
plain data (the JSON form), which is what a restore validates and applies, so both forms
restore through the same checks.

Sections and their columns (each with ``pos``, an index into the key table, one row per cell),
with the dtypes their bytes may have (:data:`SECTIONS`):

- ``cells``: ``events``, ``late`` (int64), ``last`` (float64, NaN for none);
- ``rolling``: ``total`` (int64), ``lengths`` (int64, blocks per cell), ``means`` and ``m2s``
  (float64, the cells' blocks one after the other, newest first);
- ``rows``: ``c`` (int64), ``m``, ``s`` (float64): a window's moments;
- ``hist:<name>``: ``table`` (2-D, ``uint8``, ``uint16``, ``int32`` or ``int64``): a window's
  histogram rows.

Examples
--------
>>> u = UnitColumns([("m", "a"), ("m", "b")])
>>> u.add("cells", pos=np.array([1, 0]), events=np.array([3, 4]), late=np.array([0, 1]),
...       last=np.array([5.0, np.nan]))
>>> u.plain()
{'cells': [[['m', 'b'], 3, 0, 5.0], [['m', 'a'], 4, 1, None]]}

Pure: no Kafka, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "CELL_COLUMNS",
    "MOMENT_COLUMNS",
    "POS_DTYPES",
    "SECTIONS",
    "ColumnTable",
    "HistTable",
    "RollingTable",
    "UnitColumns",
    "narrowest",
    "pad_rows",
    "section_kind",
]

#: Columns of each section (besides ``pos``), and the dtypes their bytes may have.
_INT = ("<i8",)
_FLOAT = ("<f8",)
_TABLE = ("|u1", "<u2", "<i4", "<i8")
SECTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "cells": {"events": _INT, "late": _INT, "last": _FLOAT},
    "rolling": {"total": _INT, "lengths": _INT, "means": _FLOAT, "m2s": _FLOAT},
    "rows": {"c": _INT, "m": _FLOAT, "s": _FLOAT},
    "hist": {"table": _TABLE},
}
#: The dtype of every section's ``pos`` column.
POS_DTYPES = ("<i4",)


def section_kind(section: str) -> str:
    """The kind of a section name (``hist:<name>`` is a ``hist``)."""
    return "hist" if section.startswith("hist:") else section


def _finite(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


class UnitColumns:
    """A unit's key table and its sections' columns (see the module)."""

    __slots__ = ("keys", "sections")

    def __init__(self, keys: Sequence[Sequence[str]]) -> None:
        #: The unit's cell keys, each once.
        self.keys = keys
        #: Section name -> column name -> array (``pos`` first).
        self.sections: dict[str, dict[str, np.ndarray]] = {}

    def add(self, section: str, **columns: np.ndarray) -> None:
        """Add a section: ``pos`` (into :attr:`keys`) and the section's columns."""
        allowed = SECTIONS[section_kind(section)]
        if set(columns) != {"pos", *allowed}:
            raise ValueError(f"section {section!r}: columns {sorted(columns)}")
        out = {"pos": np.ascontiguousarray(columns["pos"], dtype="<i4")}
        for name, dtypes in allowed.items():
            arr = np.asarray(columns[name])
            if len(dtypes) == 1:
                arr = arr.astype(dtypes[0], copy=False)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(narrowest(arr), copy=False)
            else:
                raise ValueError(f"section {section!r}: {name} of dtype {arr.dtype}")
            out[name] = np.ascontiguousarray(arr)
        self.sections[section] = out

    def plain(self, tables: bool = False) -> dict[str, Any]:
        """The unit's plain data, as the JSON form has it; with ``tables`` each histogram as a
        :class:`HistTable` instead of ``[key, counts]`` rows, and the cells' and a window's
        moments' rows as a :class:`ColumnTable`, the rolling blocks as a
        :class:`RollingTable` (what a restore reads)."""
        keys = [k if type(k) is list else list(k) for k in self.keys]  # shared, not copied
        unit: dict[str, Any] = {}
        hists: dict[str, Any] = {}
        for name, cols in self.sections.items():
            k = [keys[i] for i in cols["pos"].tolist()]
            if name == "cells" and tables:
                unit["cells"] = ColumnTable(
                    k, {"events": cols["events"], "late": cols["late"], "last": cols["last"]}
                )
            elif name == "cells":
                last = _finite(cols["last"].tolist())
                rows = zip(k, cols["events"].tolist(), cols["late"].tolist(), last, strict=True)
                unit["cells"] = [list(r) for r in rows]
            elif name == "rolling" and tables:
                unit["rolling"] = RollingTable(
                    k, cols["total"], cols["lengths"], cols["means"], cols["m2s"]
                )
            elif name == "rolling":
                ends = np.cumsum(cols["lengths"]).tolist()
                means, m2s = cols["means"].tolist(), cols["m2s"].tolist()
                unit["rolling"] = [
                    [key, t, means[e - n : e], m2s[e - n : e]]
                    for key, t, n, e in zip(
                        k, cols["total"].tolist(), cols["lengths"].tolist(), ends, strict=True
                    )
                ]
            elif name == "rows" and tables:
                unit["rows"] = ColumnTable(
                    k, {"count": cols["c"], "mean": cols["m"], "m2": cols["s"]}
                )
            elif name == "rows":
                rows = zip(
                    k, cols["c"].tolist(), cols["m"].tolist(), cols["s"].tolist(), strict=True
                )
                unit["rows"] = [list(r) for r in rows]
            elif tables:
                hists[name[5:]] = HistTable(k, cols["table"])
            else:
                hists[name[5:]] = [
                    [key, r] for key, r in zip(k, cols["table"].tolist(), strict=True)
                ]
        if hists:
            unit["hists"] = dict(sorted(hists.items()))
        return unit


class ColumnTable:
    """Rows of a unit's section as columns: ``keys[i]`` (a cell key) owns row ``i`` of each
    column (``columns[name]``, one value per row).

    What a restore reads instead of rows of Python lists: a window's ``[key, count, mean, m2]``
    rows (columns :data:`MOMENT_COLUMNS`) and the ``[key, events, late, last]`` rows of the
    cells units (:data:`CELL_COLUMNS`). At 100,000 cells those lists were most of a decoded
    checkpoint (about 120 MB of a partition's 160), held while it was parsed and built;
    :func:`~.partition_codec.parse_partition` checks the columns in bulk and each key once.

    >>> t = ColumnTable.concat(
    ...     [ColumnTable([["m", "a"]], {"count": np.array([2]), "mean": np.array([0.5]),
    ...                                 "m2": np.array([0.1])}),
    ...      [[["m", "b"], 1, 0.25, 0.0]]], MOMENT_COLUMNS)
    >>> t.keys, [t.columns[c].tolist() for c in MOMENT_COLUMNS]
    ([['m', 'a'], ['m', 'b']], [[2, 1], [0.5, 0.25], [0.1, 0.0]])
    """

    __slots__ = ("columns", "keys")

    def __init__(self, keys: list[Any], columns: dict[str, np.ndarray]) -> None:
        self.keys = keys
        self.columns = columns

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def concat(cls, parts: Sequence[Any], names: dict[str, type]) -> ColumnTable:
        """One table of ``parts``: tables, or lists of ``[key, *values]`` rows in the order of
        ``names`` (the JSON form of an older unit in the same checkpoint); ``names`` maps each
        column to ``int`` or ``float`` (a float column reads ``null`` as NaN). Raises ValueError
        on rows of another shape or type."""
        if len(parts) == 1 and isinstance(parts[0], ColumnTable):
            return parts[0]
        keys: list[Any] = []
        blocks: list[dict[str, np.ndarray]] = []
        kinds = list(names.values())
        for part in parts:
            if isinstance(part, ColumnTable):
                keys.extend(part.keys)
                blocks.append(part.columns)
                continue
            for row in part:
                if type(row) is not list or len(row) != len(kinds) + 1:
                    raise ValueError(f"expected [key, {', '.join(names)}] rows")
                for x, kind in zip(row[1:], kinds, strict=True):
                    ok = type(x) is int if kind is int else x is None or type(x) in (int, float)
                    if not ok:
                        raise ValueError(f"expected [key, {', '.join(names)}] rows")
            keys.extend(row[0] for row in part)
            block: dict[str, np.ndarray] = {}
            for i, (name, kind) in enumerate(names.items(), start=1):
                values = [row[i] for row in part]
                try:
                    if kind is int:
                        block[name] = np.array(values, dtype=np.int64)
                    else:
                        block[name] = np.array(
                            [math.nan if v is None else v for v in values], dtype=np.float64
                        )
                except OverflowError:
                    raise ValueError("a count is out of range") from None
            blocks.append(block)
        dtypes = {name: np.int64 if kind is int else np.float64 for name, kind in names.items()}
        return cls(
            keys,
            {
                name: np.concatenate([b[name] for b in blocks])
                if blocks
                else np.zeros(0, dtype=dtypes[name])
                for name in names
            },
        )


#: The columns of a window's moments in a :class:`ColumnTable`, in row order.
MOMENT_COLUMNS: dict[str, type] = {"count": int, "mean": float, "m2": float}
#: The columns of the cells units' rows in a :class:`ColumnTable`, in row order.
CELL_COLUMNS: dict[str, type] = {"events": int, "late": int, "last": float}


class RollingTable:
    """A cells unit's rolling blocks as columns: ``keys[i]`` (a cell key) has ``total[i]``
    events in its window and ``lengths[i]`` blocks, whose means and m2s (newest first) follow
    those of the rows before it in ``means`` and ``m2s``.

    What a restore reads instead of ``[key, total, means, m2s]`` rows (two Python lists of
    floats per cell, about 27 MB per 100,000 cells).

    >>> t = RollingTable.concat([
    ...     RollingTable([["m", "a"]], np.array([3]), np.array([2]), np.array([1.0, 2.0]),
    ...                  np.array([0.0, 0.5])),
    ...     [[["m", "b"], 1, [4.0], [0.0]]]])
    >>> t.keys, t.total.tolist(), t.lengths.tolist(), t.means.tolist(), t.m2s.tolist()
    ([['m', 'a'], ['m', 'b']], [3, 1], [2, 1], [1.0, 2.0, 4.0], [0.0, 0.5, 0.0])
    """

    __slots__ = ("keys", "lengths", "m2s", "means", "total")

    def __init__(
        self,
        keys: list[Any],
        total: np.ndarray,
        lengths: np.ndarray,
        means: np.ndarray,
        m2s: np.ndarray,
    ) -> None:
        self.keys = keys
        self.total = total
        self.lengths = lengths
        self.means = means
        self.m2s = m2s

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def concat(cls, parts: Sequence[Any]) -> RollingTable:
        """One table of ``parts``: tables, or lists of ``[key, total, means, m2s]`` rows (the
        JSON form of an older unit in the same checkpoint). Raises ValueError on rows of
        another shape or type (the values are checked with the table's)."""
        if len(parts) == 1 and isinstance(parts[0], RollingTable):
            return parts[0]
        keys: list[Any] = []
        cols: list[list[np.ndarray]] = [[], [], [], []]
        for part in parts:
            if not isinstance(part, RollingTable):
                part = cls._of_rows(part)
            keys.extend(part.keys)
            for col, arr in zip(
                cols, (part.total, part.lengths, part.means, part.m2s), strict=True
            ):
                col.append(arr)
        total, lengths, means, m2s = (
            np.concatenate(c) if c else np.zeros(0, dtype=dt)
            for c, dt in zip(cols, (np.int64, np.int64, np.float64, np.float64), strict=True)
        )
        return cls(keys, total, lengths, means, m2s)

    @classmethod
    def _of_rows(cls, rows: list[Any]) -> RollingTable:
        for row in rows:
            if (
                type(row) is not list
                or len(row) != 4
                or type(row[1]) is not int
                or type(row[2]) is not list
                or type(row[3]) is not list
                or len(row[2]) != len(row[3])
                or not all(type(x) in (int, float) for x in row[2] + row[3])
            ):
                raise ValueError("expected [key, total, means, m2s] rows")
        try:
            return cls(
                [r[0] for r in rows],
                np.array([r[1] for r in rows], dtype=np.int64),
                np.array([len(r[2]) for r in rows], dtype=np.int64),
                np.array([x for r in rows for x in r[2]], dtype=np.float64),
                np.array([x for r in rows for x in r[3]], dtype=np.float64),
            )
        except OverflowError:
            raise ValueError("a number is out of range") from None


class HistTable:
    """A histogram's rows as one table: ``keys[i]`` (a cell key) owns row ``table[i]``.

    What a restore reads instead of ``[key, counts]`` rows: a window's latency histogram of
    60-odd bins as Python lists took about 100 MB per 50,000-cell partition, and each count
    was checked one by one. :func:`~.partition_codec.parse_partition` checks the table in
    bulk (2-D, integer, no negative count) and each key once.

    >>> t = HistTable.concat([HistTable([["m", "a"]], np.array([[1, 2]])), [[["m", "b"], [3]]]])
    >>> t.keys, t.table.tolist()
    ([['m', 'a'], ['m', 'b']], [[1, 2], [3, 0]])
    """

    __slots__ = ("keys", "table")

    def __init__(self, keys: list[Any], table: np.ndarray) -> None:
        self.keys = keys
        self.table = table

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def concat(cls, parts: Sequence[Any]) -> HistTable:
        """One table of ``parts``: tables, or lists of ``[key, counts]`` rows (the JSON form
        of an older unit in the same checkpoint); narrower rows are padded with zeros. Raises
        ValueError on rows that are not ``[key, list of integers]``."""
        if len(parts) == 1 and isinstance(parts[0], HistTable):
            return parts[0]
        keys: list[Any] = []
        blocks: list[np.ndarray] = []
        for part in parts:
            if isinstance(part, HistTable):
                if part.table.ndim != 2:
                    raise ValueError("expected a 2-D table")
                keys.extend(part.keys)
                blocks.append(part.table)
                continue
            for row in part:
                if type(row) is not list or len(row) != 2 or type(row[1]) is not list:
                    raise ValueError("expected [key, counts] rows")
                if not all(type(x) is int for x in row[1]):
                    raise ValueError("expected integer counts")
            keys.extend(row[0] for row in part)
            counts = [row[1] for row in part]
            try:
                blocks.append(pad_rows(counts, max((len(c) for c in counts), default=0)))
            except OverflowError:
                raise ValueError("a count is out of range") from None
        width = max((b.shape[1] for b in blocks), default=0)
        # The narrowest type that holds every part (a binary unit's uint8 stays uint8).
        dtype = np.result_type(*(b.dtype for b in blocks)) if blocks else np.int64
        out = np.zeros((len(keys), width), dtype=dtype)
        at = 0
        for b in blocks:
            out[at : at + len(b), : b.shape[1]] = b
            at += len(b)
        return cls(keys, out)


def narrowest(counts: np.ndarray) -> str:
    """The narrowest table dtype (:data:`SECTIONS`) that holds every value of ``counts``: a
    unit's histogram is written in it (an open window's int32 counts, mostly below 256 at
    100,000 cells, take a quarter of the bytes; a compacted window's uint32 rows fit).

    >>> narrowest(np.array([[0, 255]])), narrowest(np.array([[70000]], dtype=np.uint32))
    ('|u1', '<i4')
    >>> narrowest(np.array([[-1, 3]])), narrowest(np.array([[2**40]]))
    ('<i4', '<i8')
    """
    if not counts.size:
        return "<i8"
    lo, hi = int(counts.min()), int(counts.max())
    if lo >= 0 and hi < 2**8:
        return "|u1"
    if lo >= 0 and hi < 2**16:
        return "<u2"
    return "<i4" if lo >= -(2**31) and hi < 2**31 else "<i8"


def pad_rows(rows: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """Rows of at most ``width`` counts as one int64 table, short rows padded with zeros.

    >>> pad_rows([[1, 2], [3]], 3).tolist()
    [[1, 2, 0], [3, 0, 0]]
    """
    out = np.zeros((len(rows), width), dtype=np.int64)
    if all(len(r) == width for r in rows):
        out[:] = np.asarray(rows, dtype=np.int64).reshape(len(rows), width)
        return out
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
