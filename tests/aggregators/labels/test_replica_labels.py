"""Performance from labels through ReplicaState: inline and topic labels, merged partitions.

Every exported number is checked against a numpy reference computed on the same events, one
cell at a time, written the way scikit-learn defines the metrics. The stream generators keep
event times rising with a jitter below the cell grace, so no prediction is late, and label
times close to their predictions' with a long label grace, so every label is on time; the
grace rule itself is tested in ``test_label_state.py`` and below with exact counts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests import oracles
from tilewatch.aggregators import ALL, CellSettings, ReplicaState, Snapshot, StateError
from tilewatch.aggregators.labels.join import JoinSettings
from tilewatch.aggregators.labels.settings import LabelSettings, PerformanceSettings

SIZE = 10.0
GRACE = 2.0
CELLS = CellSettings(dimensions=("segment",), window_seconds=SIZE, grace_seconds=GRACE)
CELLS0 = CellSettings(dimensions=("segment",), window_seconds=SIZE, grace_seconds=0.0)
MIN_SAMPLES = 5
BINS = 10
FLUSH = "zz-flush"
#: Far enough ahead that every window is final even without labels: the watermark passes
#: each window's end plus max(grace, ttl) (the rule for a silent outcomes topic).
FLUSH_TIME = 1e6
Key = tuple[str, ...]


def _labels(source: str, task: str = "classification", **kw: Any) -> LabelSettings:
    return LabelSettings(
        source=source,
        grace_seconds=kw.pop("grace_seconds", 1000.0),
        threshold=kw.pop("threshold", 0.5 if task == "classification" else None),
        thresholds=kw.pop("thresholds", {}),
        error_detector=kw.pop("error_detector", None),
        performance=PerformanceSettings(
            task=task, calibration_bins=BINS, min_samples=kw.pop("min_samples", MIN_SAMPLES)
        ),
        join=JoinSettings(
            ttl_seconds=kw.pop("ttl_seconds", 10_000.0),
            orphan_ttl_seconds=kw.pop("orphan_ttl_seconds", 10_000.0),
            max_pending=kw.pop("max_pending", 1_000_000),
        ),
    )


# -- the stream -------------------------------------------------------------------------------


@dataclass
class Stream:
    """Predictions (in produce order per partition) and their labels (NaN: none)."""

    ids: list[str]
    keys: list[Key]
    times: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    partition: np.ndarray


def _stream(seed: int, n: int, task: str, partitions: int = 2) -> Stream:
    """``n`` predictions of models m1 (windows 1000..1009) and m2 (1000..1006), segments a-d.

    Each leaf cell lives in one partition (keyed traffic). Classification: labels are
    Bernoulli of a distorted score, so metrics differ per cell; regression: target = score
    plus cell-dependent noise and bias.
    """
    rng = np.random.default_rng(seed)
    leaves = [(m, s) for m in ("m1", "m2") for s in ("a", "b", "c", "d")]
    offset = np.sort(rng.uniform(1.0, 99.0, n))  # the jitter stays inside windows 0..9
    times = 1000 * SIZE + offset + rng.uniform(-0.4 * GRACE, 0.4 * GRACE, n)
    # m2 stops after 69 s, so the two models report different windows.
    cell = np.where(offset < 69.0, rng.integers(0, 8, n), rng.integers(0, 4, n))
    keys = [leaves[c] for c in cell.tolist()]
    if task == "classification":
        scores = rng.beta(2.0, 2.0 + cell % 3)
        p = np.clip(scores + 0.1 * (cell % 4 - 1.5), 0.0, 1.0)
        labels = (rng.uniform(size=n) < p).astype(np.float64)
        scores[:5] = [0.0, 1.0, 0.5, 0.1, 0.9]  # bin edges and the threshold itself
    else:
        scores = rng.normal(10.0, 3.0, n)
        labels = scores + rng.normal(0.3 * (cell % 3), 1.0 + cell % 2, n)
    labels[rng.uniform(size=n) < 0.25] = np.nan  # a quarter never gets a label
    partition = cell % partitions
    ids = [f"e{i}" for i in range(n)]
    return Stream(ids, keys, times, scores, labels, partition)


def _raw_label(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _feed_inline(rs: ReplicaState, st: Stream, rng: np.random.Generator) -> None:
    for p in sorted(set(st.partition.tolist())):
        idx = np.flatnonzero(st.partition == p)
        pos = 0
        while pos < len(idx):
            sel = idx[pos : pos + int(rng.integers(1, 60))]
            pos += len(sel)
            res = rs.apply(
                ("t", p),
                [st.keys[i] for i in sel],
                st.times[sel],
                st.scores[sel],
                next_offset=pos,
                labels=[_raw_label(st.labels[i]) for i in sel],
            )
            assert res.late == 0


def _feed_topic(rs: ReplicaState, st: Stream, rng: np.random.Generator) -> None:
    """Predictions in batches; after each, a batch of labels in random order: some for
    predictions already read, some (a tenth) for predictions still to come."""
    for p in sorted(set(st.partition.tolist())):
        idx = np.flatnonzero(st.partition == p)
        labeled = [i for i in idx.tolist() if not math.isnan(st.labels[i])]
        early = set(rng.choice(labeled, size=len(labeled) // 10, replace=False).tolist())
        waiting = [i for i in labeled if i not in early]
        sent_early = sorted(early)
        rng.shuffle(sent_early)
        pos = label_offset = 0
        read: list[int] = []
        while pos < len(idx) or waiting:
            sel = idx[pos : pos + int(rng.integers(1, 60))]
            pos += len(sel)
            if len(sel):
                rs.apply(
                    ("t", p),
                    [st.keys[i] for i in sel],
                    st.times[sel],
                    st.scores[sel],
                    next_offset=pos,
                    event_ids=[st.ids[i] for i in sel],
                )
            read.extend(sel.tolist())
            read_set = set(read)
            ready = [i for i in waiting if i in read_set]
            take = ready if pos >= len(idx) else ready[: int(rng.integers(0, len(ready) + 1))]
            batch = take + [sent_early.pop() for _ in range(min(len(sent_early), 3))]
            rng.shuffle(batch)
            taken = set(take)
            waiting = [i for i in waiting if i not in taken]
            label_offset += len(batch)
            rs.apply_labels(
                ("t", p),
                [st.ids[i] for i in batch],
                [float(st.labels[i]) for i in batch],
                st.times[batch] + 1.0,
                next_offset=label_offset,
            )
        assert not sent_early


def _flush(rs: ReplicaState, partitions: int, t: float) -> None:
    """One event per partition far ahead: every earlier window closes; with ``t`` past the
    windows' ends plus ``max(grace, ttl)`` every one is final too."""
    for p in range(partitions):
        part = rs.partitions[("t", p)]
        offset = part.offset or 0
        rs.apply(("t", p), [(FLUSH, "x")], np.array([t]), np.array([0.5]), offset, event_ids=[None])


