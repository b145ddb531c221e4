"""The runtime loop: poll a batch, decode it, apply it to partition state, checkpoint, commit.

Delivery guarantee
------------------
With checkpoints on (``[state] checkpoints = true``, the default): **every valid event is
counted exactly once in the cumulative and window statistics across crashes, restarts and
rebalances.** Each partition's state and the offset it covers are written together to the
changelog (``tilewatch.streams.changelog``); group offsets are committed only after that write is
acknowledged, and only to the checkpoint's offset. When a partition is assigned, its newest
valid checkpoint is restored and the consumer seeks to that checkpoint's offset, so the events
after it are replayed into the state that did not yet hold them. The checkpoint, not the group's
committed offset, is the source of truth. A refused checkpoint (corrupt, foreign, incomplete)
falls back to the other slot; with none valid the partition starts empty at the committed
offset, which is counted and logged.

With checkpoints off: each record is applied once while the process lives, offsets are
committed after the batch is in state; a restart starts the counters from zero (a Prometheus
counter reset) and a crash replays at most ``commit_interval`` of records.

Either way, offsets are committed only after the dead-letter records of the batches they cover
are flushed, and a graceful stop (SIGTERM/SIGINT) finishes the batch, checkpoints, commits and
exits.

Rebalances
----------
kafka-python 3 runs synchronous rebalance listeners on its IO loop, where blocking work stalls
heartbeats. The listener here therefore only pauses newly assigned partitions and queues the
change; the loop restores, seeks and resumes them after ``poll()`` returns. A partition revoked
and assigned again in the same rebalance keeps its state and is sought back to its offset.
Checkpoints are never written for a partition after it was revoked: the new owner replays from
the last checkpoint instead.

Kafka clients are created lazily by factories, the seam that lets the loop's logic be tested
with the real broker and keeps kafka-python out of the aggregators.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from kafka import ConsumerRebalanceListener

from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.replica import PartitionKey, ReplicaState
from tilewatch.streams.changelog import ChangelogStore, Refusal, settings_fingerprint
from tilewatch.streams.deadletter import DeadLetterSink, ProducerLike
from tilewatch.streams.decoding.events import EventDecoder
from tilewatch.streams.decoding.labels import LabelDecoder
from tilewatch.streams.decoding.record import RecordLike
from tilewatch.streams.errors import StreamError
from tilewatch.streams.settings import EventFields, KafkaSettings, LabelTopic, StateSettings

__all__ = ["ConsumerLike", "Monitor", "RunSummary", "kafka_client_config"]

log = logging.getLogger(__name__)

#: Seconds between refreshes of derived statistics while records keep arriving.
REFRESH_INTERVAL = 1.0
#: Seconds to wait before retrying a restore that failed (changelog unreachable).
RESTORE_RETRY = 2.0


class ConsumerLike(Protocol):
    """The part of kafka-python's ``KafkaConsumer`` the loop uses."""

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None: ...
    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[Any, list[Any]]: ...
    def commit(self, offsets: Mapping[Any, Any] | None = None) -> None: ...
    def assignment(self) -> set[Any]: ...
    def highwater(self, partition: Any) -> int | None: ...
    def pause(self, *partitions: Any) -> None: ...
    def resume(self, *partitions: Any) -> None: ...
    def seek(self, partition: Any, offset: int) -> None: ...
    def seek_to_beginning(self, *partitions: Any) -> None: ...
    def seek_to_end(self, *partitions: Any) -> None: ...
    def committed(self, partition: Any) -> int | None: ...
    def position(self, partition: Any) -> int: ...
    def close(self, autocommit: bool = True) -> None: ...


@dataclass
class RunSummary:
    """What one run did, printed on exit and returned to tests."""

    read: int = 0
    valid: int = 0
    late: int = 0
    invalid: int = 0
    committed: dict[PartitionKey, int] = field(default_factory=dict)
    restored: dict[PartitionKey, int | None] = field(default_factory=dict)


