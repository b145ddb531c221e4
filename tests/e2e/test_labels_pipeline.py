"""Performance from labels end to end: Kafka -> ``tilewatch run`` -> /metrics, checked offline.

Topic labels (predictions and outcomes topics, 3 partitions each, labels keyed like their
predictions) are produced in phases, so which labels are on time, late, expired or orphaned is
fixed by construction (2 s windows, cell grace 0.5 s, label grace 4 s, ttl 12 s, orphan ttl
6 s; every partition holds predictions up to the last 0.1 s of each phase, each label is
timestamped 0.3 s after its prediction, and a window is final once closed and the partition's
label clock, its largest label time, has passed the window's end plus the grace):

=====  =========================================================================================
L0     labels for 30% of phase A's predictions, A's last ones included (before them: held; the
       label clock reaches 10.2 s), 20 labels for ids that never come, 10 repeats
A      predictions of windows 0..4 (1% repeated, 1% without id); the held labels join;
       windows 0-2 become final as they close
L1     labels for half of the rest of A, out of order (windows 0-2 final: late; 3-4
       credited), 10 repeats of L0 labels, 10 repeats within L1; three invalid records
L1b    labels for 30% of phase B's predictions, B's last ones included (held; the label clock
       reaches 20.2 s)
B      predictions of windows 5..9; the held labels join; windows 3-7 become final; A's
       predictions before t = 7.9 s expire (ttl)
L2     labels for half of the rest of B (windows 5-7 late, 8-9 credited), for A's window 4
       (pending still, final window: late), for A's windows 0-2 (expired: orphaned), repeats
flush  one event per leaf cell 110 s later, without id: every window final (the watermark
       passed end + max(grace, ttl)), every pending prediction expired
=====  =========================================================================================

A clean run's per-cell window metrics and counters equal the offline computation after L1,
after L2 and at the end; a run killed with ``kill -9`` and stopped with SIGTERM while records
are in flight ends equal to the clean run. Two more runs use inline labels: a stream whose
accuracy drops in one segment of one model (the tiles, the error-stream detector and the gap
show it) next to a calibrated synthetic model (the label-free estimate is within its bound of
the realized accuracy), and a regression model.
"""

from __future__ import annotations

import json
import math
import re
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka.partitioner.default import murmur2

from tests import oracles
from tests.e2e.conftest import kafka_clients
from tests.e2e.support.config import add_tables, extend_config, override_client_settings
from tests.e2e.support.layout import ALL, rollups
from tests.e2e.support.process import TilewatchProcess
from tests.e2e.support.scrape import Sample, compare_metrics, series, value
from tests.helpers import produce
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

W = 2.0
CELL_GRACE = 0.5
LABEL_GRACE = 4.0
TTL = 12.0
ORPHAN_TTL = 6.0
MIN_SAMPLES = 5
BINS = 10
PARTITIONS = 3
MODELS = ("alpha", "beta")
SEGMENTS = ("s0", "s1", "s2", "s3")
REGIONS = ("eu", "us")
CRASH_CLIENT = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 600,
    "max_poll_interval_ms": 6000,
}
Cell = tuple[str, str, str]

#: Per-cell window metrics and the stats they are compared with.
CLASSIFICATION_GAUGES = {
    "tilewatch_window_accuracy_ratio": "accuracy",
    "tilewatch_window_accuracy_ratio_lower": "accuracy_lower",
    "tilewatch_window_accuracy_ratio_upper": "accuracy_upper",
    "tilewatch_window_error_ratio": "error",
    "tilewatch_window_error_ratio_lower": "error_lower",
    "tilewatch_window_error_ratio_upper": "error_upper",
    "tilewatch_window_precision_ratio": "precision",
    "tilewatch_window_recall_ratio": "recall",
    "tilewatch_window_f1": "f1",
    "tilewatch_window_brier_score": "brier",
    "tilewatch_window_log_loss": "log_loss",
    "tilewatch_window_calibration_error": "calibration_error",
    "tilewatch_window_estimate_gap_ratio": "estimate_gap",
    "tilewatch_window_estimate_gap_bound": "estimate_bound",
}
REGRESSION_GAUGES = {
    "tilewatch_window_mae": "mae",
    "tilewatch_window_rmse": "rmse",
    "tilewatch_window_mean_error": "mean_error",
}


def _start() -> float:
    """An epoch time near now, aligned to 20 s, so windows are numbered from the phase start."""
    return math.floor(time.time() / 20.0) * 20.0 - 600.0


# -- config -----------------------------------------------------------------------------------


def _config(make: Callable[..., Path], topic: str, labels: dict[str, Any], **kw: Any) -> Path:
    path = make(topic, cells={"window": f"{W:g}s", "grace": f"{CELL_GRACE:g}s"}, **kw)
    return add_tables(path, labels=labels)


def _topic_labels(outcomes: str) -> dict[str, Any]:
    return {
        "source": "topic",
        "topic": outcomes,
        "threshold": 0.5,
        "grace": f"{LABEL_GRACE:g}s",
        "ttl": f"{TTL:g}s",
        "orphan_ttl": f"{ORPHAN_TTL:g}s",
        "min_samples": MIN_SAMPLES,
        "calibration_bins": BINS,
        "error_detector": "none",
    }


# -- offline reference (tests.oracles, per leaf and roll-up cell) -----------------------------