# -- the numpy reference ----------------------------------------------------------------------


def _rollups(key: Key) -> list[Key]:
    return [key, (key[0], ALL)]


def _window_of(t: float) -> int:
    return math.floor(t / SIZE)


def _by_cell(st: Stream, window: dict[str, int], labeled_only: bool) -> dict[Key, list[int]]:
    out: dict[Key, list[int]] = defaultdict(list)
    for i, key in enumerate(st.keys):
        if _window_of(st.times[i]) != window[key[0]]:
            continue
        if labeled_only and math.isnan(st.labels[i]):
            continue
        for cell in _rollups(key):
            out[cell].append(i)
    return out


def _last_windows(st: Stream) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, t in zip(st.keys, st.times.tolist(), strict=True):
        out[key[0]] = max(out.get(key[0], -(2**62)), _window_of(t))
    return out


def _check_metrics(snap: Snapshot, st: Stream, task: str) -> int:
    """Compare every metric of every cell with the reference; returns the cells checked."""
    perf = snap.performance
    assert perf is not None
    windows = _last_windows(st)
    assert perf.window_end == {m: (w + 1) * SIZE for m, w in windows.items()}
    labeled = _by_cell(st, windows, labeled_only=True)
    checked = 0
    for cell, rows in labeled.items():
        i = snap.cell(cell)
        y, s = st.labels[rows], st.scores[rows]
        ref = (
            oracles.classification(y, s, 0.5, bins=BINS)
            if task == "classification"
            else oracles.regression(y, s)
        )
        assert int(perf.stats.labeled[i]) == ref.pop("labeled"), cell
        for name, want in ref.items():
            got = float(getattr(perf.stats, name)[i])
            if len(rows) < MIN_SAMPLES:
                want = math.nan
            assert oracles.close(got, want), (cell, name, got, want)
        checked += 1
    # Cells without a labeled event in the window: zero labeled, NaN metrics.
    for i, key in enumerate(snap.keys):
        if key[0] != FLUSH and key not in labeled:
            assert perf.stats.labeled[i] == 0
            assert math.isnan(perf.stats.accuracy[i]) and math.isnan(perf.stats.mae[i])
    return checked