def kafka_client_config(settings: KafkaSettings, kind: str) -> dict[str, Any]:
    """kafka-python keyword arguments for a ``consumer``, ``restore`` consumer (no group),
    ``producer`` or ``admin`` client.

    The ``[kafka] client`` table is passed through, keeping only the keys the client of that
    kind accepts (so a consumer-only setting does not break the producer).
    """
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    accepted: dict[str, Any] = {
        "consumer": KafkaConsumer.DEFAULT_CONFIG,
        "restore": KafkaConsumer.DEFAULT_CONFIG,
        "producer": KafkaProducer.DEFAULT_CONFIG,
        "admin": KafkaAdminClient.DEFAULT_CONFIG,
    }[kind]
    config: dict[str, Any] = {}
    if kind == "consumer":
        config.update(
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=settings.max_poll_records,
            # Bounded so that a group join, which waits for the rebalance timeout on some
            # brokers, stays short; override in [kafka.client].
            session_timeout_ms=10_000,
            max_poll_interval_ms=30_000,
        )
    elif kind == "producer":
        # Dead-letter records keep the rejected value unchanged, including oversized ones.
        config.update(linger_ms=20, max_request_size=64 * 1024 * 1024, retries=5, acks="all")
    config.update({k: v for k, v in settings.client.items() if k in accepted})
    # What the delivery guarantee rests on is not overridable from [kafka.client].
    config["bootstrap_servers"] = list(settings.bootstrap_servers)
    if kind == "consumer":
        config.update(group_id=settings.group_id, enable_auto_commit=False)
    elif kind == "restore":
        config.update(group_id=None, enable_auto_commit=False)
        for key in ("session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms"):
            config.pop(key, None)
    return config


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Rebalance callbacks: pause and queue only (they run on kafka-python's IO loop)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def on_partitions_revoked(self, revoked: Sequence[Any]) -> None:
        self.monitor._queue_revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[Any]) -> None:
        self.monitor._queue_assigned(assigned)


