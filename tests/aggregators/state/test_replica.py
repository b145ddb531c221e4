"""ReplicaState: merging partitions into snapshots, the window reporting rule, revoke."""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from tilewatch.aggregators import ALL, CellSettings, ReplicaState, Snapshot
from tilewatch.aggregators.state.merge import sum_rows
from tilewatch.aggregators.state.reported import past_window
from tilewatch.aggregators.state.row_sums import latency_by_cell
from tilewatch.aggregators.stats.latency import LATENCY_BINS, latency_bins, latency_quantiles_many

SIZE, GRACE, ROLL = 10.0, 2.0, 6
SETTINGS = CellSettings(
    dimensions=("segment",), window_seconds=SIZE, grace_seconds=GRACE, rolling_events=ROLL
)
FLUSH = "zz-flush"

Key = tuple[str, ...]
Event = tuple[Key, float, float]


def _events(seed: int, n: int = 600) -> list[Event]:
    """Event times increase with jitter below the grace, so no event is ever late."""
    rng = np.random.default_rng(seed)
    leaves = [(m, s) for m in ("m1", "m2", "m3") for s in ("a", "b", "c", "d")]
    t = 1_000.0 + np.cumsum(rng.exponential(0.3, n)) - rng.uniform(0, 0.9 * GRACE, n)
    cells = rng.integers(0, len(leaves), n)
    scores = rng.normal(0.5, 0.2, n)
    return [(leaves[c], float(ti), float(s)) for c, ti, s in zip(cells, t, scores, strict=True)]


def _feed(rs: ReplicaState, part: int, events: list[Event], rng: np.random.Generator) -> None:
    pos = 0
    while pos < len(events):
        n = int(rng.integers(1, 40))
        batch = events[pos : pos + n]
        pos += n
        res = rs.apply(
            ("t", part),
            [k for k, _t, _s in batch],
            np.array([t for _k, t, _s in batch]),
            np.array([s for _k, _t, s in batch]),
            next_offset=pos,
        )
        assert res.late == 0 and res.valid == len(batch)


def _flush(rs: ReplicaState, parts: int, t: float) -> None:
    for p in range(parts):
        rs.apply(("t", p), [(FLUSH, "x")], np.array([t]), np.array([1.0]), next_offset=-1)


def _run(events_by_part: dict[int, list[Event]], seed: int) -> ReplicaState:
    rng = np.random.default_rng(seed)
    rs = ReplicaState(SETTINGS)
    for p in sorted(events_by_part):
        rs.assign(("t", p))
    # Interleave partitions batch by batch is not needed: partitions are independent.
    for p, evs in events_by_part.items():
        _feed(rs, p, evs, rng)
    end = max(t for evs in events_by_part.values() for _k, t, _s in evs)
    _flush(rs, len(events_by_part), end + 10 * SIZE)
    rs.refresh()
    return rs


def _stat(snap: Snapshot, name: str, key: Key) -> Any:
    return getattr(snap, name)[snap.cell(key)]


def _real_keys(snap: Snapshot) -> list[Key]:
    return [k for k in snap.keys if k[0] != FLUSH]


