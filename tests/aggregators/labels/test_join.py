"""LabelJoin: semantics case by case, a reference model under Hypothesis, checkpoints, cost."""

from __future__ import annotations

import copy
import json
import math
import sys
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.labels.join import Joined, JoinSettings, LabelJoin
from tilewatch.aggregators.labels.join_codec import COUNTERS

# -- helpers -----------------------------------------------------------------------------------


def preds(j: LabelJoin, rows: list[tuple[str | None, int, float, float]]) -> list[tuple]:
    """Add predictions ``(id, leaf, time, score)``; the joined pairs as tuples."""
    ids = [r[0] for r in rows]
    out = j.add_predictions(
        ids,
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=float),
        np.array([r[3] for r in rows], dtype=float),
    )
    return pairs(out)


def labels(j: LabelJoin, rows: list[tuple[str, float, float]]) -> list[tuple]:
    """Add labels ``(id, label, label time)``; the joined pairs as tuples."""
    out = j.add_labels(
        [r[0] for r in rows],
        np.array([r[1] for r in rows], dtype=float),
        np.array([r[2] for r in rows], dtype=float),
    )
    return pairs(out)


def pairs(out: Joined) -> list[tuple]:
    assert out.leaf.dtype == np.int64 and out.labels.dtype == np.float64
    n = len(out)
    assert len(out.event_times) == len(out.scores) == len(out.labels) == n
    return list(
        zip(
            out.leaf.tolist(),
            out.event_times.tolist(),
            out.scores.tolist(),
            out.labels.tolist(),
            strict=True,
        )
    )


def counters(j: Any) -> dict[str, int]:
    return {name: getattr(j, name) for name in COUNTERS} | {
        "pending": j.pending,
        "held": j.held,
        "recent": j.recent,
    }


def reconcile(j: LabelJoin, predictions_with_id: int, labels_with_id: int) -> None:
    assert predictions_with_id == (
        j.joined + j.expired + j.evicted + j.pending + j.duplicate_predictions
    )
    assert labels_with_id == j.joined + j.orphaned + j.held + j.duplicate_labels


S = JoinSettings(ttl_seconds=100, max_pending=100, orphan_ttl_seconds=50)

# -- semantics, case by case -------------------------------------------------------------------