def _labels_of(cell: Cell) -> dict[str, str]:
    return {"model": cell[0], "segment": cell[1], "region": cell[2]}


def _by_cell(
    pairs: Iterable[tuple[Cell, float, float]],
) -> dict[Cell, tuple[np.ndarray, np.ndarray]]:
    """``(cell, score, label)`` triples grouped per leaf and roll-up cell."""
    grouped: dict[Cell, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for cell, score, label in pairs:
        for c in rollups(cell):
            grouped[c][0].append(score)
            grouped[c][1].append(label)
    return {c: (np.array(s), np.array(y)) for c, (s, y) in grouped.items()}


def check_window(
    metrics: dict[Sample, float],
    cells: Iterable[Cell],
    labeled: list[tuple[Cell, float, float]],
    gauges: dict[str, str],
    task: str = "classification",
    min_samples: int = MIN_SAMPLES,
) -> list[str]:
    """Mismatches between every cell's performance gauges and the reference."""
    groups = _by_cell(labeled)
    problems = []
    for cell in cells:
        scores, y = groups.get(cell, (np.zeros(0), np.zeros(0)))
        ref = (
            oracles.classification(y, scores, 0.5, bins=BINS, min_samples=min_samples)
            if task == "classification"
            else oracles.regression(y, scores, min_samples=min_samples)
        )
        labels = _labels_of(cell)
        got = value(metrics, "tilewatch_window_labeled_events", **labels)
        if got != ref["labeled"]:
            problems.append(f"labeled{labels}: got {got}, want {ref['labeled']}")
        for name, field in gauges.items():
            got = value(metrics, name, **labels)
            if not oracles.close(got, ref[field]):
                problems.append(f"{name}{labels}: got {got!r}, want {ref[field]!r}")
    return problems


def check_estimate(
    metrics: dict[Sample, float],
    cells: Iterable[Cell],
    predictions: list[tuple[Cell, float]],
    min_samples: int = MIN_SAMPLES,
) -> list[str]:
    groups = _by_cell((c, s, 0.0) for c, s in predictions)
    problems = []
    for cell in cells:
        scores = groups.get(cell, (np.zeros(0), None))[0]
        est, bound = oracles.estimate(scores, 0.5, min_samples=min_samples)
        labels = _labels_of(cell)
        for name, want in (
            ("tilewatch_window_estimated_accuracy_ratio", est),
            ("tilewatch_window_estimated_accuracy_bound", bound),
        ):
            got = value(metrics, name, **labels)
            if not oracles.close(got, want):
                problems.append(f"{name}{labels}: got {got!r}, want {want!r}")
    return problems


def all_cells(leaves: Iterable[Cell]) -> list[Cell]:
    return sorted({c for leaf in leaves for c in rollups(leaf)})


def fail_on(problems: list[str], what: str) -> None:
    assert not problems, f"{what}: {len(problems)} mismatches\n" + "\n".join(problems[:30])


# -- the topic-label stream -------------------------------------------------------------------


@dataclass
class Pred:
    id: str | None
    cell: Cell
    t: float
    score: float
    y: float  # the label it will get if one is sent

    def record(self) -> tuple[bytes, bytes]:
        m, s, r = self.cell
        payload: dict[str, Any] = {"model": m, "segment": s, "region": r, "score": self.score}
        payload["timestamp"] = self.t
        if self.id is not None:
            payload["event_id"] = self.id
        return "|".join(self.cell).encode(), json.dumps(payload).encode()


@dataclass
class Lab:
    id: str
    cell: Cell
    y: float
    t: float

    def record(self) -> tuple[bytes, bytes]:
        payload = {"event_id": self.id, "label": int(self.y), "timestamp": self.t}
        return "|".join(self.cell).encode(), json.dumps(payload).encode()


LEAVES: list[Cell] = [(m, s, r) for m in MODELS for s in SEGMENTS for r in REGIONS]
INVALID_LABELS = (
    (b"alpha|s0|eu", b"{not json"),
    (b"alpha|s1|us", b'{"event_id": "x", "label": 2}'),
    (b"beta|s2|eu", b'{"label": 1, "timestamp": 1}'),
)


def _window(t: float) -> int:
    return math.floor(t / W)


def _phase(rng: np.random.Generator, start: float, n: int, prefix: str) -> list[Pred]:
    """``n`` predictions in ``[start, start + 9.85)`` plus one per leaf at ``start + 9.9`` and
    after, in time order; 1% repeated right after themselves, 1% without id."""
    shape = {c: (0.6 + 2.0 * rng.random(), 0.6 + 2.0 * rng.random()) for c in LEAVES}
    bias = {c: 0.15 * (rng.random() - 0.5) for c in LEAVES}
    times = np.sort(rng.uniform(0.05, 9.85, n)) + start
    picks = rng.integers(0, len(LEAVES), n)
    cells = [LEAVES[i] for i in picks.tolist()]
    times = [*times.tolist(), *(start + 9.9 + 0.005 * j for j in range(len(LEAVES)))]
    cells += LEAVES
    out: list[Pred] = []
    for i, (cell, t) in enumerate(zip(cells, times, strict=True)):
        a, b = shape[cell]
        score = float(rng.beta(a, b))
        y = float(rng.random() < min(max(score + bias[cell], 0.0), 1.0))
        eid = None if rng.random() < 0.01 else f"{prefix}{i}"
        pred = Pred(eid, cell, t, score, y)
        out.append(pred)
        if eid is not None and rng.random() < 0.01:
            out.append(Pred(eid, cell, t, score, y))  # a repeated prediction
    return out


@dataclass
class Plan:
    start: float
    a: list[Pred]
    b: list[Pred]
    l0: list[Lab]
    l1: list[Lab]
    l1b: list[Lab]
    l2: list[Lab]
    flush: list[Pred]
    #: id -> the label value joined, and whether it was late.
    joined: dict[str, tuple[float, bool]]
    orphaned: int
    duplicate_labels: int


def _first(preds: list[Pred]) -> dict[str, Pred]:
    out: dict[str, Pred] = {}
    for p in preds:
        if p.id is not None and p.id not in out:
            out[p.id] = p
    return out


def _pick(rng: np.random.Generator, items: list[Pred], share: float) -> list[Pred]:
    k = round(len(items) * share)
    return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False).tolist())]