def _check_estimate(snap: Snapshot, st: Stream) -> None:
    """The label-free estimate: every prediction of the latest closed window, labeled or not."""
    perf = snap.performance
    assert perf is not None
    windows = _last_windows(st)
    assert snap.window_end == {**{m: (w + 1) * SIZE for m, w in windows.items()}}
    for cell, rows in _by_cell(st, windows, labeled_only=False).items():
        i = snap.cell(cell)
        want, bound = oracles.estimate(st.scores[rows], 0.5, min_samples=MIN_SAMPLES)
        assert perf.estimate_predictions[i] == len(rows)
        assert oracles.close(float(perf.estimate[i]), want), cell
        assert oracles.close(float(perf.estimate_bound[i]), bound)


def _check_totals(snap: Snapshot, st: Stream, task: str) -> None:
    perf = snap.performance
    assert perf is not None
    labeled: dict[Key, int] = defaultdict(int)
    errors: dict[Key, int] = defaultdict(int)
    for i, key in enumerate(st.keys):
        if math.isnan(st.labels[i]):
            continue
        for cell in _rollups(key):
            labeled[cell] += 1
            errors[cell] += int((st.scores[i] >= 0.5) != (st.labels[i] == 1.0))
    for i, key in enumerate(snap.keys):
        assert perf.labeled_total[i] == labeled.get(key, 0), key
    for i, key in enumerate(snap.keys):
        want = errors.get(key, 0) if task == "classification" else 0
        assert perf.errors_total[i] == want, key


# -- metrics of the exported window -----------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("source", ["inline", "topic"])
def test_classification_window_equals_reference(source: str, seed: int) -> None:
    st = _stream(seed, 6000, "classification")
    rs = ReplicaState(CELLS, labels=_labels(source))
    (_feed_inline if source == "inline" else _feed_topic)(rs, st, np.random.default_rng(seed))
    _flush(rs, 2, FLUSH_TIME)
    snap = rs.snapshot()
    assert _check_metrics(snap, st, "classification") == 10  # 8 leaves + 2 model roll-ups
    _check_estimate(snap, st)
    _check_totals(snap, st, "classification")
    perf = snap.performance
    assert perf is not None
    assert perf.counters["late"] == 0
    assert perf.invalid == {}
    n_labeled = int((~np.isnan(st.labels)).sum())
    if source == "topic":
        c = perf.counters
        assert c["joined"] == n_labeled
        assert c["expired"] == len(st.ids) - n_labeled  # the flush moved the clock past ttl
        assert c["held"] == c["orphaned"] == c["pending"] == 0
        assert c["duplicate_labels"] == c["duplicate_predictions"] == 0
        assert c["missing_id"] == 2  # the flush events carry no id
    else:
        assert set(perf.counters) == {"late", "pending", "held", "join_bytes"}
        assert perf.counters["pending"] == perf.counters["join_bytes"] == 0


@pytest.mark.parametrize("source", ["inline", "topic"])
def test_regression_window_equals_reference(source: str) -> None:
    st = _stream(5, 4000, "regression")
    rs = ReplicaState(CELLS, labels=_labels(source, task="regression"))
    (_feed_inline if source == "inline" else _feed_topic)(rs, st, np.random.default_rng(5))
    _flush(rs, 2, FLUSH_TIME)
    snap = rs.snapshot()
    assert _check_metrics(snap, st, "regression") == 10
    _check_totals(snap, st, "regression")
    perf = snap.performance
    assert perf is not None
    # No label-free estimate, no classification metric, no error counts for regression.
    assert np.isnan(perf.estimate).all() and np.isnan(perf.stats.accuracy).all()
    assert not perf.errors_total.any()
    assert perf.gaps == []  # gaps compare accuracy and error rates: classification only


