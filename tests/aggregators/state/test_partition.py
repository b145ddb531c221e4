"""PartitionState: windows, watermark, lateness, roll-ups, checkpoints, retention."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tilewatch.aggregators import (
    ALL,
    CellRegistry,
    CellSettings,
    PartitionState,
    ReplicaState,
    StateError,
)
from tilewatch.aggregators.state.partition import RETAIN_CLOSED

SIZE, GRACE, ROLL = 10.0, 3.0, 8
BASE = 1_700_000_000.0
SETTINGS = CellSettings(
    dimensions=("segment", "region"), window_seconds=SIZE, grace_seconds=GRACE, rolling_events=ROLL
)

Key = tuple[str, ...]


def _part(settings: CellSettings = SETTINGS) -> PartitionState:
    return PartitionState(CellRegistry(settings))


def _apply(p: PartitionState, keys: list[Key], times: list[float], scores: list[float]) -> Any:
    return p.apply(keys, np.array(times, dtype=float), np.array(scores, dtype=float))


def _variants(leaf: Key) -> list[Key]:
    d = len(leaf) - 1
    return [
        (leaf[0], *(ALL if m[i] else leaf[1 + i] for i in range(d)))
        for m in itertools.product([False, True], repeat=d)
    ]


def _random_batches(
    seed: int, n_batches: int = 12
) -> list[tuple[list[Key], list[float], list[float]]]:
    """Mostly increasing event times with stragglers up to a few windows back."""
    rng = np.random.default_rng(seed)
    leaves = [(m, s, r) for m in ("m1", "m2") for s in ("a", "b", "c") for r in ("x", "y")]
    t = BASE + float(rng.uniform(0, SIZE))
    out = []
    for _ in range(n_batches):
        n = int(rng.integers(1, 60))
        keys, times = [], []
        for _ in range(n):
            t += float(rng.exponential(0.4))
            if rng.random() < 0.04:
                t += float(rng.uniform(0, 3 * SIZE))  # a jump
            back = float(rng.exponential(4.0)) if rng.random() < 0.3 else 0.0
            times.append(t - back)
            keys.append(leaves[int(rng.integers(len(leaves)))])
        out.append((keys, times, rng.normal(0.5, 0.2, n).tolist()))
    return out


class Reference:
    """Event-at-a-time reference of the partition's rules, in plain Python."""

    def __init__(self) -> None:
        self.max_seen = -math.inf
        self.valid: list[tuple[Key, float, float, int]] = []
        self.late: collections.Counter[Key] = collections.Counter()

    def feed(self, keys: list[Key], times: list[float], scores: list[float]) -> tuple[int, int]:
        v = lt = 0
        for k, t, s in zip(keys, times, scores, strict=True):
            w = math.floor(t / SIZE)
            if (w + 1) * SIZE <= self.max_seen - GRACE:
                self.late[k] += 1
                lt += 1
            else:
                self.valid.append((k, t, s, w))
                v += 1
            self.max_seen = max(self.max_seen, t)
        return v, lt

    def cell_events(self, cell: Key, window: int | None = None) -> list[tuple[float, float]]:
        return [
            (t, s)
            for k, t, s, w in self.valid
            if (window is None or w == window) and cell in _variants(k)
        ]


def _feed_both(seed: int) -> tuple[PartitionState, Reference]:
    p, ref = _part(), Reference()
    for keys, times, scores in _random_batches(seed):
        res = _apply(p, keys, times, scores)
        assert (res.valid, res.late) == ref.feed(keys, times, scores)
        assert res.valid + res.late == len(keys)
    return p, ref


# -- windows and watermark -------------------------------------------------------------------