def _latest_windows(events: list[Event]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, t, _s in events:
        out[k[0]] = max(out.get(k[0], -(2**62)), math.floor(t / SIZE))
    return out


def _in_cell(key: Key, leaf: Key) -> bool:
    return all(a in (b, ALL) for a, b in zip(key, leaf, strict=True))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("parts", [2, 3])
def test_keyed_traffic_equals_single_partition(seed: int, parts: int) -> None:
    events = _events(seed)
    owner = {s: i % parts for i, s in enumerate("abcd")}  # keyed by cell (segment here)
    split: dict[int, list[Event]] = {p: [] for p in range(parts)}
    for e in events:
        split[owner[e[0][1]]].append(e)
    multi = _run(split, seed).snapshot()
    single = _run({0: events}, seed).snapshot()
    assert sorted(_real_keys(multi)) == sorted(_real_keys(single))
    assert {m: v for m, v in multi.window_start.items() if m != FLUSH} == {
        m: v for m, v in single.window_start.items() if m != FLUSH
    }
    for key in _real_keys(single):
        for name in ("events_total", "late_total", "window_count"):
            assert _stat(multi, name, key) == _stat(single, name, key), (name, key)
        for name in ("window_mean", "window_variance", "last_event_time"):
            np.testing.assert_allclose(_stat(multi, name, key), _stat(single, name, key), rtol=1e-9)
        if ALL not in key:  # rolling windows are exact for cells that live in one partition
            assert _stat(multi, "rolling_count", key) == _stat(single, "rolling_count", key)
            for name in ("rolling_mean", "rolling_variance"):
                np.testing.assert_allclose(
                    _stat(multi, name, key), _stat(single, name, key), rtol=1e-9
                )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("parts", [2, 3])
def test_unkeyed_traffic_merges_exactly(seed: int, parts: int) -> None:
    events = _events(seed + 100)
    rng = np.random.default_rng(seed)
    where = rng.integers(0, parts, len(events))
    split = {p: [e for e, w in zip(events, where, strict=True) if w == p] for p in range(parts)}
    snap = _run(split, seed).snapshot()
    latest = _latest_windows(events)
    for key in _real_keys(snap):
        mine = [(t, s) for k, t, s in events if _in_cell(key, k)]
        assert _stat(snap, "events_total", key) == len(mine)
        assert _stat(snap, "last_event_time", key) == max(t for t, _s in mine)
        x = np.array([s for t, s in mine if math.floor(t / SIZE) == latest[key[0]]])
        assert _stat(snap, "window_count", key) == len(x)
        if len(x):
            assert _stat(snap, "window_mean", key) == pytest.approx(np.mean(x), rel=1e-9)
        else:
            assert math.isnan(_stat(snap, "window_mean", key))
        if len(x) > 1:
            assert _stat(snap, "window_variance", key) == pytest.approx(np.var(x, ddof=1), rel=1e-9)
        else:
            assert math.isnan(_stat(snap, "window_variance", key))
        # Rolling: the merge of the last ROLL values of the cell in each partition.
        tails = np.concatenate(
            [
                np.array([s for k, _t, s in split[p] if _in_cell(key, k)][-ROLL:])
                for p in range(parts)
            ]
        )
        assert _stat(snap, "rolling_count", key) == len(tails)
        assert _stat(snap, "rolling_mean", key) == pytest.approx(np.mean(tails), rel=1e-9)
        if len(tails) > 1:
            assert _stat(snap, "rolling_variance", key) == pytest.approx(
                np.var(tails, ddof=1), rel=1e-9
            )
    for m, w in latest.items():
        assert snap.window_start[m] == w * SIZE
        assert snap.window_end[m] == (w + 1) * SIZE


def _apply(rs: ReplicaState, part: int, keys: list[Key], times: list[float]) -> None:
    rs.apply(("t", part), keys, np.array(times), np.ones(len(keys)), next_offset=len(keys))


def test_window_reported_only_when_no_partition_holds_it_open() -> None:
    rs = ReplicaState(SETTINGS)
    _apply(rs, 0, [("m", "a"), ("m", "a")], [1.0, 25.0])  # p0: window 0 closed, 2 open
    _apply(rs, 1, [("m", "b")], [2.0])  # p1: window 0 open
    snap = rs.snapshot()
    assert "m" not in snap.window_start
    assert snap.window_count.tolist() == [0] * len(snap.keys)
    assert np.isnan(snap.window_mean).all() and np.isnan(snap.window_variance).all()
    _apply(rs, 1, [("m", "b")], [30.0])  # p1 closes window 0 too
    snap = rs.snapshot()
    assert (snap.window_start["m"], snap.window_end["m"]) == (0.0, SIZE)
    assert _stat(snap, "window_count", ("m", "a")) == 1
    assert _stat(snap, "window_count", ("m", "b")) == 1
    assert _stat(snap, "window_count", ("m", ALL)) == 2


def test_window_open_only_in_a_partition_without_the_models_data_does_not_block_it() -> None:
    """DESIGN-NOTES: reported once every partition that holds data *for it* has closed it."""
    rs = ReplicaState(SETTINGS)
    _apply(rs, 0, [("m", "a"), ("m", "a")], [1.0, 25.0])
    _apply(rs, 1, [("n", "a")], [3.0])
    snap = rs.snapshot()
    assert snap.window_start == {"m": 0.0}
    assert "n" not in snap.window_start  # n's window 0 is still open in partition 1


def test_window_open_in_a_partition_with_the_models_data_blocks_it() -> None:
    rs = ReplicaState(SETTINGS)
    _apply(rs, 0, [("m", "a"), ("m", "a")], [1.0, 25.0])
    _apply(rs, 1, [("m", "b")], [3.0])
    snap = rs.snapshot()
    assert "m" not in snap.window_start
    rs.revoke(("t", 1))
    assert rs.snapshot().window_start == {"m": 0.0}


def test_each_model_exports_its_latest_reported_window() -> None:
    rs = ReplicaState(SETTINGS)
    _apply(rs, 0, [("m", "a"), ("n", "a"), ("m", "b"), ("x", "x")], [1.0, 2.0, 12.0, 100.0])
    snap = rs.snapshot()
    assert snap.window_start == {"m": 10.0, "n": 0.0}
    assert snap.window_end == {"m": 20.0, "n": 10.0}
    # ("m", "a") had no event in m's latest window: count 0, NaN statistics.
    assert _stat(snap, "window_count", ("m", "a")) == 0
    assert math.isnan(_stat(snap, "window_mean", ("m", "a")))
    assert math.isnan(_stat(snap, "window_variance", ("m", "a")))
    assert _stat(snap, "window_count", ("m", "b")) == 1
    assert _stat(snap, "window_mean", ("m", "b")) == 1.0
    assert _stat(snap, "window_count", ("n", "a")) == 1
    assert _stat(snap, "window_count", ("x", "x")) == 0  # its window is still open
    assert "x" not in snap.window_start


def test_revoke_drops_a_partition() -> None:
    rs = ReplicaState(SETTINGS)
    _apply(rs, 0, [("m", "a")] * 3, [1.0, 2.0, 3.0])
    _apply(rs, 1, [("m", "a")] * 2, [1.0, 2.0])
    rs.ingest.lag[("t", 1)] = 5
    rs.refresh()
    assert _stat(rs.snapshot(), "events_total", ("m", "a")) == 5
    state = rs.revoke(("t", 1))
    assert state is not None and int(state.events.sum()) > 0
    assert rs.revoke(("t", 1)) is None
    assert ("t", 1) not in rs.ingest.lag
    snap = rs.snapshot()
    assert set(snap.partitions) == {("t", 0)}
    assert _stat(snap, "events_total", ("m", "a")) == 3
    assert _stat(snap, "rolling_count", ("m", "a")) == 3
    # Re-assigning the returned state brings its cells back.
    rs.assign(("t", 1), state)
    assert _stat(rs.snapshot(), "events_total", ("m", "a")) == 5


def test_assign_and_apply_to_unassigned_partition() -> None:
    rs = ReplicaState(SETTINGS)
    p = rs.assign(("t", 0))
    assert rs.assign(("t", 0)) is p
    _apply(rs, 4, [("m", "a")], [1.0])
    assert set(rs.partitions) == {("t", 0), ("t", 4)}
    assert rs.snapshot().partitions == {("t", 0): None, ("t", 4): 1}


def _snap_equal(a: Snapshot, b: Snapshot) -> None:
    for f in dataclasses.fields(Snapshot):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, f.name


def test_snapshot_does_not_change_state() -> None:
    rs = ReplicaState(SETTINGS)
    rng = np.random.default_rng(0)
    events = _events(3, 200)
    _feed(rs, 0, events[:100], rng)
    _feed(rs, 1, events[100:], rng)
    rs.refresh()
    _apply(rs, 0, [("m1", "a")], [events[99][1]])  # leaves a dirty rolling row
    before = {k: p.to_dict() for k, p in rs.partitions.items()}
    rolling = {k: p.rolling.moments(len(rs.registry)) for k, p in rs.partitions.items()}
    n_cells = len(rs.registry)
    s1 = rs.snapshot()
    s2 = rs.snapshot()
    _snap_equal(s1, s2)
    assert {k: p.to_dict() for k, p in rs.partitions.items()} == before
    for k, p in rs.partitions.items():
        for x, y in zip(rolling[k], p.rolling.moments(len(rs.registry)), strict=True):
            np.testing.assert_array_equal(x, y)
    assert len(rs.registry) == n_cells


def test_late_by_model() -> None:
    rs = ReplicaState(SETTINGS)
    _apply(rs, 0, [("m", "a"), ("m", "a"), ("m", "b"), ("n", "a")], [50.0, 1.0, 2.0, 3.0])
    _apply(rs, 1, [("n", "a"), ("n", "b")], [50.0, 1.0])
    _apply(rs, 1, [("o", "a")], [60.0])
    snap = rs.snapshot()
    assert snap.late_by_model() == {"m": 2, "n": 2, "o": 0}
    expected = collections.Counter({("m", "a"): 1, ("m", "b"): 1, ("n", "a"): 1, ("n", "b"): 1})
    for i, key in enumerate(snap.keys):
        assert snap.late_total[i] == expected.get(key, 0)


def test_late_by_model_empty() -> None:
    assert ReplicaState(SETTINGS).snapshot().late_by_model() == {}


def test_ingest_stats_are_copied() -> None:
    rs = ReplicaState(SETTINGS)
    rs.ingest.read = 10
    rs.ingest.invalid["bad_json"] = 3
    rs.ingest.dead_letter_failures["bad_json"] = 1
    rs.ingest.lag[("t", 0)] = 7
    snap = rs.snapshot()
    assert snap.ingest == rs.ingest
    assert snap.ingest is not rs.ingest
    snap.ingest.read = 99
    snap.ingest.invalid["bad_json"] = 100
    snap.ingest.invalid["other"] = 1
    snap.ingest.dead_letter_failures.clear()
    snap.ingest.lag[("t", 0)] = 0
    assert rs.ingest.read == 10
    assert rs.ingest.invalid == {"bad_json": 3}
    assert rs.ingest.dead_letter_failures == {"bad_json": 1}
    assert rs.ingest.lag == {("t", 0): 7}


def test_snapshot_overflow_and_metadata() -> None:
    rs = ReplicaState(dataclasses.replace(SETTINGS, max_cells=1))
    _apply(rs, 0, [("m", "a"), ("m", "b"), ("m", "c")], [1.0, 2.0, 3.0])
    snap = rs.snapshot()
    assert snap.overflow == {"m": 2}
    assert snap.dimensions == ("segment",)
    assert snap.model_names == ["m"]
    assert snap.is_leaf.tolist() == [ALL not in k for k in snap.keys]
    rs.registry.overflow["m"] = 50
    assert snap.overflow == {"m": 2}


def test_snapshot_cell_absent_raises_key_error() -> None:
    snap = ReplicaState(SETTINGS).snapshot()
    with pytest.raises(KeyError):
        snap.cell(("nope", "x"))


def test_window_statistics_are_cached_until_a_window_closes() -> None:
    rs = ReplicaState(SETTINGS)
    _apply(rs, 0, [("m", "a"), ("m", "b"), ("m", "a")], [1.0, 2.0, 25.0])
    first = rs.snapshot()
    cached = rs.window_cache
    assert cached is not None
    _apply(rs, 0, [("m", "a")], [26.0])  # same open window: the reported one is unchanged
    second = rs.snapshot()
    assert rs.window_cache is cached
    rs.window_cache = None  # a fresh computation gives the same numbers
    fresh = rs.snapshot()
    for snap in (second, fresh):
        np.testing.assert_array_equal(snap.window_count, first.window_count)
        np.testing.assert_array_equal(snap.window_mean, first.window_mean)
    _apply(rs, 0, [("m", "b")], [45.0])  # closes window 2: the view must follow
    third = rs.snapshot()
    assert rs.window_cache is not cached
    assert third.window_start == {"m": 20.0}


def test_a_past_window_has_the_snapshots_score_statistics_for_each_window() -> None:
    """What the forecasts' catch-up reads of each past window (:func:`past_window`, without
    latency, counts or rolling statistics) is the full snapshot's up to that window."""
    rs = ReplicaState(SETTINGS)
    keys = [("m", "a"), ("m", "b"), ("m", "a"), ("m", "a"), ("n", "a"), ("m", "b")]
    times = np.array([1.0, 2.0, 3.0, 12.0, 14.0, 35.0])
    scores = np.array([0.2, 0.4, 0.6, 0.8, 0.1, 0.3])
    rs.apply(("t", 0), keys, times, scores, 6, latencies=[5, 50, 7, 9, 3, 4])
    for w in (0, 1, 2):
        full, light = rs.snapshot(upto=w), past_window(rs, w)
        assert light.window_end == full.window_end and light.model_names == full.model_names
        np.testing.assert_array_equal(light.window_mean, full.window_mean)
        np.testing.assert_array_equal(light.model_ids, full.model_ids)
    assert past_window(rs, 1).window_end == {"m": 20.0, "n": 20.0}
    assert float(past_window(rs, 0).window_mean[full.cell(("m", "a"))]) == pytest.approx(0.4)


def test_sum_rows_adds_each_cells_rows_over_the_pieces() -> None:
    rng = np.random.default_rng(8)
    n = 50
    pieces = []
    dense = np.zeros((n, 7), dtype=np.int64)
    for width in (7, 5, 7):
        cells = rng.choice(n, 20, replace=False)
        rows = rng.integers(0, 200, (20, width)).astype(np.uint8)
        dense[cells, :width] += rows
        pieces.append((cells, rows))
    cells, table = sum_rows(pieces, n)
    assert len(set(cells.tolist())) == len(cells)
    assert set(cells.tolist()) == set(np.flatnonzero(dense.sum(axis=1) > 0).tolist())
    np.testing.assert_array_equal(table, dense[cells])
    empty_cells, empty = sum_rows([], n)
    assert len(empty_cells) == 0 and empty.shape == (0, 0)


def test_latency_of_cells_read_where_they_are_equals_the_summed_table() -> None:
    """A cell's latency quantiles read from its one piece (a leaf) or from its rows summed
    over several (a roll-up) are those of the table of every cell's rows summed."""
    rng = np.random.default_rng(10)
    n = 400
    pieces = []
    for p, dtype in enumerate((np.uint8, np.int32, np.uint16)):
        leaves = np.arange(p, 360, 3)  # each leaf in one piece
        rollups = rng.choice(np.arange(360, n), 25, replace=False)  # some in several
        cells = rng.permutation(np.r_[leaves, rollups])
        rows = (
            rng.integers(0, 3, (len(cells), LATENCY_BINS)) * (rng.random(len(cells)) < 0.9)[:, None]
        )
        pieces.append((cells, rows.astype(dtype)))
    qs = (0.5, 0.9, 0.99)
    got = latency_by_cell(pieces, n, qs)
    cells, table = sum_rows(pieces, n)
    for q, values, res in zip(qs, latency_quantiles_many(table, qs), got, strict=True):
        want = np.full(n, np.nan)
        want[cells] = values
        assert np.array_equal(res, want, equal_nan=True), q
    assert np.isnan(got[0]).sum() > 10 and (~np.isnan(got[0])).sum() > 300
    assert all(np.isnan(q).all() for q in latency_by_cell([], n, qs))


def test_window_latency_percentiles_over_two_partitions_are_the_merged_histograms() -> None:
    """Roll-up cells hold events of both partitions: their latency percentiles are those of
    the histograms added together (the compact merge), a cell without latency NaN."""
    rs = ReplicaState(SETTINGS)
    rng = np.random.default_rng(9)
    raw: dict[tuple[str, ...], list[float]] = collections.defaultdict(list)
    for p in (0, 1):
        keys = [("m", f"s{p}{i % 4}") for i in range(40)]
        lat = rng.lognormal(3.0 + p, 0.5, 40).tolist()
        rs.apply(("t", p), keys, np.linspace(1.0, 9.0, 40), rng.random(40), 40, latencies=lat)
        rs.apply(("t", p), [("m", "late")], np.array([25.0]), np.array([0.5]), 41)
        for k, v in zip(keys, lat, strict=True):
            raw[k].append(v)
            raw[("m", ALL)].append(v)
    snap = rs.snapshot()
    median = snap.window_latency[0.5]
    for key, values in raw.items():
        table = np.zeros((1, LATENCY_BINS), dtype=np.int64)
        np.add.at(table[0], latency_bins(values)[0], 1)
        want = latency_quantiles_many(table, (0.5,))[0][0]
        assert median[snap.cell(key)] == pytest.approx(want), key
    assert np.isnan(median[snap.cell(("m", "late"))])  # its window is still open
