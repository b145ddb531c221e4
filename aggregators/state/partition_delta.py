"""Delta checkpoints of one partition: its state cut into units, only changed units written.

A partition's cells are split into :data:`BLOCKS` blocks by a stable hash of their key
(:func:`block_of_key`). Per block there is one *cells unit* (``"<block>/c"``: counts, late, last
event time and rolling windows of its cells) and one *window unit* per event-time window
(``"<block>/w<window>"``: the window's moments and histograms of its cells). What is not per cell
(offset, watermark, the window list, violations, detectors, versions, labels) is the *head*.

:func:`partition_delta` compares a partition with the :class:`DeltaMark` of its last acknowledged
checkpoint and returns the head and the units that changed: a cells unit changed when one of its
cells' event or late counts did (the rolling windows and last event times move only with
them); a window unit when one of its cells' counts in that window did (histograms are counted
with the moments). A closed window never changes. Without a mark, every unit is returned.

:func:`merge_units` joins a head and its units back into the plain data of
:func:`~tilewatch.aggregators.state.partition_codec.partition_to_dict`, so a restore goes
through the same complete validation (``parse_partition``) as a full checkpoint.

Pure: no Kafka, no I/O.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray, resized
from tilewatch.aggregators.codec import finite_or_none
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.state.delta_mark import DeltaMark, mark_of
from tilewatch.aggregators.state.unit_columns import (
    CELL_COLUMNS,
    MOMENT_COLUMNS,
    ColumnTable,
    HistTable,
    RollingTable,
    UnitColumns,
)
from tilewatch.aggregators.state.versions import version_rows
from tilewatch.aggregators.stats.rolling import RollingWindows

if TYPE_CHECKING:
    from tilewatch.aggregators.state.partition import PartitionState

__all__ = [
    "BLOCKS",
    "CELLS_UNIT",
    "DeltaMark",
    "PartitionDelta",
    "block_of_key",
    "merge_units",
    "partition_delta",
    "unit_window",
]

#: Blocks a partition's cells are split into (a unit holds about cells / BLOCKS cells).
BLOCKS = 64
#: The name suffix of a block's cells unit.
CELLS_UNIT = "c"


def block_of_key(key: tuple[str, ...]) -> int:
    """The block of a cell key: CRC-32 of its parts (stable across processes), mod BLOCKS."""
    return zlib.crc32("\x1f".join(key).encode()) % BLOCKS


def unit_window(name: str) -> int | None:
    """The window number of a window unit's name (None: a cells unit); raises ValueError."""
    _block, _, part = name.partition("/")
    if part == CELLS_UNIT:
        return None
    if not part.startswith("w"):
        raise ValueError(f"not a unit name: {name!r:.60}")
    return int(part[1:])


class _Blocks:
    """Block numbers of a registry's cells, computed once per cell."""

    __slots__ = ("blocks", "keys")

    def __init__(self) -> None:
        self.keys: list[tuple[str, ...]] | None = None
        self.blocks = np.zeros(0, dtype=np.int64)

    def of(self, keys: list[tuple[str, ...]]) -> IntArray:
        if self.keys is not keys:
            self.keys, self.blocks = keys, np.zeros(0, dtype=np.int64)
        n = len(keys)
        if len(self.blocks) < n:
            new = [block_of_key(k) for k in keys[len(self.blocks) : n]]
            self.blocks = np.concatenate([self.blocks, np.asarray(new, dtype=np.int64)])
        return self.blocks[:n]


class _Window:
    """What a round writes of one window: its changed cells' moments and histograms, copied."""

    __slots__ = ("c", "cells", "hists", "m", "s", "w")

    def __init__(
        self,
        w: int,
        cells: IntArray,
        moments: tuple[IntArray, FloatArray, FloatArray],
        hists: dict[str, tuple[IntArray, IntArray]],
    ) -> None:
        self.w = w
        self.cells = cells
        self.c, self.m, self.s = moments
        self.hists = hists


