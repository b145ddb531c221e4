"""Labels of multi-class models from the outcomes topic: joined on event ids, they give the
same per-class metrics and flags as inline labels (Monitor.process, then the real broker)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from tests import multiclass_scenario as sc
from tests.helpers import fast_client_settings, produce
from tests.streams.test_multiclass_flags import (
    FIELDS,
    check_per_class_metrics,
    flagged,
    multiclass_state,
)
from tilewatch.aggregators.cells.classes import ClassVocabulary
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.labels.join import JoinSettings
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import KafkaSettings, LabelTopic

#: Labels are known 5 s after their prediction; the label grace lets the last ones of a
#: window count in it.
DELAY = 5.0
LABELS = LabelSettings(
    source="topic", grace_seconds=30.0, join=JoinSettings(orphan_ttl_seconds=3600.0)
)
WAIT_SECONDS = 90.0


def topic_state() -> ReplicaState:
    """The state of test_multiclass_flags, with labels from an outcomes topic."""
    settings = DriftSettings(reference="trailing", detectors=())  # type: ignore[arg-type]
    profile = DriftProfile(settings, (0.0, 1.0), classes=sc.CLASSES)
    cells = CellSettings(window_seconds=sc.WINDOW, grace_seconds=0)
    return ReplicaState(cells, profile, LABELS, classes=ClassVocabulary(3, sc.CLASSES))


def split(stream: list[dict]) -> tuple[list[dict], list[dict]]:
    """Predictions with an event id and no label; label records for the labeled ones."""
    predictions, labels = [], []
    for i, e in enumerate(stream):
        p = {k: v for k, v in e.items() if k != "label"}
        if "label" in e:
            p["event_id"] = f"e{i}"
            labels.append(
                {"event_id": f"e{i}", "label": e["label"], "timestamp": e["timestamp"] + DELAY}
            )
        predictions.append(p)
    return predictions, labels


def records(topic: str, values: list[dict], start: int = 0) -> list[Any]:
    return [
        SimpleNamespace(
            value=orjson.dumps(v),
            timestamp=None,
            topic=topic,
            partition=0,
            offset=start + i,
            key=None,
            headers=[],
        )
        for i, v in enumerate(values)
    ]


def check(state: ReplicaState, stream: list[dict]) -> None:
    """Exactly the planted cells flagged, per-class metrics equal to the offline values."""
    state.refresh()
    snap = state.snapshot()
    assert snap.window_end["intent"] == sc.T0 + (sc.CHANGED + 1) * sc.WINDOW
    shift, errors, drift = flagged(snap)
    assert shift == sc.CLASS_SHIFT_CELLS
    assert errors == sc.ERROR_CELLS
    assert drift == {"confidence": sc.UNSURE_CELLS, "margin": sc.UNSURE_CELLS}
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, ("segment", "region")))
    check_per_class_metrics(registry, stream)


def test_labels_from_the_outcomes_topic_give_the_inline_metrics() -> None:
    stream = sc.events()
    predictions, labels = split(stream)
    state = topic_state()
    kafka = KafkaSettings(topics=("p",), dead_letter_topic=None)
    monitor = Monitor(kafka, FIELDS, state, label_topic=LabelTopic("o"))
    state.assign(("p", 0))
    pred_records, label_records = records("p", predictions), records("o", labels)
    by_id = {r["event_id"]: j for j, r in enumerate(labels)}
    # Batches of 500 predictions; every other batch's labels come before it (held until
    # their predictions come), the others' after.
    for b, start in enumerate(range(0, len(pred_records), 500)):
        chunk = pred_records[start : start + 500]
        ids = [predictions[start + i].get("event_id") for i in range(len(chunk))]
        mine = [label_records[by_id[e]] for e in ids if e is not None]
        order = [("o", mine), ("p", chunk)] if b % 2 else [("p", chunk), ("o", mine)]
        for topic, recs in order:
            if recs:
                monitor.process({TopicPartition(topic, 0): recs})
    part = state.partitions[("p", 0)]
    assert part.labels is not None and part.labels.join is not None
    join = part.labels.join
    assert join.joined == len(labels) and join.pending == join.held == 0
    assert part.labels.late == 0 and part.labels.invalid == {}
    check(state, stream)
    # The same stream with inline labels: the same class histograms in every closed window.
    inline = multiclass_state()
    inline_monitor = Monitor(kafka, FIELDS, inline)
    inline.assign(("p", 0))
    inline_monitor.process({TopicPartition("p", 0): records("p", stream)})
    mine_closed, theirs = part.closed, inline.partitions[("p", 0)].closed
    assert sorted(mine_closed) == sorted(theirs)
    n = len(state.registry)
    for w, acc in theirs.items():
        for name in ("mc_confusion", "mc_rank", "mc_calib_n", "mc_brier", "mc_logloss"):
            width = state.hist_bins[name]
            got, want = mine_closed[w].hist_sized(name, n, width), acc.hist_sized(name, n, width)
            assert np.array_equal(got, want), (w, name)


def test_labels_that_do_not_fit_are_counted() -> None:
    """A binary value for a multi-class prediction leaves it unlabeled (bad_label); a label
    past its window's grace is late; a record whose label is neither is dead-lettered."""
    state = topic_state()
    kafka = KafkaSettings(topics=("p",), dead_letter_topic=None)
    monitor = Monitor(kafka, FIELDS, state, label_topic=LabelTopic("o"))
    state.assign(("p", 0))
    base = {"model": "intent", "segment": "s1", "region": "r1", "probs": [0.7, 0.2, 0.1]}
    preds = [{**base, "event_id": f"e{i}", "timestamp": sc.T0 + i} for i in range(3)]
    monitor.process({TopicPartition("p", 0): records("p", preds)})
    labels = [
        {"event_id": "e0", "label": 1.0, "timestamp": sc.T0 + 1},  # not a class name
        {"event_id": "e1", "label": "sell", "timestamp": sc.T0 + 500},  # past the grace
        {"event_id": "e2", "label": 2.5, "timestamp": sc.T0 + 3},  # rejected
    ]
    monitor.process({TopicPartition("o", 0): records("o", labels)})
    part = state.partitions[("p", 0)]
    assert part.labels is not None
    assert part.labels.invalid == {"bad_label": 1}
    assert part.labels.late == 1
    assert state.ingest.invalid_labels == {"bad_label": 1}
    confusion = part.open[int(sc.T0 // sc.WINDOW)].hist_sized(
        "mc_confusion", len(state.registry), 16
    )
    assert confusion.sum() == 0


@pytest.mark.broker
def test_labels_from_the_outcomes_topic_through_the_broker(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    stream = sc.events()
    predictions, labels = split(stream)
    pred_topic, label_topic = make_topic(2), make_topic(2)

    # Keyed by cell: a label with its prediction's key lands in the same partition number.
    def key(e: dict) -> bytes:
        return f"{e['segment']}|{e['region']}".encode()

    by_id = {p["event_id"]: p for p in predictions if "event_id" in p}
    produce(
        broker.bootstrap,
        pred_topic,
        [orjson.dumps(p) for p in predictions],
        [key(p) for p in predictions],
    )
    produce(
        broker.bootstrap,
        label_topic,
        [orjson.dumps(r) for r in labels],
        [key(by_id[r["event_id"]]) for r in labels],
    )
    kafka = KafkaSettings(
        bootstrap_servers=(broker.bootstrap,),
        topics=(pred_topic,),
        group_id=f"g-{uuid.uuid4().hex}",
        dead_letter_topic=None,
        client=fast_client_settings(),
        commit_interval_seconds=0.2,
        poll_timeout_seconds=0.2,
    )
    state = topic_state()
    monitor = Monitor(kafka, FIELDS, state, label_topic=LabelTopic(label_topic))
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            monitor.run(stop)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="monitor", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            with state.lock:
                done = (state.ingest.read, state.ingest.label_records)
            if done == (len(stream), len(labels)) or errors or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not errors, errors
        assert done == (len(stream), len(labels))
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    joined = sum(p.labels.join.joined for p in state.partitions.values())  # type: ignore[union-attr]
    assert joined == len(labels)
    check(state, stream)