def test_regression_labels_may_be_any_finite_number() -> None:
    rs = ReplicaState(CELLS, labels=_labels("inline", task="regression", min_samples=1))
    rs.apply(
        ("t", 0),
        [("m", "a")] * 5,
        np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
        np.array([10.0, 20.0, -5.0, 7.0, 1.0]),
        next_offset=5,
        labels=[12.5, True, "3", math.inf, -1],
    )
    _flush(rs, 1, 1e6)
    perf = rs.snapshot().performance
    assert perf is not None
    i = rs.snapshot().cell(("m", "a"))
    assert perf.stats.labeled[i] == 2
    assert perf.stats.mae[i] == pytest.approx((2.5 + 2.0) / 2)
    assert perf.stats.mean_error[i] == pytest.approx((-2.5 + 2.0) / 2)
    assert perf.invalid == {"bad_label": 3}  # a bool, a string and an infinity


# -- which window is reported -----------------------------------------------------------------


def _inline(rs: ReplicaState, p: int, times: list[float], model: str = "m") -> None:
    n = len(times)
    part = rs.partitions.get(("t", p))
    offset = 0 if part is None or part.offset is None else part.offset
    rs.apply(
        ("t", p),
        [(model, "a")] * n,
        np.array(times),
        np.full(n, 0.8),
        next_offset=offset + n,
        labels=[1] * n,
    )


def test_final_window_waits_for_every_partition_holding_it() -> None:
    """A model reports the latest window that every partition with its data has finalized."""
    labels = _labels("inline", grace_seconds=5.0, min_samples=1)
    rs = ReplicaState(CELLS0, labels=labels)
    _inline(rs, 0, [1.0, 2.0, 11.0, 12.0, 13.0])  # windows 0 (2 events) and 1 (3)
    _inline(rs, 1, [3.0, 14.0])  # windows 0 and 1
    _inline(rs, 2, [4.0, 5.0, 6.0], model="other")  # another model only
    _inline(rs, 0, [25.0])  # p0: watermark 25 = end of window 1 + grace: 0 and 1 final
    _inline(rs, 1, [18.0])  # p1: window 0 final (10 + 5 <= 18), window 1 not yet
    snap = rs.snapshot()
    perf = snap.performance
    assert perf is not None
    a, other = snap.cell(("m", "a")), snap.cell(("other", "a"))
    assert perf.window_end["m"] == 10.0  # p1 still holds window 1 open
    assert perf.stats.labeled[a] == 3  # window 0 merged over p0 and p1
    assert "other" not in perf.window_end  # p2's window 0 is not final (watermark 6)
    assert perf.stats.labeled[other] == 0

    _inline(rs, 1, [25.0])  # p1 finalizes window 1 too
    snap = rs.snapshot()
    perf = snap.performance
    assert perf is not None
    assert perf.window_end["m"] == 20.0
    assert perf.stats.labeled[a] == 5  # 3 in p0 + 1 in p1 + the 18.0 one in p1
    # The score statistics report the latest closed window (window 1 is closed everywhere,
    # window 2 holds only the 25.0 events, still open), and so does the estimate.
    assert snap.window_end["m"] == 20.0
    assert perf.estimate_predictions[a] == 5

    _inline(rs, 2, [15.0], model="other")  # p2: watermark 15 = end of window 0 + grace
    perf = rs.snapshot().performance
    assert perf is not None
    assert perf.window_end["other"] == 10.0
    assert perf.stats.labeled[rs.snapshot().cell(("other", "a"))] == 3


