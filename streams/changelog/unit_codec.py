"""The binary form of a delta-checkpoint unit (checkpoint version 4).

A :class:`~tilewatch.aggregators.state.unit_columns.UnitColumns` is written as :data:`MAGIC`,
the header's length (4 bytes, little-endian), the header
(``{"keys": <bytes of the key table>, "sections": [[name, [[column, dtype, shape], ...]], ...]}``),
the key table (a JSON list of key lists), then each column's raw bytes in header order; the
store compresses it with zlib. :func:`unit_from_bytes` refuses with :class:`ValueError` a
payload that does not match its header exactly, names an unknown section, column or dtype
(:data:`~tilewatch.aggregators.state.unit_columns.SECTIONS`), or points outside its key table.

Examples
--------
>>> import numpy as np
>>> u = UnitColumns([("m", "a"), ("m", "b")])
>>> u.add("cells", pos=np.array([1, 0]), events=np.array([3, 4]), late=np.array([0, 1]),
...       last=np.array([5.0, np.nan]))
>>> unit_from_bytes(unit_to_bytes(u)).plain()
{'cells': [[['m', 'b'], 3, 0, 5.0], [['m', 'a'], 4, 1, None]]}
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from tilewatch.aggregators.state.unit_columns import (
    POS_DTYPES,
    SECTIONS,
    UnitColumns,
    section_kind,
)

__all__ = ["MAGIC", "unit_from_bytes", "unit_to_bytes"]

#: The first bytes of a unit in binary form (a JSON unit starts with ``{``).
MAGIC = b"TWU\x01"
_HEAD = struct.Struct("<I")


def unit_to_bytes(unit: UnitColumns) -> bytes:
    """The binary form of ``unit`` (see the module)."""
    keys = orjson.dumps(list(unit.keys))
    layout: list[Any] = []
    body: list[bytes] = [keys]
    for name, cols in unit.sections.items():
        layout.append([name, [[c, a.dtype.str, list(a.shape)] for c, a in cols.items()]])
        body.extend(a.tobytes() for a in cols.values())
    header = orjson.dumps({"keys": len(keys), "sections": layout})
    return b"".join([MAGIC, _HEAD.pack(len(header)), header, *body])


def unit_from_bytes(
    data: bytes, shared: dict[tuple[str, ...], list[str]] | None = None
) -> UnitColumns:
    """Read :func:`unit_to_bytes` output; raises ValueError on anything that does not match.

    ``shared``: key lists already read (by the other units of one checkpoint); a key met
    again is that list, not a new one (a cell's key is in many units, one per window)."""
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
    if shared is not None:
        keys = [shared.setdefault(tuple(k), k) for k in keys]
    out = UnitColumns(keys)
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


def _section_layout(entry: Any) -> tuple[str, list[tuple[str, str, tuple[int, ...]]]]:
    """A header's section entry, checked: its name and ``(column, dtype, shape)`` list."""
    if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not str:
        raise ValueError("bad unit header: a section entry")
    name, cols = entry
    kind = section_kind(name)
    if kind not in SECTIONS or (kind == "hist" and len(name) <= 5):
        raise ValueError(f"unknown section {name!r:.40}")
    allowed = {"pos": POS_DTYPES, **SECTIONS[kind]}
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
    kind = section_kind(name)
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
