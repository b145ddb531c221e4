"""A multi-class model through Monitor.process: scores, predictions, counters, metrics."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from tilewatch.aggregators.cells.classes import ClassVocabulary
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.stats.multiclass import MulticlassSums, multiclass_metrics
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.streams.errors import StreamError
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings

T = 1767225600.0
CLASSES = ("buy", "sell", "hold")


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


def monitor_for(fields: EventFields) -> tuple[Monitor, ReplicaState, CollectorRegistry]:
    state = ReplicaState(
        CellSettings(window_seconds=60, grace_seconds=0),
        classes=ClassVocabulary(fields.max_classes, fields.classes),
    )
    monitor = Monitor(KafkaSettings(topics=("p",), dead_letter_topic=None), fields, state)
    state.assign(("p", 0))
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, ("segment", "region")))
    return monitor, state, registry


def test_multiclass_batch_is_kept_counted_and_exported() -> None:
    fields = EventFields(scores="probs", classes=CLASSES, max_classes=3)
    monitor, state, registry = monitor_for(fields)
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
    get = registry.get_sample_value
    assert get("tilewatch_malformed_class_scores_total", {"reason": "bad_sum"}) == 1.0
    assert get("tilewatch_pooled_class_events_total") == 1.0
    assert get("tilewatch_invalid_events_total", {"reason": "bad_scores"}) == 1.0


def test_a_multiclass_monitor_needs_a_vocabulary() -> None:
    with pytest.raises(StreamError, match="class vocabulary"):
        Monitor(KafkaSettings(), EventFields(scores="probs"), ReplicaState(CellSettings()))


def test_window_metrics_per_cell_equal_the_offline_values() -> None:
    """Two cells, labels inline; the closed window's per-class metrics are the offline ones."""
    fields = EventFields(scores="probs", classes=CLASSES, max_classes=3)
    monitor, state, registry = monitor_for(fields)
    rng = np.random.default_rng(5)
    n = 600
    truth = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), truth] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    regions = rng.choice(["r1", "r2"], n)
    labeled = rng.random(n) < 0.7
    records = []
    for j in range(n):
        extra = {"label": CLASSES[truth[j]]} if labeled[j] else {}
        records.append(
            rec(j, probs=probs[j].tolist(), region=str(regions[j]), timestamp=T + j * 0.05, **extra)
        )
    records.append(rec(n, probs=[1.0, 0.0, 0.0], timestamp=T + 120))  # closes the window
    monitor.process({TopicPartition("p", 0): records})
    snap = state.snapshot()
    get = registry.get_sample_value
    for region in ("r1", "r2", "__all__"):
        sel = np.ones(n, dtype=bool) if region == "__all__" else regions == region
        offline = MulticlassSums(1, 3)
        offline.update(
            np.zeros(sel.sum(), dtype=np.int64),
            probs[sel],
            labels=np.where(labeled[sel], truth[sel], -1),
        )
        m = multiclass_metrics(offline)
        cell = {"model": "intent", "segment": "a", "region": region}
        i = snap.cell(("intent", "a", region))
        assert int(snap.window_count[i]) == sel.sum()
        assert get("tilewatch_window_class_labeled_events", cell) == labeled[sel].sum()
        assert get("tilewatch_window_class_accuracy_ratio", cell) == pytest.approx(m.accuracy[0])
        assert get("tilewatch_window_macro_f1_ratio", cell) == pytest.approx(m.macro_f1[0])
        assert get("tilewatch_window_weighted_f1_ratio", cell) == pytest.approx(m.weighted_f1[0])
        for j, name in enumerate(CLASSES):
            labels = {**cell, "class": name}
            share = get("tilewatch_window_class_share_ratio", labels)
            assert share == pytest.approx(m.class_share[0, j])
            assert get("tilewatch_window_class_f1_ratio", labels) == pytest.approx(m.f1[0, j])
            precision = get("tilewatch_window_class_precision_ratio", labels)
            assert precision == pytest.approx(m.precision[0, j])
            assert get("tilewatch_window_class_recall_ratio", labels) == pytest.approx(
                m.recall[0, j]
            )
        for k in (1, 2, 3):
            got = get("tilewatch_window_topk_accuracy_ratio", {**cell, "k": str(k)})
            assert got == pytest.approx(m.topk_accuracy[0, k - 1])
        # The score of an event without one is its top-class probability.
        assert snap.window_mean[i] == pytest.approx(probs[sel].max(axis=1).mean())
    assert get("tilewatch_window_topk_accuracy_ratio", {**cell, "k": "3"}) == 1.0


