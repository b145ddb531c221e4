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

__all__ = ["POS_DTYPES", "SECTIONS", "UnitColumns", "section_kind"]

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
            elif arr.dtype.str not in dtypes:  # a table of another width: never written
                raise ValueError(f"section {section!r}: {name} of dtype {arr.dtype}")
            out[name] = np.ascontiguousarray(arr)
        self.sections[section] = out

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
