"""produce_traffic with an outcomes topic, against the real broker: co-partitioned labels."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.producer import produce_traffic
from tilewatch.streams.dev.traffic import TrafficSpec

pytestmark = pytest.mark.broker

PARTITIONS = 3


def _read_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[int, int, dict]]:
    """``(partition, record timestamp ms, value)`` of every record, up to each partition's high
    watermark as reported by fetch responses (never ``end_offsets()``)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    out: list[tuple[int, int, dict]] = []
    deadline = time.monotonic() + timeout
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while True:
            for tp, batch in consumer.poll(timeout_ms=200).items():
                out.extend((tp.partition, r.timestamp, orjson.loads(r.value)) for r in batch)
            if all(
                (hw := consumer.highwater(tp)) is not None and consumer.position(tp) >= hw
                for tp in tps
            ):
                return out
            if time.monotonic() > deadline:
                pytest.fail(f"could not read {topic!r} to its end")
    finally:
        consumer.close()


def test_labels_go_to_the_outcomes_topic_after_their_predictions(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    predictions, outcomes = make_topic(PARTITIONS), make_topic(PARTITIONS)
    spec = TrafficSpec(label_share=0.5, invalid_share=0.0, seed=9)
    sent = produce_traffic(
        broker.bootstrap,
        predictions,
        spec=spec,
        rate=4000.0,
        total=3000,
        labels_topic=outcomes,
        label_delay=0.25,
    )
    assert sent == 3000
    preds = {v["event_id"]: (p, ts, v) for p, ts, v in _read_all(broker.bootstrap, predictions)}
    labels = _read_all(broker.bootstrap, outcomes)
    assert len(preds) == 3000
    assert all(v["label"] is None for _p, _ts, v in preds.values())
    assert 1300 < len(labels) < 1700  # about half, one per labeled prediction
    assert len({v["event_id"] for _p, _ts, v in labels}) == len(labels)
    for partition, ts, label in labels:
        p, pts, pred = preds[label["event_id"]]
        assert partition == p  # co-partitioned: keyed like the prediction
        assert label["timestamp"] == pred["timestamp"] + 0.25  # event time of the outcome
        assert label["label"] in (0, 1)
        assert ts >= pts  # never sent before its prediction


def test_negative_label_delay_is_refused(broker: EmbeddedBroker) -> None:
    with pytest.raises(ValueError, match="label_delay"):
        produce_traffic(
            broker.bootstrap, "x", spec=TrafficSpec(), total=1, labels_topic="y", label_delay=-1
        )