class Monitor:
    """Consumes prediction events into a :class:`ReplicaState`.

    Parameters
    ----------
    kafka, fields, state_settings
        Kafka settings, the event schema, and the checkpoint settings.
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
        state_settings: StateSettings | None = None,
        consumer_factory: Callable[[], ConsumerLike] | None = None,
        producer_factory: Callable[[], ProducerLike] | None = None,
        restore_consumer_factory: Callable[[], Any] | None = None,
        label_topic: LabelTopic | None = None,
    ) -> None:
        self.kafka = kafka
        self.state = state
        self.state_settings = state_settings or StateSettings(checkpoints=False)
        if label_topic is not None and (state.labels is None or state.labels.source != "topic"):
            raise StreamError("an outcomes topic needs label settings with source 'topic'")
        if label_topic is not None and len(kafka.topics) != 1:
            raise StreamError("labels from a topic are joined with exactly one predictions topic")
        #: The outcomes topic labels arrive on (None: inline labels or none).
        self.label_topic = label_topic
        columns = ["latency", "model_version"]
        if state.labels is not None:
            columns.append("event_id" if state.labels.source == "topic" else "label")
        self.decoder = EventDecoder(fields, capture=state.profile is not None, columns=columns)
        self.label_decoder: LabelDecoder | None = None
        if label_topic is not None:
            assert state.labels is not None
            self.label_decoder = LabelDecoder(
                label_topic, state.labels.classification, fields.max_event_bytes
            )
        #: Outcomes-topic offset in each predictions partition's last checkpoint.
        self._label_written: dict[PartitionKey, int | None] = {}
        #: Partitions paused by :meth:`_pace` (one topic ahead of the other in event time).
        self._paced: set[PartitionKey] = set()
        self._consumer_factory = consumer_factory or self._default_consumer
        self.dead_letters = DeadLetterSink(
            kafka.dead_letter_topic,
            producer_factory or self._default_producer,
            self._count_dead_letter_failure,
        )
        self.changelog: ChangelogStore | None = None
        if self.state_settings.checkpoints:
            self.changelog = ChangelogStore(
                topic=self.state_settings.topic_for(kafka.group_id),
                fingerprint=settings_fingerprint(state.settings, state.profile, state.labels),
                producer_factory=producer_factory or self._default_producer,
                consumer_factory=restore_consumer_factory or self._default_restore_consumer,
                on_refusal=self._count_checkpoint_error,
                timeout_seconds=self.state_settings.restore_timeout_seconds,
            )
        self._consumer: ConsumerLike | None = None
        self.summary = RunSummary()
        self._lock = threading.Lock()  # guards the queues filled by the listener
        self._revoked: list[Any] = []
        self._assigned: list[Any] = []
        self._pending: set[PartitionKey] = set()  # assigned, waiting for restore
        self._restore_after = 0.0
        self._last_commit = 0.0
        self._last_checkpoint = time.monotonic()
        self._last_refresh = 0.0
        self._last_records = -math.inf

    # -- clients -----------------------------------------------------------------------------

    def _default_consumer(self) -> ConsumerLike:
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.range import RangePartitionAssignor

        config = kafka_client_config(self.kafka, "consumer")
        if self.label_topic is not None:
            # Co-partitioning: partition p of the predictions and the outcomes topic must go
            # to the same consumer, which the range assignor guarantees for equal counts.
            config["partition_assignment_strategy"] = (RangePartitionAssignor,)
        try:
            consumer: ConsumerLike = KafkaConsumer(**config)
        except Exception as exc:
            raise StreamError(f"cannot create the Kafka consumer: {exc}") from exc
        return consumer

    def _default_restore_consumer(self) -> Any:
        from kafka import KafkaConsumer

        return KafkaConsumer(**kafka_client_config(self.kafka, "restore"))

    def _default_producer(self) -> ProducerLike:
        from kafka import KafkaProducer

        producer: ProducerLike = KafkaProducer(**kafka_client_config(self.kafka, "producer"))
        return producer

    def ensure_topics(self) -> None:
        """Create the dead-letter and changelog topics if missing (best effort, logged).

        The changelog is compacted and gets as many partitions as the largest source topic.
        """
        wanted: dict[str, dict[str, Any]] = {}
        if self.kafka.dead_letter_topic is not None:
            wanted[self.kafka.dead_letter_topic] = {"num_partitions": 1, "replication_factor": 1}
        if self.changelog is None and not wanted and self.label_topic is None:
            return
        from kafka import KafkaAdminClient
        from kafka.errors import TopicAlreadyExistsError

        try:
            admin = KafkaAdminClient(**kafka_client_config(self.kafka, "admin"))
        except Exception as exc:
            log.warning("cannot check the dead-letter and changelog topics: %s", exc)
            return
        try:
            existing = set(admin.list_topics())
            if self.label_topic is not None:
                self._check_copartitioned(admin, existing, wanted)
            if self.changelog is not None and self.changelog.topic not in existing:
                partitions = 1
                for topic in admin.describe_topics(list(self.kafka.topics)):
                    partitions = max(partitions, len(topic.get("partitions") or []))
                wanted[self.changelog.topic] = {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": {"cleanup.policy": "compact"},
                }
            for name, spec in wanted.items():
                if name in existing:
                    continue
                try:
                    admin.create_topics({name: spec})
                    log.info("created topic %r (%d partitions)", name, spec["num_partitions"])
                except TopicAlreadyExistsError:
                    pass
        except StreamError:
            raise
        except Exception as exc:
            log.warning("cannot create the dead-letter or changelog topic: %s", exc)
        finally:
            admin.close()

    def _check_copartitioned(
        self, admin: Any, existing: set[str], wanted: dict[str, dict[str, Any]]
    ) -> None:
        """Raise StreamError unless the outcomes topic has the predictions topic's partitions.

        A missing outcomes topic is created with the predictions topic's partition count.
        """
        assert self.label_topic is not None
        predictions, outcomes = self.kafka.topics[0], self.label_topic.topic
        names = [t for t in (predictions, outcomes) if t in existing]
        counts = {t["name"]: len(t.get("partitions") or []) for t in admin.describe_topics(names)}
        if predictions not in counts:
            return  # not created yet: checked again at the next start
        if outcomes not in counts:
            wanted[outcomes] = {"num_partitions": counts[predictions], "replication_factor": 1}
            return
        if counts[outcomes] != counts[predictions]:
            raise StreamError(
                f"the outcomes topic {outcomes!r} has {counts[outcomes]} partitions and the "
                f"predictions topic {predictions!r} {counts[predictions]}: labels are joined per "
                "partition, so both need the same count (and labels the same key as their "
                "predictions)"
            )

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> RunSummary:
        """Consume until ``stop`` is set; then checkpoint, commit and return."""
        self.ensure_topics()
        consumer = self._consumer = self._consumer_factory()
        topics = list(self.kafka.topics)
        if self.label_topic is not None:
            topics.append(self.label_topic.topic)
        consumer.subscribe(topics, listener=_Listener(self))
        timeout_ms = int(self.kafka.poll_timeout_seconds * 1000)
        probe_stop = threading.Event()
        probe = threading.Thread(
            target=self._probe, args=(consumer, probe_stop), name="tilewatch-kafka-up", daemon=True
        )
        probe.start()
        try:
            while not stop.is_set():
                batch = consumer.poll(
                    timeout_ms=timeout_ms, max_records=self.kafka.max_poll_records
                )
                self._handle_rebalance(consumer)
                if batch:
                    self._last_records = time.monotonic()
                    if not self.state.ingest.kafka_up:  # records arrived: the broker answers
                        with self.state.lock:
                            self.state.ingest.kafka_up = 1
                    self.process(batch)
                self._after_poll(consumer, idle=not batch)
            self._handle_rebalance(consumer)
            self.checkpoint()
            self.commit()
        finally:
            probe_stop.set()
            probe.join(timeout=5)
            try:
                consumer.close(autocommit=False)
            finally:
                self.dead_letters.close()
                if self.changelog is not None:
                    self.changelog.close()
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
            key: PartitionKey = (tp.topic, tp.partition)
            if not records:
                continue
            if self.label_topic is not None and tp.topic == self.label_topic.topic:
                self._process_labels(key, records)
                continue
            if key in self._pending or key not in self.state.partitions:
                # Not restored yet: the restore seeks the partition explicitly, so these
                # records are read again from the right place.
                continue
            decoded = self.decoder.decode(records)
            for rejected in decoded.rejected:
                self.dead_letters.send(rejected)
            scores = np.array(decoded.scores, dtype=np.float64)
            bins, violations = None, None
            profile = self.state.profile
            if profile is not None and decoded.keys:
                bins, violations = profile.encode(
                    [k[0] for k in decoded.keys], scores, decoded.predictions, decoded.features
                )
            with self.state.lock:
                result = self.state.apply(
                    key,
                    decoded.keys,
                    np.array(decoded.event_times, dtype=np.float64),
                    scores,
                    next_offset=records[-1].offset + 1,
                    bins=bins,
                    violations=violations,
                    event_ids=decoded.event_ids if "event_id" in self.decoder.columns else None,
                    labels=decoded.labels if "label" in self.decoder.columns else None,
                    latencies=decoded.latencies,
                    versions=decoded.model_versions,
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

    def _process_labels(self, key: PartitionKey, records: Sequence[RecordLike]) -> None:
        """Decode and apply a batch of the outcomes topic's partition ``key``."""
        assert self.label_decoder is not None
        owner = self._owner(key)
        if key in self._pending or owner in self._pending or owner not in self.state.partitions:
            return  # its restore seeks it explicitly; these records are read again
        decoded = self.label_decoder.decode(records)
        for rejected in decoded.rejected:
            self.dead_letters.send(rejected)
        with self.state.lock:
            self.state.apply_labels(
                owner,
                decoded.event_ids,
                decoded.labels,
                np.array(decoded.times, dtype=np.float64),
                next_offset=records[-1].offset + 1,
            )
            ingest = self.state.ingest
            ingest.label_records += len(records)
            for rejected in decoded.rejected:
                ingest.invalid_labels[rejected.reason] = (
                    ingest.invalid_labels.get(rejected.reason, 0) + 1
                )

    def _owner(self, label_key: PartitionKey) -> PartitionKey:
        """The predictions partition whose state the outcomes partition ``label_key`` feeds."""
        return (self.kafka.topics[0], label_key[1])

    def _label_offset(self, label_key: PartitionKey) -> int | None:
        """The outcomes partition's processed offset (from its predictions partition)."""
        part = self.state.partitions.get(self._owner(label_key))
        if part is None or part.labels is None:
            return None
        return part.labels.offset

    def _is_label_key(self, key: PartitionKey) -> bool:
        return self.label_topic is not None and key[0] == self.label_topic.topic

    def _pace(self, consumer: ConsumerLike) -> None:
        """Keep each predictions partition and its outcomes partition close in event time.

        kafka-python drains one partition's fetch before another's, so on a backlog one topic
        can run hours ahead of the other: labels would then wait for predictions long enough to
        be orphaned, or predictions close their windows before their labels are read. Like
        Kafka Streams' stream-time synchronisation, the side that is ahead by more than a slack
        (half the label grace or the orphan hold, at least one window) is paused while the
        other side still has records to read, and resumed when it has caught up.
        """
        labels = self.state.labels
        if self.label_topic is None or labels is None:
            return
        from kafka.structs import TopicPartition

        window = self.state.settings.window_seconds
        slack_predictions = max(labels.grace_seconds / 2, window)
        slack_labels = max(labels.join.orphan_ttl_seconds / 2, window)
        lag = self.state.ingest.lag
        wanted: dict[PartitionKey, bool] = {}
        with self.state.lock:
            for key, part in self.state.partitions.items():
                label_key = (self.label_topic.topic, key[1])
                if key in self._pending or label_key in self._pending or part.labels is None:
                    continue
                ahead = part.max_event_time - part.labels.max_label_time
                # Hysteresis: pause past the slack, resume once back within half of it.
                limit = slack_predictions / (2 if key in self._paced else 1)
                wanted[key] = ahead > limit and lag.get(label_key, 0) > 0
                limit = slack_labels / (2 if label_key in self._paced else 1)
                wanted[label_key] = -ahead > limit and lag.get(key, 0) > 0
        for key, pause in wanted.items():
            if pause and key not in self._paced:
                consumer.pause(TopicPartition(*key))
                self._paced.add(key)
            elif not pause and key in self._paced:
                consumer.resume(TopicPartition(*key))
                self._paced.discard(key)
        _unpark(consumer)

    def _after_poll(self, consumer: ConsumerLike, idle: bool) -> None:
        now = time.monotonic()
        with self.state.lock:
            for tp in consumer.assignment():
                key = (tp.topic, tp.partition)
                high = consumer.highwater(tp)
                if self._is_label_key(key):
                    offset = self._label_offset(key)
                    if offset is None and key not in self._pending:
                        # No label read yet: the lag is still real (pacing depends on it).
                        offset = consumer.position(tp)
                else:
                    part = self.state.partitions.get(key)
                    offset = None if part is None else part.offset
                if offset is not None and high is not None:
                    self.state.ingest.lag[key] = max(high - offset, 0)
        self._pace(consumer)
        if idle or now - self._last_refresh >= REFRESH_INTERVAL:
            self.state.refresh()
            self._last_refresh = now
        if self.changelog is not None:
            if now - self._last_checkpoint >= self.state_settings.checkpoint_interval_seconds:
                self.checkpoint()
                self.commit()
        elif now - self._last_commit >= self.kafka.commit_interval_seconds:
            self.commit()

    def _probe(self, consumer: ConsumerLike, stop: threading.Event) -> None:
        """Set ``kafka_up`` once a second, whatever the loop is blocked on."""
        while not stop.wait(1.0):
            up = int(_connected(consumer, self._last_records))
            with self.state.lock:
                self.state.ingest.kafka_up = up

    # -- checkpoints and commits -------------------------------------------------------------

    def checkpoint(self) -> None:
        """Write the state of every owned partition that moved since its last checkpoint."""
        self._last_checkpoint = time.monotonic()
        if self.changelog is None:
            return
        self.dead_letters.flush()
        with self.state.lock:
            states = {
                key: part.to_dict()
                for key, part in self.state.partitions.items()
                if key not in self._pending
                # Labels read before any prediction count too: their offset must survive.
                and (part.offset is not None or (part.labels is not None and part.labels.offset))
                and (
                    part.offset != self._checkpointed_offset(key)
                    or (
                        part.labels is not None
                        and part.labels.offset != self._label_written.get(key)
                    )
                )
            }
        if not states:
            return
        try:
            written = self.changelog.write(states)
        except StreamError as exc:
            log.error("%s; will retry, offsets stay uncommitted", exc)
            return
        for key, data in states.items():
            if data.get("labels") is not None:
                self._label_written[key] = data["labels"]["offset"]
        with self.state.lock:
            ingest = self.state.ingest
            ingest.checkpoints_written += len(states)
            ingest.checkpoint_last_bytes = written
            ingest.checkpoint_last_time = time.time()

    def _checkpointed_offset(self, key: PartitionKey) -> int | None:
        assert self.changelog is not None
        slots = self.changelog._slots.get(key)
        return None if slots is None else slots.written_offset

    def commit(self, keys: Sequence[PartitionKey] | None = None) -> None:
        """Commit the offsets the durable state covers (default: every owned partition).

        With checkpoints, that is each partition's last checkpointed offset; without, the
        processed offset, after flushing the dead-letter records.
        """
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
            durable = {
                key: (
                    self._checkpointed_offset(key)
                    if self.changelog is not None
                    else parts[key].offset
                )
                for key in wanted
                if key not in self._pending
            }
            if self.label_topic is not None:
                for key in wanted:
                    label_key = (self.label_topic.topic, key[1])
                    if key in self._pending or label_key in self._pending:
                        continue
                    labels = parts[key].labels
                    durable[label_key] = (
                        self._label_written.get(key)
                        if self.changelog is not None
                        else (None if labels is None else labels.offset)
                    )
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(off, "", -1)
            for (t, p), off in durable.items()
            if off is not None and off != self.summary.committed.get((t, p))
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

    # -- rebalances --------------------------------------------------------------------------

    def _queue_revoked(self, revoked: Sequence[Any]) -> None:
        with self._lock:
            self._revoked.extend(revoked)

    def _queue_assigned(self, assigned: Sequence[Any]) -> None:
        if assigned and self._consumer is not None:
            self._consumer.pause(*assigned)  # local bookkeeping only: no I/O on the IO loop
        with self._lock:
            self._assigned.extend(assigned)

    def _handle_rebalance(self, consumer: ConsumerLike) -> None:
        with self._lock:
            revoked, self._revoked = self._revoked, []
            assigned, self._assigned = self._assigned, []
        assigned_keys = {(tp.topic, tp.partition) for tp in assigned}
        for tp in revoked:
            key = (tp.topic, tp.partition)
            self._pending.discard(key)
            self._paced.discard(key)
            if self._is_label_key(key):
                self.summary.committed.pop(key, None)
                with self.state.lock:
                    self.state.ingest.lag.pop(key, None)
                continue  # its state belongs to the predictions partition
            if key in assigned_keys and key in self.state.partitions:
                continue  # assigned straight back: keep the state, seek below
            self._label_written.pop(key, None)
            self.state.revoke(key)
            self.summary.committed.pop(key, None)
            if self.changelog is not None:
                self.changelog.forget(key)
        for tp in assigned:
            key = (tp.topic, tp.partition)
            if self._is_label_key(key):
                self._pending.add(key)  # sought once its predictions partition is ready
                continue
            part = self.state.partitions.get(key)
            if part is not None:  # kept across the rebalance
                if part.offset is not None:
                    consumer.seek(tp, part.offset)
                consumer.resume(tp)
            else:
                self._pending.add(key)
        if self._pending and time.monotonic() >= self._restore_after:
            self._restore(consumer)

    def _restore(self, consumer: ConsumerLike) -> None:
        from kafka.structs import TopicPartition

        label_keys = sorted(k for k in self._pending if self._is_label_key(k))
        keys = sorted(k for k in self._pending if not self._is_label_key(k))
        if not keys:
            self._restore_labels(consumer, label_keys)
            return
        found: dict[PartitionKey, list[Any]] = {key: [] for key in keys}
        if self.changelog is not None:
            try:
                found = self.changelog.read(keys)
            except Exception as exc:
                log.error("cannot restore %s: %s; retrying in %.0f s", keys, exc, RESTORE_RETRY)
                self._restore_after = time.monotonic() + RESTORE_RETRY
                return
        for key in keys:
            tp = TopicPartition(*key)
            restored: PartitionState | None = None
            for ckpt in found.get(key, []):
                try:
                    restored = self.state.restore_partition(ckpt.state)
                    break
                except StateError as exc:
                    assert self.changelog is not None
                    self.changelog.refuse(Refusal(key, ckpt.slot, "invalid_state", str(exc)))
            with self.state.lock:
                self.state.assign(key, restored)
                result = "restored" if restored is not None else "empty"
                counts = self.state.ingest.checkpoint_restores
                counts[result] = counts.get(result, 0) + 1
            if restored is not None:
                self._label_written[key] = (
                    None if restored.labels is None else restored.labels.offset
                )
            if restored is not None and restored.offset is not None:
                consumer.seek(tp, restored.offset)
                self.summary.committed[key] = restored.offset
                if self.changelog is not None:
                    self.changelog._slots[key].written_offset = restored.offset
                where = f"restored up to offset {restored.offset}"
            else:
                # Empty state must start where the durable state ends. The consumer may still
                # hold a position from an earlier ownership of this partition (kafka-python
                # keeps positions of partitions that stay assigned across a rebalance whose
                # revoke and assign arrived in different polls), so always seek explicitly.
                where = self._seek_to_durable_start(consumer, tp)
                if restored is not None:  # a checkpoint of labels read before any prediction
                    where = f"restored labels only; {where}"
            self.summary.restored[key] = None if restored is None else restored.offset
            log.info("partition %s/%d: %s", key[0], key[1], where)
            consumer.resume(tp)
            self._pending.discard(key)
        self._restore_labels(consumer, label_keys)

    def _restore_labels(self, consumer: ConsumerLike, label_keys: list[PartitionKey]) -> None:
        """Seek assigned outcomes partitions to where their predictions partition's state ends."""
        from kafka.structs import TopicPartition

        for key in label_keys:
            owner = self._owner(key)
            if owner in self._pending:
                continue  # its predictions partition is not restored yet
            tp = TopicPartition(*key)
            if owner not in self.state.partitions:
                log.error(
                    "outcomes partition %s/%d is assigned without predictions partition %s/%d: "
                    "are the topics co-partitioned? its labels stay unread",
                    *key,
                    *owner,
                )
                continue
            offset = self._label_offset(key)
            if offset is not None:
                consumer.seek(tp, offset)
                self.summary.committed[key] = offset
                where = f"labels from offset {offset}"
            else:
                where = self._seek_to_durable_start(consumer, tp)
            log.info("outcomes partition %s/%d: %s", key[0], key[1], where)
            consumer.resume(tp)
            self._pending.discard(key)

    def _seek_to_durable_start(self, consumer: ConsumerLike, tp: Any) -> str:
        """Seek an empty partition to the group's committed offset, or per auto_offset_reset."""
        committed = consumer.committed(tp)
        if committed is not None:
            consumer.seek(tp, committed)
            return f"no checkpoint, starting empty at the committed offset {committed}"
        if self.kafka.auto_offset_reset == "earliest":
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek_to_end(tp)
        return (
            f"no checkpoint and no committed offset, starting at the {self.kafka.auto_offset_reset}"
        )

    # -- counters ----------------------------------------------------------------------------

    def _count_dead_letter_failure(self, reason: str) -> None:
        with self.state.lock:
            failures = self.state.ingest.dead_letter_failures
            failures[reason] = failures.get(reason, 0) + 1

    def _count_checkpoint_error(self, reason: str) -> None:
        with self.state.lock:
            errors = self.state.ingest.checkpoint_errors
            errors[reason] = errors.get(reason, 0) + 1