def test_window_assignment_is_epoch_aligned() -> None:
    p = _part(CellSettings(dimensions=("s",), window_seconds=SIZE, grace_seconds=1e10))
    times = [0.0, 9.999, 10.0, -0.5, 25.0, BASE + 0.1]
    _apply(p, [("m", "a")] * len(times), times, [1.0] * len(times))
    assert sorted(p.open) == sorted({math.floor(t / SIZE) for t in times})
    assert sorted(p.open) == [-1, 0, 1, 2, int(BASE // SIZE)]
    i = p.registry.lookup(("m", "a"))
    assert p.open[0].count[i] == 2 and p.open[1].count[i] == 1


def test_watermark() -> None:
    p = _part()
    assert p.watermark == -math.inf
    _apply(p, [("m", "a", "x")] * 3, [5.0, 17.0, 12.0], [0.0] * 3)
    assert p.max_event_time == 17.0
    assert p.watermark == 17.0 - GRACE


@pytest.mark.parametrize(("t", "closed"), [(12.999, False), (13.0, True), (13.001, True)])
def test_window_closes_exactly_when_watermark_reaches_end(t: float, closed: bool) -> None:
    p = _part()
    _apply(p, [("m", "a", "x")], [1.0], [0.5])
    _apply(p, [("m", "a", "x")], [t], [0.5])
    assert (0 in p.closed) is closed
    assert (0 in p.open) is not closed
    assert 1 in p.open


def test_late_event_counted_in_its_leaf_only() -> None:
    p = _part()
    leaf = ("m", "a", "x")
    _apply(p, [leaf, ("m", "b", "y")], [1.0, 13.0], [0.25, 0.75])  # watermark 10: window 0 closed
    before = p.to_dict()
    rolling_before = {c: p.rolling.values(c).tolist() for c in range(len(p.registry))}
    res = _apply(p, [leaf], [9.99], [100.0])  # window 0 ends at 10 <= watermark: late
    assert (res.valid, res.late) == (0, 1)
    i = p.registry.lookup(leaf)
    assert p.late[i] == 1
    assert int(p.late.sum()) == 1
    after = p.to_dict()
    for name in ("open", "closed", "rolling", "max_event_time"):
        assert after[name] == before[name]
    changed = [c for c, b in zip(after["cells"], before["cells"], strict=True) if c != b]
    assert changed == [[list(leaf), 1, 1, 1.0]]
    assert {c: p.rolling.values(c).tolist() for c in range(len(p.registry))} == rolling_before
    # An event for the next window, which is still open, is not late.
    assert _apply(p, [leaf], [10.0], [0.5]).late == 0


def test_late_event_into_a_cell_never_seen() -> None:
    p = _part()
    _apply(p, [("m", "a", "x")], [100.0], [0.5])
    assert _apply(p, [("m", "new", "z")], [5.0], [0.5]).late == 1
    i = p.registry.lookup(("m", "new", "z"))
    assert p.late[i] == 1 and p.events[i] == 0
    j = p.registry.lookup(("m", ALL, ALL))
    assert p.late[j] == 0 and p.events[j] == 1


def test_lateness_is_sequential_within_a_batch() -> None:
    leaf = ("m", "a", "x")
    p = _part()
    # early event, a jump, then an old-window event: late; the one before the jump is not.
    res = _apply(p, [leaf] * 4, [1.0, 2.0, 50.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert (res.valid, res.late) == (3, 1)
    i = p.registry.lookup(leaf)
    assert p.closed[0].count[i] == 2
    assert p.closed[0].mean[i] == 1.5
    q = _part()
    res = _apply(q, [leaf] * 3, [1.0, 2.0, 50.0], [1.0, 2.0, 3.0])
    assert res.late == 0


@pytest.mark.parametrize("seed", range(6))
def test_batch_equals_one_event_at_a_time(seed: int) -> None:
    batched, single = _part(), _part()
    for keys, times, scores in _random_batches(seed):
        batched_res = _apply(batched, keys, times, scores)
        lates = sum(
            _apply(single, [k], [t], [s]).late for k, t, s in zip(keys, times, scores, strict=True)
        )
        assert batched_res.late == lates
    a, b = _normalise(batched.to_dict()), _normalise(single.to_dict())
    assert a["cells"] == b["cells"]
    assert a["max_event_time"] == b["max_event_time"]
    assert a["rolling"] == b["rolling"]
    for name in ("open", "closed"):
        assert a[name].keys() == b[name].keys()
        for w in a[name]:
            assert a[name][w].keys() == b[name][w].keys()
            for key, (c, m, s) in a[name][w].items():
                c2, m2, s2 = b[name][w][key]
                assert c == c2
                assert m == pytest.approx(m2, rel=1e-12)
                assert s == pytest.approx(s2, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("seed", range(6))
def test_window_statistics_vs_numpy(seed: int) -> None:
    p, ref = _feed_both(seed)
    reg = p.registry
    windows = {**p.open, **p.closed}
    assert set(windows) >= {w for _k, _t, _s, w in ref.valid if w >= max(windows) - RETAIN_CLOSED}
    checked = 0
    for w, acc in windows.items():
        for i, cell in enumerate(reg.keys):
            got = acc.sized(len(reg))
            x = np.array([s for _t, s in ref.cell_events(cell, w)])
            assert got[0][i] == len(x)
            if len(x):
                assert got[1][i] == pytest.approx(np.mean(x), rel=1e-12)
            if len(x) > 1:
                assert got[2][i] / (len(x) - 1) == pytest.approx(np.var(x, ddof=1), rel=1e-9)
                checked += 1
    assert checked > 10


@pytest.mark.parametrize("seed", range(4))
def test_rollups_equal_their_leaves(seed: int) -> None:
    p, ref = _feed_both(seed)
    reg = p.registry
    n = len(reg)
    for i, cell in enumerate(reg.keys):
        events = ref.cell_events(cell)
        assert p.events[i] == len(events)
        assert p.last_event_time[i] == max(t for t, _s in events)
        assert p.rolling.values(i).tolist() == [s for _t, s in events][-ROLL:]
        assert p.late[i] == (ref.late[cell] if reg.is_leaf[i] else 0)
    # every __all__ cell is the merge of its leaves, window by window
    leaves = np.flatnonzero(reg.is_leaf)
    for acc in [*p.open.values(), *p.closed.values()]:
        c, m, _s = acc.sized(n)
        for i in np.flatnonzero(~reg.is_leaf).tolist():
            mine = [j for j in leaves.tolist() if i in reg.rollups[j].tolist()]
            assert c[i] == c[mine].sum()
            if c[i]:
                assert m[i] == pytest.approx((c[mine] * m[mine]).sum() / c[i], rel=1e-12)
    total = ref.cell_events(("m1", ALL, ALL)) + ref.cell_events(("m2", ALL, ALL))
    assert len(total) == len(ref.valid)


def test_last_event_time() -> None:
    p = _part()
    _apply(p, [("m", "a", "x"), ("m", "b", "x"), ("m", "a", "x")], [5.0, 7.0, 4.0], [0, 0, 0])
    reg = p.registry
    assert p.last_event_time[reg.lookup(("m", "a", "x"))] == 5.0
    assert p.last_event_time[reg.lookup(("m", "b", "x"))] == 7.0
    assert p.last_event_time[reg.lookup(("m", ALL, "x"))] == 7.0


def test_empty_batch() -> None:
    p = _part()
    res = _apply(p, [], [], [])
    assert (res.valid, res.late) == (0, 0)
    assert p.max_event_time == -math.inf


# -- retention --------------------------------------------------------------------------------


def test_retention_keeps_each_models_latest_window() -> None:
    p = _part()
    _apply(p, [("old", "a", "x")], [5.0], [1.0])
    _apply(p, [("mid", "a", "x")], [SIZE * 3 + 1], [1.0])
    for w in range(5, 5 + 3 * RETAIN_CLOSED):
        _apply(p, [("busy", "a", "x")], [w * SIZE + 1.0], [1.0])
    assert len(p.closed) <= RETAIN_CLOSED + 2
    last = 5 + 3 * RETAIN_CLOSED - 1  # window of the last event: it and the one before are open
    assert sorted(p.open) == [last - 1, last]
    newest = sorted(p.closed)[-RETAIN_CLOSED:]
    assert newest == list(range(last - 1 - RETAIN_CLOSED, last - 1))
    assert 0 in p.closed and 3 in p.closed
    mid = p.registry.model_names.index("mid")
    old = p.registry.model_names.index("old")
    assert p.window_models(3) == {mid}
    assert p.window_models(0) == {old}
    for w in p.closed:
        assert w in (0, 3) or w in newest


# -- checkpoints ------------------------------------------------------------------------------


def _normalise(d: dict[str, Any]) -> dict[str, Any]:
    """to_dict output keyed by cell key, so it does not depend on the registry's indices."""
    return {
        "offset": d["offset"],
        "max_event_time": d["max_event_time"],
        "cells": {tuple(k): (e, lt, ts) for k, e, lt, ts in d["cells"]},
        "open": {w: {tuple(k): (c, m, s) for k, c, m, s in cs} for w, cs in d["open"]},
        "closed": {w: {tuple(k): (c, m, s) for k, c, m, s in cs} for w, cs in d["closed"]},
        "rolling": (
            d["rolling"]["size"],
            d["rolling"]["block"],
            {tuple(k): (t, m, s) for k, t, m, s in d["rolling"]["cells"]},
        ),
    }


def _by_key(p: PartitionState) -> dict[Key, tuple[Any, ...]]:
    """Per-cell state by key; rolling mean/m2 rounded (a restored ring sums in another order)."""
    reg = p.registry
    p.rolling.refresh()
    rc, rm, rs = p.rolling.moments(len(reg))
    out = {}
    for i, key in enumerate(reg.keys):
        if i < len(p.events) and (p.events[i] or p.late[i]):
            out[key] = (
                int(p.events[i]),
                int(p.late[i]),
                float(p.last_event_time[i]),
                int(rc[i]),
                round(float(rm[i]), 10),
                round(float(rs[i]), 10),
                p.rolling.values(i).tolist(),
            )
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("prefill", [False, True])
def test_to_dict_from_dict_round_trip(seed: int, prefill: bool) -> None:
    p, _ref = _feed_both(seed)
    p.offset = 1234
    data = p.to_dict()
    json.loads(json.dumps(data))  # plain data
    reg = CellRegistry(SETTINGS)
    other = None
    if prefill:  # a registry that already has other cells, so indices differ
        other = PartitionState(reg)
        _apply(other, [("zz", "q", "r"), ("m2", "c", "q")], [BASE, BASE], [1.0, 2.0])
    back = PartitionState.from_dict(reg, data)
    assert back.offset == 1234
    assert back.max_event_time == p.max_event_time
    assert _normalise(back.to_dict()) == _normalise(data)
    assert _by_key(back) == _by_key(p)
    for name in ("open", "closed"):
        assert sorted(getattr(back, name)) == sorted(getattr(p, name))
    if prefill:
        assert reg.lookup(("zz", "q", "r")) == 0
        assert other is not None and _by_key(other)[("zz", "q", "r")][0] == 1
    # The restored partition carries on exactly like the original.
    more = [p.max_event_time + 1, p.max_event_time - 50]
    for q in (p, back):
        assert _apply(q, [("m1", "a", "x")] * 2, more, [0.1, 0.2]).late == 1
    assert _normalise(back.to_dict()) == _normalise(p.to_dict())
    # Snapshots agree by key.
    snaps = []
    for q in (p, back):
        rs = ReplicaState(SETTINGS)
        rs.registry = q.registry
        rs.assign(("t", 0), q)
        snaps.append(rs.snapshot())
    for key in p.registry.keys:
        i, j = snaps[0].cell(key), snaps[1].cell(key)
        for name in ("events_total", "late_total", "window_count", "rolling_count"):
            assert getattr(snaps[0], name)[i] == getattr(snaps[1], name)[j]
        for name in ("window_mean", "window_variance", "rolling_mean", "rolling_variance"):
            np.testing.assert_allclose(getattr(snaps[1], name)[j], getattr(snaps[0], name)[i])


def test_empty_round_trip() -> None:
    p = _part()
    data = p.to_dict()
    assert data["max_event_time"] is None and data["offset"] is None
    back = PartitionState.from_dict(CellRegistry(SETTINGS), data)
    assert back.max_event_time == -math.inf and not back.open and not back.closed


def test_to_dict_is_strict_json_with_late_only_cell() -> None:
    p = _part()
    _apply(p, [("m", "a", "x")], [100.0], [1.0])
    _apply(p, [("m", "b", "y")], [5.0], [1.0])  # late, in a new cell
    json.dumps(p.to_dict(), allow_nan=False)


def _valid_data() -> dict[str, Any]:
    p, _ = _feed_both(0)
    p.offset = 7
    return p.to_dict()


VALID = _valid_data()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(min_value=-1e15, max_value=1e15, allow_nan=False)
    | st.text(max_size=5)
)
json_like = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)


def _mutate(data: Any, path: list[int], replacement: Any, delete: bool) -> Any:
    """Replace (or delete) the node reached by following ``path`` (indices mod length)."""
    if not path or not isinstance(data, (list, dict)) or not data:
        return replacement
    if isinstance(data, dict):
        keys = sorted(data)
        k = keys[path[0] % len(keys)]
        out = dict(data)
        if delete and len(path) == 1:
            del out[k]
        else:
            out[k] = _mutate(data[k], path[1:], replacement, delete)
        return out
    i = path[0] % len(data)
    out_l = list(data)
    if delete and len(path) == 1:
        del out_l[i]
    else:
        out_l[i] = _mutate(data[i], path[1:], replacement, delete)
    return out_l


def _from_dict_raises_only_state_error(data: Any) -> None:
    reg = CellRegistry(SETTINGS)
    with contextlib.suppress(StateError):
        PartitionState.from_dict(reg, data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_like)
def test_from_dict_garbage_raises_state_error(data: Any) -> None:
    reg = CellRegistry(SETTINGS)
    with pytest.raises(StateError):
        PartitionState.from_dict(reg, data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.lists(st.integers(0, 50), min_size=1, max_size=6),
    replacement=json_like,
    delete=st.booleans(),
)
def test_from_dict_mutated_checkpoint_never_other_exception(
    path: list[int], replacement: Any, delete: bool
) -> None:
    _from_dict_raises_only_state_error(_mutate(VALID, path, replacement, delete))


@pytest.mark.parametrize("missing", sorted(set(VALID) - {"classes"}))
def test_from_dict_missing_key(missing: str) -> None:
    data = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(StateError):
        PartitionState.from_dict(CellRegistry(SETTINGS), data)


def test_from_dict_without_class_names() -> None:
    """``classes`` is optional: checkpoints written before it was kept still load."""
    data = {k: v for k, v in VALID.items() if k != "classes"}
    assert "classes" in VALID
    restored = PartitionState.from_dict(CellRegistry(SETTINGS), data)
    assert restored.to_dict() == PartitionState.from_dict(CellRegistry(SETTINGS), VALID).to_dict()


@pytest.mark.parametrize(
    "bad",
    [
        {"max_event_time": "soon"},
        {"cells": 5},
        {"cells": [["m", 1, 2]]},
        {"open": [[0, [[["m", "a", "x"], "many", 0.0, 0.0]]]]},
        {"closed": "x"},
        {"rolling": []},
        {"rolling": {"size": ROLL + 1, "cells": []}},
        {"rolling": {"size": ROLL, "cells": [[["m", "a", "x"], "abc"]]}},
        {"rolling": {"size": ROLL, "cells": [[["m", "a"], [1.0]]]}},
        {"rolling": {"size": ROLL, "block": 2, "cells": []}},  # another block length
        {"rolling": {"size": ROLL, "block": 1, "cells": [[["m", "a", "x"], 2, [1.0], [0.0]]]}},
        {"rolling": {"size": ROLL, "block": 1, "cells": [[["m", "a", "x"], 1, [1.0], [-1.0]]]}},
        {"rolling": {"size": ROLL, "block": 1, "cells": [[["m", "a", "x"], 0, [], []]]}},
    ],
)
def test_from_dict_wrong_types(bad: dict[str, Any]) -> None:
    with pytest.raises(StateError):
        PartitionState.from_dict(CellRegistry(SETTINGS), {**VALID, **bad})


@pytest.mark.parametrize(
    "bad",
    [
        {"max_event_time": 10**400},
        {"cells": [[["m", "a", "x"], 10**30, 0, 1.0]]},
        {"cells": [[["m", "a", "x"], 1, 0, 10**400]]},
        {"open": [[float("inf"), []]]},
        {"rolling": {"size": float("inf"), "cells": []}},
    ],
)
def test_from_dict_overflow_raises_state_error(bad: dict[str, Any]) -> None:
    with pytest.raises(StateError):
        PartitionState.from_dict(CellRegistry(SETTINGS), {**VALID, **bad})


@pytest.mark.parametrize("offset", ["garbage", [1], 1.5])
def test_from_dict_bad_offset_raises_state_error(offset: Any) -> None:
    with pytest.raises(StateError):
        PartitionState.from_dict(CellRegistry(SETTINGS), {**VALID, "offset": offset})


def test_from_dict_into_full_registry_adds_cells_sharing_an_overflow_cell() -> None:
    small = CellSettings(dimensions=("s",), max_cells=100)
    p = PartitionState(CellRegistry(small))
    _apply(p, [("m", "a"), ("m", "b"), ("m", "b")], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    reg = CellRegistry(dataclasses.replace(small, max_cells=1))
    reg.index_many([("m", "z")])
    back = PartitionState.from_dict(reg, p.to_dict())
    other = reg.lookup(("m", "__other__"))
    assert other is not None
    assert back.events[other] == 3
