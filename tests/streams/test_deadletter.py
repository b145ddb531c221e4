"""Tests of tilewatch.streams.deadletter: the sink on its own, and the Monitor dead-lettering every
kind of bad record to a real broker."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from tests.helpers import consume_all, fast_client_settings
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.deadletter import DeadLetterSink
from tilewatch.streams.decoding.record import REASONS, Rejected
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings
from tilewatch.streams.summary import RunSummary

T0 = 1767225600.0
WAIT_SECONDS = 60.0
BIG = 5 * 1024 * 1024  # the broker stores a 5 MB record (checked when producing it)

# -- DeadLetterSink with a fake producer ----------------------------------------------------


class FakeFuture:
    def __init__(self, ok: bool, done: bool = True) -> None:
        self.is_done = done
        self._ok = ok
        self.exception = None if ok else RuntimeError("broker said no")

    def succeeded(self) -> bool:
        return self.is_done and self._ok


class FakeProducer:
    """Fails ``send`` for values starting with ``b"raise"``; futures of ``b"fail"`` fail and
    futures of ``b"hang"`` never complete."""

    def __init__(self, flush_raises: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.flushes = 0
        self.closed = False
        self.flush_raises = flush_raises

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> FakeFuture:
        if value is not None and value.startswith(b"raise"):
            raise RuntimeError("buffer full")
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})
        if value is not None and value.startswith(b"hang"):
            return FakeFuture(ok=False, done=False)
        return FakeFuture(ok=not (value or b"").startswith(b"fail"))

    def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1
        if self.flush_raises:
            raise TimeoutError("flush timed out")

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def rejected(value: bytes | None, reason: str, offset: int = 0, **extra: Any) -> Rejected:
    record = SimpleNamespace(
        topic="src",
        partition=2,
        offset=offset,
        timestamp=None,
        key=b"k%d" % offset,
        value=value,
        headers=extra.get("headers"),
    )
    return Rejected(record, reason, extra.get("detail", f"detail {offset}"))


def test_sink_copies_the_record_and_adds_headers() -> None:
    producer = FakeProducer()
    failures: list[str] = []
    sink = DeadLetterSink("dlq", lambda: producer, failures.append)
    sink.send(
        rejected(b"{bad", "not_json", 7, headers=[("h", b"1"), ("n", None)], detail="d\udcff")
    )
    assert sink.flush() == 0
    assert sink.sent == 1
    assert failures == []
    (out,) = producer.sent
    assert (out["topic"], out["value"], out["key"]) == ("dlq", b"{bad", b"k7")
    assert out["headers"] == [
        ("h", b"1"),
        ("n", b""),
        ("tilewatch.reason", b"not_json"),
        ("tilewatch.detail", b"d?"),
        ("tilewatch.source.topic", b"src"),
        ("tilewatch.source.partition", b"2"),
        ("tilewatch.source.offset", b"7"),
    ]


def test_sink_reports_every_failed_record_and_never_raises() -> None:
    producer = FakeProducer()
    failures: list[str] = []
    built = 0

    def factory() -> FakeProducer:
        nonlocal built
        built += 1
        return producer

    sink = DeadLetterSink("dlq", factory, failures.append)
    sink.send(rejected(b"ok-1", "not_json", 0))
    sink.send(rejected(b"raise-1", "bad_score", 1))  # send raises: failed at once
    sink.send(rejected(b"fail-1", "too_large", 2))  # future fails
    sink.send(rejected(b"hang-1", "not_object", 3))  # future never completes
    sink.send(rejected(None, "empty_value", 4))
    sink.send(rejected(b"fail-2", "too_large", 5))
    assert failures == ["bad_score"]
    assert built == 1  # created lazily, once

    assert sink.flush() == 3  # the failed and the unfinished futures
    assert sorted(failures) == ["bad_score", "not_object", "too_large", "too_large"]
    assert sink.sent == 2
    assert sink.flush() == 0  # nothing pending any more
    assert producer.flushes == 1  # an empty flush does not touch the producer

    sink.close()
    assert producer.closed
    assert sink.flush() == 0


def test_sink_survives_a_failing_factory_and_a_failing_flush() -> None:
    failures: list[str] = []

    def broken() -> FakeProducer:
        raise OSError("no brokers")

    sink = DeadLetterSink("dlq", broken, failures.append)
    sink.send(rejected(b"x", "not_json", 0))
    sink.send(rejected(b"y", "bad_timestamp", 1))
    assert failures == ["not_json", "bad_timestamp"]
    assert sink.flush() == 0
    sink.close()

    producer = FakeProducer(flush_raises=True)
    failures.clear()
    sink = DeadLetterSink("dlq", lambda: producer, failures.append)
    sink.send(rejected(b"hang", "not_json", 0))
    sink.send(rejected(b"ok", "bad_score", 1))
    assert sink.flush() == 1
    assert failures == ["not_json"]
    assert sink.sent == 1


def test_sink_without_topic_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    def never() -> FakeProducer:
        raise AssertionError("no producer without a topic")

    failures: list[str] = []
    sink = DeadLetterSink(None, never, failures.append)
    with caplog.at_level("WARNING", logger="tilewatch.streams.deadletter"):
        sink.send(rejected(b"{", "not_json", 9, detail="not valid JSON: eof"))
    assert sink.flush() == 0
    sink.close()
    assert failures == []
    assert sink.sent == 0
    assert "rejected src/2@9 (not_json): not valid JSON: eof" in caplog.text


@pytest.mark.broker
def test_sink_dead_letters_a_keyless_tombstone(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    dlq = make_topic(partitions=1)
    failures: list[str] = []
    sink = DeadLetterSink(
        dlq, lambda: KafkaProducer(bootstrap_servers=broker.bootstrap), failures.append
    )
    record = SimpleNamespace(
        topic="src", partition=0, offset=3, timestamp=None, key=None, value=None, headers=None
    )
    try:
        sink.send(Rejected(record, "empty_value", "the record has no value"))
        assert sink.flush() == 0
        assert failures == []
        assert sink.sent == 1
    finally:
        sink.close()


# -- the Monitor dead-letters every kind of bad record -----------------------------------------


def event(i: int, **changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "model": "m",
        "score": (i % 100) / 100,
        "segment": "abc"[i % 3],
        "region": "eu",
        "timestamp": T0 + (i % 10) * 0.1,
    }
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


def bad_records() -> list[tuple[str, bytes | None]]:
    """(expected reason, value) of every kind of bad record."""
    return [
        ("not_json", b"{this is not json"),
        ("not_json", b"\xff\xfe not utf-8"),
        ("not_json", json.dumps(event(0, score=float("nan"))).encode()),  # NaN literal
        ("not_json", orjson.dumps(event(0)).replace(b'"score":0.0', b'"score":1e999')),
        ("not_object", b"[1, 2, 3]"),
        ("too_large", orjson.dumps(event(0, pad="x" * BIG))),
        ("missing_field", orjson.dumps(event(0, model=...))),
        ("wrong_type", orjson.dumps(event(0, score="0.5"))),
        ("bad_score", orjson.dumps(event(0, score=7.5))),
        ("bad_timestamp", orjson.dumps(event(0, timestamp="2026-01-01T00:00:00"))),
        ("bad_dimension", orjson.dumps(event(0, segment=[1]))),
        ("empty_value", None),
    ]


def send_all(
    bootstrap: str,
    topic: str,
    items: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]],
) -> None:
    """Produce ``(key, value, headers)`` and wait for acks; allows values above 1 MB."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=64 * 1024 * 1024
    )
    try:
        futures = [
            producer.send(topic, key=key, value=value, headers=headers)
            for key, value, headers in items
        ]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=5)


