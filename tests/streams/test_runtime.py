"""Tests of tilewatch.streams.loop and tilewatch.streams.clients: client configuration,
committed offsets, and resuming after a stop (against the embedded broker)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from tests.helpers import fast_client_settings
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.clients import kafka_client_config
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings
from tilewatch.streams.summary import RunSummary

T0 = 1767225600.0
WAIT_SECONDS = 60.0
PARTITIONS = 3

# -- kafka_client_config --------------------------------------------------------------------

CLIENT = {
    "security_protocol": "PLAINTEXT",
    "client_id": "tw-test",
    "session_timeout_ms": 6000,  # consumer only
    "heartbeat_interval_ms": 2000,  # consumer only
    "max_poll_interval_ms": 10000,  # consumer only
    "linger_ms": 50,  # producer only
    "no_such_setting": 1,  # nobody's
}


def settings_with(client: dict[str, Any], bootstrap: str = "127.0.0.1:1") -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=(bootstrap,),
        topics=("t",),
        group_id="grp",
        auto_offset_reset="latest",
        max_poll_records=123,
        client=client,
    )


def test_client_config_consumer() -> None:
    config = kafka_client_config(settings_with(CLIENT), "consumer")
    assert config == {
        "bootstrap_servers": ["127.0.0.1:1"],
        "bootstrap_timeout_ms": 10_000,
        "group_id": "grp",
        "enable_auto_commit": False,
        "auto_offset_reset": "latest",
        "max_poll_records": 123,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 2000,
        "max_poll_interval_ms": 10000,
        "security_protocol": "PLAINTEXT",
        "client_id": "tw-test",
    }


def test_client_config_producer() -> None:
    config = kafka_client_config(settings_with(CLIENT), "producer")
    assert config == {
        "bootstrap_servers": ["127.0.0.1:1"],
        "bootstrap_timeout_ms": 10_000,
        "linger_ms": 50,
        "max_request_size": 64 * 1024 * 1024,
        "retries": 5,
        "acks": "all",
        "security_protocol": "PLAINTEXT",
        "client_id": "tw-test",
    }


def test_client_config_admin() -> None:
    config = kafka_client_config(settings_with(CLIENT), "admin")
    assert config == {
        "bootstrap_servers": ["127.0.0.1:1"],
        "bootstrap_timeout_ms": 10_000,
        "security_protocol": "PLAINTEXT",
        "client_id": "tw-test",
    }


def test_client_config_defaults_and_unknown_kind() -> None:
    config = kafka_client_config(settings_with({}), "consumer")
    assert config["session_timeout_ms"] == 10_000
    assert config["max_poll_interval_ms"] == 30_000
    assert config["enable_auto_commit"] is False
    with pytest.raises(KeyError):
        kafka_client_config(settings_with({}), "streams")


@pytest.mark.broker
def test_client_configs_build_real_clients(broker: EmbeddedBroker) -> None:
    settings = settings_with({**CLIENT, **fast_client_settings()}, broker.bootstrap)
    consumer = KafkaConsumer(**kafka_client_config(settings, "consumer"))
    consumer.close()
    producer = KafkaProducer(**kafka_client_config(settings, "producer"))
    producer.close(timeout=5)
    admin = KafkaAdminClient(**kafka_client_config(settings, "admin"))
    admin.close()


# -- running monitors -----------------------------------------------------------------------


def produce_events(bootstrap: str, topic: str, n: int) -> Counter[int]:
    """``n`` valid events keyed over the partitions; returns how many went to each partition."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    try:
        futures = []
        for i in range(n):
            value = orjson.dumps(
                {
                    "model": "m",
                    "score": (i % 1000) / 1000,
                    "segment": "abcd"[i % 4],
                    "region": "eu",
                    "timestamp": T0 + (i % 100) * 0.01,
                }
            )
            futures.append(producer.send(topic, key=b"k%d" % (i % 31), value=value))
        producer.flush(timeout=60)
        per_partition = Counter(f.get(timeout=30).partition for f in futures)
    finally:
        producer.close(timeout=5)
    assert sum(per_partition.values()) == n
    return per_partition