class PartitionDelta:
    """One round of a partition's delta checkpoint, taken under the state's lock as array
    copies of the changed blocks only; :meth:`iter_units` builds the units' plain data one
    block at a time (outside the lock), so a whole partition's plain data never exists at
    once."""

    def __init__(
        self,
        head: dict[str, Any],
        mark: DeltaMark,
        full: bool,
        keys: list[tuple[str, ...]],
        blocks: IntArray,
        cells: tuple[IntArray, IntArray, IntArray, FloatArray],
        rolling: RollingWindows | None,
        windows: list[_Window],
    ) -> None:
        #: Partition-level state and the window list.
        self.head = head
        #: The mark to compare with next time, once this round is acknowledged.
        self.mark = mark
        #: Whether the units are every unit of the state (no mark to compare with).
        self.full = full
        self._keys = keys
        self._blocks = blocks
        self._cells = cells
        self._rolling = rolling
        self._windows = windows

    @property
    def units(self) -> dict[str, Any]:
        """Every changed unit's plain data at once (small partitions and tests; the store
        streams :meth:`iter_columns`)."""
        return dict(self.iter_units())

    def _by_block(self, cells: IntArray) -> dict[int, IntArray]:
        """Positions in ``cells`` per block, each in ascending position order."""
        b = self._blocks[cells]
        order = np.argsort(b, kind="stable")
        bounds = np.searchsorted(b[order], np.arange(BLOCKS + 1)).tolist()
        return {
            k: order[bounds[k] : bounds[k + 1]] for k in range(BLOCKS) if bounds[k + 1] > bounds[k]
        }

    def iter_units(self) -> Iterator[tuple[str, Any]]:
        """``(unit name, plain data)`` of the changed units, one block at a time."""
        for name, unit in self.iter_columns():
            yield name, unit.plain()

    def _table(self, *cells: IntArray) -> tuple[UnitColumns, IntArray]:
        """A unit with the keys of ``cells`` (cell indices) as its key table, and the table's
        cell indices (sorted)."""
        first = cells[0]
        if all(len(c) == len(first) and np.array_equal(c, first) for c in cells[1:]) and (
            len(first) < 2 or bool((first[1:] > first[:-1]).all())
        ):
            table = first  # the common window unit: its histograms' cells are its cells, sorted
        else:
            table = np.unique(np.concatenate(cells)) if len(cells) > 1 else np.unique(first)
        keys = self._keys
        return UnitColumns([keys[i] for i in table.tolist()]), table

    def iter_columns(self) -> Iterator[tuple[str, UnitColumns]]:
        """``(unit name, columns)`` of the changed units, one block at a time."""
        sel, events, late, last = self._cells
        cell_groups = self._by_block(sel)
        roll = self._rolling
        roll_cells = roll.cells() if roll is not None else np.zeros(0, dtype=np.int64)
        roll_groups = self._by_block(roll_cells)
        for b in sorted(set(cell_groups) | set(roll_groups)):
            at = cell_groups.get(b)
            parts = [sel[at]] if at is not None else []
            rolled = None
            if b in roll_groups and roll is not None:
                select = np.zeros(int(roll_cells.max()) + 1, dtype=bool)
                select[roll_cells[roll_groups[b]]] = True
                rolled = roll.columns(select)
                parts.append(rolled[0])
            unit, table = self._table(*parts)
            if at is not None:
                unit.add(
                    "cells",
                    pos=np.searchsorted(table, sel[at]),
                    events=events[at],
                    late=late[at],
                    last=last[at],
                )
            if rolled is not None:
                rcells, total, lengths, means, m2s = rolled
                unit.add(
                    "rolling",
                    pos=np.searchsorted(table, rcells),
                    total=total,
                    lengths=lengths,
                    means=means,
                    m2s=m2s,
                )
            yield f"{b}/{CELLS_UNIT}", unit
        for win in self._windows:
            hist_groups = {
                name: (cells, h, self._by_block(cells)) for name, (cells, h) in win.hists.items()
            }
            for b, at in self._by_block(win.cells).items():
                hists = []
                for name, (cells, h, groups) in sorted(hist_groups.items()):
                    hat = groups.get(b)
                    if hat is not None:
                        hists.append((name, cells[hat], h[hat]))
                unit, table = self._table(win.cells[at], *(c for _n, c, _h in hists))
                unit.add(
                    "rows",
                    pos=np.searchsorted(table, win.cells[at]),
                    c=win.c[at],
                    m=win.m[at],
                    s=win.s[at],
                )
                for name, hcells, rows in hists:
                    unit.add(f"hist:{name}", pos=np.searchsorted(table, hcells), table=rows)
                yield f"{b}/w{win.w}", unit