def _lab(p: Pred, flip: bool = False) -> Lab:
    assert p.id is not None
    return Lab(p.id, p.cell, 1.0 - p.y if flip else p.y, p.t + 0.3)


def _shuffled(rng: np.random.Generator, labs: list[Lab]) -> list[Lab]:
    order = rng.permutation(len(labs))
    return [labs[i] for i in order.tolist()]


def make_plan(seed: int, start: float, n: int = 2400) -> Plan:
    rng = np.random.default_rng(seed)
    a = _phase(rng, start, n, "a")
    b = _phase(rng, start + 10.0, n, "b")
    first_a, first_b = list(_first(a).values()), list(_first(b).values())
    joined: dict[str, tuple[float, bool]] = {}

    def window(p: Pred) -> int:
        return _window(p.t) - _window(start)

    # L0: labels before their predictions, ghosts, repeats (the first one counts). The
    # labels of A's last prediction per leaf (t >= 9.9 s) are among them, so every outcomes
    # partition's label clock reaches 10.2 s: windows 0-2 (end + grace <= 10 s) become final
    # as soon as they close, window 3 (12 s) does not.
    closing_a = {p.id for p in first_a if p.t >= start + 9.9}
    early_a = [p for p in _pick(rng, first_a, 0.3) if p.id not in closing_a]
    early_a += [p for p in first_a if p.id in closing_a]
    ghosts = [Lab(f"ghost{i}", LEAVES[i % len(LEAVES)], 1.0, start + 1.0) for i in range(20)]
    l0_repeats = [_lab(p, flip=True) for p in early_a[:10]]
    l0 = _shuffled(rng, [*(_lab(p) for p in early_a), *ghosts, *l0_repeats])
    for p in early_a:
        assert p.id is not None
        joined[p.id] = (p.y, False)

    # L1: half of the rest of A (windows 0-2 are final: late; 3-4 credited), repeats. Their
    # times (up to 10.3 s) finalize nothing more.
    rest_a = [p for p in first_a if p.id not in joined]
    l1_a = _pick(rng, rest_a, 0.5)
    for p in l1_a:
        assert p.id is not None
        joined[p.id] = (p.y, window(p) <= 2)
    l1 = _shuffled(
        rng,
        [
            *(_lab(p) for p in l1_a),
            *(_lab(p, flip=True) for p in early_a[10:20]),  # repeats of L0's labels
            *(_lab(p, flip=True) for p in l1_a[:10]),  # repeats within L1
        ],
    )
    # L1b: early labels of B, with B's last prediction per leaf: every label clock reaches
    # 20.2 s, so windows up to 7 (end + grace <= 20 s) are final once closed, 8 is not.
    closing_b = {p.id for p in first_b if p.t >= start + 19.9}
    early_b = [p for p in _pick(rng, first_b, 0.3) if p.id not in closing_b]
    early_b += [p for p in first_b if p.id in closing_b]
    for p in early_b:
        assert p.id is not None
        joined[p.id] = (p.y, False)
    l1b = _shuffled(rng, [_lab(p) for p in early_b])

    # L2: half of the rest of B (windows 5-7 final: late; 8-9 credited), A's window 4 (final:
    # late), A's windows 0-2 (their predictions expired: orphans), repeats.
    rest_b = [p for p in first_b if p.id not in joined]
    l2_b = _pick(rng, rest_b, 0.5)
    for p in l2_b:
        assert p.id is not None
        joined[p.id] = (p.y, window(p) <= 7)
    unlabeled_a = [p for p in first_a if p.id not in joined]
    late_a = [p for p in unlabeled_a if p.t >= start + 8.0][:40]
    for p in late_a:
        assert p.id is not None
        joined[p.id] = (p.y, True)
    expired_a = [p for p in unlabeled_a if p.t < start + 6.0][:30]
    l2 = _shuffled(
        rng,
        [
            *(_lab(p) for p in l2_b),
            *(_lab(p) for p in late_a),
            *(_lab(p) for p in expired_a),
            *(_lab(p, flip=True) for p in l2_b[:10]),  # repeats within L2
        ],
    )
    # A repeated label may come first after the shuffle: the first one in the partition's
    # order is the one joined (the repeat counts as a duplicate).
    first_label: dict[str, float] = {}
    for lab in (*l0, *l1, *l1b, *l2):
        first_label.setdefault(lab.id, lab.y)
    joined = {eid: (first_label[eid], late) for eid, (_y, late) in joined.items()}
    flush = [Pred(None, c, start + 130.0 + 0.001 * j, 0.5, 0.0) for j, c in enumerate(LEAVES)]
    return Plan(
        start=start,
        a=a,
        b=b,
        l0=l0,
        l1=l1,
        l1b=l1b,
        l2=l2,
        flush=flush,
        joined=joined,
        orphaned=len(ghosts) + len(expired_a),
        duplicate_labels=40,
    )


