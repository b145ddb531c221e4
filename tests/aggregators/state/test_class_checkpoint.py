"""Class names in partition checkpoints: discovered classes survive a restart, also into a
replica whose class table already has other columns (pending joined predictions included)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import TopicPartition

from tilewatch.aggregators.cells.classes import ClassVocabulary
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.labels.join import JoinSettings
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings, LabelTopic

FIELDS = EventFields(scores="probs", max_classes=3, dimensions={"segment": "segment"})
LABELS = LabelSettings(source="topic", grace_seconds=30.0, join=JoinSettings(ttl_seconds=3600))
NAMES = ("sell", "buy", "hold", "wait")  # "wait" is past max_classes = 3: pooled


def state() -> ReplicaState:
    cells = CellSettings(dimensions=("segment",), window_seconds=60.0, grace_seconds=0.0)
    return ReplicaState(cells, labels=LABELS, classes=ClassVocabulary(3))


def recs(topic: str, values: list[dict]) -> list[Any]:
    return [
        SimpleNamespace(
            value=orjson.dumps(v),
            timestamp=None,
            topic=topic,
            partition=0,
            offset=i,
            key=None,
            headers=[],
        )
        for i, v in enumerate(values)
    ]


def stream(seed: int = 5) -> tuple[list[dict], list[dict]]:
    """Window 0 of one cell, then a closing event; labels for every window-0 prediction."""
    rng = np.random.default_rng(seed)
    preds, labels = [], []
    for i in range(200):
        p = rng.dirichlet(np.ones(len(NAMES)))
        preds.append(
            {
                "model": "intent",
                "segment": "s1",
                "timestamp": 1000.0 * 60 + i * 0.25,
                "event_id": f"e{i}",
                "probs": {n: round(float(x), 6) for n, x in zip(NAMES, p, strict=True)},
            }
        )
        label = NAMES[int(rng.choice(len(NAMES), p=p))]
        labels.append(
            {"event_id": f"e{i}", "label": label, "timestamp": 1000.0 * 60 + i * 0.25 + 1}
        )
    closing = {**preds[0], "event_id": "close", "timestamp": 1002.0 * 60}
    return [*preds, closing], labels


def per_name(rs: ReplicaState) -> dict[str, tuple[float, ...]]:
    """Each class's share, precision and recall in the reported window, by name."""
    rs.refresh()
    snap = rs.snapshot()
    assert snap.multiclass is not None and snap.class_labels is not None
    i = snap.cell(("intent", "s1"))
    m = snap.multiclass
    out = {}
    for j, name in enumerate(snap.class_labels["intent"]):
        if name:
            values = (m.class_share[i, j], m.precision[i, j], m.recall[i, j])
            out[name] = tuple(round(float(v), 12) for v in values)
    assert m.labeled[i] == 200
    return out


def run(rs: ReplicaState, preds: list[dict], labels: list[dict] | None) -> Monitor:
    kafka = KafkaSettings(topics=("p",), dead_letter_topic=None)
    monitor = Monitor(kafka, FIELDS, rs, label_topic=LabelTopic("o"))
    if ("p", 0) not in rs.partitions:
        rs.assign(("p", 0))
    if preds:
        monitor.process({TopicPartition("p", 0): recs("p", preds)})
    if labels:
        monitor.process({TopicPartition("o", 0): recs("o", labels)})
    return monitor


def test_discovered_classes_survive_a_restore_into_another_class_table() -> None:
    preds, labels = stream()
    original = state()
    run(original, preds, None)
    data = orjson.loads(orjson.dumps(original.partitions[("p", 0)].to_dict()))
    assert data["classes"] == {"intent": ["sell", "buy", "hold"]}
    assert data["labels"]["join"]["pending"][0][4] >= 0  # a class column, not binary
    run(original, [], labels)
    want = per_name(original)
    # Another partition of the restoring replica saw other classes first: the restored
    # histograms and pending class rows move to its columns by name.
    restored = state()
    for name in ("hold", "wait", "buy"):
        restored.classes.column("intent", name)  # type: ignore[union-attr]
    assert restored.classes.names("intent") == ["hold", "wait", "buy"]  # type: ignore[union-attr]
    restored.assign(("p", 0), restored.restore_partition(data))
    part = restored.partitions[("p", 0)]
    assert part.class_moves == {"intent": [3, 2, 0]}  # sell pooled: no room left
    run(restored, [], labels)
    got = per_name(restored)
    # Same class, same numbers; "sell" went into the pooled column with the unnamed "wait".
    for name in ("buy", "hold"):
        assert got[name] == pytest.approx(want[name], nan_ok=True), name
    pooled = want["sell"][0] + want["__other__"][0]
    assert got["__other__"][0] == pytest.approx(pooled) and got["wait"][0] == 0.0
    # Into an empty table the columns are the checkpoint's: every number identical.
    fresh = state()
    fresh.assign(("p", 0), fresh.restore_partition(data))
    assert fresh.partitions[("p", 0)].class_moves == {}
    run(fresh, [], labels)
    assert per_name(fresh) == want


def test_a_checkpoint_without_class_names_loads_by_position() -> None:
    preds, _labels = stream()
    original = state()
    run(original, preds, None)
    data = orjson.loads(orjson.dumps(original.partitions[("p", 0)].to_dict()))
    del data["classes"]  # as written before class names were checkpointed
    restored = state()
    part = restored.restore_partition(data)
    assert part.class_moves == {}
    data["classes"] = {"intent": ["buy", "buy"]}
    with pytest.raises(StateError, match=r"classes\.intent: repeated class names"):
        restored.restore_partition(data)


def test_a_delta_checkpoint_carries_the_class_names_of_a_full_one() -> None:
    """The delta form (head + units, what the changelog holds) restores the same columns and
    the same numbers as the full form."""
    from tilewatch.aggregators.state.partition_delta import merge_units, partition_delta

    preds, labels = stream()
    original = state()
    run(original, preds, None)
    part = original.partitions[("p", 0)]
    delta = partition_delta(part, None)
    head, units = orjson.loads(orjson.dumps([delta.head, delta.units]))
    data = merge_units(head, units)
    assert data["classes"] == {"intent": ["sell", "buy", "hold"]}
    check_moved_restore(original, data, labels)


def check_moved_restore(original: ReplicaState, data: dict, labels: list[dict]) -> None:
    """``data`` (``original``'s partition ("p", 0)) restores into a replica whose class table
    orders the classes otherwise, its columns moved by name, and into a fresh one that then
    counts ``labels`` exactly as ``original`` does."""
    run(original, [], labels)
    want = per_name(original)
    restored = state()
    for name in ("hold", "wait", "buy"):
        restored.classes.column("intent", name)  # type: ignore[union-attr]
    restored.assign(("p", 0), restored.restore_partition(data))
    assert restored.partitions[("p", 0)].class_moves == {"intent": [3, 2, 0]}
    fresh = state()
    fresh.assign(("p", 0), fresh.restore_partition(data))
    run(fresh, [], labels)
    assert per_name(fresh) == want