def _unpark(consumer: ConsumerLike) -> None:
    """Work around a kafka-python 3.0 fetcher bug after ``resume()``.

    Records fetched for a partition that was then paused are parked; ``fetched_records`` hands
    them back after ``resume()`` only while its in-line slot is ``None``, but a drained slot
    holds an exhausted (falsy) ``PartitionRecords`` until the next fetch completes. With every
    other partition caught up no fetch completes, and the parked partition, which the fetcher
    also excludes from fetching, stalls forever. Clearing the drained slot lets the next poll
    take parked records back (one partition per poll, so this runs after every poll). Only
    touches a kafka-python consumer's own fetcher.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None  # type: ignore[union-attr]


def _connected(consumer: ConsumerLike, last_records: float = -math.inf) -> bool:
    """Whether the consumer reaches the brokers.

    A paused or partitioned broker keeps TCP connections open, so "connected" alone stays true
    for minutes. Instead: records delivered recently, or a recent heartbeat to the group
    coordinator (heartbeats run every ``heartbeat_interval_ms`` on kafka-python's IO thread,
    even while the loop is busy). More than two intervals (plus a second) without either means
    the broker is not answering. ``last_records`` is the ``time.monotonic()`` of the last
    non-empty poll.
    """
    try:
        interval = consumer.config["heartbeat_interval_ms"] / 1000.0  # type: ignore[attr-defined]
        metrics = consumer.metrics()  # type: ignore[attr-defined]
    except AttributeError:
        return True  # not a kafka-python consumer (a test double): nothing to say
    except Exception:
        return False
    limit = 2 * interval + 1.0
    if time.monotonic() - last_records <= limit:
        return True
    try:
        ago = metrics["consumer-coordinator-metrics"]["last-heartbeat-seconds-ago"]
    except (KeyError, TypeError):
        return False
    return bool(ago <= limit)