def partition_delta(
    state: PartitionState,
    mark: DeltaMark | None,
    freeze: Callable[[list[Any]], Any] | None = None,
) -> PartitionDelta:
    """The head and the changed units of ``state`` since ``mark`` (all units without one),
    as copies of the changed blocks' arrays: take it under the state's lock. ``freeze``: what
    the head holds in place of each final label window's rows, made once per window (see
    ``labels_to_dict``)."""
    registry = state.registry
    keys = registry.keys
    n = len(keys)
    cache = getattr(registry, "_delta_blocks", None)
    if cache is None:
        cache = _Blocks()
        registry._delta_blocks = cache  # type: ignore[attr-defined]
    blocks = cache.of(keys)

    def dirty_blocks(changed: np.ndarray) -> np.ndarray:
        mask = np.zeros(BLOCKS, dtype=bool)
        mask[np.unique(blocks[np.flatnonzero(changed)])] = True
        return mask

    events, late = resized(state.events, n), resized(state.late, n)
    # Cells units.
    if mark is None:
        cell_dirty = np.ones(BLOCKS, dtype=bool)
    else:
        cell_dirty = dirty_blocks(
            (events != resized(mark.events, n)) | (late != resized(mark.late, n))
        )
    sel = np.flatnonzero(((events > 0) | (late > 0)) & cell_dirty[blocks])
    last = resized(state.last_event_time, n)
    cells = (sel, events[sel], late[sel], last[sel])
    rolling = None
    roll_cells = state.rolling.cells()
    roll_cells = roll_cells[roll_cells < n]
    if cell_dirty.any() and len(roll_cells):
        select = np.zeros(max(n, int(state.rolling.cells().max()) + 1), dtype=bool)
        select[roll_cells] = cell_dirty[blocks[roll_cells]]
        rolling = state.rolling.subset(select)
    # Window units.
    changed: list[_Window] = []
    for table in (state.open, state.closed):
        for w, acc in sorted(table.items()):
            c, m, s = acc.sized(n)
            if mark is None or w not in mark.windows:
                w_dirty = np.ones(BLOCKS, dtype=bool)
            elif w in mark.open_counts:
                w_dirty = dirty_blocks(c != resized(mark.open_counts[w], n))
            else:
                continue  # closed at the last checkpoint already: unchanged
            if not w_dirty.any():
                continue
            at = np.flatnonzero((c > 0) & w_dirty[blocks])
            hists: dict[str, tuple[IntArray, IntArray]] = {}
            for name in sorted(acc.hist):
                hcells, h = acc.hist_of(name)
                at_h = np.flatnonzero(hcells < n)
                at_h = at_h[h[at_h].any(axis=1) & w_dirty[blocks[hcells[at_h]]]]
                if len(at_h):
                    # In cell order, as the moments' rows: a unit whose histogram rows are
                    # its moments' cells takes them as its key table as they are (_table).
                    at_h = at_h[np.argsort(hcells[at_h], kind="stable")]
                    hists[name] = (hcells[at_h], h[at_h])  # fancy indexing copies
            changed.append(_Window(w, at, (c[at], m[at], s[at]), hists))
    head = {
        "offset": state.offset,
        "max_event_time": finite_or_none(state.max_event_time),
        "open": sorted(state.open),
        "closed": sorted(state.closed),
        "rolling": {"size": state.rolling.size, "block": state.rolling.block},
        "violations": [[*k, count] for k, count in sorted(state.violations.items())],
        "detectors": [] if state.detectors is None else state.detectors.to_dict(keys),
        "versions": version_rows(state.versions),
        "labels": None if state.labels is None else state.labels.to_dict(keys, freeze),
        "classes": None if state.classes is None else state.classes.to_dict(),
        "blocks": BLOCKS,
    }
    if state.labeling is not None:  # bounded by its budgets: written whole with the head
        head["labeling"] = state.labeling.to_dict(keys)
    return PartitionDelta(
        head, mark_of(state), mark is None, keys, blocks[:n].copy(), cells, rolling, changed
    )


def _rows(unit: dict[str, Any], name: str, what: str) -> list[Any]:
    rows = unit.get(what, [])
    if type(rows) is not list:
        raise StateError(f"partition state is malformed: unit {name!r:.40}.{what}: expected a list")
    return rows