def test_settings_defaults_and_validation() -> None:
    assert JoinSettings() == JoinSettings(7200.0, 1_000_000, 600.0)
    for bad in (
        {"ttl_seconds": -1.0},
        {"ttl_seconds": math.nan},
        {"orphan_ttl_seconds": -0.5},
        {"max_pending": 0},
        {"max_pending": 2.5},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            JoinSettings(**bad)


def test_in_order_prediction_then_label() -> None:
    j = LabelJoin(S)
    assert preds(j, [("a", 3, 10.0, 0.9), ("b", 4, 11.0, 0.1)]) == []
    assert (j.pending, j.held) == (2, 0)
    assert labels(j, [("b", 0.0, 30.0), ("a", 1.0, 31.0)]) == [
        (4, 11.0, 0.1, 0.0),
        (3, 10.0, 0.9, 1.0),
    ]
    assert counters(j) == {
        **dict.fromkeys(COUNTERS, 0),
        "joined": 2,
        "pending": 0,
        "held": 0,
        "recent": 2,
    }
    reconcile(j, 2, 2)


def test_label_first_is_held_then_joins_when_the_prediction_comes() -> None:
    j = LabelJoin(S)
    assert labels(j, [("a", 1.0, 5.0), ("b", 0.0, 6.0)]) == []
    assert (j.pending, j.held, j.joined) == (0, 2, 0)
    # Mixed batch: "a" joins at once, "c" waits.
    assert preds(j, [("c", 1, 20.0, 0.3), ("a", 2, 21.0, 0.8)]) == [(2, 21.0, 0.8, 1.0)]
    assert (j.pending, j.held, j.joined, j.recent) == (1, 1, 1, 1)
    reconcile(j, 2, 2)


def test_duplicate_predictions_first_kept() -> None:
    j = LabelJoin(S)
    preds(j, [("a", 1, 10.0, 0.1), ("a", 2, 11.0, 0.2)])  # repeated in the batch
    preds(j, [("a", 3, 12.0, 0.3)])  # already pending
    assert (j.pending, j.duplicate_predictions) == (1, 2)
    assert labels(j, [("a", 1.0, 20.0)]) == [(1, 10.0, 0.1, 1.0)]  # the first one joined
    preds(j, [("a", 4, 13.0, 0.4)])  # already joined (recent)
    assert (j.pending, j.duplicate_predictions, j.joined) == (0, 3, 1)
    reconcile(j, 4, 1)


def test_duplicate_labels_first_kept() -> None:
    j = LabelJoin(S)
    labels(j, [("a", 1.0, 5.0), ("a", 0.0, 6.0)])  # repeated in the batch
    labels(j, [("a", 0.0, 7.0)])  # already held
    assert (j.held, j.duplicate_labels) == (1, 2)
    assert preds(j, [("a", 0, 10.0, 0.5)]) == [(0, 10.0, 0.5, 1.0)]  # the first label
    labels(j, [("a", 0.0, 8.0)])  # already joined
    preds(j, [("b", 0, 11.0, 0.5)])
    labels(j, [("b", 1.0, 9.0), ("b", 0.0, 9.0)])  # joins, then a duplicate in the same batch
    assert (j.joined, j.duplicate_labels, j.held) == (2, 4, 0)
    reconcile(j, 2, 6)


def test_missing_ids_are_counted_and_ignored() -> None:
    j = LabelJoin(S)
    preds(j, [(None, 0, 1.0, 0.5), ("a", 0, 2.0, 0.5), (None, 1, 3.0, 0.5)])
    assert (j.missing_id, j.pending) == (2, 1)
    j.add_labels([None, "a"], np.array([1.0, 1.0]), np.array([4.0, 4.0]))  # type: ignore[list-item]
    assert (j.missing_id, j.joined, j.held) == (3, 1, 0)
    reconcile(j, 1, 1)


def test_empty_batches_do_nothing() -> None:
    j = LabelJoin(S)
    assert preds(j, []) == [] and labels(j, []) == []
    assert counters(j) == {**dict.fromkeys(COUNTERS, 0), "pending": 0, "held": 0, "recent": 0}


def test_expiry_exactly_at_the_boundary() -> None:
    j = LabelJoin(S)  # ttl 100
    preds(j, [("a", 0, 10.0, 0.5), ("b", 0, 20.0, 0.5)])
    j.expire(110.0)  # cutoff 10: "a" (time 10) is not before it
    assert (j.pending, j.expired) == (2, 0)
    j.expire(110.5)
    assert (j.pending, j.expired) == (1, 1)
    assert labels(j, [("a", 1.0, 111.0)]) == []  # too late: held as a label with no prediction
    assert labels(j, [("b", 1.0, 111.0)]) == [(0, 20.0, 0.5, 1.0)]
    reconcile(j, 2, 2)


def test_orphan_expiry_exactly_at_the_boundary() -> None:
    j = LabelJoin(S)  # orphan ttl 50
    labels(j, [("a", 1.0, 10.0), ("b", 0.0, 30.0)])
    j.expire(60.0)
    assert (j.held, j.orphaned) == (2, 0)
    j.expire(60.25)
    assert (j.held, j.orphaned) == (1, 1)
    assert preds(j, [("a", 0, 61.0, 0.5)]) == []  # its label is gone: pending now
    assert preds(j, [("b", 0, 62.0, 0.5)]) == [(0, 62.0, 0.5, 0.0)]
    reconcile(j, 2, 2)


def test_joined_ids_are_forgotten_after_the_ttl() -> None:
    j = LabelJoin(S)
    preds(j, [("a", 0, 10.0, 0.5)])
    labels(j, [("a", 1.0, 12.0)])
    j.expire(110.0)
    preds(j, [("a", 0, 10.0, 0.5)])  # still remembered: a duplicate
    assert (j.recent, j.duplicate_predictions, j.pending) == (1, 1, 0)
    j.expire(111.0)
    assert j.recent == 0
    preds(j, [("a", 0, 10.0, 0.5)])  # forgotten: a new prediction (that expires next time)
    assert (j.duplicate_predictions, j.pending) == (1, 1)
    j.expire(111.0)
    assert (j.pending, j.expired) == (0, 1)
    reconcile(j, 3, 1)


def test_out_of_order_entry_expires_with_the_newer_one_before_it() -> None:
    j = LabelJoin(S)
    preds(j, [("new", 0, 50.0, 0.5), ("old", 0, 5.0, 0.5)])
    j.expire(140.0)  # cutoff 40: "old" is past it but waits behind "new" (documented)
    assert (j.pending, j.expired) == (2, 0)
    j.expire(151.0)  # cutoff 51: both go, each counted once
    assert (j.pending, j.expired) == (0, 2)
    j.expire(1000.0)
    assert j.expired == 2
    reconcile(j, 2, 0)


def test_budget_evicts_oldest_pending_then_oldest_held() -> None:
    j = LabelJoin(JoinSettings(ttl_seconds=100, max_pending=3, orphan_ttl_seconds=50))
    labels(j, [("x", 1.0, 1.0)])
    preds(j, [("a", 0, 1.0, 0.5), ("b", 0, 2.0, 0.5)])
    assert (j.pending, j.held, j.evicted) == (2, 1, 0)
    preds(j, [("c", 0, 0.5, 0.5)])  # 4 > 3: the oldest registered ("a") goes, not the earliest
    assert (j.pending, j.evicted) == (2, 1)
    assert labels(j, [("a", 1.0, 3.0)]) == []  # evicted: its label is now held
    # held 2 + pending 2 = 4 > 3 again: "b" is evicted.
    assert (j.pending, j.held, j.evicted) == (1, 2, 2)
    assert labels(j, [("c", 0.0, 3.0)]) == [(0, 0.5, 0.5, 0.0)]
    labels(j, [("y", 1.0, 4.0), ("z", 1.0, 4.0)])  # no pending left: the oldest labels go
    assert (j.pending, j.held, j.orphaned) == (0, 3, 1)
    # "x" was the oldest held label (orphaned): "x" is pending, and over the budget it is the
    # oldest (only) pending prediction, so it is evicted before any held label.
    assert preds(j, [("x", 0, 9.0, 0.5)]) == []
    assert (j.pending, j.held, j.orphaned, j.evicted) == (0, 3, 1, 3)
    reconcile(j, 4, 5)


def test_recently_joined_ids_are_bounded_by_the_budget() -> None:
    j = LabelJoin(JoinSettings(ttl_seconds=1e6, max_pending=2))
    for eid in "abc":
        preds(j, [(eid, 0, 1.0, 0.5)])
        labels(j, [(eid, 1.0, 1.0)])
    assert (j.joined, j.recent) == (3, 2)
    preds(j, [("a", 0, 1.0, 0.5), ("b", 0, 1.0, 0.5)])  # "a" forgotten: new; "b" duplicate
    assert (j.pending, j.duplicate_predictions) == (1, 1)
    reconcile(j, 5, 3)


def test_nbytes_grows_with_entries() -> None:
    j = LabelJoin(S)
    empty = j.nbytes()
    preds(j, [(f"id-{i}", 0, 1.0, 0.5) for i in range(50)])
    assert j.nbytes() > empty + 50 * (sys.getsizeof("id-00") + 24)


# -- a reference model under random interleavings ----------------------------------------------


class Reference:
    """The documented semantics, one event at a time, with plain dicts in arrival order."""

    def __init__(self, s: JoinSettings) -> None:
        self.s = s
        self.p: dict[str, tuple[int, float, float]] = {}
        self.r: dict[str, float] = {}
        self.h: dict[str, tuple[float, float]] = {}
        for name in COUNTERS:
            setattr(self, name, 0)

    pending = property(lambda self: len(self.p))
    held = property(lambda self: len(self.h))
    recent = property(lambda self: len(self.r))

    def add_predictions(self, rows: list[tuple[str | None, int, float, float]]) -> list[tuple]:
        out = []
        for eid, leaf, t, score in rows:
            if eid is None:
                self.missing_id += 1
            elif eid in self.p or eid in self.r:
                self.duplicate_predictions += 1
            elif eid in self.h:
                label, _ = self.h.pop(eid)
                self.r[eid] = t
                self.joined += 1
                out.append((leaf, t, score, label))
            else:
                self.p[eid] = (leaf, t, score)
        self.budget()
        return out

    def add_labels(self, rows: list[tuple[str, float, float]]) -> list[tuple]:
        out = []
        for eid, label, t in rows:
            if eid in self.p:
                leaf, pt, score = self.p.pop(eid)
                self.r[eid] = pt
                self.joined += 1
                out.append((leaf, pt, score, label))
            elif eid in self.r or eid in self.h:
                self.duplicate_labels += 1
            else:
                self.h[eid] = (label, t)
        self.budget()
        return out

    def budget(self) -> None:
        while self.p and len(self.p) + len(self.h) > self.s.max_pending:
            del self.p[next(iter(self.p))]
            self.evicted += 1
        while self.h and len(self.p) + len(self.h) > self.s.max_pending:
            del self.h[next(iter(self.h))]
            self.orphaned += 1
        while len(self.r) > self.s.max_pending:
            del self.r[next(iter(self.r))]

    def expire(self, clock: float) -> None:
        cut = clock - self.s.ttl_seconds
        while self.p and next(iter(self.p.values()))[1] < cut:
            del self.p[next(iter(self.p))]
            self.expired += 1
        while self.r and next(iter(self.r.values())) < cut:
            del self.r[next(iter(self.r))]
        cut = clock - self.s.orphan_ttl_seconds
        while self.h and next(iter(self.h.values()))[1] < cut:
            del self.h[next(iter(self.h))]
            self.orphaned += 1


REG_SETTINGS = CellSettings(dimensions=("segment",))


def restored(j: LabelJoin, registry: CellRegistry) -> LabelJoin:
    """``j`` through a JSON checkpoint and back, bound to ``registry``."""
    data = json.loads(json.dumps(j.to_dict(registry.keys), allow_nan=False))
    parsed = LabelJoin.parse(data, registry.ndims + 1)
    return LabelJoin.from_parsed(j.settings, parsed, registry.ensure)


def run_against_reference(s: JoinSettings, ops: list[tuple[str, Any]], leaves: int = 4) -> None:
    registry = CellRegistry(REG_SETTINGS)
    registry.index_many([("m", f"s{i}") for i in range(leaves)])
    j, ref = LabelJoin(s), Reference(s)
    n_pred = n_lab = 0
    for op, arg in ops:
        if op == "pred":
            assert preds(j, arg) == ref.add_predictions(arg)
            n_pred += sum(r[0] is not None for r in arg)
        elif op == "label":
            assert labels(j, arg) == ref.add_labels(arg)
            n_lab += len(arg)
        elif op == "expire":
            j.expire(arg)
            ref.expire(arg)
        else:
            j = restored(j, registry)
        assert counters(j) == counters(ref)
        reconcile(j, n_pred, n_lab)


IDS = st.sampled_from([f"e{i}" for i in range(12)])
TIMES = st.integers(0, 60).map(float)
PRED_ROW = st.tuples(st.one_of(st.none(), IDS, IDS), st.integers(0, 3), TIMES, st.just(0.25))
LABEL_ROW = st.tuples(IDS, st.sampled_from([0.0, 1.0]), TIMES)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("pred"), st.lists(PRED_ROW, max_size=6)),
        st.tuples(st.just("label"), st.lists(LABEL_ROW, max_size=6)),
        st.tuples(st.just("expire"), st.integers(0, 90).map(float)),
        st.tuples(st.just("checkpoint"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(
    ttl=st.sampled_from([0.0, 5.0, 20.0]),
    orphan=st.sampled_from([0.0, 10.0, 30.0]),
    budget=st.integers(1, 8),
    ops=OPS,
)
def test_matches_reference_and_counters_reconcile(
    ttl: float, orphan: float, budget: int, ops: list[tuple[str, Any]]
) -> None:
    run_against_reference(JoinSettings(ttl, budget, orphan), ops)


def test_matches_reference_at_scale_with_compaction_and_checkpoints() -> None:
    """Thousands of entries: slot reuse, ring growth, compaction and shifts all happen."""
    rng = np.random.default_rng(5)
    n = 30_000
    ids = [f"id{i}" for i in range(n)]
    ops: list[tuple[str, Any]] = []
    label_queue: list[int] = []
    for start in range(0, n, 300):
        rows: list[tuple[str | None, int, float, float]] = []
        for i in range(start, start + 300):
            eid = ids[i] if rng.random() > 0.01 else None
            if rng.random() < 0.02 and i > 10:
                eid = ids[i - int(rng.integers(1, 10))]  # a duplicate
            rows.append((eid, int(rng.integers(0, 4)), i / 10 + float(rng.integers(0, 30)), 0.5))
        ops.append(("pred", rows))
        label_queue.extend(i for i in range(start, start + 300) if rng.random() < 0.9)
        rng.shuffle(label_queue)
        k = int(rng.integers(0, 400))
        batch, label_queue = label_queue[:k], label_queue[k:]
        ops.append(("label", [(ids[i], float(i % 2), i / 10 + 20) for i in batch]))
        ops.append(("expire", start / 10 + 30))
        if start % 6000 == 0:
            ops.append(("checkpoint", None))
    run_against_reference(JoinSettings(ttl_seconds=40, max_pending=2500, orphan_ttl_seconds=8), ops)


def test_memory_stays_bounded_when_everything_joins() -> None:
    j = LabelJoin(JoinSettings(ttl_seconds=1e9, max_pending=2000))
    sizes = []
    for b in range(100):
        batch = [f"k{b}-{i}" for i in range(500)]
        preds(j, [(eid, 0, float(b), 0.5) for eid in batch])
        labels(j, [(eid, 1.0, float(b)) for eid in batch])
        sizes.append(j.nbytes())
    assert (j.joined, j.recent, j.pending) == (50_000, 2000, 0)
    assert max(sizes[20:]) < 1.1 * min(sizes[20:])  # flat once the bound is reached
    assert len(j._pending.ring) <= 8192 and len(j._recent.ring) <= 8192


# -- checkpoints -------------------------------------------------------------------------------


def _sample_join() -> tuple[LabelJoin, CellRegistry]:
    registry = CellRegistry(REG_SETTINGS)
    leaves = registry.index_many([("m", "a"), ("m", "b")]).tolist()
    j = LabelJoin(S)
    preds(j, [("p1", leaves[1], 10.0, 0.25), ("p2", leaves[0], 11.0, 0.75), (None, 0, 1.0, 0.0)])
    preds(j, [("p1", leaves[0], 12.0, 0.5)])
    labels(j, [("p2", 1.0, 20.0), ("h1", 0.0, 21.0), ("h1", 1.0, 22.0)])
    return j, registry


def test_to_dict_is_plain_json_in_arrival_order() -> None:
    j, registry = _sample_join()
    data = j.to_dict(registry.keys)
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data == {
        "counters": {
            "joined": 1,
            "expired": 0,
            "evicted": 0,
            "orphaned": 0,
            "duplicate_predictions": 1,
            "duplicate_labels": 1,
            "missing_id": 1,
        },
        "pending": [["p1", 10.0, ["m", "b"], 0.25]],
        "recent": [["p2", 11.0]],
        "held": [["h1", 0.0, 21.0]],
    }


def test_restored_join_behaves_like_the_original() -> None:
    j, registry = _sample_join()
    # A fresh registry that knows other cells first: leaves are re-resolved by key.
    other = CellRegistry(REG_SETTINGS)
    other.index_many([("m", "z"), ("m", "b")])
    back = LabelJoin.from_parsed(
        S, LabelJoin.parse(json.loads(json.dumps(j.to_dict(registry.keys))), 2), other.ensure
    )
    assert counters(back) == counters(j)
    b_leaf = other.lookup(("m", "b"))
    assert labels(back, [("p1", 1.0, 30.0)]) == [(b_leaf, 10.0, 0.25, 1.0)]
    assert preds(back, [("h1", 0, 40.0, 0.5), ("p2", 0, 41.0, 0.5)]) == [(0, 40.0, 0.5, 0.0)]
    assert back.duplicate_predictions == j.duplicate_predictions + 1


def _valid() -> dict[str, Any]:
    j, registry = _sample_join()
    return j.to_dict(registry.keys)


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return data

    return change


def _delete(path: tuple[Any, ...]) -> Any:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
        return data

    return change


MALFORMED = [
    ("not an object", lambda d: [d], "join: expected an object"),
    ("no held", _delete(("held",)), "missing key 'held'"),
    ("counters not object", _set(("counters",), [1]), "counters: expected an object"),
    ("missing counter", _delete(("counters", "joined")), "counters: expected an object"),
    ("extra counter", _set(("counters", "late"), 0), "counters: expected an object"),
    ("negative counter", _set(("counters", "expired"), -1), "counters.expired"),
    ("bool counter", _set(("counters", "evicted"), True), "counters.evicted"),
    ("float counter", _set(("counters", "joined"), 1.0), "counters.joined"),
    ("pending not list", _set(("pending",), {}), "pending: expected a list"),
    ("short row", _set(("pending", 0), ["p1", 1.0, ["m", "b"]]), "pending[0]: expected"),
    ("id not str", _set(("pending", 0, 0), 7), "pending[0]: expected"),
    ("nan time", _set(("pending", 0, 1), math.nan), "pending[0]: expected a finite"),
    ("str time", _set(("pending", 0, 1), "10"), "pending[0]: expected a finite"),
    ("inf score", _set(("pending", 0, 3), math.inf), "pending[0]: expected a finite"),
    ("bool time", _set(("pending", 0, 1), True), "pending[0]: expected a finite"),
    ("huge int", _set(("held", 0, 2), 2**64), "held[0]: expected a finite"),
    ("key int part", _set(("pending", 0, 2), ["m", 3]), "pending[0]: expected a cell key"),
    ("held id", _set(("held", 0, 0), None), "held[0]: expected [id, label, label time]"),
    ("key too short", _set(("pending", 0, 2), ["m"]), "pending[0]: expected a cell key"),
    ("key empty part", _set(("pending", 0, 2), ["m", ""]), "pending[0]: expected a cell key"),
    ("key not list", _set(("pending", 0, 2), "m|b"), "pending[0]: expected a cell key"),
    ("recent row", _set(("recent", 0), ["p2"]), "recent[0]: expected [id, event time]"),
    ("recent time", _set(("recent", 0, 1), None), "recent[0]: expected a finite"),
    ("held label", _set(("held", 0, 1), "yes"), "held[0]: expected a finite"),
    ("held not list", _set(("held",), None), "held: expected a list"),
    ("id twice", _set(("recent", 0, 0), "p1"), "recent[0]: id 'p1' already appears at pending"),
    ("held id pending", _set(("held", 0, 0), "p1"), "held[0]: id 'p1' already appears"),
]


@pytest.mark.parametrize(("name", "change", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_checkpoints_are_refused_before_touching_the_index(
    name: str, change: Any, message: str
) -> None:
    data = change(copy.deepcopy(_valid()))
    calls: list[tuple[str, ...]] = []

    def index(key: tuple[str, ...]) -> int:
        calls.append(key)
        return 0

    with pytest.raises(StateError, match="label join state is malformed") as info:
        LabelJoin.from_parsed(S, LabelJoin.parse(data, 2), index)
    assert message in str(info.value)
    assert calls == []


def test_valid_checkpoint_calls_the_index_once_per_key() -> None:
    calls: list[tuple[str, ...]] = []

    def index(key: tuple[str, ...]) -> int:
        calls.append(key)
        return 5

    data = _valid()
    data["pending"].append(["p9", 13, ["m", "b"], 0])  # integers are numbers too
    back = LabelJoin.from_parsed(S, LabelJoin.parse(data, 2), index)
    assert calls == [("m", "b")] and back.pending == 2
    assert labels(back, [("p9", 1.0, 20.0)]) == [(5, 13.0, 0.0, 1.0)]


# -- cost --------------------------------------------------------------------------------------


def test_memory_per_pending_prediction() -> None:
    """Under 200 bytes per pending prediction besides its id string; nbytes() is honest."""
    n = 200_000
    rng = np.random.default_rng(0)
    leaf, times, scores = rng.integers(0, 50, n), np.arange(n, dtype=float), rng.random(n)
    ids = [f"evt-{i:012d}" for i in range(n)]
    tracemalloc.start()
    try:
        j = LabelJoin(JoinSettings(max_pending=n))
        for s in range(0, n, 500):
            j.add_predictions(
                ids[s : s + 500], leaf[s : s + 500], times[s : s + 500], scores[s : s + 500]
            )
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    id_bytes = sum(map(sys.getsizeof, ids))
    print(f"\n{held / n:.0f} B per pending prediction + {id_bytes / n:.0f} B for its id string")
    assert j.pending == n
    assert held / n < 200
    # nbytes() counts the id strings too; it agrees with the measurement within 15 %.
    assert abs(j.nbytes() - (held + id_bytes)) < 0.15 * (held + id_bytes)


def test_a_streamed_join_of_200k_predictions_joins_every_label() -> None:
    """The join at benchmark size (speed: tests/bench/bench_join.py reports it; no timed
    assertion here)."""
    n = 200_000
    rng = np.random.default_rng(1)
    ids = [f"evt-{i:012d}" for i in range(n)]
    leaf, times, scores = rng.integers(0, 50, n), np.arange(n) / 100, rng.random(n)
    lab = rng.permutation(n)[: n * 9 // 10]
    lids = [ids[i] for i in lab.tolist()]
    lv = (lab % 2).astype(float)
    j = LabelJoin(JoinSettings())
    for s in range(0, n, 500):
        j.add_predictions(
            ids[s : s + 500], leaf[s : s + 500], times[s : s + 500], scores[s : s + 500]
        )
        j.expire(float(times[min(s + 500, n) - 1]))
    for s in range(0, len(lids), 500):
        j.add_labels(lids[s : s + 500], lv[s : s + 500], times[: len(lv)][s : s + 500])
    assert j.joined == len(lids)
