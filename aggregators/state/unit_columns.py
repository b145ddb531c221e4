"""One delta-checkpoint unit as columns, and its binary form.

A unit (:mod:`tilewatch.aggregators.state.partition_delta`) holds rows of cells: a cells unit
their counts and rolling blocks, a window unit their moments and histograms. Written as JSON,
each row repeated its cell's key and became a Python list before it became text: at 100,000
cells a round built millions of small objects (about 3 s of CPU per partition). A
:class:`UnitColumns` keeps the unit's cell keys once (the *key table*) and each section as numpy
columns whose ``pos`` column points into that table; :meth:`~UnitColumns.to_bytes` writes them
as one JSON header, the key table as JSON, then the columns' raw bytes; :meth:`~UnitColumns.plain`
gives the unit's plain data (the JSON form), which is what a restore validates and applies,
so both forms restore through the same checks.

Sections and their columns (each with ``pos``, an index into the key table, one row per cell):

- ``cells``: ``events``, ``late`` (int64), ``last`` (float64, NaN for none);
- ``rolling``: ``total`` (int64), ``lengths`` (int64, blocks per cell), ``means`` and ``m2s``
  (float64, the cells' blocks one after the other, newest first);
- ``rows``: ``c`` (int64), ``m``, ``s`` (float64): a window's moments;
- ``hist:<name>``: ``table`` (2-D integers, any width): a window's histogram rows.

Binary layout: :data:`MAGIC`, the header's length (4 bytes, little-endian), the header
(``{"keys": <bytes of the key table>, "sections": [[name, [[column, dtype, shape], ...]], ...]}``),
the key table (a JSON list of key lists), then each column's bytes in header order. A payload
that does not match its header exactly, names an unknown dtype or section, or points outside
the key table is refused with :class:`ValueError`.

Examples
--------
>>> u = UnitColumns([("m", "a"), ("m", "b")])
>>> u.add("cells", pos=np.array([1, 0]), events=np.array([3, 4]), late=np.array([0, 1]),
...       last=np.array([5.0, np.nan]))
>>> UnitColumns.from_bytes(u.to_bytes()).plain()
{'cells': [[['m', 'b'], 3, 0, 5.0], [['m', 'a'], 4, 1, None]]}

Pure: no Kafka, no I/O.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

__all__ = ["MAGIC", "UnitColumns"]

#: The first bytes of a unit in binary form (a JSON unit starts with ``{``).
MAGIC = b"TWU\x01"

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
_POS = ("<i4",)
_HEAD = struct.Struct("<I")


def _kind(section: str) -> str:
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
        allowed = SECTIONS[_kind(section)]
        if set(columns) != {"pos", *allowed}:
            raise ValueError(f"section {section!r}: columns {sorted(columns)}")
        out = {"pos": np.ascontiguousarray(columns["pos"], dtype="<i4")}
        for name, dtypes in allowed.items():
            arr = np.asarray(columns[name])
            if len(dtypes) == 1:
                arr = arr.astype(dtypes[0], copy=False)
            elif arr.dtype.str not in dtypes:  # a table of another width: never written
                raise ValueError(f"section {section!r}: {name} of dtype {arr.dtype}")
            out[name] = np.ascontiguousarray(arr)
        self.sections[section] = out

    def to_bytes(self) -> bytes:
        """The binary form (see the module)."""
        keys = orjson.dumps(list(self.keys))
        layout: list[Any] = []
        body: list[bytes] = [keys]
        for name, cols in self.sections.items():
            layout.append([name, [[c, a.dtype.str, list(a.shape)] for c, a in cols.items()]])
            body.extend(a.tobytes() for a in cols.values())
        header = orjson.dumps({"keys": len(keys), "sections": layout})
        return b"".join([MAGIC, _HEAD.pack(len(header)), header, *body])

    @classmethod
    def from_bytes(cls, data: bytes) -> UnitColumns:
        """Read :meth:`to_bytes` output; raises ValueError on anything that does not match."""
        view = memoryview(data)
        if bytes(view[: len(MAGIC)]) != MAGIC or len(view) < len(MAGIC) + _HEAD.size:
            raise ValueError("not a binary unit")
        at = len(MAGIC) + _HEAD.size
        (size,) = _HEAD.unpack(view[len(MAGIC) : at])
        try:
            header = orjson.loads(view[at : at + size])
            at += size
            nkeys = header["keys"]
            keys = orjson.loads(view[at : at + nkeys])
            layout = header["sections"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"bad unit header: {exc}") from None
        at += nkeys
        if type(keys) is not list or not all(
            type(k) is list and all(type(p) is str for p in k) for k in keys
        ):
            raise ValueError("the key table is not a list of key lists")
        out = cls([tuple(k) for k in keys])
        if type(layout) is not list:
            raise ValueError("bad unit header: sections")
        for entry in layout:
            name, cols = _section_layout(entry)
            arrays: dict[str, np.ndarray] = {}
            for col, dtype, shape in cols:
                width = math.prod(shape) * np.dtype(dtype).itemsize
                if at + width > len(view):
                    raise ValueError(f"section {name!r}: column {col!r} runs past the end")
                arrays[col] = np.frombuffer(view[at : at + width], dtype=dtype).reshape(shape)
                at += width
            _check_section(name, arrays, len(keys))
            out.sections[name] = arrays
        if at != len(view):
            raise ValueError(f"{len(view) - at} bytes after the last column")
        return out

    def plain(self) -> dict[str, Any]:
        """The unit's plain data, as the JSON form has it."""
        keys = [list(k) for k in self.keys]
        unit: dict[str, Any] = {}
        hists: dict[str, Any] = {}
        for name, cols in self.sections.items():
            k = [keys[i] for i in cols["pos"].tolist()]
            if name == "cells":
                last = _finite(cols["last"].tolist())
                rows = zip(k, cols["events"].tolist(), cols["late"].tolist(), last, strict=True)
                unit["cells"] = [list(r) for r in rows]
            elif name == "rolling":
                ends = np.cumsum(cols["lengths"]).tolist()
                means, m2s = cols["means"].tolist(), cols["m2s"].tolist()
                unit["rolling"] = [
                    [key, t, means[e - n : e], m2s[e - n : e]]
                    for key, t, n, e in zip(
                        k, cols["total"].tolist(), cols["lengths"].tolist(), ends, strict=True
                    )
                ]
            elif name == "rows":
                rows = zip(
                    k, cols["c"].tolist(), cols["m"].tolist(), cols["s"].tolist(), strict=True
                )
                unit["rows"] = [list(r) for r in rows]
            else:
                hists[name[5:]] = [
                    [key, r] for key, r in zip(k, cols["table"].tolist(), strict=True)
                ]
        if hists:
            unit["hists"] = dict(sorted(hists.items()))
        return unit


