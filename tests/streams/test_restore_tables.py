"""A restore reads a binary unit's histograms as tables (``HistTable``), not as ``[key,
counts]`` rows: the same partition comes back, and a malformed table is refused like a
malformed row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.streams.test_delta_checkpoint import FP, SETTINGS, SOURCE, _same, _Writer
from tests.streams.test_delta_versions import _version3_round
from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.unit_columns import ColumnTable, HistTable
from tilewatch.streams.changelog import Checkpoint
from tilewatch.streams.changelog.delta import decode_delta


def _with_latency(w: _Writer, n: int, t0: float, t1: float, cells: int = 300) -> None:
    keys = [("m", f"s{i}") for i in w.rng.integers(0, cells, n)]
    times = np.sort(w.rng.uniform(t0, t1, n))
    bins = {"latency": w.rng.integers(0, 40, n)}
    w.part.hist_bins["latency"] = 40
    w.part.apply(keys, times, w.rng.random(n), bins=bins)
    w.part.offset = (w.part.offset or 0) + n


def _tables(state: dict[str, Any]) -> list[HistTable]:
    return [
        rows
        for name in ("open", "closed")
        for entry in state[name]
        for rows in (entry[2].values() if len(entry) > 2 else ())
        if isinstance(rows, HistTable)
    ]


def test_binary_units_restore_their_histograms_as_tables_exactly() -> None:
    w = _Writer()
    _with_latency(w, 3000, 0, 45)
    w.round()
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    tables = _tables(checkpoint.state)
    # As written (closed windows compacted to uint8), never widened to int64.
    assert tables and all(t.table.dtype.itemsize <= 4 for t in tables)
    assert any(t.table.dtype == np.uint8 for t in tables)
    # A cell's key is one list shared by every unit that names it.
    ids = {id(k) for t in tables for k in t.keys}
    assert len(ids) == len({tuple(k) for t in tables for k in t.keys})
    _same(checkpoint, w.part)


def record_joins(monkeypatch: pytest.MonkeyPatch, table: type) -> list[set[str]]:
    """The kinds of parts (``list`` rows, tables) each ``table.concat`` call is given."""
    joins: list[set[str]] = []
    concat = table.concat.__func__  # type: ignore[attr-defined]

    def spy(cls: type, parts: Any, *args: Any) -> Any:
        joins.append({type(p).__name__ for p in parts})
        return concat(cls, parts, *args)

    monkeypatch.setattr(table, "concat", classmethod(spy))
    return joins


def test_a_window_of_json_and_binary_units_joins_into_one_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    joins = record_joins(monkeypatch, HistTable)
    w = _Writer()
    _with_latency(w, 3000, 0, 25)
    _version3_round(w)  # every unit as JSON rows
    _with_latency(w, 40, 21, 25, cells=3)  # then a few cells of the last window change
    w.round()  # their units rewritten in binary form, the others left as JSON
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    assert _tables(checkpoint.state)
    assert {"list", "HistTable"} in joins  # one window held both forms
    _same(checkpoint, w.part)


def _restored_state() -> dict[str, Any]:
    w = _Writer()
    _with_latency(w, 800, 0, 15)
    w.round()
    checkpoint = decode_delta(SOURCE, "a", w.log, FP)
    assert isinstance(checkpoint, Checkpoint)
    return checkpoint.state


@pytest.mark.parametrize(
    ("spoil", "match"),
    [
        (lambda t: t.table.astype(np.int16) * -1 - 1, r"\[0\]: expected counts >= 0"),
        (lambda t: t.table.astype(np.float64), "integer counts"),
        (lambda t: t.table[:, :0], "1 to 4096 integer counts"),
        (lambda t: t.table.ravel(), "non-empty table"),
        (lambda t: t.table[:-1], "non-empty table"),
    ],
)
def test_a_malformed_table_is_refused(spoil: Any, match: str) -> None:
    state = _restored_state()
    table = _tables(state)[0]
    table.table = spoil(table)
    with pytest.raises(StateError, match=match):
        PartitionState.validate(CellRegistry(SETTINGS), state)


def test_a_bad_key_in_a_table_is_refused_with_its_row() -> None:
    state = _restored_state()
    table = _tables(state)[0]
    table.keys = [*table.keys[:2], ["m"], *table.keys[3:]]
    with pytest.raises(StateError, match=r"\[2\]: expected a cell key"):
        PartitionState.validate(CellRegistry(SETTINGS), state)


def test_concat_pads_keeps_the_narrowest_type_and_refuses_bad_rows() -> None:
    a = HistTable([["m", "a"]], np.array([[1, 2, 3]], dtype=np.uint8))
    assert HistTable.concat([a]) is a
    b = HistTable([["m", "b"]], np.array([[300]], dtype=np.uint16))
    joined = HistTable.concat([a, b])
    assert joined.table.dtype == np.uint16
    assert joined.table.tolist() == [[1, 2, 3], [300, 0, 0]]
    with_rows = HistTable.concat([a, [[["m", "c"], [7, 8, 9, 10]]]])
    assert with_rows.table.tolist() == [[1, 2, 3, 0], [7, 8, 9, 10]]
    for bad in ([["m", "c"], [1.5]], [["m", "c"]], "x", [["m", "c"], [2**64]]):
        with pytest.raises(ValueError):
            HistTable.concat([a, [bad]])


def test_class_histograms_read_as_tables_move_to_the_restoring_replicas_columns() -> None:
    """A multi-class partition restored from binary units (its class histograms as tables)
    into a replica whose class table orders the classes differently: the columns move by
    name, and the numbers are those of the JSON form."""
    import orjson

    from tests.aggregators.state.test_class_checkpoint import (
        check_moved_restore,
        run,
        state,
        stream,
    )
    from tilewatch.aggregators.state.partition_delta import merge_units, partition_delta
    from tilewatch.streams.changelog.unit_codec import unit_from_bytes, unit_to_bytes

    preds, labels = stream()
    original = state()
    run(original, preds, None)
    delta = partition_delta(original.partitions[("p", 0)], None)
    head = orjson.loads(orjson.dumps(delta.head))
    shared: dict[tuple[str, ...], list[str]] = {}
    units = {
        name: unit_from_bytes(unit_to_bytes(cols), shared).plain(tables=True)
        for name, cols in delta.iter_columns()
    }
    data = merge_units(head, units)
    kinds = {
        h: type(rows).__name__
        for name in ("open", "closed")
        for entry in data[name]
        for h, rows in (entry[2].items() if len(entry) > 2 else ())
    }
    assert kinds["mc_class"] == "HistTable"  # the class columns move from a table
    check_moved_restore(original, data, labels)


def test_binary_units_restore_cells_and_window_moments_as_column_tables() -> None:
    w = _Writer()
    w.batch(4000, 0, 100)
    w.round()
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    state = checkpoint.state
    assert isinstance(state["cells"], ColumnTable)
    moments = [entry[1] for name in ("open", "closed") for entry in state[name]]
    assert moments and all(isinstance(rows, ColumnTable) for rows in moments)
    _same(checkpoint, w.part)


def test_a_window_of_json_and_binary_moment_rows_joins_into_one_column_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    joins = record_joins(monkeypatch, ColumnTable)
    w = _Writer()
    w.batch(3000, 0, 25)
    _version3_round(w)  # every unit as JSON rows
    w.part.apply([("m", "s1"), ("m", "s2")], np.array([21.0, 22.0]), np.array([0.1, 0.2]))
    w.part.offset = (w.part.offset or 0) + 2
    w.round()  # the changed units in binary form, the others left as JSON
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    assert {"list", "ColumnTable"} in joins  # one section held both forms
    _same(checkpoint, w.part)


def _moments(state: dict[str, Any]) -> ColumnTable:
    table = state["closed"][0][1] if state["closed"] else state["open"][0][1]
    assert isinstance(table, ColumnTable)
    return table


@pytest.mark.parametrize(
    ("section", "column", "spoil", "match"),
    [
        ("moments", "count", lambda c: c * 0, r"\[0\]: expected an integer >= 1"),
        ("moments", "count", lambda c: c.astype(np.float64), "expected integer count values"),
        (
            "moments",
            "mean",
            lambda c: np.where(np.arange(len(c)) == 1, np.nan, c),
            r"\[1\]: "
            "expected a finite number",
        ),
        ("moments", "m2", lambda c: c[:-1], "one value per row"),
        ("cells", "events", lambda c: c - c - 1, r"cells\[0\]: expected an integer >= 0"),
        (
            "cells",
            "last",
            lambda c: np.full(len(c), np.inf),
            r"cells\[0\]: expected a finite "
            "number or null",
        ),
        ("cells", "late", lambda c: c.astype(np.uint64) + np.uint64(2**63), r"cells\[0\]"),
    ],
)
def test_malformed_columns_are_refused_with_their_row(
    section: str, column: str, spoil: Any, match: str
) -> None:
    state = _restored_state()
    table = state["cells"] if section == "cells" else _moments(state)
    table.columns[column] = spoil(table.columns[column])
    with pytest.raises(StateError, match=match):
        PartitionState.validate(CellRegistry(SETTINGS), state)


def test_a_bad_key_in_a_column_table_is_refused_with_its_row() -> None:
    state = _restored_state()
    table = state["cells"]
    table.keys = [*table.keys[:3], ["m", ""], *table.keys[4:]]
    with pytest.raises(StateError, match=r"cells\[3\]: expected a cell key"):
        PartitionState.validate(CellRegistry(SETTINGS), state)


def test_column_table_concat_refuses_rows_of_another_shape() -> None:
    names = {"count": int, "mean": float, "m2": float}
    good = [[["m", "a"], 2, 0.5, None]]
    assert np.isnan(ColumnTable.concat([good, good], names).columns["m2"]).all()
    for bad in ([["m", "a"], 2.0, 0.5, 0.1], [["m", "a"], 2, "x", 0.1], [["m", "a"], 2], "x"):
        with pytest.raises(ValueError):
            ColumnTable.concat([[bad]], names)
    with pytest.raises(ValueError, match="out of range"):
        ColumnTable.concat([[[["m", "a"], 2**64, 0.5, 0.1]]], names)