def _check_partitions() -> None:
    """Every partition holds some leaf cell (so every watermark moves with each phase)."""
    used = {(murmur2("|".join(c).encode()) & 0x7FFFFFFF) % PARTITIONS for c in LEAVES}
    assert used == set(range(PARTITIONS))


def _produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
    keys, values = zip(*records, strict=True)
    produce(bootstrap, topic, list(values), list(keys), timeout=60)


# -- waiting ----------------------------------------------------------------------------------


def _counter(m: dict[Sample, float], name: str, **labels: str) -> float:
    return value(m, name, **labels) or 0.0


def _accounted(m: dict[Sample, float]) -> tuple[float, float, float]:
    """Valid events counted; predictions with an id accounted for; labels accounted for."""
    events = sum(
        v
        for labels, v in series(m, "tilewatch_events_total").items()
        if ALL not in dict(labels).values()
    )
    joined = _counter(m, "tilewatch_labels_joined_total")
    predictions = (
        joined
        + _counter(m, "tilewatch_labels_expired_total", reason="ttl")
        + _counter(m, "tilewatch_labels_expired_total", reason="budget")
        + _counter(m, "tilewatch_labels_pending")
        + _counter(m, "tilewatch_labels_duplicates_total", side="prediction")
    )
    labels = (
        joined
        + _counter(m, "tilewatch_labels_orphaned_total")
        + _counter(m, "tilewatch_labels_held")
        + _counter(m, "tilewatch_labels_duplicates_total", side="label")
    )
    return events, predictions, labels


def wait_for(
    process: TilewatchProcess,
    what: str,
    events: int,
    with_id: int,
    labels: int,
    produced: float | None = None,
) -> dict[Sample, float]:
    """Until the process has every event and label so far in state, and two scrapes 0.3 s
    apart agree (nothing more is coming).

    With ``produced`` (when the last records started to be produced), also until that state
    is in a checkpoint: the loop writes one within a checkpoint interval (0.3 s) of any change,
    so 1 s after the state settled it is written, and it is dated after ``produced`` unless the
    process (restarted since) had nothing to add to the checkpoint it restored. Then a restart
    replays only records produced later, in the order they were produced: whether a label is
    late depends on whether it is read before or after the predictions that move the
    watermark, and a replay of two phases at once would interleave them differently.
    """
    want = (float(events), float(with_id), float(labels))
    previous: dict[Sample, float] | None = None
    deadline = time.monotonic() + 60.0
    while True:
        m = process.wait_until(what, lambda m: _accounted(m) == want, deadline - time.monotonic())
        if previous is not None and not _differences(previous, m, rel=0.0):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: metrics did not settle\n{process.describe()}")
        previous = m
        time.sleep(0.3)
    if produced is None:
        return m
    time.sleep(1.0)
    m = process.metrics()
    written = value(m, "tilewatch_checkpoint_last_timestamp_seconds") or 0.0
    restored = value(m, "tilewatch_checkpoint_restores_total", result="restored") or 0.0
    assert written > produced or (written == 0.0 and restored > 0), (
        f"{what}: no checkpoint of the new state ({written} <= {produced})\n{process.describe()}"
    )
    return m


#: Families that depend on the process, not on the state (reset by a restart, or estimates).
PER_PROCESS = {
    "tilewatch_label_records_total",
    "tilewatch_invalid_labels_total",
    "tilewatch_labels_join_bytes",
}


def _performance_names() -> list[str]:
    from tilewatch.exporters.prometheus.catalog import PERFORMANCE_METRICS

    return [d.name for d in PERFORMANCE_METRICS if d.name not in PER_PROCESS]


def _differences(ref: dict[Sample, float], got: dict[Sample, float], rel: float) -> list[str]:
    problems = compare_metrics(ref, got, rel=rel)
    for name in _performance_names():
        want, have = series(ref, name), series(got, name)
        for labels in sorted(set(want) | set(have), key=sorted):
            w, g = want.get(labels), have.get(labels)
            same = (
                w is not None
                and g is not None
                and (
                    (math.isnan(w) and math.isnan(g))
                    or math.isclose(w, g, rel_tol=rel, abs_tol=1e-12)
                )
            )
            if not same:
                problems.append(f"{name}{dict(labels)}: reference {w!r}, got {g!r}")
    return problems


# -- (a) and (b): labels from a topic, exact, and across restarts -----------------------------


@pytest.fixture
def topics(make_topic: Callable[..., str]) -> tuple[str, str]:
    return make_topic(PARTITIONS), make_topic(PARTITIONS)