def test_a_window_final_in_one_partition_waits_for_the_other() -> None:
    """The same window is final in one partition (a label for it comes too late there) and
    open in the other (its label is credited): it is reported once final in both, with
    exactly the credited label; the late one is in the cumulative counters only."""
    labels = _labels("topic", grace_seconds=5.0, min_samples=1)
    rs = ReplicaState(CELLS0, labels=labels)

    def predict(p: int, eid: str, t: float) -> None:
        part = rs.partitions.get(("t", p))
        offset = 0 if part is None or part.offset is None else part.offset
        rs.apply(
            ("t", p), [("m", "a")], np.array([t]), np.array([0.9]), offset + 1, event_ids=[eid]
        )

    def label(p: int, eid: str, y: int, t: float) -> None:
        part = rs.partitions[("t", p)]
        assert part.labels is not None
        rs.apply_labels(("t", p), [eid], [y], np.array([t]), (part.labels.offset or 0) + 1)

    for p in (0, 1):
        predict(p, f"x{p}", 1.0 + p)  # window 0 in both partitions
        predict(p, f"y{p}", 16.0)  # closes window 0
    label(0, "y0", 1, 16.0)  # p0's label clock passes 10 + 5: window 0 is final there
    label(0, "x0", 1, 3.0)  # on time by its own time, but the window is final: late
    label(1, "x1", 0, 3.0)  # p1's window 0 is not final (its label clock is at 3): credited
    perf = rs.snapshot().performance
    assert perf is not None
    assert perf.counters["late"] == 1
    assert "m" not in perf.window_end  # p1 still holds window 0 open
    label(1, "y1", 1, 16.0)  # p1 finalizes window 0 too
    snap = rs.snapshot()
    perf = snap.performance
    assert perf is not None
    a = snap.cell(("m", "a"))
    assert perf.window_end == {"m": 10.0}
    assert perf.stats.labeled[a] == 1 and perf.stats.accuracy[a] == 0.0  # only x1's label
    assert perf.labeled_total[a] == 4 and perf.errors_total[a] == 1  # all, in the totals


# -- checkpoints ------------------------------------------------------------------------------


def _split(st: Stream, frac: float) -> tuple[Stream, Stream]:
    k = int(len(st.ids) * frac)

    def part(sl: slice) -> Stream:
        return Stream(
            st.ids[sl],
            st.keys[sl],
            st.times[sl],
            st.scores[sl],
            st.labels[sl],
            st.partition[sl],
        )

    return part(slice(0, k)), part(slice(k, None))


def _perf_by_key(snap: Snapshot) -> dict[Key, tuple[Any, ...]]:
    perf = snap.performance
    assert perf is not None
    out = {}
    fields = [f.name for f in dataclasses.fields(perf.stats)]
    for i, key in enumerate(snap.keys):
        values = [float(getattr(perf.stats, f)[i]) for f in fields]
        values += [float(perf.estimate[i]), float(perf.estimate_bound[i])]
        values += [int(perf.labeled_total[i]), int(perf.errors_total[i])]
        out[key] = tuple("nan" if v != v else v for v in values)
    return out


@pytest.mark.parametrize("source", ["inline", "topic"])
def test_checkpoint_round_trip_continues_exactly(source: str) -> None:
    """Restore a partition from JSON mid-stream (pending predictions, held labels, open and
    final windows) and feed both replicas the rest: they end identical."""
    st = _stream(11, 5000, "classification", partitions=1)
    first, second = _split(st, 0.55)
    settings = _labels(source, grace_seconds=15.0, ttl_seconds=40.0, orphan_ttl_seconds=30.0)
    original = ReplicaState(CELLS, labels=settings)
    feed = _feed_inline if source == "inline" else _feed_topic
    feed(original, first, np.random.default_rng(1))
    # Labels that arrive before their predictions, and one that never finds its prediction.
    if source == "topic":
        held = [i for i in range(len(second.ids)) if not math.isnan(second.labels[i])][:40]
        original.apply_labels(
            ("t", 0),
            [second.ids[i] for i in held] + ["nobody"],
            [float(second.labels[i]) for i in held] + [1.0],
            np.r_[second.times[held], first.times[-1]],
            next_offset=10**6,
        )
        second.labels[held] = np.nan  # delivered already
    part = original.partitions[("t", 0)]
    assert part.labels is not None
    assert part.labels.final and part.labels.perf
    if source == "topic":
        assert part.labels.join is not None
        assert part.labels.join.pending > 0 and part.labels.join.held > 0
    data = json.loads(json.dumps(part.to_dict()))

    restored = ReplicaState(CELLS, labels=settings)
    restored.assign(("t", 0), restored.restore_partition(data))
    before_o, before_r = _perf_by_key(original.snapshot()), _perf_by_key(restored.snapshot())
    assert before_o == before_r

    for rs in (original, restored):
        feed(rs, second, np.random.default_rng(2))
        _flush(rs, 1, 2000 * SIZE)
    snap_o, snap_r = original.snapshot(), restored.snapshot()
    assert _perf_by_key(snap_o) == _perf_by_key(snap_r)
    po, pr = snap_o.performance, snap_r.performance
    assert po is not None and pr is not None
    assert {k: v for k, v in po.counters.items() if k != "join_bytes"} == {
        k: v for k, v in pr.counters.items() if k != "join_bytes"
    }
    assert po.window_end == pr.window_end
    assert po.gaps == pr.gaps
    if source == "topic":
        assert po.counters["orphaned"] == 1
        assert po.counters["expired"] > 0
        label_part = restored.partitions[("t", 0)].labels
        assert label_part is not None