def test_multiclass_windows_survive_a_checkpoint() -> None:
    """The class histograms are plain window histograms: a restored partition exports the
    same per-class metrics (same configured classes, so the same columns)."""
    fields = EventFields(scores="probs", classes=CLASSES, max_classes=3)
    monitor, state, registry = monitor_for(fields)
    records = [
        rec(0, probs=[0.7, 0.2, 0.1], label="buy"),
        rec(1, probs=[0.2, 0.7, 0.1], label="hold"),
        rec(2, probs=[0.1, 0.2, 0.7], label="hold"),
        rec(3, probs=[1.0, 0.0, 0.0], timestamp=T + 120),
    ]
    monitor.process({TopicPartition("p", 0): records})
    data = json.loads(json.dumps(state.partitions[("p", 0)].to_dict()))
    _monitor, restored, registry2 = monitor_for(fields)
    restored.assign(("p", 0), restored.restore_partition(data))
    cell = {"model": "intent", "segment": "a", "region": "r"}
    for name, labels in (
        ("tilewatch_window_class_accuracy_ratio", cell),
        ("tilewatch_window_class_f1_ratio", {**cell, "class": "hold"}),
        ("tilewatch_window_class_share_ratio", {**cell, "class": "sell"}),
    ):
        before = registry.get_sample_value(name, labels)
        assert before is not None and restored is not state
        assert registry2.get_sample_value(name, labels) == before
    assert registry2.get_sample_value("tilewatch_window_class_accuracy_ratio", cell) == 2 / 3


def test_error_stream_detector_runs_on_multiclass_errors() -> None:
    """With [labels] error_detector, each multi-class cell's error bits feed its detector."""
    from tilewatch.aggregators.labels.settings import LabelSettings

    fields = EventFields(scores="probs", classes=CLASSES, max_classes=3)
    state = ReplicaState(
        CellSettings(window_seconds=60, grace_seconds=0),
        labels=LabelSettings(error_detector="ddm"),
        classes=ClassVocabulary(3, CLASSES),
    )
    monitor = Monitor(KafkaSettings(topics=("p",), dead_letter_topic=None), fields, state)
    state.assign(("p", 0))
    rng = np.random.default_rng(7)
    records = []
    for i in range(6000):
        region = "steady" if i % 2 else "worse"
        # "worse" is wrong 5% of the time, then 40%; "steady" is always right.
        wrong_rate = 0.0 if region == "steady" else 0.4 if i >= 3000 else 0.05
        label = "sell" if rng.random() < wrong_rate else "buy"  # the model always says buy
        records.append(
            rec(i, probs=[0.8, 0.1, 0.1], label=label, region=region, timestamp=T + i * 0.01)
        )
    for start in range(0, len(records), 1000):
        monitor.process({TopicPartition("p", 0): records[start : start + 1000]})
    snap = state.snapshot()
    found = {
        snap.keys[cell][2]: last
        for (cell, kind), (n, last, _active) in snap.detections.items()
        if kind == "ddm" and n > 0
    }
    assert set(found) == {"worse"} and found["worse"] > T + 30  # after the change
    # The binary label path saw none of these class-name labels.
    assert snap.ingest.invalid_values == {}


def test_the_app_wires_the_class_vocabulary() -> None:
    """tilewatch run: [events] scores gives the state a vocabulary and the monitor an encoder,
    and the drift profile's classes are the configured ones."""
    from tilewatch.app import App
    from tilewatch.config import parse_config

    config = parse_config(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["predictions"]},
            "exporter": {"listen": "127.0.0.1:0"},
            "events": {"scores": "probs", "classes": list(CLASSES)},
            "drift": {"reference": "trailing"},
        }
    )
    app = App(config)
    assert app.state.classes is not None and app.state.classes.classes == CLASSES
    assert app.monitor.class_encoder is not None
    assert app.monitor.class_encoder.vocabulary is app.state.classes
    assert app.state.profile is not None
    assert app.state.profile.spec("intent").classes == {"buy": 0, "hold": 1, "sell": 2}
    assert app.server._server is None  # nothing started


def test_multiclass_families_text_follows_the_reported_window() -> None:
    """The per-class families are kept as text per reported window: what a scrape writes is
    what the samples say, before and after the next window is reported."""
    from prometheus_client import generate_latest

    from tests.exporters.prometheus.test_exposition import assert_same, parse
    from tilewatch.exporters.prometheus.exposition import generate

    fields = EventFields(scores="probs", classes=CLASSES, max_classes=3)
    monitor, state, registry = monitor_for(fields)
    rng = np.random.default_rng(8)
    texts = []
    for w in range(3):
        records = [
            rec(
                1000 * w + j,
                probs=rng.dirichlet([1 + w, 1, 1]).tolist(),
                region=f"r{j % 2}",
                timestamp=T + 60 * w + j * 0.1,
                label=CLASSES[int(rng.integers(0, 3))],
            )
            for j in range(300)
        ]
        monitor.process({TopicPartition("p", 0): records})
        state.refresh()
        text = generate(registry)
        assert generate(registry) == text  # kept, and the same
        assert_same(parse(text.decode()), parse(generate_latest(registry).decode()))
        texts.append(text)
    shares = [
        [ln for ln in t.decode().splitlines() if ln.startswith("tilewatch_window_class_share")]
        for t in texts[1:]
    ]
    assert shares[0] and shares[0] != shares[1]  # a new reported window: new text