def read_exactly(bootstrap: str, topic: str, expected: int) -> list[ConsumerRecord]:
    """``consume_all`` plus a short extra poll that would catch records beyond ``expected``."""
    records = consume_all(bootstrap, topic, expected, timeout=WAIT_SECONDS)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        total = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            total += sum(len(b) for b in consumer.poll(timeout_ms=300).values())
    finally:
        consumer.close()
    assert total == len(records) == expected
    return records


@dataclass
class Run:
    monitor: Monitor
    state: ReplicaState
    stop: threading.Event
    thread: threading.Thread
    result: dict[str, Any]

    def wait_read(self, n: int, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.state.lock:
                read = self.state.ingest.read
            if read >= n:
                return
            if "error" in self.result:
                raise self.result["error"]
            if time.monotonic() > deadline:
                pytest.fail(f"monitor read {read} of {n} records within {timeout:g} s")
            time.sleep(0.05)


@contextmanager
def running_monitor(
    kafka: KafkaSettings,
    fields: EventFields,
    producer_factory: Callable[[], Any] | None = None,
) -> Iterator[Run]:
    """A Monitor in a thread; stopped and joined on exit (its summary in ``result``)."""
    state = ReplicaState(CellSettings(window_seconds=60, grace_seconds=30))
    monitor = Monitor(kafka, fields, state, producer_factory=producer_factory)
    stop = threading.Event()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["summary"] = monitor.run(stop)
        except BaseException as exc:  # surfaced in the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="monitor", daemon=True)
    thread.start()
    run = Run(monitor, state, stop, thread, result)
    try:
        yield run
    finally:
        stop.set()
        thread.join(timeout=WAIT_SECONDS)
        assert not thread.is_alive(), "the monitor did not stop"
    if "error" in result:
        raise result["error"]


def kafka_settings(broker: EmbeddedBroker, topic: str, dlq: str | None) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=(broker.bootstrap,),
        topics=(topic,),
        group_id=f"g-{uuid.uuid4().hex}",
        dead_letter_topic=dlq,
        client=fast_client_settings(),
        commit_interval_seconds=0.2,
        poll_timeout_seconds=0.2,
    )


def leaf_events(state: ReplicaState) -> int:
    snap = state.snapshot()
    return int(np.sum(snap.events_total[snap.is_leaf]))


N_VALID = 300


