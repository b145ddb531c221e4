"""The runtime loop: poll a batch, decode it, apply it to partition state, commit.

Delivery guarantee today (no checkpoints yet): **each record read is applied to in-memory
state exactly once while the process lives, and offsets are committed only after the batch
that covers them is in state and its dead-letter records are flushed.** A graceful stop
(SIGTERM/SIGINT) finishes the batch, commits and exits, so a restart resumes exactly after the
last processed record: nothing is skipped and nothing is read twice. The state itself is not
yet persisted: after any restart, counters start from zero (Prometheus sees a counter reset)
and windows open at the restart are partial. After a crash (kill -9) the records read since
the last commit (at most ``commit_interval``) are read again by the next process.

Kafka clients are created lazily by factories, the seam that lets the loop's logic be tested
with the real broker and keeps kafka-python out of the aggregators.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from kafka import ConsumerRebalanceListener

from aggregators.replica import PartitionKey, ReplicaState
from streams.deadletter import DeadLetterSink, ProducerLike
from streams.decode import EventDecoder, RecordLike
from streams.errors import StreamError
from streams.settings import EventFields, KafkaSettings

__all__ = ["ConsumerLike", "Monitor", "RunSummary", "kafka_client_config"]

log = logging.getLogger(__name__)

#: Seconds between refreshes of derived statistics while records keep arriving.
REFRESH_INTERVAL = 1.0


class ConsumerLike(Protocol):
    """The part of kafka-python's ``KafkaConsumer`` the loop uses."""

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None: ...
    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[Any, list[Any]]: ...
    def commit(self, offsets: Mapping[Any, Any] | None = None) -> None: ...
    def assignment(self) -> set[Any]: ...
    def highwater(self, partition: Any) -> int | None: ...
    def close(self, autocommit: bool = True) -> None: ...


@dataclass
class RunSummary:
    """What one run did, printed on exit and returned to tests."""

    read: int = 0
    valid: int = 0
    late: int = 0
    invalid: int = 0
    committed: dict[PartitionKey, int] = field(default_factory=dict)


def kafka_client_config(settings: KafkaSettings, kind: str) -> dict[str, Any]:
    """kafka-python keyword arguments for a ``consumer``, ``producer`` or ``admin`` client.

    The ``[kafka] client`` table is passed through, keeping only the keys the client of that
    kind accepts (so a consumer-only setting does not break the producer).
    """
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    accepted: dict[str, Any] = {
        "consumer": KafkaConsumer.DEFAULT_CONFIG,
        "producer": KafkaProducer.DEFAULT_CONFIG,
        "admin": KafkaAdminClient.DEFAULT_CONFIG,
    }[kind]
    config: dict[str, Any] = {"bootstrap_servers": list(settings.bootstrap_servers)}
    if kind == "consumer":
        config.update(
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=settings.max_poll_records,
            # Bounded so that a group join, which waits for the rebalance timeout on some
            # brokers, stays short; override in [kafka.client].
            session_timeout_ms=10_000,
            max_poll_interval_ms=30_000,
        )
    elif kind == "producer":
        # Dead-letter records keep the rejected value unchanged, including oversized ones.
        config.update(linger_ms=20, max_request_size=64 * 1024 * 1024, retries=5)
    config.update({k: v for k, v in settings.client.items() if k in accepted})
    # What the delivery guarantee rests on is not overridable from [kafka.client].
    config["bootstrap_servers"] = list(settings.bootstrap_servers)
    if kind == "consumer":
        config.update(group_id=settings.group_id, enable_auto_commit=False)
    return config


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Rebalance callbacks; kafka-python calls them inside ``poll()`` on the loop's thread."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def on_partitions_revoked(self, revoked: Sequence[Any]) -> None:
        self.monitor._on_revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[Any]) -> None:
        self.monitor._on_assigned(assigned)