class Running:
    """A Monitor in a thread with a stop event."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.state = ReplicaState(CellSettings(window_seconds=60, grace_seconds=30))
        self.monitor = Monitor(kafka, EventFields(), self.state)
        self.stop = threading.Event()
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.monitor.run(self.stop)
        except BaseException as exc:
            self.error = exc

    def read(self) -> int:
        with self.state.lock:
            return self.state.ingest.read

    def wait_read(self, n: int, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while self.read() < n:
            if self.error is not None:
                raise self.error
            if time.monotonic() > deadline:
                self.finish()
                pytest.fail(f"monitor read {self.read()} of {n} records within {timeout:g} s")
            time.sleep(0.02)

    def leaf_events(self) -> int:
        snap = self.state.snapshot()
        return int(np.sum(snap.events_total[snap.is_leaf]))

    def offsets(self) -> dict[tuple[str, int], int | None]:
        with self.state.lock:
            return {k: p.offset for k, p in self.state.partitions.items()}

    def finish(self) -> RunSummary:
        self.stop.set()
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive(), "the monitor did not stop"
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


def kafka_settings(broker: EmbeddedBroker, topic: str, group: str, **extra: Any) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=(broker.bootstrap,),
        topics=(topic,),
        group_id=group,
        dead_letter_topic=None,
        client=fast_client_settings(),
        commit_interval_seconds=0.2,
        poll_timeout_seconds=0.2,
        **extra,
    )


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        consumer.close(autocommit=False)


@pytest.mark.broker
def test_committed_offsets_equal_processed_positions(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(PARTITIONS)
    n = 3000
    per_partition = produce_events(broker.bootstrap, topic, n)
    group = f"g-{uuid.uuid4().hex}"
    run = Running(kafka_settings(broker, topic, group))
    try:
        run.wait_read(n)
        processed = run.offsets()
        assert run.leaf_events() == n
    finally:
        summary = run.finish()
    expected = {(topic, p): per_partition[p] for p in range(PARTITIONS) if per_partition[p]}
    assert processed == expected
    assert summary.committed == expected
    assert (summary.read, summary.valid, summary.late, summary.invalid) == (n, n, 0, 0)
    committed = committed_offsets(broker.bootstrap, group, topic)
    assert committed == {p: per_partition[p] or None for p in range(PARTITIONS)}


@pytest.mark.broker
def test_second_run_resumes_at_the_committed_offsets(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(PARTITIONS)
    n = 20_000
    per_partition = produce_events(broker.bootstrap, topic, n)
    group = f"g-{uuid.uuid4().hex}"
    kafka = kafka_settings(broker, topic, group, max_poll_records=500)

    first = Running(kafka)

    def stop_at_a_third() -> None:
        while not first.stop.is_set() and first.monitor.summary.read < n // 3:
            time.sleep(0.001)
        first.stop.set()

    watcher = threading.Thread(target=stop_at_a_third, daemon=True)
    watcher.start()
    try:
        first.wait_read(n // 3)
    finally:
        summary1 = first.finish()
        watcher.join(5)
    assert n // 3 <= summary1.read < n, "stop a run part-way through the topic"
    assert summary1.valid == summary1.read
    committed1 = committed_offsets(broker.bootstrap, group, topic)
    assert {(topic, p): o for p, o in committed1.items() if o is not None} == summary1.committed
    assert sum(summary1.committed.values()) == summary1.read

    second = Running(kafka)
    remaining = n - summary1.read
    try:
        second.wait_read(remaining)
        time.sleep(1.0)  # anything read twice would arrive by now
        assert second.read() == remaining
        assert second.leaf_events() == remaining
    finally:
        summary2 = second.finish()
    assert summary1.valid + summary2.valid == n
    assert (summary2.read, summary2.late, summary2.invalid) == (remaining, 0, 0)
    # The second run commits only the partitions it moved forward.
    assert {**summary1.committed, **summary2.committed} == {
        (topic, p): per_partition[p] for p in range(PARTITIONS) if per_partition[p]
    }
    assert committed_offsets(broker.bootstrap, group, topic) == {
        p: per_partition[p] or None for p in range(PARTITIONS)
    }


def test_client_config_restore_consumer_has_no_group() -> None:
    config = kafka_client_config(settings_with(CLIENT), "restore")
    assert config["group_id"] is None
    assert config["enable_auto_commit"] is False
    assert "session_timeout_ms" not in config and "max_poll_interval_ms" not in config
    assert config["security_protocol"] == "PLAINTEXT"