def _expected_totals(plan: Plan) -> tuple[dict[Cell, int], dict[Cell, int]]:
    preds = {**_first(plan.a), **_first(plan.b)}
    labeled: dict[Cell, int] = defaultdict(int)
    errors: dict[Cell, int] = defaultdict(int)
    for eid, (y, _late) in plan.joined.items():
        p = preds[eid]
        for c in rollups(p.cell):
            labeled[c] += 1
            errors[c] += int((p.score >= 0.5) != (y == 1.0))
    return labeled, errors


def _window_pairs(plan: Plan, w: int) -> list[tuple[Cell, float, float]]:
    """(cell, score, label) of window ``w``'s predictions whose label was credited (on time)."""
    preds = {**_first(plan.a), **_first(plan.b)}
    out = []
    for eid, (y, late) in plan.joined.items():
        p = preds[eid]
        if _window(p.t) - _window(plan.start) == w and not late:
            out.append((p.cell, p.score, y))
    return out


def _window_predictions(preds: list[Pred], start: float, w: int) -> list[tuple[Cell, float]]:
    return [(p.cell, p.score) for p in preds if _window(p.t) - _window(start) == w]


def _credited_by_l1(plan: Plan, w: int) -> list[tuple[Cell, float, float]]:
    """Window ``w``'s credited labels once L1 is read: only L0's (L1's labels of A's windows
    0-2 are late)."""
    preds_a = _first(plan.a)
    l0 = {lab.id for lab in plan.l0}
    return [
        (preds_a[eid].cell, preds_a[eid].score, y)
        for eid, (y, late) in plan.joined.items()
        if eid in l0
        and eid in preds_a
        and not late
        and _window(preds_a[eid].t) - _window(plan.start) == w
    ]