def test_checkpoint_keeps_the_outcomes_offset_and_detections() -> None:
    settings = _labels("topic", error_detector="ddm", min_samples=1)
    rs = ReplicaState(CELLS, labels=settings)
    rng = np.random.default_rng(3)
    n = 3000
    ids = [f"d{i}" for i in range(n)]
    rs.apply(("t", 0), [("m", "a")] * n, np.arange(n) / 100.0, np.full(n, 0.9), n, event_ids=ids)
    labels = (rng.uniform(size=n) >= np.r_[np.full(1500, 0.02), np.full(1500, 0.6)]).astype(int)
    rs.apply_labels(("t", 0), ids, labels.tolist(), np.arange(n) / 100.0, next_offset=1234)
    before = rs.snapshot().detections
    assert before, "the error rate jumps from 2% to 60%"
    data = json.loads(json.dumps(rs.partitions[("t", 0)].to_dict()))
    assert data["labels"]["offset"] == 1234
    other = ReplicaState(CELLS, labels=settings)
    state = other.restore_partition(data)
    assert state.labels is not None and state.labels.offset == 1234
    other.assign(("t", 0), state)
    after = other.snapshot()
    assert {after.keys[c]: v for (c, _d), v in after.detections.items()} == {
        rs.snapshot().keys[c]: v for (c, _d), v in before.items()
    }


def _good_checkpoint() -> dict[str, Any]:
    settings = _labels("topic", min_samples=1, grace_seconds=5.0, error_detector="ddm")
    rs = ReplicaState(CELLS, labels=settings)
    ids = ["a", "b", "c", "d"]
    rs.apply(
        ("t", 0),
        [("m", "x"), ("m", "y"), ("m", "x"), ("n", "z")],
        np.array([1.0, 2.0, 3.0, 30.0]),  # window 0 is final once t = 30 arrives
        np.array([0.9, 0.2, 0.6, 0.4]),
        4,
        event_ids=ids,
    )
    rs.apply_labels(("t", 0), ["a", "c", "q"], [1, 0, 1], np.array([4.0, 5.0, 6.0]), 3)
    rs.apply(("t", 0), [("m", "x")], np.array([31.0]), np.array([0.7]), 5, event_ids=["e"])
    # The label clock passes 10 + 5: window 0 is final, b's label (window 0) is late.
    rs.apply_labels(("t", 0), ["e", "b"], [1, 0], np.array([31.0, 32.0]), 5)
    data = rs.partitions[("t", 0)].to_dict()
    labels = data["labels"]
    assert labels["final"] and labels["open"] and labels["join"]["held"] and labels["totals"]
    return json.loads(json.dumps(data))


