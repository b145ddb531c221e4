"""The labeling queue through the real broker: the queue topic holds exactly the events the rule
selects (the offline selection of tests.aggregators.labeling on the same stored records),
budgets hold, bad and late events never enter it, and a restart from a checkpoint taken with
windows still open neither loses nor duplicates records."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson
import pytest

from tests.aggregators.labeling.test_queue import GRACE, REASONS_NO_HASH, WINDOW, offline
from tests.helpers import consume_all, fast_client_settings, produce
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.labeling.settings import LabelingSettings
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.labeling_sink import LabelingStage
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings, StateSettings

T0 = 1767225600.0  # a multiple of the window
THRESHOLD = 0.4
SETTINGS = LabelingSettings(
    reasons=REASONS_NO_HASH,
    threshold=THRESHOLD,
    rate=0.2,
    max_per_window=16,
    cell_share=0.3,
    flagged_cell_share=0.5,
)
CELLS = [(s, r) for s in "abc" for r in ("eu", "us")]


def events(rng: np.random.Generator, n: int, t_from: float, t_to: float) -> list[bytes]:
    """Valid events (some late: their time runs back past the grace), and bad records."""
    out: list[bytes] = []
    times = np.sort(rng.uniform(t_from, t_to, n)) + rng.normal(0, 3, n)
    for i, t in enumerate(times.tolist()):
        seg, reg = CELLS[rng.integers(len(CELLS))]
        obj: dict[str, Any] = {
            "model": "m",
            "score": round(float(rng.uniform()), 3),
            "segment": seg,
            "region": reg,
            "timestamp": T0 + t,
        }
        if rng.uniform() < 0.7:
            obj["label"] = int(rng.uniform() < 0.5)
        if i % 50 == 7:  # a late event: its window closed long ago
            obj["timestamp"] = T0 + max(0.0, t - 3 * WINDOW)
        out.append(orjson.dumps(obj))
        if i % 40 == 3:
            out.append(b"{not json")
            out.append(orjson.dumps({**obj, "score": 0.0001 + 1.5}))  # bad_score: 1.5001
    return out


@contextmanager
def running(kafka: KafkaSettings, changelog: str) -> Iterator[Any]:
    state = ReplicaState(
        CellSettings(window_seconds=WINDOW, grace_seconds=GRACE),
        labels=LabelSettings(source="inline", threshold=THRESHOLD),
    )
    state.labeling = SETTINGS

    def stage(factory: Callable[[], Any]) -> LabelingStage:
        return LabelingStage(SETTINGS, state, factory)

    monitor = Monitor(
        kafka,
        EventFields(),
        state,
        state_settings=StateSettings(changelog_topic=changelog, checkpoint_interval_seconds=3600.0),
        labeling=stage,
    )
    stop, result = threading.Event(), {}

    def target() -> None:
        try:
            result["summary"] = monitor.run(stop)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield state, monitor, result
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()
    if "error" in result:
        raise result["error"]


def wait_read(state: ReplicaState, result: dict[str, Any], n: int) -> None:
    deadline = time.monotonic() + 60
    while state.ingest.read < n:
        if "error" in result:
            raise result["error"]
        if time.monotonic() > deadline:
            pytest.fail(f"read {state.ingest.read} of {n}")
        time.sleep(0.05)


def offline_selection(records: list[Any]) -> tuple[set[tuple[int, int, str]], dict[Any, int]]:
    """The rule on the stored records, per partition in offset order: (partition, offset,
    reason) of every selection, and the valid (not late) events per (partition, window)."""
    chosen: set[tuple[int, int, str]] = set()
    windows: dict[Any, int] = Counter()
    for p in sorted({r.partition for r in records}):
        rows = []
        for r in sorted((r for r in records if r.partition == p), key=lambda r: r.offset):
            try:
                obj = orjson.loads(r.value)
            except orjson.JSONDecodeError:
                continue
            if not 0.0 <= obj["score"] <= 1.0:
                continue
            rows.append((r.offset, obj))
        ev = {
            "leaf": np.array([CELLS.index((o["segment"], o["region"])) for _, o in rows]),
            "times": np.array([o["timestamp"] for _, o in rows]),
            "offsets": np.array([off for off, _ in rows]),
            "scores": np.array([o["score"] for _, o in rows]),
            "thresholds": np.full(len(rows), THRESHOLD),
            "labels": np.array([float(o.get("label", math.nan)) for _, o in rows]),
        }
        # Only windows the partition's watermark closed are selected from.
        watermark = float(ev["times"].max()) - GRACE
        time_of = dict(zip(ev["offsets"].tolist(), ev["times"].tolist(), strict=True))
        chosen |= {
            (p, off, reason)
            for off, reason in offline(ev, SETTINGS)
            if (math.floor(time_of[off] / WINDOW) + 1) * WINDOW <= watermark
        }
        max_t = -math.inf
        for t in ev["times"].tolist():
            w = math.floor(t / WINDOW)
            if (w + 1) * WINDOW > max_t - GRACE:
                windows[(p, w)] += 1
            max_t = max(max_t, t)
    return chosen, windows


@pytest.mark.broker
def test_the_queue_topic_holds_exactly_the_offline_selection(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    group = f"g-{uuid.uuid4().hex}"
    changelog = f"cl-{uuid.uuid4().hex}"
    kafka = KafkaSettings(
        bootstrap_servers=(broker.bootstrap,),
        topics=(topic,),
        group_id=group,
        client=fast_client_settings(),
        commit_interval_seconds=0.2,
        poll_timeout_seconds=0.2,
    )
    rng = np.random.default_rng(18)
    first = events(rng, 500, 0.0, 150.0)  # windows 0 and 1 close, window 2 stays open
    second = events(rng, 500, 150.0, 300.0)
    second += [
        orjson.dumps(
            {"model": "m", "score": 0.5, "segment": s, "region": "eu", "timestamp": T0 + 1000.0}
        )
        for s in "abcabc"
    ]  # close them all
    keys = [b"k%d" % i for i in range(len(first) + len(second))]
    produce(broker.bootstrap, topic, first, keys[: len(first)])
    with running(kafka, changelog) as (state, _monitor, result):
        wait_read(state, result, len(first))
    produce(broker.bootstrap, topic, second, keys[len(first) :])
    with running(kafka, changelog) as (state, _monitor, result):
        wait_read(state, result, len(second))  # restored: reads only what is new
        snap_reasons = {
            reason: sum(
                int(part.labeling.selected[:, i].sum())
                for part in state.partitions.values()
                if part.labeling is not None
            )
            for i, reason in enumerate(("least_confident", "threshold_margin"))
        }
    source = consume_all(broker.bootstrap, topic, len(first) + len(second))
    expected, window_events = offline_selection(source)
    assert len(expected) > 50
    queue = consume_all(broker.bootstrap, f"{topic}.labeling", len(expected))
    with pytest.raises(pytest.fail.Exception):  # and nothing more
        consume_all(broker.bootstrap, f"{topic}.labeling", len(expected) + 1, timeout=2.0)
    headers = [dict(r.headers) for r in queue]
    got = [
        (
            int(h["tilewatch.source.partition"]),
            int(h["tilewatch.source.offset"]),
            h["tilewatch.labeling.reason"].decode(),
        )
        for h in headers
    ]
    assert len(got) == len(set(got)), "a record was produced twice"
    assert set(got) == expected
    assert snap_reasons["threshold_margin"] == 0 < snap_reasons["least_confident"]

    # Each record is the original event, with why; bad and late events never enter.
    by_coord = {(r.partition, r.offset): r for r in source}
    for rec, h, (p, off, _reason) in zip(queue, headers, got, strict=True):
        src = by_coord[(p, off)]
        assert (rec.key, rec.value) == (src.key, src.value)
        obj = orjson.loads(rec.value)
        assert 0.0 <= obj["score"] <= 1.0
        w = math.floor(obj["timestamp"] / WINDOW)
        assert h["tilewatch.labeling.window"] == b"%g/%g" % (w * WINDOW, (w + 1) * WINDOW)
        assert orjson.loads(h["tilewatch.labeling.cell"]) == ["m", obj["segment"], obj["region"]]
        assert float(h["tilewatch.labeling.score"]) == obj["score"]
        assert float(h["tilewatch.labeling.threshold"]) == THRESHOLD
        assert h["tilewatch.labeling.health"] == b"none"
        assert h["tilewatch.labeling.id"] == f"{topic}/{p}/{off}/{_reason}".encode()
    late = {(r.partition, r.offset) for r in source if b'"label"' in r.value} - {
        (p, o) for p, o, _ in got
    }
    assert late  # most events are not selected
    # Budgets per (partition, window): the window's and each reason's.
    per_window = Counter(
        (p, math.floor(orjson.loads(by_coord[(p, o)].value)["timestamp"] / WINDOW))
        for p, o, _ in got
    )
    for key, n in per_window.items():
        assert n <= SETTINGS.window_budget(window_events[key])