def _section_layout(entry: Any) -> tuple[str, list[tuple[str, str, tuple[int, ...]]]]:
    """A header's section entry, checked: its name and ``(column, dtype, shape)`` list."""
    if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not str:
        raise ValueError("bad unit header: a section entry")
    name, cols = entry
    kind = _kind(name)
    if kind not in SECTIONS or (kind == "hist" and len(name) <= 5):
        raise ValueError(f"unknown section {name!r:.40}")
    allowed = {"pos": _POS, **SECTIONS[kind]}
    out: list[tuple[str, str, tuple[int, ...]]] = []
    if type(cols) is not list:
        raise ValueError(f"section {name!r:.40}: bad columns")
    for col in cols:
        if (
            type(col) is not list
            or len(col) != 3
            or col[0] not in allowed
            or col[1] not in allowed[col[0]]
            or type(col[2]) is not list
            or not all(type(d) is int and 0 <= d < 2**31 for d in col[2])
        ):
            raise ValueError(f"section {name!r:.40}: bad column {col!r:.60}")
        out.append((col[0], col[1], tuple(col[2])))
    if [c for c, _d, _s in out] != list(allowed):
        raise ValueError(f"section {name!r:.40}: columns {[c for c, _d, _s in out]!r:.80}")
    return name, out


def _check_section(name: str, cols: dict[str, np.ndarray], nkeys: int) -> None:
    """Shapes that agree, and positions inside the key table."""
    pos = cols["pos"]
    n = len(pos)
    if pos.ndim != 1 or (n and (int(pos.min()) < 0 or int(pos.max()) >= nkeys)):
        raise ValueError(f"section {name!r:.40}: positions outside the key table")
    kind = _kind(name)
    fixed: tuple[str, ...]
    if kind == "rolling":
        lengths = cols["lengths"]
        fixed = ("total", "lengths")
        if (
            (lengths < 0).any()
            or cols["means"].ndim != 1
            or cols["m2s"].ndim != 1
            or not (len(cols["means"]) == len(cols["m2s"]) == int(lengths.sum()))
        ):
            raise ValueError(f"section {name!r:.40}: block lengths do not match the blocks")
    elif kind == "hist":
        fixed = ("table",)
        if cols["table"].ndim != 2:
            raise ValueError(f"section {name!r:.40}: the table is not 2-D")
    else:
        fixed = tuple(SECTIONS[kind])
    if any(cols[c].shape[:1] != (n,) or (kind != "hist" and cols[c].ndim != 1) for c in fixed):
        raise ValueError(f"section {name!r:.40}: columns of different lengths")