def produce_mixed(broker: EmbeddedBroker, topic: str) -> list[tuple[str, bytes]]:
    """Valid events and every kind of bad record, interleaved; returns (reason, key) per bad."""
    bad = bad_records()
    items: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]] = []
    expected: list[tuple[str, bytes]] = []
    every = N_VALID // len(bad)
    for i in range(N_VALID):
        items.append((b"v%d" % (i % 7), orjson.dumps(event(i)), None))
        if i % every == 0 and i // every < len(bad):
            reason, value = bad[i // every]
            key = b"bad-%d-%s" % (i // every, reason.encode())
            items.append((key, value, [("origin", b"test"), ("n", b"%d" % i)]))
            expected.append((reason, key))
    assert len(expected) == len(bad)
    send_all(broker.bootstrap, topic, items)
    return expected


@pytest.mark.broker
def test_monitor_dead_letters_every_bad_record(broker: EmbeddedBroker, topic: str) -> None:
    expected = produce_mixed(broker, topic)
    total = N_VALID + len(expected)
    dlq = f"dlq-{uuid.uuid4().hex}"
    kafka = kafka_settings(broker, topic, dlq)
    with running_monitor(kafka, EventFields()) as run:
        run.wait_read(total)
        # Measured while running: closing the consumer revokes its partitions, which drops
        # their state.
        in_cells = leaf_events(run.state)
    summary: RunSummary = run.result["summary"]
    state = run.state

    # Counters.
    reasons = Counter(reason for reason, _key in expected)
    assert set(reasons) <= set(REASONS)
    assert state.ingest.invalid == dict(reasons)
    assert (summary.read, summary.valid, summary.late, summary.invalid) == (
        total,
        N_VALID,
        0,
        len(expected),
    )
    assert state.ingest.read == summary.read == summary.valid + summary.late + summary.invalid
    assert state.ingest.dead_lettered == len(expected)
    assert state.ingest.dead_letter_failures == {}
    assert in_cells == N_VALID

    # Exactly one dead letter per bad record, byte-identical, pointing to its source record.
    letters = read_exactly(broker.bootstrap, dlq, len(expected))
    sources = {
        (r.partition, r.offset): r for r in consume_all(broker.bootstrap, topic, total, timeout=30)
    }
    by_key = {r.key: r for r in letters}
    assert len(by_key) == len(letters)
    for reason, key in expected:
        letter = by_key[key]
        headers = dict(letter.headers)
        assert [k for k, _v in letter.headers] == [
            "origin",
            "n",
            "tilewatch.reason",
            "tilewatch.detail",
            "tilewatch.source.topic",
            "tilewatch.source.partition",
            "tilewatch.source.offset",
        ]
        assert headers["tilewatch.reason"] == reason.encode(), key
        assert headers["tilewatch.detail"], key
        assert headers["tilewatch.source.topic"] == topic.encode()
        source = sources[
            (int(headers["tilewatch.source.partition"]), int(headers["tilewatch.source.offset"]))
        ]
        assert source.key == letter.key == key
        assert source.value == letter.value
        assert headers["origin"] == b"test"
        assert dict(source.headers)["n"] == headers["n"]
    assert by_key[next(k for r, k in expected if r == "empty_value")].value is None
    assert len(by_key[next(k for r, k in expected if r == "too_large")].value) > BIG
    # Details name the field that was wrong.
    details = {
        dict(r.headers)["tilewatch.reason"].decode(): dict(r.headers)["tilewatch.detail"].decode()
        for r in letters
    }
    assert details["missing_field"] == "model: required field is missing"
    assert details["bad_dimension"].startswith("segment: dimension 'segment'")
    assert details["bad_timestamp"].startswith("timestamp: RFC 3339 time needs a UTC offset")
    assert details["bad_score"].startswith("score: ")


@pytest.mark.broker
def test_monitor_without_dead_letter_topic_counts_rejects(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    items: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]] = [
        (None, orjson.dumps(event(i)), None) for i in range(50)
    ]
    bad = [(r, v) for r, v in bad_records() if r != "too_large"]
    items += [(b"k", value, None) for _reason, value in bad]
    # Here a 10 kB value is too large.
    items.append((None, orjson.dumps(event(0, pad="x" * 10_000)), None))
    send_all(broker.bootstrap, topic, items)
    fields = EventFields(max_event_bytes=2048)
    produced = []

    def no_producer() -> Any:
        produced.append(1)
        raise AssertionError("no producer is needed without a dead-letter topic")

    kafka = kafka_settings(broker, topic, None)
    with running_monitor(kafka, fields, producer_factory=no_producer) as run:
        run.wait_read(len(items))
    state = run.state
    summary: RunSummary = run.result["summary"]
    assert (summary.read, summary.valid, summary.invalid) == (len(items), 50, len(bad) + 1)
    expected = Counter(r for r, _v in bad)
    expected["too_large"] += 1
    assert state.ingest.invalid == dict(expected)
    assert state.ingest.dead_lettered == 0
    assert state.ingest.dead_letter_failures == {}
    assert produced == []
