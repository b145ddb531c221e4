"""RollingWindows against river's ``utils.Rolling(stats.Var, window_size=N, ddof=1)``."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from river import stats, utils

from tilewatch.aggregators import RollingWindows, StateError


def _river(size: int) -> utils.Rolling:
    return utils.Rolling(stats.Var, window_size=size, ddof=1)


def _random_batches(seed: int, size: int, n_cells: int, n_batches: int):
    rng = np.random.default_rng(seed)
    for _ in range(n_batches):
        # Batch sizes from empty to several times the window, cells often repeated.
        n = int(rng.integers(0, 4 * size + 3))
        if rng.random() < 0.3:
            cells = np.full(n, rng.integers(0, n_cells), dtype=np.int64)
        else:
            cells = rng.integers(0, n_cells, n).astype(np.int64)
        values = rng.normal(5.0, 2.0, n)
        yield cells, values


@pytest.mark.parametrize("size", [1, 2, 5, 16])
@pytest.mark.parametrize("seed", range(4))
def test_matches_river_event_by_event(size: int, seed: int) -> None:
    n_cells = 9
    rw = RollingWindows(size)
    ref = {c: _river(size) for c in range(n_cells)}
    last: dict[int, collections.deque[float]] = {
        c: collections.deque(maxlen=size) for c in range(n_cells)
    }
    for cells, values in _random_batches(seed, size, n_cells, 25):
        rw.update(cells, values)
        for c, v in zip(cells.tolist(), values.tolist(), strict=True):
            ref[c].update(v)
            last[c].append(v)
        rw.refresh()
        count, mean, m2 = rw.moments(n_cells)
        for c in range(n_cells):
            np.testing.assert_array_equal(rw.values(c), np.array(last[c]))
            assert count[c] == ref[c].obj.n
            if count[c] == 0:
                continue
            assert mean[c] == pytest.approx(ref[c].obj.mean.get(), rel=1e-9, abs=1e-12)
            if count[c] > 1:
                var = m2[c] / (count[c] - 1)
                assert var == pytest.approx(ref[c].get(), rel=1e-9, abs=1e-12)


def test_cell_written_many_times_in_one_batch() -> None:
    rw = RollingWindows(4)
    values = np.arange(11, dtype=float)
    rw.update(np.zeros(11, dtype=np.int64), values)
    assert rw.values(0).tolist() == [7.0, 8.0, 9.0, 10.0]
    rw.update(np.array([0, 0], dtype=np.int64), np.array([11.0, 12.0]))
    assert rw.values(0).tolist() == [9.0, 10.0, 11.0, 12.0]


def test_values_of_unknown_cell_is_empty() -> None:
    rw = RollingWindows(3)
    assert rw.values(0).tolist() == []
    rw.update(np.array([5], dtype=np.int64), np.array([1.0]))
    assert rw.values(2).tolist() == []
    assert rw.values(500).tolist() == []
    assert rw.cells().tolist() == [5]


def test_moments_sparse_cells_and_cut() -> None:
    rw = RollingWindows(3)
    rw.update(np.array([7, 2, 7], dtype=np.int64), np.array([1.0, 4.0, 3.0]))
    rw.refresh()
    count, mean, m2 = rw.moments(10)
    assert count.tolist() == [0, 0, 1, 0, 0, 0, 0, 2, 0, 0]
    assert mean[7] == 2.0 and m2[7] == 2.0 and mean[2] == 4.0
    count, _, _ = rw.moments(5)  # cells past n_cells are left out
    assert count.tolist() == [0, 0, 1, 0, 0]


def test_refresh_recomputes_only_dirty_cells() -> None:
    rw = RollingWindows(3)
    rw.update(np.array([0, 1], dtype=np.int64), np.array([1.0, 2.0]))
    rw.refresh()
    before = rw.moments(2)
    rw.refresh()  # nothing dirty: a no-op
    after = rw.moments(2)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    rw.update(np.array([1], dtype=np.int64), np.array([4.0]))
    count, mean, _ = rw.moments(2)
    assert count[0] == 1 and mean[0] == 1.0  # the clean cell keeps its statistics
    rw.refresh()
    count, mean, m2 = rw.moments(2)
    assert count.tolist() == [1, 2] and mean[1] == 3.0 and m2[1] == 2.0


def test_dirty_cell_reported_as_of_last_refresh() -> None:
    rw = RollingWindows(3)
    rw.update(np.zeros(3, dtype=np.int64), np.array([1.0, 2.0, 3.0]))
    rw.refresh()
    rw.update(np.zeros(1, dtype=np.int64), np.array([4.0]))
    count, mean, m2 = rw.moments(1)
    assert (count[0], mean[0], m2[0]) == (3, 2.0, 2.0)


@pytest.mark.parametrize("seed", range(3))
def test_to_dict_load_round_trip(seed: int) -> None:
    size = 6
    rw = RollingWindows(size)
    for cells, values in _random_batches(seed, size, 5, 10):
        rw.update(cells * 3, values)  # sparse cell indices
    keys = [("m", str(i)) for i in range(15)]
    data = rw.to_dict(keys)
    assert data["size"] == size
    # Load into different indices (reversed order of keys).
    index_of = {k: 14 - i for i, k in enumerate(keys)}
    back = RollingWindows(size)
    back.load(data, index_of)
    for c in range(15):
        np.testing.assert_array_equal(back.values(14 - c), rw.values(c))
    rw.refresh()
    back.refresh()
    c1, m1, s1 = rw.moments(15)
    c2, m2, s2 = back.moments(15)
    np.testing.assert_array_equal(c2[::-1], c1)
    np.testing.assert_allclose(m2[::-1], m1, rtol=1e-12)
    np.testing.assert_allclose(s2[::-1], s1, rtol=1e-9, atol=1e-12)


def test_load_keeps_only_last_size_values() -> None:
    back = RollingWindows(2)
    back.load({"size": 2, "cells": [[["m"], [1.0, 2.0, 3.0]]]}, {("m",): 0})
    assert back.values(0).tolist() == [2.0, 3.0]


@pytest.mark.parametrize(
    "data", [{"size": 4, "cells": []}, {"size": 2, "cells": []}, {"cells": []}]
)
def test_size_mismatch_raises_state_error(data: dict[str, object]) -> None:
    with pytest.raises(StateError, match="rolling window size"):
        RollingWindows(3).load(data, {})


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RollingWindows(0)


def test_nan_free_before_any_update() -> None:
    rw = RollingWindows(3)
    rw.refresh()
    count, mean, m2 = rw.moments(3)
    assert count.tolist() == [0, 0, 0]
    assert not any(math.isnan(v) for v in [*mean, *m2])


@pytest.mark.parametrize("size", [40, 100, 1000, 1013])
@pytest.mark.parametrize("seed", range(3))
def test_blocks_give_pandas_rolling_of_the_reported_count(size: int, seed: int) -> None:
    """Windows of 40 events or more: the statistics are those of the last W events (pandas'
    ``rolling(W)``), with ``size - block < W <= size`` once ``size`` events arrived."""
    import pandas as pd

    block = size // 20
    n_cells = 5
    rw = RollingWindows(size)
    assert rw.block == block
    history: dict[int, list[float]] = {c: [] for c in range(n_cells)}
    for cells, values in _random_batches(seed, size, n_cells, 12):
        values = values + 1e6  # a large offset: the block merge must not lose precision
        rw.update(cells, values)
        for c, v in zip(cells.tolist(), values.tolist(), strict=True):
            history[c].append(v)
        rw.refresh()
        count, mean, m2 = rw.moments(n_cells)
        for c in range(n_cells):
            seen = len(history[c])
            if seen == 0:
                assert count[c] == 0
                continue
            w = int(count[c])
            if seen >= size:
                assert size - block < w <= size
            else:
                assert w == seen
            series = pd.Series(history[c])
            assert mean[c] == pytest.approx(series.rolling(w).mean().iloc[-1], rel=1e-12)
            if w > 1:
                # pandas' online variance carries its own rounding at a 1e6 offset; the
                # two-pass variance of the same W values is the tighter reference.
                var = series.rolling(w).var().iloc[-1]
                assert m2[c] / (w - 1) == pytest.approx(var, rel=1e-6)
                exact = np.var(history[c][-w:], ddof=1)
                assert m2[c] / (w - 1) == pytest.approx(exact, rel=1e-9)


def test_a_cell_costs_a_few_hundred_bytes_at_a_thousand_events() -> None:
    rw = RollingWindows(1000)
    cells = np.arange(10_000, dtype=np.int64)
    for _ in range(3):
        rw.update(cells, np.random.default_rng(0).random(len(cells)))
    assert rw.slots == 20
    assert rw.nbytes / 10_000 <= 2 * (2 * 20 * 8 + 6 * 8)  # two block tables, row scalars


def test_block_round_trip_and_refusals() -> None:
    rw = RollingWindows(100)
    rng = np.random.default_rng(3)
    rw.update(rng.integers(0, 4, 777), rng.random(777))
    keys = [("m", str(i)) for i in range(4)]
    data = rw.to_dict(keys)
    assert data["block"] == 5 and all(len(row) == 4 for row in data["cells"])
    back = RollingWindows(100)
    back.load(data, {k: i for i, k in enumerate(keys)})
    rw.refresh()
    back.refresh()
    for a, b in zip(rw.moments(4), back.moments(4), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    before = back.moments(4)
    back.load_many([(0, 5, [1.0], [0.0])])  # fewer events than the cell's window: kept as is
    back.refresh()
    for a, b in zip(before, back.moments(4), strict=True):
        np.testing.assert_array_equal(a, b)
    back.load_many([(0, 2000, [1.0] * 20, [0.0] * 20)])  # more: replaces it
    back.refresh()
    count, mean, m2 = back.moments(1)
    assert (count[0], mean[0], m2[0]) == (100, 1.0, 0.0)
    with pytest.raises(ValueError, match="fewer than 40"):
        back.values(0)


def test_a_copy_covers_the_cells_written_since_the_last_refresh() -> None:
    """The snapshot's copy holds every event written so far, refreshed or not."""
    rw = RollingWindows(100)
    rw.update(np.array([0, 1, 1], dtype=np.int64), np.array([1.0, 2.0, 4.0]))
    rw.refresh()
    rw.update(np.array([1, 2], dtype=np.int64), np.array([6.0, 8.0]))
    copy = rw.copy(3)
    rw.update(np.array([0], dtype=np.int64), np.array([100.0]))  # after the copy: not in it
    count, mean, m2 = copy.current()
    assert count.tolist() == [1, 3, 1]
    assert mean.tolist() == [1.0, 4.0, 8.0]
    assert m2.tolist() == [0.0, 8.0, 0.0]
    stale, _, _ = rw.moments(3)
    assert stale.tolist() == [1, 2, 0]  # moments() itself still reads the last refresh