@pytest.mark.parametrize("client", kafka_clients(slow=True))
def test_topic_labels_exact_and_restart_safe(
    client: str,
    broker: EmbeddedBroker,
    topics: tuple[str, str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    _check_partitions()
    predictions, outcomes = topics
    plan = make_plan(20261123, _start())
    labels = _topic_labels(outcomes)
    clean = start_tilewatch(
        _config(tilewatch_config, predictions, labels, state={"checkpoints": False}),
        name="clean",
    )
    crash_config = override_client_settings(
        _config(tilewatch_config, predictions, labels, kafka={"max_poll_records": 200}),
        **CRASH_CLIENT,
    )
    crash = start_tilewatch(crash_config, name="crash-0")
    runs = [crash]

    def restart(sig: int) -> TilewatchProcess:
        old = runs[-1]
        old.signal(sig)
        code = old.wait_exit(30)
        assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), old.describe()
        new = start_tilewatch(crash_config, name=f"crash-{len(runs)}")
        runs.append(new)
        return new

    events = with_id = n_labels = 0
    label_records = 0

    def step(records_topic: str, records: list[Any], sig: int | None, what: str) -> list[dict]:
        nonlocal events, with_id, n_labels, label_records
        produced = time.time()
        _produce(broker.bootstrap, records_topic, [r.record() for r in records])
        if records_topic == predictions:
            events += len(records)
            with_id += sum(1 for r in records if getattr(r, "id", None) is not None)
        else:
            n_labels += len(records)
            label_records += len(records)
        if sig is not None:
            restart(sig)  # while the records are in flight
        return [
            wait_for(clean, what, events, with_id, n_labels),
            wait_for(runs[-1], what, events, with_id, n_labels, produced),
        ]

    step(outcomes, plan.l0, None, "L0 held")
    step(predictions, plan.a, signal.SIGKILL, "phase A")
    _produce(broker.bootstrap, outcomes, INVALID_LABELS)
    label_records += len(INVALID_LABELS)
    after_l1 = step(outcomes, plan.l1, signal.SIGTERM, "L1")
    step(outcomes, plan.l1b, None, "L1b")
    step(predictions, plan.b, signal.SIGKILL, "phase B")
    after_l2 = step(outcomes, plan.l2, signal.SIGKILL, "L2")
    final = step(predictions, plan.flush, None, "flush")

    start = plan.start
    cells = all_cells(LEAVES)
    # After L1: the performance window is 2 (final), credited with L0's labels only; the
    # estimate is for window 3, the latest closed window.
    m = after_l1[0]
    assert series(m, "tilewatch_performance_window_end_timestamp_seconds") == {
        frozenset({("model", model)}): start + 3 * W for model in MODELS
    }
    pairs = _credited_by_l1(plan, 2)
    assert len(pairs) > 50
    fail_on(check_window(m, cells, pairs, CLASSIFICATION_GAUGES), "after L1, window 2")
    fail_on(check_estimate(m, cells, _window_predictions(plan.a, start, 3)), "after L1, estimate")

    # After L2: window 7 (credited with B's early labels), estimate of window 8.
    m = after_l2[0]
    assert set(series(m, "tilewatch_performance_window_end_timestamp_seconds").values()) == {
        start + 8 * W
    }
    preds_b = _first(plan.b)
    early_b = {lab.id for lab in plan.l1b}
    pairs = [
        (preds_b[eid].cell, preds_b[eid].score, plan.joined[eid][0])
        for eid in early_b
        if _window(preds_b[eid].t) - _window(start) == 7
    ]
    assert len(pairs) > 50
    fail_on(check_window(m, cells, pairs, CLASSIFICATION_GAUGES), "after L2, window 7")
    fail_on(check_estimate(m, cells, _window_predictions(plan.b, start, 8)), "after L2, estimate")

    # The end: window 9 with every credited label; the counters exact.
    m = final[0]
    assert set(series(m, "tilewatch_performance_window_end_timestamp_seconds").values()) == {
        start + 10 * W
    }
    fail_on(check_window(m, cells, _window_pairs(plan, 9), CLASSIFICATION_GAUGES), "window 9")
    fail_on(check_estimate(m, cells, _window_predictions(plan.b, start, 9)), "end, estimate")
    labeled, errors = _expected_totals(plan)
    for cell in cells:
        lab = _labels_of(cell)
        assert value(m, "tilewatch_labeled_events_total", **lab) == labeled.get(cell, 0), cell
        assert value(m, "tilewatch_label_errors_total", **lab) == errors.get(cell, 0), cell
    distinct = len(_first(plan.a)) + len(_first(plan.b))
    n_with_id = sum(1 for p in (*plan.a, *plan.b) if p.id is not None)
    n_missing = sum(1 for p in (*plan.a, *plan.b, *plan.flush) if p.id is None)
    expected = {
        ("tilewatch_labels_joined_total", ()): len(plan.joined),
        ("tilewatch_labels_expired_total", (("reason", "ttl"),)): distinct - len(plan.joined),
        ("tilewatch_labels_expired_total", (("reason", "budget"),)): 0,
        ("tilewatch_labels_orphaned_total", ()): plan.orphaned,
        ("tilewatch_labels_duplicates_total", (("side", "label"),)): plan.duplicate_labels,
        ("tilewatch_labels_duplicates_total", (("side", "prediction"),)): n_with_id - distinct,
        ("tilewatch_labels_missing_id_total", ()): n_missing,
        ("tilewatch_labels_late_total", ()): sum(late for _y, late in plan.joined.values()),
        ("tilewatch_labels_pending", ()): 0,
        ("tilewatch_labels_held", ()): 0,
    }
    got = {key: value(m, key[0], **dict(key[1])) for key in expected}
    assert got == expected
    assert value(m, "tilewatch_label_records_total") == label_records
    assert {
        dict(k)["reason"]: v for k, v in series(m, "tilewatch_invalid_labels_total").items()
    } == {"not_json": 1, "bad_label": 1, "missing_field": 1}
    # The stream exercises every rule (these numbers are fixed by the seed).
    assert n_with_id - distinct > 10 and n_missing > 20 and plan.orphaned == 50
    assert expected[("tilewatch_labels_late_total", ())] > 300
    assert expected[("tilewatch_labels_expired_total", (("reason", "ttl"),))] > 1000

    # (b) The crash run, killed and stopped with records in flight, ends like the clean run.
    for run in runs:
        assert "Traceback" not in run.stderr_path.read_text(errors="replace"), run.describe()
    for run in runs[1:]:
        assert re.search(r"partition \S+: restored", run.stderr_path.read_text()), run.describe()
    problems = _differences(final[0], final[1], rel=1e-9)
    fail_on(problems, "crash run against the clean run")
    for pair in (after_l1, after_l2):
        fail_on(_differences(pair[0], pair[1], rel=1e-9), "crash run mid-stream")


# -- (c), (d) and (e): inline labels ----------------------------------------------------------

FRAUD_SEGMENTS = ("s0", "s1", "s2", "s3")
DEGRADED = "s2"
INLINE_MIN_SAMPLES = 10


@dataclass
class Inline:
    cell: Cell
    t: float
    score: float
    label: float | None

    def record(self) -> tuple[bytes, bytes]:
        m, s, r = self.cell
        payload = {"model": m, "segment": s, "region": r, "score": self.score, "timestamp": self.t}
        return "|".join(self.cell).encode(), json.dumps({**payload, "label": self.label}).encode()


def _degrading_and_calibrated(start: float) -> list[Inline]:
    """Model fraud (confident, calibrated scores) whose segment s2 gets labels opposite to
    its scores after 20 s; model churn from the synthetic generator (labels ~ Bernoulli of
    the score, so calibrated); 40 s of event time in time order."""
    rng = np.random.default_rng(4242)
    leaves = [("fraud", s, r) for s in FRAUD_SEGMENTS for r in REGIONS]
    n = 4800
    times = start + np.sort(rng.uniform(0.0, 39.99, n))
    out: list[Inline] = []
    for t in times.tolist():
        cell = leaves[int(rng.integers(0, len(leaves)))]
        score = float(rng.beta(0.4, 0.4))
        y = float(rng.random() < score)
        if cell[1] == DEGRADED and t >= start + 20.0:
            y = 1.0 - y
        out.append(Inline(cell, t, score, y))
    spec = TrafficSpec(
        models=("churn",),
        segments=("c0", "c1", "c2", "c3"),
        regions=("eu", "us", "ap"),
        degrade_cell=None,
        label_share=1.0,
        seed=11,
    )
    for e in TrafficGenerator(spec, start_time=start).events(6000, spread_seconds=40.0):
        cell = (e["model"], e["segment"], e["region"])
        out.append(Inline(cell, e["timestamp"], e["score"], float(e["label"])))
    out.sort(key=lambda e: e.t)
    return out


def _flush_inline(events: list[Inline], t: float) -> list[Inline]:
    return [
        Inline(c, t + 0.001 * j, 0.5, None) for j, c in enumerate(sorted({e.cell for e in events}))
    ]


def _detector_reference(events: list[Inline]) -> dict[Cell, tuple[int, float]]:
    """river's HDDM_A on each leaf cell's error bits, in the order the cell's events were
    produced (keyed by cell, so in one partition, in that order), with the parameters
    tilewatch gives it (drift confidence 1e-4, not river's default)."""
    from river.drift.binary import HDDMA

    from tilewatch.aggregators.labels.error_detectors import PARAMETERS

    detectors: dict[Cell, Any] = {}
    found: dict[Cell, tuple[int, float]] = {}
    for e in events:
        if e.label is None:
            continue
        det = detectors.setdefault(e.cell, HDDMA(**PARAMETERS["hddm_a"]))
        det.update((e.score >= 0.5) != (e.label == 1.0))
        if det.drift_detected:
            count, _last = found.get(e.cell, (0, 0.0))
            found[e.cell] = (count + 1, e.t)
    return found


def _gaps(
    metrics: dict[Sample, float], window: list[tuple[Cell, float, float]], min_samples: int
) -> tuple[list[str], dict[tuple[str, str, str], tuple[float, str, str]]]:
    """Mismatches of the gap families against the one-dimensional roll-ups' accuracy."""
    groups = _by_cell(window)
    expected: dict[tuple[str, str, str], tuple[float, str, str]] = {}
    for model in sorted({c[0] for c in groups}):
        for d, dim in enumerate(("segment", "region")):
            rows = []
            for cell, (s, y) in groups.items():
                one = cell[1 + d] != ALL and cell[2 - d] == ALL
                if cell[0] == model and one and len(y) >= min_samples:
                    rows.append((float(np.mean((s >= 0.5) == (y == 1.0))), cell[1 + d]))
            if len(rows) < 2:
                continue
            rows.sort()
            worst, best = rows[0], rows[-1]
            gap = best[0] - worst[0]
            expected[(model, dim, "accuracy")] = (gap, worst[1], best[1])
            # The error rate orders the cells exactly like the accuracy (error = 1 - accuracy),
            # ties included, so the worst and best cells are the same.
            expected[(model, dim, "error")] = (gap, worst[1], best[1])
    problems = []
    for (model, dim, metric), (gap, worst, best) in expected.items():
        got = value(metrics, f"tilewatch_window_{metric}_gap_ratio", model=model, dimension=dim)
        if not oracles.close(got, gap):
            problems.append(f"{metric} gap {model}/{dim}: got {got}, want {gap}")
        info = value(
            metrics,
            "tilewatch_window_gap_info",
            model=model,
            dimension=dim,
            metric=metric,
            worst=worst,
            best=best,
        )
        if info != 1.0:
            problems.append(f"gap info {model}/{dim}/{metric}: no sample worst={worst} best={best}")
    exported = series(metrics, "tilewatch_window_gap_info")
    if len(exported) != len(expected):
        problems.append(f"{len(exported)} gap info samples, want {len(expected)}")
    return problems, expected


def test_inline_accuracy_drop_in_one_segment_and_calibrated_estimate(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    topic = make_topic(PARTITIONS)
    start = _start()
    events = _degrading_and_calibrated(start)
    flush = _flush_inline(events, start + 200.0)
    labels = {
        "threshold": 0.5,
        "min_samples": INLINE_MIN_SAMPLES,
        "calibration_bins": BINS,
        # river's DDM raises false alarms on about half of stable 600-event streams (measured:
        # 19/40 at a 5% error rate); HDDM_A on none.
        "error_detector": "hddm_a",
    }
    run = start_tilewatch(_config(tilewatch_config, topic, labels))
    _produce(broker.bootstrap, topic, [e.record() for e in (*events, *flush)])
    m = run.wait_read(len(events) + len(flush))
    m = run.wait_until(
        "both models report window 19",
        lambda m: (
            set(series(m, "tilewatch_performance_window_end_timestamp_seconds").values())
            == {start + 20 * W}
        ),
    )
    window = [(e.cell, e.score, e.label) for e in events if _window(e.t) - _window(start) == 19]
    assert all(label is not None for _c, _s, label in window)
    cells = all_cells({e.cell for e in events})
    pairs = [(c, s, float(y)) for c, s, y in window if y is not None]
    fail_on(
        check_window(m, cells, pairs, CLASSIFICATION_GAUGES, min_samples=INLINE_MIN_SAMPLES),
        "inline window 19",
    )
    fail_on(
        check_estimate(m, cells, [(c, s) for c, s, _y in pairs], INLINE_MIN_SAMPLES),
        "inline estimate",
    )
    labeled: dict[Cell, int] = defaultdict(int)
    for e in events:
        for c in rollups(e.cell):
            labeled[c] += 1
    for cell in cells:
        assert value(m, "tilewatch_labeled_events_total", **_labels_of(cell)) == labeled[cell]
    assert value(m, "tilewatch_labels_late_total") == 0

    # (c) The degraded segment's tiles show the drop; the other segments' do not.
    def acc(cell: Cell, which: str = "") -> float:
        got = value(m, f"tilewatch_window_accuracy_ratio{which}", **_labels_of(cell))
        assert got is not None and not math.isnan(got), cell
        return got

    for seg in FRAUD_SEGMENTS:
        for cell in [("fraud", seg, r) for r in (*REGIONS, ALL)]:
            if seg == DEGRADED:
                assert acc(cell, "_upper") < 0.5, cell
                err = value(m, "tilewatch_window_error_ratio_lower", **_labels_of(cell))
                assert err is not None and err > 0.5, cell
            else:
                assert acc(cell, "_lower") > 0.5, cell
    problems, expected = _gaps(m, pairs, INLINE_MIN_SAMPLES)
    fail_on(problems, "gaps")
    gap, worst, _best = expected[("fraud", "segment", "accuracy")]
    assert worst == DEGRADED and gap > 0.3
    assert expected[("fraud", "segment", "error")][1] == DEGRADED
    assert expected[("fraud", "region", "accuracy")][0] < gap / 2

    # The error-stream detector fires in the degraded segment's leaves only (river's HDDM_A
    # on the same bits, in the same order, finds exactly what tilewatch exports).
    reference = _detector_reference(events)
    got_detections = {
        (d["model"], d["segment"], d["region"]): v
        for labels_, v in series(m, "tilewatch_drift_detections_total").items()
        for d in [dict(labels_)]
        if d["detector"] == "hddm_a"
    }
    assert got_detections == {c: float(n) for c, (n, _t) in reference.items()}
    for cell, (_n, last) in reference.items():
        got_last = value(
            m, "tilewatch_drift_last_timestamp_seconds", **_labels_of(cell), detector="hddm_a"
        )
        assert got_last == last, cell
    fraud_detected = {c for c in reference if c[0] == "fraud"}
    assert fraud_detected == {("fraud", DEGRADED, r) for r in REGIONS}
    assert all(reference[c][1] >= start + 20.0 for c in fraud_detected)

    # (d) On the calibrated model the label-free estimate is within its bound of the realized
    # accuracy in (almost) every cell; on the degraded segment it is not.
    within = outside = 0
    for cell in cells:
        if cell[0] != "churn":
            continue
        lab = _labels_of(cell)
        realized = value(m, "tilewatch_window_accuracy_ratio", **lab)
        est = value(m, "tilewatch_window_estimated_accuracy_ratio", **lab)
        bound = value(m, "tilewatch_window_estimated_accuracy_bound", **lab)
        assert realized is not None and est is not None and bound is not None
        if math.isnan(realized):
            continue
        assert bound < 0.3, cell  # the bound says something
        if abs(realized - est) <= bound:
            within += 1
        else:
            outside += 1
    assert within >= 12 and outside <= max(1, (within + outside) // 10), (within, outside)
    s2 = _labels_of(("fraud", DEGRADED, ALL))
    realized, est, bound = (
        value(m, f"tilewatch_window_{name}", **s2)
        for name in ("accuracy_ratio", "estimated_accuracy_ratio", "estimated_accuracy_bound")
    )
    assert realized is not None and est is not None and bound is not None
    assert abs(realized - est) > 3 * bound


def test_inline_regression(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    topic = make_topic(PARTITIONS)
    start = _start()
    rng = np.random.default_rng(99)
    leaves = [("price", s, r) for s in ("r0", "r1", "r2") for r in REGIONS]
    n = 1500
    times = start + np.sort(rng.uniform(0.0, 9.99, n))
    events = []
    for t in times.tolist():
        cell = leaves[int(rng.integers(0, len(leaves)))]
        score = float(rng.normal(100.0, 20.0))
        bias = {"r0": 0.0, "r1": 3.0, "r2": -5.0}[cell[1]]
        target = score - bias + float(rng.normal(0.0, 4.0))
        events.append(Inline(cell, t, score, None if rng.random() < 0.1 else target))
    flush = _flush_inline(events, start + 100.0)
    labels = {"task": "regression", "min_samples": INLINE_MIN_SAMPLES}
    config = extend_config(
        _config(tilewatch_config, topic, labels), events={"score_min": -1e6, "score_max": 1e6}
    )
    run = start_tilewatch(config)
    _produce(broker.bootstrap, topic, [e.record() for e in (*events, *flush)])
    run.wait_read(len(events) + len(flush))
    m = run.wait_until(
        "window 4 reported",
        lambda m: (
            series(m, "tilewatch_performance_window_end_timestamp_seconds")
            == {frozenset({("model", "price")}): start + 5 * W}
        ),
    )
    cells = all_cells(leaves)
    pairs = [
        (e.cell, e.score, e.label)
        for e in events
        if e.label is not None and _window(e.t) - _window(start) == 4
    ]
    fail_on(
        check_window(m, cells, pairs, REGRESSION_GAUGES, "regression", INLINE_MIN_SAMPLES),
        "regression window 4",
    )
    labeled: dict[Cell, int] = defaultdict(int)
    for e in events:
        if e.label is not None:
            for c in rollups(e.cell):
                labeled[c] += 1
    for cell in cells:
        assert value(m, "tilewatch_labeled_events_total", **_labels_of(cell)) == labeled[cell]
    names = {name for name, _labels in m}
    assert not names & {*CLASSIFICATION_GAUGES, "tilewatch_window_estimated_accuracy_ratio"}
    assert "tilewatch_label_errors_total" not in names
    assert "tilewatch_labels_joined_total" not in names  # no join for inline labels