BAD_LABELS: list[tuple[str, Any]] = [
    ("labels is a list", lambda d: d.__setitem__("labels", [])),
    ("offset negative", lambda d: d["labels"].__setitem__("offset", -1)),
    ("late a string", lambda d: d["labels"].__setitem__("late", "3")),
    ("label clock not finite", lambda d: d["labels"].__setitem__("label_clock", "inf")),
    ("missing label clock", lambda d: d["labels"].pop("label_clock")),
    ("invalid not an object", lambda d: d["labels"].__setitem__("invalid", [1])),
    ("invalid count negative", lambda d: d["labels"]["invalid"].__setitem__("bad_label", -2)),
    ("totals row short", lambda d: d["labels"]["totals"][0].pop()),
    ("totals key too long", lambda d: d["labels"]["totals"][0][0].append("extra")),
    ("totals key empty value", lambda d: d["labels"]["totals"][-1][0].__setitem__(1, "")),
    ("open window not a number", lambda d: d["labels"]["open"][0].__setitem__(0, "1")),
    ("open rows not a list", lambda d: d["labels"]["open"][0].__setitem__(1, {})),
    ("final row counts wrong length", lambda d: d["labels"]["final"][0][1][0][1].pop()),
    ("final sums not finite", lambda d: d["labels"]["final"][0][1][0][2].__setitem__(0, None)),
    ("correct above labeled", lambda d: d["labels"]["final"][0][1][0][1].__setitem__(2, 99)),
    ("join not an object", lambda d: d["labels"].__setitem__("join", [])),
    ("join held row short", lambda d: d["labels"]["join"]["held"][0].pop()),
    ("detectors not a list", lambda d: d["labels"].__setitem__("detectors", {})),
    ("detector row short", lambda d: d["labels"].__setitem__("detectors", [[["m", "x"], "ddm"]])),
    ("missing totals", lambda d: d["labels"].pop("totals")),
    ("missing join", lambda d: d["labels"].pop("join")),
]


@pytest.mark.parametrize(("what", "mutate"), BAD_LABELS, ids=[w for w, _m in BAD_LABELS])
def test_bad_label_checkpoint_is_refused_and_nothing_is_built(what: str, mutate: Any) -> None:
    data = _good_checkpoint()
    mutate(data)
    rs = ReplicaState(CELLS, labels=_labels("topic", min_samples=1, error_detector="ddm"))
    with pytest.raises(StateError, match="is malformed"):
        rs.restore_partition(data)
    assert len(rs.registry) == 0, what
    assert rs.partitions == {}


def test_good_checkpoint_restores() -> None:
    rs = ReplicaState(CELLS, labels=_labels("topic", min_samples=1, error_detector="ddm"))
    state = rs.restore_partition(_good_checkpoint())
    assert state.labels is not None and state.labels.join is not None
    assert state.labels.join.held == 1 and state.labels.join.joined == 4
    assert state.labels.offset == 5


# -- thresholds -------------------------------------------------------------------------------


def test_threshold_precedence_override_baseline_default() -> None:
    """[labels.thresholds] beats the baseline's threshold, which beats [labels] threshold."""
    settings = _labels("inline", threshold=0.5, thresholds={"m1": 0.8}, min_samples=1)
    rs = ReplicaState(CELLS, labels=settings, thresholds={"m1": 0.3, "m2": 0.6})
    keys = [("m1", "a"), ("m2", "a"), ("m3", "a")]
    for score, label in ((0.7, 1), (0.55, 1)):
        rs.apply(("t", 0), keys, np.full(3, 1.0), np.full(3, score), 1, labels=[label] * 3)
    leaf = rs.registry.index_many(keys)
    assert rs.thresholds_of(leaf).tolist() == [0.8, 0.6, 0.5]
    _flush(rs, 1, 1e6)
    snap = rs.snapshot()
    perf = snap.performance
    assert perf is not None
    acc = {k[0]: float(perf.stats.accuracy[snap.cell(k)]) for k in keys}
    # 0.7: m1 says 0 (wrong), m2 and m3 say 1; 0.55: m1 and m2 say 0, m3 says 1.
    assert acc == {"m1": 0.0, "m2": 0.5, "m3": 1.0}


def test_a_model_without_threshold_is_counted_never_scored() -> None:
    settings = _labels("topic", threshold=None, thresholds={"m1": 0.5}, min_samples=1)
    rs = ReplicaState(CELLS, labels=settings, thresholds={"m2": 0.4})
    keys = [("m1", "a"), ("m2", "a"), ("m3", "a"), ("m3", "b")]
    ids = ["i1", "i2", "i3", "i4"]
    rs.apply(("t", 0), keys, np.full(4, 1.0), np.full(4, 0.45), 4, event_ids=ids)
    rs.apply_labels(("t", 0), ids, [1, 1, 1, 0], np.full(4, 2.0), 4)
    leaf = rs.registry.index_many(keys)
    assert rs.thresholds_of(leaf)[:2].tolist() == [0.5, 0.4]
    assert np.isnan(rs.thresholds_of(leaf)[2:]).all()
    _flush(rs, 1, 1e6)
    snap = rs.snapshot()
    perf = snap.performance
    assert perf is not None
    assert perf.invalid == {"no_threshold": 2}
    assert perf.counters["joined"] == 4  # joined, then refused for want of a threshold
    m3 = [snap.cell(("m3", "a")), snap.cell(("m3", "b")), snap.cell(("m3", ALL))]
    assert perf.labeled_total[m3].tolist() == [0, 0, 0]
    assert perf.stats.labeled[m3].tolist() == [0, 0, 0]
    assert np.isnan(perf.estimate[m3]).all()  # no threshold: no label-free estimate either
    assert perf.estimate_predictions[m3].tolist() == [0, 0, 0]
    m1, m2 = snap.cell(("m1", "a")), snap.cell(("m2", "a"))
    assert perf.stats.accuracy[m1] == 0.0 and perf.stats.accuracy[m2] == 1.0


