"""A multi-class model through Monitor.process: scores, predictions, counters, metrics."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings

T = 1767225600.0


def rec(offset: int, **fields: Any) -> Any:
    value = {"model": "intent", "segment": "a", "region": "r", "timestamp": T, **fields}
    return SimpleNamespace(
        value=json.dumps(value).encode(),
        timestamp=None,
        topic="p",
        partition=0,
        offset=offset,
        key=None,
        headers=[],
    )


def test_multiclass_batch_is_kept_counted_and_exported() -> None:
    state = ReplicaState(CellSettings(window_seconds=60, grace_seconds=0))
    fields = EventFields(scores="probs", classes=("buy", "sell", "hold"), max_classes=3)
    monitor = Monitor(KafkaSettings(topics=("p",), dead_letter_topic=None), fields, state)
    state.assign(("p", 0))
    records = [
        rec(0, probs=[0.7, 0.2, 0.1]),
        rec(1, probs={"buy": 0.1, "sell": 0.3, "hold": 0.6}),
        rec(2, probs=[0.5, 0.6, 0.1], score=0.4),  # bad_sum: dropped, the event kept
        rec(3, probs={"buy": 0.1, "dump": 0.9}),  # "dump" is not a configured class: pooled
        rec(4, probs="x"),  # no score, no vector: rejected
    ]
    monitor.process({TopicPartition("p", 0): records})
    snap = state.snapshot()
    assert snap.ingest.read == 5
    assert snap.ingest.invalid == {"bad_scores": 1}
    assert snap.ingest.class_scores == {"bad_sum": 1, "pooled": 1}
    i = snap.cell(("intent", "a", "r"))
    assert int(snap.events_total[i]) == 4
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, ("segment", "region")))
    get = registry.get_sample_value
    assert get("tilewatch_malformed_class_scores_total", {"reason": "bad_sum"}) == 1.0
    assert get("tilewatch_pooled_class_events_total") == 1.0
    assert get("tilewatch_invalid_events_total", {"reason": "bad_scores"}) == 1.0
