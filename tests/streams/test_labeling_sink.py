"""The labeling stage without a broker: the Monitor's batches through a fake producer.

The restart guarantee (at-least-once with a stable id): a replay from a checkpoint taken before
a window closed produces exactly the same records again, with the same ids; failures are
counted, never raised; thresholds come from the baseline when the section has none, and a
model without any is counted, not judged at 0.5.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
from kafka import TopicPartition

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.labeling.settings import LabelingSettings
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.labeling_sink import LabelingStage
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings

T0 = 1767225600.0
KEY = ("preds", 0)


class Future:
    def __init__(self, ok: bool) -> None:
        self.is_done = True
        self._ok = ok
        self.exception = None if ok else RuntimeError("broker said no")

    def succeeded(self) -> bool:
        return self._ok


class Producer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.dead: list[bytes] = []
        self.fail = fail

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None) -> Future:
        if not topic.endswith(".labeling"):  # the dead letters share the producer
            self.dead.append(value)
            return Future(True)
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": dict(headers)})
        return Future(not self.fail)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def records(rng: np.random.Generator, start: int, n: int, t0: float) -> list[Any]:
    out = []
    for i in range(n):
        obj = {
            "model": "m" if i % 10 else "nothr",
            "score": round(float(rng.uniform()), 3),
            "segment": "ab"[i % 2],
            "region": "eu",
            "timestamp": T0 + t0 + i * 0.5,
            "label": int(rng.uniform() < 0.5),
        }
        out.append(
            SimpleNamespace(
                topic=KEY[0],
                partition=KEY[1],
                offset=start + i,
                key=b"k%d" % i,
                value=orjson.dumps(obj),
                headers=[],
                timestamp=None,
            )
        )
    out.append(SimpleNamespace(**{**vars(out[0]), "offset": start + n, "value": b"{bad"}))
    return out


def monitor(settings: LabelingSettings, producer: Producer) -> Monitor:
    state = ReplicaState(
        CellSettings(window_seconds=60, grace_seconds=5),
        labels=LabelSettings(source="inline", thresholds={"m": 0.4}),
        thresholds={"m": 0.3},  # the baseline's: the [labels] override wins
    )
    state.labeling = settings
    kafka = KafkaSettings(bootstrap_servers=("unused:9092",), topics=(KEY[0],), group_id="g")
    return Monitor(
        kafka,
        EventFields(),
        state,
        producer_factory=lambda: producer,
        labeling=lambda factory: LabelingStage(settings, state, factory),
    )


SETTINGS = LabelingSettings(
    reasons=("least_confident", "confident_wrong"), rate=0.2, max_per_window=10
)
TP = TopicPartition(KEY[0], KEY[1])


def test_a_replay_from_a_checkpoint_produces_the_same_records_with_the_same_ids() -> None:
    rng = np.random.default_rng(1)
    first, second = records(rng, 0, 150, 0.0), records(rng, 151, 150, 75.0)
    producer = Producer()
    mon = monitor(SETTINGS, producer)
    mon.state.assign(KEY)
    mon.process({TP: first})  # window 0 closes at t=65 + grace; window 1 open
    checkpoint = json.loads(json.dumps(mon.state.partitions[KEY].to_dict()))
    assert checkpoint["labeling"]["windows"]  # open candidates are checkpointed
    before = len(producer.sent)
    mon.process({TP: second})
    assert mon.labeling is not None and mon.labeling.flush() == 0
    after_crash = producer.sent[before:]
    assert after_crash

    # The crash: a new replica restores the checkpoint and replays the second batch.
    replay = Producer()
    again = monitor(SETTINGS, replay)
    again.state.assign(KEY, again.state.restore_partition(checkpoint))
    again.process({TP: second})
    assert [(r["value"], r["headers"]) for r in replay.sent] == [
        (r["value"], r["headers"]) for r in after_crash
    ]
    ids = [r["headers"]["tilewatch.labeling.id"] for r in producer.sent]
    assert len(ids) == len(set(ids))
    for r in producer.sent:
        h = r["headers"]
        assert r["topic"] == "preds.labeling"
        assert orjson.loads(r["value"])["model"] == "m"  # the model without threshold: never
        assert float(h["tilewatch.labeling.threshold"]) == 0.4
        assert h["tilewatch.labeling.health"] == b"none"
    assert producer.dead == [b"{bad", b"{bad"]  # dead-lettered, never queued
    queue = mon.state.partitions[KEY].labeling
    assert queue is not None and queue.no_threshold == 30  # every 10th event, both batches
    assert int(queue.selected.sum()) == len(producer.sent)


def test_an_old_checkpoint_without_the_queue_loads_with_an_empty_queue() -> None:
    rng = np.random.default_rng(2)
    mon = monitor(SETTINGS, Producer())
    mon.state.assign(KEY)
    mon.process({TP: records(rng, 0, 20, 0.0)})
    data = mon.state.partitions[KEY].to_dict()
    del data["labeling"]
    fresh = monitor(SETTINGS, Producer())
    part = fresh.state.restore_partition(json.loads(json.dumps(data)))
    assert part.labeling is not None and part.labeling.to_dict([]) == {
        "version": 1,
        "windows": [],
        "selected": [],
        "no_threshold": 0,
    }
    fresh.state.assign(KEY, part)
    fresh.process({TP: records(rng, 21, 150, 10.0)})
    assert part.labeling.candidates() > 0


def test_delivery_failures_are_counted_not_raised() -> None:
    rng = np.random.default_rng(3)
    producer = Producer(fail=True)
    mon = monitor(SETTINGS, producer)
    mon.state.assign(KEY)
    mon.process({TP: records(rng, 0, 300, 0.0)})
    stage = mon.labeling
    assert stage is not None and producer.sent
    mon.committer.commit(None)  # flushes the queue's records before any checkpoint
    assert stage.failed == stage.failed_count() == len(producer.sent)
    assert stage.sent == 0


def test_multiclass_events_use_the_top_class_and_the_margin() -> None:
    settings = LabelingSettings(reasons=("confident_wrong",), threshold=0.5, confidence=0.7)
    stage = LabelingStage(settings, ReplicaState(CellSettings()), Producer)
    top = np.array([0.9, 0.6, 0.8, math.nan])
    batch = SimpleNamespace(
        scores=SimpleNamespace(
            valid=np.array([True, True, True, False]), top=top, margin=np.array([0.85, 0.3, 0.7, 0])
        ),
        errors=np.array([1, 1, 0, -1]),
    )
    sig = stage._signals(np.zeros(4, dtype=np.int64), np.array([0.5] * 4), None, batch)
    assert sig.confidence[:3].tolist() == [0.9, 0.6, 0.8]
    assert sig.confident[:3].tolist() == [True, False, True]
    assert sig.correct.tolist() == [0, 0, 1, -1]
    assert sig.threshold[:3].tolist() == [0.7] * 3


def test_a_multiclass_model_through_the_monitor() -> None:
    """Top-class probability and top1 - top2 margin, class labels inline."""
    from tilewatch.aggregators.cells.classes import ClassVocabulary

    classes = ("buy", "sell", "hold")
    fields = EventFields(scores="probs", classes=classes, max_classes=3)
    state = ReplicaState(
        CellSettings(window_seconds=60, grace_seconds=0),
        classes=ClassVocabulary(fields.max_classes, fields.classes),
    )
    settings = LabelingSettings(
        reasons=("least_confident", "confident_wrong"),
        confidence=0.6,
        rate=1.0,
        cell_share=1.0,
        flagged_cell_share=1.0,
        max_per_window=4,
    )
    state.labeling = settings
    producer = Producer()
    mon = Monitor(
        KafkaSettings(topics=("p",), dead_letter_topic=None),
        fields,
        state,
        producer_factory=lambda: producer,
        labeling=lambda factory: LabelingStage(settings, state, factory),
    )
    state.assign(("p", 0))
    probs = [
        ([0.7, 0.2, 0.1], "sell"),  # confident (0.7) and wrong: confident_wrong
        ([0.4, 0.35, 0.25], "buy"),  # margin 0.05: least confident
        ([0.1, 0.8, 0.1], "buy"),  # confident and wrong, more so
        ([0.3, 0.3, 0.4], None),  # margin 0.1, no label
        ([0.2, 0.2, 0.6], "hold"),  # right
    ]
    recs = [
        SimpleNamespace(
            value=orjson.dumps(
                {
                    "model": "intent",
                    "segment": "a",
                    "region": "r",
                    "timestamp": T0 + i,
                    "probs": p,
                    **({"label": lab} if lab else {}),
                }
            ),
            timestamp=None,
            topic="p",
            partition=0,
            offset=i,
            key=None,
            headers=[],
        )
        for i, (p, lab) in enumerate(probs)
    ]
    closer = SimpleNamespace(
        **{
            **vars(recs[0]),
            "offset": 5,
            "value": orjson.dumps(
                {
                    "model": "intent",
                    "segment": "a",
                    "region": "r",
                    "timestamp": T0 + 120,
                    "probs": [1.0, 0.0, 0.0],
                }
            ),
        }
    )
    mon.process({TopicPartition("p", 0): [*recs, closer]})
    got = sorted(
        (
            r["headers"]["tilewatch.labeling.reason"].decode(),
            int(r["headers"]["tilewatch.source.offset"]),
        )
        for r in producer.sent
    )
    # Budget 4 over 5 events: 2 per reason.
    assert got == [
        ("confident_wrong", 0),
        ("confident_wrong", 2),
        ("least_confident", 1),
        ("least_confident", 3),
    ]
    by_offset = {int(r["headers"]["tilewatch.source.offset"]): r["headers"] for r in producer.sent}
    assert float(by_offset[2]["tilewatch.labeling.score"]) == 0.8
    assert float(by_offset[2]["tilewatch.labeling.threshold"]) == 0.6
