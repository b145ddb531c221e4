"""A snapshot reflects one state: counts and rolling statistics of the same batches, with or
without a refresh in between (the scrape taken just after a batch used to show new counts
with stale rolling statistics)."""

from __future__ import annotations

import numpy as np

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState


def test_rolling_statistics_cover_the_batches_the_counts_cover() -> None:
    state = ReplicaState(
        CellSettings(dimensions=("segment",), window_seconds=60, rolling_events=1000)
    )
    rng = np.random.default_rng(4)
    history: dict[tuple[str, str], list[float]] = {}
    for b in range(6):
        keys = [("m", f"s{i}") for i in rng.integers(0, 30, 500)]
        scores = rng.random(500)
        state.apply(("t", b % 2), keys, np.full(500, 1.0 + b), scores, next_offset=500 * b)
        for k, v in zip(keys, scores.tolist(), strict=True):
            history.setdefault(k, []).append(v)
        if b == 2:
            state.refresh()
        snap = state.snapshot()  # no refresh since this batch
        for i, key in enumerate(snap.keys):
            if key in history:
                assert snap.rolling_count[i] == snap.events_total[i] == len(history[key])
                assert np.isclose(snap.rolling_mean[i], np.mean(history[key]), rtol=1e-12)


def test_restored_moments_of_cells_named_twice_merge_exactly() -> None:
    """add_moments (restore) with a cell named twice: the moments of the union."""
    from tilewatch.aggregators.state.window_acc import WindowAcc

    a, b, c = [0.5, 0.25, 1.0], [2.0, 4.0], [3.0]
    rows = [(len(x), float(np.mean(x)), float(np.var(x) * len(x))) for x in (a, b, c)]
    acc = WindowAcc(3)
    acc.add_moments([1, 1, 2], rows, 3)
    count, mean, m2 = acc.sized(3)
    assert count.tolist() == [0, 5, 1]
    assert np.isclose(mean[1], np.mean(a + b), rtol=1e-15)
    assert np.isclose(m2[1], np.var(a + b) * 5, rtol=1e-12)
    assert (mean[2], m2[2]) == (3.0, 0.0)


def test_a_small_batch_in_a_large_table_merges_only_its_cells_exactly() -> None:
    """WindowAcc.add merges only the touched rows when they are few among many (the sparse
    path); the result is each cell's count, mean and m2 over all its values."""
    from tilewatch.aggregators.state.window_acc import WindowAcc

    rng = np.random.default_rng(9)
    acc = WindowAcc()
    seen: dict[int, list[float]] = {}
    for _ in range(6):
        cells = rng.integers(0, 1000, 50)
        values = rng.normal(3.0, 1.0, 50)
        acc.add(cells, values, 1000)  # 1000 > 2 * 50: the sparse path
        for c, v in zip(cells.tolist(), values.tolist(), strict=True):
            seen.setdefault(c, []).append(v)
    count, mean, m2 = acc.sized(1000)
    assert int(count.sum()) == 300 and set(np.flatnonzero(count).tolist()) == set(seen)
    for c, vals in seen.items():
        assert count[c] == len(vals)
        assert np.isclose(mean[c], np.mean(vals), rtol=1e-12)
        assert np.isclose(m2[c], np.var(vals) * len(vals), rtol=1e-9, atol=1e-12)
