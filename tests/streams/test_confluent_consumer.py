"""confluent-kafka's consumer adapter against the embedded broker: where partitions start."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaProducer
from kafka.structs import TopicPartition

from tests.helpers import produce
from tilewatch.streams.clients import new_restore_consumer
from tilewatch.streams.confluent_client import ConfluentConsumer
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.settings import KafkaSettings


def _restore_consumer(broker: EmbeddedBroker) -> ConfluentConsumer:
    """A confluent restore consumer (assigned partitions, no group join) on ``broker``."""
    settings = KafkaSettings(
        bootstrap_servers=(broker.bootstrap,),
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        client_library="confluent",
    )
    consumer = new_restore_consumer(settings)
    assert isinstance(consumer, ConfluentConsumer)
    return consumer


def _read_to_end(consumer: ConfluentConsumer, tps: list[TopicPartition]) -> dict[int, list[int]]:
    """The offsets read from each partition until its position reaches the fetched end (the
    test's timeout bounds the wait)."""
    read: dict[int, list[int]] = {tp.partition: [] for tp in tps}
    while True:
        for tp, records in consumer.poll(timeout_ms=200).items():
            read[tp.partition].extend(r.offset for r in records)
        ends = {tp: consumer.highwater(tp) for tp in tps}
        if all(end is not None and consumer.position(tp) >= end for tp, end in ends.items()):
            return read


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_a_partition_assigned_again_starts_where_it_is_sought_not_where_it_was_read(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    """Partitions read to their end, then assigned again (as after a rebalance) and sought
    before librdkafka fetches them: a seek on a partition that is not fetching yet (or still
    stopping) fails in librdkafka, so the adapter assigns it again with the offset. That
    offset, not the position read under the earlier assignment, is where it must start:
    starting from the old position, a replica that restored a partition empty ("starting at
    the earliest") read nothing of it."""
    topic = make_topic(2)
    values = [f"v{i}".encode() for i in range(200)]
    produce(broker.bootstrap, topic, values, [f"k{i}".encode() for i in range(200)])
    consumer = _restore_consumer(broker)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    try:
        consumer.assign(tps)  # no committed offset: from the earliest
        first = _read_to_end(consumer, tps)
        ends = {tp.partition: consumer.highwater(tp) for tp in tps}
        assert first == {p: list(range(end or 0)) for p, end in ends.items()}
        assert all(end is not None and end > 5 for end in ends.values())

        consumer.assign(tps)
        consumer.seek(tps[0], 5)  # partition 1 is not sought: from the earliest again
        again = _read_to_end(consumer, tps)
        assert again == {0: list(range(5, ends[0] or 0)), 1: list(range(ends[1] or 0))}
    finally:
        consumer.close()


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_poll_returns_what_is_queued_without_waiting_for_a_full_batch(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    """As kafka-python's: ``poll`` returns as soon as records are there. librdkafka's
    ``consume(n, timeout)`` waits for ``n`` messages or the timeout, so the tail of a backlog
    and every live batch smaller than ``max_poll_records`` waited out the whole poll timeout;
    and the beginning is sought as the offset the broker names (the partition's first), which
    librdkafka fetches at once where it resolves the logical beginning itself about 0.5 s
    later."""
    topic = make_topic(1)
    produce(broker.bootstrap, topic, [f"v{i}".encode() for i in range(50)])
    consumer = _restore_consumer(broker)
    tp = TopicPartition(topic, 0)
    try:
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp])[tp] > 0
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        assert consumer.position(tp) == 0
        read: list[int] = []
        longest = 0.0
        while len(read) < 50:
            started = time.monotonic()
            batch = consumer.poll(timeout_ms=20_000, max_records=5000)
            if batch:
                longest = max(longest, time.monotonic() - started)
            read.extend(r.offset for records in batch.values() for r in records)
        assert read == list(range(50))
        # Waiting for 5,000 messages, each poll would have returned after its 20 s timeout.
        assert longest < 10.0
    finally:
        consumer.close()


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_watermark_queries_tell_an_empty_partition(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    """The changelog restore skips an empty partition on these answers (it used to fetch it
    and wait for the end of partition: 1.5 s of every start of a new group)."""
    topic = make_topic(2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send(topic, b"x", partition=1).get(timeout=30)
    producer.close()
    consumer = _restore_consumer(broker)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    try:
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        assert ends[tps[0]] <= starts[tps[0]] == 0
        assert ends[tps[1]] > starts[tps[1]] == 0
    finally:
        consumer.close()