# -- error-stream detectors -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ddm", "hddm_a", "hddm_w"])
def test_error_stream_detections_reach_the_snapshot(kind: str) -> None:
    """Each leaf cell's 0/1 error stream goes to its own river detector, in partition order;
    the snapshot's detections equal river's on the same bits, and only the leaf that got
    worse raises one."""
    from river.drift import binary

    from tilewatch.aggregators.labels.error_detectors import PARAMETERS

    cls = {"ddm": binary.DDM, "hddm_a": binary.HDDMA, "hddm_w": binary.HDDMW}[kind]

    def make() -> Any:
        return cls(**PARAMETERS.get(kind, {}))

    rng = np.random.default_rng(17)
    n = 4000
    times = 1000.0 + np.arange(n) * 0.01
    bad_rate = {"a": np.r_[np.full(n // 2, 0.03), np.full(n // 2, 0.45)], "b": np.full(n, 0.03)}
    errors = {seg: rng.uniform(size=n) < p for seg, p in bad_rate.items()}
    rs = ReplicaState(CELLS, labels=_labels("inline", error_detector=kind))
    for start in range(0, n, 250):
        sl = slice(start, start + 250)
        for seg in ("a", "b"):
            k = len(times[sl])
            rs.apply(
                ("t", 0),
                [("m", seg)] * k,
                times[sl],
                np.full(k, 0.8),  # predicted 1: a label 0 is an error
                next_offset=start + k,
                labels=(~errors[seg][sl]).astype(int).tolist(),
            )
    snap = rs.snapshot()
    expected: dict[tuple[Key, str], tuple[int, float]] = {}
    for seg in ("a", "b"):
        det = make()
        found = []
        for j, bit in enumerate(errors[seg].tolist()):
            det.update(bit)
            if det.drift_detected:
                found.append(float(times[j]))
        if found:
            expected[(("m", seg), kind)] = (len(found), found[-1])
    got = {
        (snap.keys[c], d): (count, last) for (c, d), (count, last, _on) in snap.detections.items()
    }
    assert got == expected
    count, last = expected[(("m", "a"), kind)]
    assert count >= 1 and last >= times[n // 2]  # detected after the error rate rose
    assert (("m", "b"), kind) not in expected or expected[(("m", "b"), kind)][1] < times[n // 2]
    assert all(snap.is_leaf[c] for c, _d in snap.detections)


def test_no_error_detector_for_regression_or_when_off() -> None:
    for settings in (_labels("inline", error_detector=None), _labels("inline", "regression")):
        rs = ReplicaState(CELLS, labels=settings)
        rs.apply(("t", 0), [("m", "a")] * 3, np.ones(3), np.full(3, 0.9), 3, labels=[0, 0, 0])
        part = rs.partitions[("t", 0)]
        assert part.labels is not None and part.labels.detectors is None
        assert rs.snapshot().detections == {}


# -- without [labels] -------------------------------------------------------------------------


def test_without_labels_nothing_is_measured() -> None:
    rs = ReplicaState(CELLS)
    rs.apply(("t", 0), [("m", "a")], np.ones(1), np.full(1, 0.9), 1, event_ids=["x"], labels=[1])
    assert rs.partitions[("t", 0)].labels is None
    assert rs.snapshot().performance is None
    with pytest.raises(StateError, match="does not measure performance"):
        rs.apply_labels(("t", 0), ["x"], [1], np.ones(1), 1)