def merge_units(head: Any, units: dict[str, Any]) -> dict[str, Any]:
    """The plain data of a full checkpoint (``partition_to_dict``'s form) from a head and its
    units; raises StateError on a malformed head or unit (the result is validated by the
    caller, ``PartitionState.validate`` / ``from_dict``)."""

    def fail(where: str, why: str) -> StateError:
        return StateError(f"partition state is malformed: {where}: {why}")

    if type(head) is not dict:
        raise fail("head", "expected an object")
    for name in ("open", "closed"):
        v = head.get(name)
        if type(v) is not list or not all(type(w) is int for w in v):
            raise fail(f"head.{name}", "expected a list of window numbers")
    rolling = head.get("rolling")
    if type(rolling) is not dict:
        raise fail("head.rolling", "expected an object")
    cells: list[Any] = []  # parts: lists of rows (JSON units) or ColumnTables (binary ones)
    roll: list[Any] = []  # parts: lists of rows (JSON units) or RollingTables (binary ones)
    # Each window's moment parts: lists of rows (JSON units) or ColumnTables (binary ones).
    window_rows: dict[int, list[Any]] = {w: [] for w in head["open"] + head["closed"]}
    window_hists: dict[int, dict[str, list[Any]]] = {w: {} for w in window_rows}
    for name, unit in sorted(units.items()):
        if type(unit) is not dict:
            raise fail(f"unit {name!r:.40}", "expected an object")
        try:
            w = unit_window(name)
        except ValueError as exc:
            raise fail(f"unit {name!r:.40}", str(exc)) from None
        if w is None:
            part = unit.get("cells", [])
            cells.append(part if isinstance(part, ColumnTable) else _rows(unit, name, "cells"))
            part = unit.get("rolling", [])
            roll.append(part if isinstance(part, RollingTable) else _rows(unit, name, "rolling"))
            continue
        if w not in window_rows:
            continue  # a window evicted since that unit was written
        rows = unit.get("rows", [])
        window_rows[w].append(rows if isinstance(rows, ColumnTable) else _rows(unit, name, "rows"))
        hists = unit.get("hists", {})
        if type(hists) is not dict:
            raise fail(f"unit {name!r:.40}.hists", "expected an object")
        for hname, hrows in hists.items():
            if type(hrows) is not list and not isinstance(hrows, HistTable):
                raise fail(f"unit {name!r:.40}.hists.{hname}", "expected a list")
            window_hists[w].setdefault(hname, []).append(hrows)

    def joined(parts: list[Any], where: str) -> Any:
        """A histogram's parts from several units: rows (JSON units) or one table."""
        if not any(isinstance(p, HistTable) for p in parts):
            return [row for p in parts for row in p]
        try:
            return HistTable.concat(parts)
        except ValueError as exc:
            raise fail(where, str(exc)) from None

    def table(parts: list[Any], names: dict[str, type], where: str) -> Any:
        """A section's rows from several units: rows (JSON units only) or one table."""
        if not any(isinstance(p, ColumnTable) for p in parts):
            return [row for p in parts for row in p]
        try:
            return ColumnTable.concat(parts, names)
        except ValueError as exc:
            raise fail(where, str(exc)) from None

    def rolling_cells() -> Any:
        """The rolling blocks' rows (JSON units only) or one table."""
        if not any(isinstance(p, RollingTable) for p in roll):
            return [row for p in roll for row in p]
        try:
            return RollingTable.concat(roll)
        except ValueError as exc:
            raise fail("rolling", str(exc)) from None

    def windows(numbers: list[int]) -> list[Any]:
        out: list[Any] = []
        for w in sorted(numbers):
            entry: list[Any] = [w, table(window_rows[w], MOMENT_COLUMNS, f"window {w}.rows")]
            if window_hists[w]:
                hists = sorted(window_hists[w].items())
                entry.append({h: joined(parts, f"window {w}.hists.{h}") for h, parts in hists})
            out.append(entry)
        return out

    try:
        return {
            "offset": head["offset"],
            "max_event_time": head["max_event_time"],
            "cells": table(cells, CELL_COLUMNS, "cells"),
            "open": windows(head["open"]),
            "closed": windows(head["closed"]),
            "rolling": {**rolling, "cells": rolling_cells()},
            "violations": head["violations"],
            "detectors": head["detectors"],
            "versions": head["versions"],
            "labels": head["labels"],
            "classes": head.get("classes"),
            **({"labeling": head["labeling"]} if "labeling" in head else {}),
        }
    except KeyError as exc:
        raise fail("head", f"missing key {exc}") from None