class Monitor:
    """Consumes prediction events into a :class:`ReplicaState`.

    Parameters
    ----------
    kafka, fields
        Kafka settings and the event schema.
    state
        The replica state the exporter reads.
    consumer_factory, producer_factory
        Build the Kafka clients on first use; default to kafka-python with
        :func:`kafka_client_config`.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        fields: EventFields,
        state: ReplicaState,
        *,
        consumer_factory: Callable[[], ConsumerLike] | None = None,
        producer_factory: Callable[[], ProducerLike] | None = None,
    ) -> None:
        self.kafka = kafka
        self.state = state
        self.decoder = EventDecoder(fields)
        self._consumer_factory = consumer_factory or self._default_consumer
        self.dead_letters = DeadLetterSink(
            kafka.dead_letter_topic,
            producer_factory or self._default_producer,
            self._count_dead_letter_failure,
        )
        self._consumer: ConsumerLike | None = None
        self.summary = RunSummary()
        self._last_commit = 0.0
        self._last_refresh = 0.0
        self._last_up_check = 0.0

    # -- clients -----------------------------------------------------------------------------

    def _default_consumer(self) -> ConsumerLike:
        from kafka import KafkaConsumer

        try:
            consumer: ConsumerLike = KafkaConsumer(**kafka_client_config(self.kafka, "consumer"))
        except Exception as exc:
            raise StreamError(f"cannot create the Kafka consumer: {exc}") from exc
        return consumer

    def _default_producer(self) -> ProducerLike:
        from kafka import KafkaProducer

        producer: ProducerLike = KafkaProducer(**kafka_client_config(self.kafka, "producer"))
        return producer

    def ensure_dead_letter_topic(self) -> None:
        """Create the dead-letter topic if it does not exist (best effort, logged)."""
        topic = self.kafka.dead_letter_topic
        if topic is None:
            return
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        try:
            admin = KafkaAdminClient(**kafka_client_config(self.kafka, "admin"))
        except Exception as exc:
            log.warning("cannot check the dead-letter topic %r: %s", topic, exc)
            return
        try:
            if topic not in admin.list_topics():
                admin.create_topics([NewTopic(topic, 1, 1)])
                log.info("created dead-letter topic %r", topic)
        except TopicAlreadyExistsError:
            pass
        except Exception as exc:
            log.warning("cannot create the dead-letter topic %r: %s", topic, exc)
        finally:
            admin.close()

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> RunSummary:
        """Consume until ``stop`` is set; then commit what was processed and return."""
        self.ensure_dead_letter_topic()
        consumer = self._consumer = self._consumer_factory()
        consumer.subscribe(list(self.kafka.topics), listener=_Listener(self))
        timeout_ms = int(self.kafka.poll_timeout_seconds * 1000)
        try:
            while not stop.is_set():
                batch = consumer.poll(
                    timeout_ms=timeout_ms, max_records=self.kafka.max_poll_records
                )
                if batch:
                    self.process(batch)
                self._after_poll(consumer, idle=not batch)
            self.commit()
        finally:
            try:
                consumer.close(autocommit=False)
            finally:
                self.dead_letters.close()
                with self.state.lock:
                    self.state.ingest.kafka_up = 0
        log.info(
            "stopped: read %d records (%d valid, %d late, %d invalid); committed %s",
            self.summary.read,
            self.summary.valid,
            self.summary.late,
            self.summary.invalid,
            {f"{t}/{p}": o for (t, p), o in sorted(self.summary.committed.items())},
        )
        return self.summary

    def process(self, batch: Mapping[Any, Sequence[RecordLike]]) -> None:
        """Decode and apply one poll batch (records grouped by partition)."""
        for tp, records in batch.items():
            if not records:
                continue
            decoded = self.decoder.decode(records)
            for rejected in decoded.rejected:
                self.dead_letters.send(rejected)
            key: PartitionKey = (tp.topic, tp.partition)
            with self.state.lock:
                result = self.state.apply(
                    key,
                    decoded.keys,
                    np.array(decoded.event_times, dtype=np.float64),
                    np.array(decoded.scores, dtype=np.float64),
                    next_offset=records[-1].offset + 1,
                )
                ingest = self.state.ingest
                ingest.read += len(records)
                ingest.batches += 1
                for rejected in decoded.rejected:
                    ingest.invalid[rejected.reason] = ingest.invalid.get(rejected.reason, 0) + 1
            self.summary.read += len(records)
            self.summary.valid += result.valid
            self.summary.late += result.late
            self.summary.invalid += len(decoded.rejected)

    def _after_poll(self, consumer: ConsumerLike, idle: bool) -> None:
        now = time.monotonic()
        with self.state.lock:
            for tp in consumer.assignment():
                key = (tp.topic, tp.partition)
                part = self.state.partitions.get(key)
                high = consumer.highwater(tp)
                if part is not None and part.offset is not None and high is not None:
                    self.state.ingest.lag[key] = max(high - part.offset, 0)
            if now - self._last_up_check >= 1.0:
                self.state.ingest.kafka_up = int(_connected(consumer))
                self._last_up_check = now
        if idle or now - self._last_refresh >= REFRESH_INTERVAL:
            self.state.refresh()
            self._last_refresh = now
        if now - self._last_commit >= self.kafka.commit_interval_seconds:
            self.commit()

    def commit(self, keys: Sequence[PartitionKey] | None = None) -> None:
        """Flush dead letters, then commit the processed offsets of ``keys`` (default: all)."""
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        self._last_commit = time.monotonic()
        consumer = self._consumer
        if consumer is None:
            return
        self.dead_letters.flush()
        with self.state.lock:
            self.state.ingest.dead_lettered = self.dead_letters.sent
            parts = self.state.partitions
            wanted = list(parts) if keys is None else [k for k in keys if k in parts]
            offsets = {
                TopicPartition(t, p): OffsetAndMetadata(parts[(t, p)].offset, "", -1)
                for (t, p) in wanted
                if parts[(t, p)].offset is not None
                and parts[(t, p)].offset != self.summary.committed.get((t, p))
            }
        if not offsets:
            return
        try:
            consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (will retry): %s", exc)
            return
        for tp, om in offsets.items():
            self.summary.committed[(tp.topic, tp.partition)] = om.offset

    def _on_revoked(self, revoked: Sequence[Any]) -> None:
        keys = [(tp.topic, tp.partition) for tp in revoked]
        self.commit(keys)
        for key in keys:
            self.state.revoke(key)

    def _on_assigned(self, assigned: Sequence[Any]) -> None:
        for tp in assigned:
            self.state.assign((tp.topic, tp.partition))

    def _count_dead_letter_failure(self, reason: str) -> None:
        with self.state.lock:
            failures = self.state.ingest.dead_letter_failures
            failures[reason] = failures.get(reason, 0) + 1


def _connected(consumer: ConsumerLike) -> bool:
    """Whether the consumer has a live connection to at least one broker."""
    client = getattr(consumer, "_client", None)
    if client is None:
        return True
    try:
        brokers = client.cluster.brokers()
        return any(client.connected(b.nodeId) for b in brokers)
    except Exception:
        return False
