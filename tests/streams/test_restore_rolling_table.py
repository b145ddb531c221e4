"""A restore reads a binary unit's rolling blocks as a ``RollingTable``, not as ``[key, total,
means, m2s]`` rows: the same windows come back, JSON and binary units of one checkpoint join,
and a malformed table is refused with its row as a malformed row is."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.streams.test_delta_checkpoint import FP, SETTINGS, SOURCE, _same, _Writer
from tests.streams.test_delta_versions import _version3_round
from tests.streams.test_restore_tables import record_joins
from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.unit_columns import RollingTable
from tilewatch.aggregators.stats.rolling import RollingWindows
from tilewatch.streams.changelog import Checkpoint
from tilewatch.streams.changelog.delta import decode_delta


def _restored_state(events: int = 4000) -> dict[str, Any]:
    w = _Writer()
    w.batch(events, 0, 100)
    w.round()
    checkpoint = decode_delta(SOURCE, "a", w.log, FP)
    assert isinstance(checkpoint, Checkpoint)
    return checkpoint.state


def test_binary_units_restore_their_rolling_blocks_as_one_table_exactly() -> None:
    w = _Writer()
    w.batch(4000, 0, 100)
    w.round()
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    table = checkpoint.state["rolling"]["cells"]
    assert isinstance(table, RollingTable)
    assert len(table) > 100 and int(table.lengths.sum()) == len(table.means) > len(table)
    _same(checkpoint, w.part)  # rebuilt through from_dict: the windows' moments included


def test_json_and_binary_rolling_rows_of_one_checkpoint_join_into_one_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    joins = record_joins(monkeypatch, RollingTable)
    w = _Writer()
    w.batch(3000, 0, 25)
    _version3_round(w)  # every unit as JSON rows
    w.part.apply([("m", "s1"), ("m", "s2")], np.array([21.0, 22.0]), np.array([0.1, 0.2]))
    w.part.offset = (w.part.offset or 0) + 2
    w.round()  # the changed cells units in binary form, the others left as JSON
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    assert {"list", "RollingTable"} in joins
    _same(checkpoint, w.part)


def _spoil_row(r: int, column: str, value: Any) -> Any:
    def spoil(t: RollingTable) -> None:
        if column in ("total", "lengths"):
            getattr(t, column)[r] = value
        else:  # the row's first block
            start = int(t.lengths[:r].sum())
            getattr(t, column)[start] = value

    return spoil


def _set(attr: str, fn: Any) -> Any:
    def spoil(t: RollingTable) -> None:
        setattr(t, attr, fn(getattr(t, attr)))

    return spoil


@pytest.mark.parametrize(
    ("spoil", "match"),
    [
        (_spoil_row(3, "total", 0), r"rolling.cells\[3\]: expected an integer >= 1"),
        (_spoil_row(2, "lengths", 9), r"rolling.cells\[2\]: expected \d+ block means"),
        (_spoil_row(4, "means", np.nan), r"rolling.cells\[4\]: expected"),
        (_spoil_row(5, "m2s", -1.0), r"rolling.cells\[5\]: expected .* \(>= 0\)"),
        (_spoil_row(6, "m2s", np.inf), r"rolling.cells\[6\]: expected"),
        (_set("means", lambda a: a[:-1]), "as many block means and m2s as the lengths say"),
        (_set("total", lambda a: a.astype(np.float64)), "expected integer totals"),
        (_set("m2s", lambda a: a.astype(np.int64)), "float means and m2s"),
        (
            _set("total", lambda a: a.astype(np.uint64) + np.uint64(2**63)),
            r"rolling.cells\[0\]: expected an integer >= 1",
        ),
    ],
)
def test_a_malformed_rolling_table_is_refused_with_its_row(spoil: Any, match: str) -> None:
    state = _restored_state()
    table = state["rolling"]["cells"]
    assert isinstance(table, RollingTable)
    spoil(table)
    with pytest.raises(StateError, match=match):
        PartitionState.validate(CellRegistry(SETTINGS), state)


def test_a_bad_key_in_a_rolling_table_is_refused_with_its_row() -> None:
    state = _restored_state()
    table = state["rolling"]["cells"]
    table.keys = [*table.keys[:3], ["m", ""], *table.keys[4:]]
    with pytest.raises(StateError, match=r"rolling.cells\[3\]: expected a cell key"):
        PartitionState.validate(CellRegistry(SETTINGS), state)


def test_rolling_table_concat_refuses_rows_of_another_shape() -> None:
    good = [["m", "a"], 3, [0.5, 1], [0.0, 0.25]]
    t = RollingTable.concat([[good], [good]])
    assert t.total.tolist() == [3, 3] and t.lengths.tolist() == [2, 2]
    assert t.means.tolist() == [0.5, 1.0, 0.5, 1.0]
    bad_rows = (
        [["m", "a"], 3.0, [0.5], [0.0]],
        [["m", "a"], 3, [0.5], [0.0, 1.0]],
        [["m", "a"], 3, ["x"], [0.0]],
        [["m", "a"], 3, [0.5]],
        [["m", "a"], True, [0.5], [0.0]],
        "x",
    )
    for bad in bad_rows:
        with pytest.raises(ValueError, match="expected \\[key, total, means, m2s\\] rows"):
            RollingTable.concat([[bad]])
    with pytest.raises(ValueError, match="out of range"):
        RollingTable.concat([[[["m", "a"], 2**64, [0.5], [0.0]]]])


def _moments_of(total: int, means: list[float], m2s: list[float], size: int, block: int) -> Any:
    """A restored window's count, mean and m2, from its blocks (newest first, the newest
    one partial), written out."""
    newest = (total - 1) // block
    counts = np.full(len(means), float(block))
    counts[0] = total - newest * block
    mean = float(np.dot(counts, means) / counts.sum())
    m2 = float(np.sum(m2s) + np.dot(counts, (np.asarray(means) - mean) ** 2))
    return counts.sum(), mean, m2


def test_load_arrays_keeps_the_window_with_more_events_for_every_cell() -> None:
    """Rows as columns: cells named twice and cells that already hold a window keep the
    window with more events (the first of equals), each window's moments as its blocks say;
    ``load_many`` (rows) gives the same."""
    rng = np.random.default_rng(7)
    size, block = 100, 5
    rows = []
    for _ in range(400):
        cell = int(rng.integers(0, 60))
        total = int(rng.integers(1, 400))
        newest = (total - 1) // block
        blocks = min(newest, (size - (total - newest * block)) // block) + 1
        rows.append((cell, total, rng.random(blocks).tolist(), rng.random(blocks).tolist()))
    rows.append((rows[0][0], rows[0][1], [9.0] * len(rows[0][2]), rows[0][3]))  # an equal
    seeded = np.arange(0, 60, 7)
    before = RollingWindows(size)
    by_rows, by_columns = RollingWindows(size), RollingWindows(size)
    for w in (before, by_rows, by_columns):  # some cells already hold a 150-event window
        w.update(np.repeat(seeded, 150), np.tile(np.linspace(0, 1, 150), len(seeded)))
    by_rows.load_many(rows)
    by_columns.load_arrays(
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.array([len(r[2]) for r in rows]),
        np.array([x for r in rows for x in r[2]]),
        np.array([x for r in rows for x in r[3]]),
    )
    for w in (before, by_rows, by_columns):
        w.refresh()
    got = by_columns.moments(60)
    assert [a.tolist() for a in got] == [a.tolist() for a in by_rows.moments(60)]
    kept: dict[int, tuple[int, list[float], list[float]]] = {}
    for cell, total, means, m2s in rows:  # the rule, written out
        if cell not in kept or kept[cell][0] < total:
            kept[cell] = (total, means, m2s)
    old = before.moments(60)
    for cell in range(60):
        if cell in kept and not (cell in seeded and kept[cell][0] <= 150):
            want = _moments_of(*kept[cell], size, block)
        else:  # untouched: empty, or the window it held
            want = (old[0][cell], old[1][cell], old[2][cell])
        assert got[0][cell] == want[0]
        assert got[1][cell] == pytest.approx(want[1], rel=1e-12, abs=1e-12)
        assert got[2][cell] == pytest.approx(want[2], rel=1e-9, abs=1e-12)
