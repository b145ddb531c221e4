"""The runtime loop: poll a batch, decode it, apply it to partition state, checkpoint, commit.

Delivery guarantee
------------------
With checkpoints on (``[state] checkpoints = true``, the default): **every valid event is
counted exactly once in the cumulative and window statistics across crashes, restarts and
rebalances.** Each partition's state and the offset it covers are written together to the
changelog (``tilewatch.streams.changelog``); group offsets are committed only after that write is
acknowledged, and only to the checkpoint's offset (``tilewatch.streams.commit``). When a
partition is assigned, its newest valid checkpoint is restored and the consumer seeks to that
checkpoint's offset, so the events after it are replayed into the state that did not yet hold
them (``tilewatch.streams.assignment``). The checkpoint, not the group's committed offset, is
the source of truth. A refused checkpoint (corrupt, foreign, incomplete) falls back to the
other slot; with none valid the partition starts empty at the committed offset, which is
counted and logged.

With checkpoints off: each record is applied once while the process lives, offsets are
committed after the batch is in state; a restart starts the counters from zero (a Prometheus
counter reset) and a crash replays at most ``commit_interval`` of records.

Either way, offsets are committed only after the dead-letter records of the batches they cover
are flushed, and a graceful stop (SIGTERM/SIGINT) finishes the batch, checkpoints, commits and
exits.

Each poll: handle a pending rebalance, decode and apply the batch, then measure the lag and pace
the predictions and outcomes topics (``tilewatch.streams.pacing``), refresh derived statistics,
and checkpoint and commit when the interval is due.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tilewatch.aggregators.state.merge import reported_windows
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import IngestUpdate, PartitionKey
from tilewatch.aggregators.vectors.tracker import VectorTracker
from tilewatch.streams.assignment import Assignments
from tilewatch.streams.changelog.records import settings_fingerprint
from tilewatch.streams.changelog.store import ChangelogStore
from tilewatch.streams.clients import (
    ConsumerLike,
    connected,
    new_consumer,
    new_producer,
    new_restore_consumer,
)
from tilewatch.streams.commit import Committer
from tilewatch.streams.deadletter import DeadLetterSink, ProducerLike
from tilewatch.streams.decoding.class_scores import ClassScoreEncoder, encode_batch
from tilewatch.streams.decoding.embeddings import EmbeddingEncoder
from tilewatch.streams.decoding.outcomes import LabelDecoder
from tilewatch.streams.decoding.predictions import EventDecoder
from tilewatch.streams.decoding.record import RecordLike
from tilewatch.streams.errors import StreamError
from tilewatch.streams.labeling_sink import LabelingStage
from tilewatch.streams.pacing import Pacer
from tilewatch.streams.refresh import REFRESH_INTERVAL, refresh_interval
from tilewatch.streams.settings import EventFields, KafkaSettings, LabelTopic, StateSettings
from tilewatch.streams.summary import RunSummary
from tilewatch.streams.topics import Routing, ensure_topics

__all__ = ["REFRESH_INTERVAL", "Monitor", "refresh_interval"]

log = logging.getLogger(__name__)

#: Seconds without records after which the loop counts as idle for :attr:`Monitor.on_idle`
#: (a backlog's fetch gaps are shorter).
IDLE_SECONDS = 1.0


class Monitor:
    """Consumes prediction events into a :class:`ReplicaState`.

    Parameters
    ----------
    kafka, fields, state_settings
        Kafka settings, the event schema, and the checkpoint settings.
    state
        The replica state the exporter reads.
    consumer_factory, producer_factory, restore_consumer_factory
        Build the Kafka clients on first use; default to kafka-python
        (:mod:`tilewatch.streams.clients`).
    label_topic
        The outcomes topic labels arrive on (None: inline labels or none).
    labeling
        Builds the labeling queue's stage from the producer factory (None: no queue).
    vectors
        Embedding and attribution statistics (``[events] embedding`` / ``attributions``; None:
        not read). Updated under ``state.lock``; not checkpointed (``docs/embeddings.md``).
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
        labeling: Callable[[Callable[[], ProducerLike]], LabelingStage] | None = None,
        vectors: VectorTracker | None = None,
    ) -> None:
        self.kafka = kafka
        self.state = state
        self.state_settings = state_settings or StateSettings(checkpoints=False)
        if label_topic is not None and (state.labels is None or state.labels.source != "topic"):
            raise StreamError("an outcomes topic needs label settings with source 'topic'")
        if label_topic is not None and len(kafka.topics) != 1:
            raise StreamError("labels from a topic are joined with exactly one predictions topic")
        self.label_topic = label_topic
        self.routing = Routing(kafka.topics, None if label_topic is None else label_topic.topic)
        columns = ["latency", "model_version"]
        if state.labels is not None:
            columns.append("event_id" if state.labels.source == "topic" else "label")
        multiclass = fields.scores is not None
        if multiclass and state.classes is None:
            raise StreamError("[events] scores needs a ReplicaState with a class vocabulary")
        if multiclass and "label" not in columns and "event_id" not in columns:
            columns.append("label")  # inline class labels of multi-class models
        if multiclass and state.profile is None:
            columns.append("prediction")  # an event's own predicted class, without the rest
        #: Embedding and attribution statistics (None: not read).
        self.vectors = vectors
        self._vectors_checked: tuple[Any, ...] | None = None
        self.fields = fields
        self.embedding_encoder: EmbeddingEncoder | None = None
        if vectors is not None:
            if fields.embedding is not None:
                columns.append("embedding")
                self.embedding_encoder = EmbeddingEncoder(
                    {m: r.dim for m, r in vectors.references.items() if r.dim is not None}
                )
            if fields.attributions is not None:
                columns.append("attributions")
            if "prediction" not in columns:
                columns.append("prediction")  # the predicted class of each event
        self.decoder = EventDecoder(fields, capture=state.profile is not None, columns=columns)
        #: Checks and tabulates the class probabilities of multi-class models (None: none).
        self.class_encoder = (
            ClassScoreEncoder(state.classes) if state.classes is not None and multiclass else None
        )
        self.label_decoder: LabelDecoder | None = None
        if label_topic is not None:
            assert state.labels is not None
            self.label_decoder = LabelDecoder(
                label_topic,
                state.labels.classification,
                fields.max_event_bytes,
                class_names=multiclass,
            )
        self._consumer_factory = consumer_factory or functools.partial(
            new_consumer, kafka, label_topic is not None
        )
        producer_factory = producer_factory or functools.partial(new_producer, kafka)
        self.dead_letters = DeadLetterSink(
            kafka.dead_letter_topic, producer_factory, self._count_dead_letter_failure
        )
        self.labeling = None if labeling is None else labeling(producer_factory)
        self.changelog: ChangelogStore | None = None
        if self.state_settings.checkpoints:
            self.changelog = ChangelogStore(
                topic=self.state_settings.topic_for(kafka.group_id),
                fingerprint=settings_fingerprint(state.settings, state.profile, state.labels),
                producer_factory=producer_factory,
                consumer_factory=restore_consumer_factory
                or functools.partial(new_restore_consumer, kafka),
                on_refusal=self._count_checkpoint_error,
                timeout_seconds=self.state_settings.restore_timeout_seconds,
            )
        self.summary = RunSummary()
        self.assignments = Assignments(
            state, self.routing, self.changelog, self.summary, kafka.auto_offset_reset
        )
        pending = self.assignments.pending
        self.pacer = Pacer(state, self.routing, pending)
        self.committer = Committer(
            state,
            self.routing,
            self.dead_letters,
            self.changelog,
            pending,
            self.summary,
            self.state_settings.checkpoint_interval_seconds
            if self.changelog is not None
            else kafka.commit_interval_seconds,
            self.labeling,
        )
        self._last_refresh = 0.0
        self._refresh_seconds = 0.0
        self._applied_since_refresh = True
        self._last_records = -math.inf
        #: Called once, with the records read so far, after the first batch that counted a
        #: record (the app logs the start-up time with it).
        self.on_first_records: Callable[[int], None] | None = None
        #: Called after a poll that returned nothing once no record came for IDLE_SECONDS
        #: (after the refresh), on this thread.
        self.on_idle: Callable[[], None] | None = None

    def ensure_topics(self) -> None:
        """Create the dead-letter and changelog topics if missing; check co-partitioning."""
        ensure_topics(
            self.kafka,
            None if self.changelog is None else self.changelog.topic,
            self.routing.outcomes,
            () if self.labeling is None else self.labeling.topics(self.kafka.topics),
        )

    def run(self, stop: threading.Event) -> RunSummary:
        """Consume until ``stop`` is set; then checkpoint, commit and return."""
        self.ensure_topics()
        consumer = self._consumer_factory()
        topics = list(self.kafka.topics)
        if self.label_topic is not None:
            topics.append(self.label_topic.topic)
        consumer.subscribe(topics, listener=self.assignments.listener(consumer))
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
                self.pacer.forget(self.assignments.handle(consumer))
                if batch:
                    self._last_records = time.monotonic()
                    if not self.state.ingest.kafka_up:  # records arrived: the broker answers
                        self.state.count_ingest(IngestUpdate(kafka_up=1))
                    self.process(batch)
                    if self.on_first_records is not None and self.summary.read:
                        first, self.on_first_records = self.on_first_records, None
                        first(self.summary.read)
                self._after_poll(consumer, idle=not batch)
            self.pacer.forget(self.assignments.handle(consumer))
            self.committer.commit(consumer)
        finally:
            probe_stop.set()
            probe.join(timeout=5)
            try:
                consumer.close(autocommit=False)
            finally:
                self.dead_letters.close()
                if self.labeling is not None:
                    self.labeling.close()
                if self.changelog is not None:
                    self.changelog.close()
                self.state.count_ingest(IngestUpdate(kafka_up=0))
        log.debug(  # the caller reports the summary it returns (once)
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
        self._applied_since_refresh = True
        pending = self.assignments.pending
        for tp, records in batch.items():
            key: PartitionKey = (tp.topic, tp.partition)
            if not records:
                continue
            if self.routing.is_outcomes(key):
                self._process_labels(key, records)
                continue
            if key in pending or key not in self.state.partitions:
                # Not restored yet: the restore seeks the partition explicitly, so these
                # records are read again from the right place.
                continue
            decoded = self.decoder.decode(records)
            for rejected in decoded.rejected:
                self.dead_letters.send(rejected)
            scores = np.array(decoded.scores, dtype=np.float64)
            labels = decoded.labels if "label" in self.decoder.columns else None
            class_bins: dict[str, Any] = {}
            class_weights: dict[str, Any] = {}
            class_errors = class_rows = mc = None
            class_counts: dict[str, int] = {}
            if self.class_encoder is not None and decoded.keys:
                mc = encode_batch(
                    self.class_encoder,
                    [k[0] for k in decoded.keys],
                    decoded.class_scores,
                    decoded.predictions,
                    labels,
                )
                decoded.predictions = mc.scores.predictions  # the argmax where none was given
                class_bins, class_counts, labels = mc.bins, mc.counts, mc.binary_labels
                class_weights, class_errors, class_rows = mc.weights, mc.errors, mc.rows
            bins, violations = None, None
            profile = self.state.profile
            if profile is not None and decoded.keys:
                bins, violations = profile.encode(
                    [k[0] for k in decoded.keys], scores, decoded.predictions, decoded.features
                )
            if class_bins:
                bins = {**(bins or {}), **class_bins}
            counts = IngestUpdate(
                read=len(records),
                batches=1,
                invalid=Counter(r.reason for r in decoded.rejected),
                class_scores=class_counts,
            )
            vector_args = self._vector_args(decoded) if self.vectors is not None else None
            with self.state.lock:  # the batch and its counts become visible together
                if vector_args is not None and self.vectors is not None:
                    self.vectors.apply(*vector_args[0])
                    self.vectors.count_bad_embeddings(vector_args[1])
                before = None if self.labeling is None else self.labeling.clock(key)
                result = self.state.apply(
                    key,
                    decoded.keys,
                    np.array(decoded.event_times, dtype=np.float64),
                    scores,
                    next_offset=records[-1].offset + 1,
                    bins=bins,
                    violations=violations,
                    event_ids=decoded.event_ids if "event_id" in self.decoder.columns else None,
                    labels=labels if self.state.labels is not None else None,
                    latencies=decoded.latencies,
                    versions=decoded.model_versions,
                    weights=class_weights or None,
                    class_errors=class_errors,
                    class_rows=class_rows,
                )
                if self.labeling is not None:
                    self.labeling.offer(key, records, decoded, scores, labels, before, mc)
                self.state.count_ingest(counts)
                if self.vectors is not None:  # judged with the batch that closes the window
                    self._judge_vectors()
            self.summary.read += len(records)
            self.summary.valid += result.valid
            self.summary.late += result.late
            self.summary.invalid += len(decoded.rejected)

    def _judge_vectors(self) -> None:
        """Judge the vector windows the state now reports (they close with the others)."""
        assert self.vectors is not None
        with self.state.lock:
            marks = [p.watermark for p in self.state.partitions.values()]
            due = self.vectors.due_windows(max(marks)) if marks else frozenset()
            if not due:
                return
            # What the state reports changes only when a partition's watermark crosses a window
            # boundary; the windows to judge, when one becomes due or gets events again after
            # its judgement: ask (O(cells)) only then.
            size = self.state.settings.window_seconds
            key = (tuple(math.floor(m / size) for m in marks if m > -math.inf), due)
            if key == self._vectors_checked:
                return
            self._vectors_checked = key
            reported = reported_windows(self.state.partitions.values(), self.state.registry)
            for model, window in reported.items():
                self.vectors.close_through(model, window)

    def _vector_args(self, decoded: Any) -> tuple[tuple[Any, ...], dict[tuple[str, str], int]]:
        """What the vector tracker takes from a decoded batch (outside the lock)."""
        bad: dict[tuple[str, str], int] = {}
        embeddings: dict[str, Any] = {}
        if self.embedding_encoder is not None and decoded.keys:
            encoded = self.embedding_encoder.encode(
                [k[0] for k in decoded.keys], decoded.embeddings
            )
            embeddings, bad = encoded.by_model, encoded.bad
        times = np.array(decoded.event_times, dtype=np.float64)
        attributions = decoded.attributions if self.fields.attributions is not None else None
        args = (decoded.keys, times, decoded.predictions, embeddings, attributions)
        return args, bad

    def _process_labels(self, key: PartitionKey, records: Sequence[RecordLike]) -> None:
        """Decode and apply a batch of the outcomes topic's partition ``key``."""
        assert self.label_decoder is not None
        owner = self.routing.owner(key)
        pending = self.assignments.pending
        if key in pending or owner in pending or owner not in self.state.partitions:
            return  # its restore seeks it explicitly; these records are read again
        decoded = self.label_decoder.decode(records)
        for rejected in decoded.rejected:
            self.dead_letters.send(rejected)
        counts = IngestUpdate(
            label_records=len(records),
            invalid_labels=Counter(r.reason for r in decoded.rejected),
        )
        with self.state.lock:
            self.state.apply_labels(
                owner,
                decoded.event_ids,
                decoded.labels,
                np.array(decoded.times, dtype=np.float64),
                next_offset=records[-1].offset + 1,
            )
            self.state.count_ingest(counts)

    def _after_poll(self, consumer: ConsumerLike, idle: bool) -> None:
        now = time.monotonic()
        self.pacer.measure_lag(consumer)
        self.pacer.pace(consumer)
        interval = refresh_interval(self._refresh_seconds, idle)
        if self._applied_since_refresh and now - self._last_refresh >= interval:
            started = time.monotonic()
            self.state.refresh()
            self._applied_since_refresh = False
            self._last_refresh = time.monotonic()
            self._refresh_seconds = self._last_refresh - started
        if idle and self.on_idle is not None and now - self._last_records >= IDLE_SECONDS:
            self.on_idle()
        if self.committer.due(now):
            self.committer.commit(consumer)

    def _probe(self, consumer: ConsumerLike, stop: threading.Event) -> None:
        """Set ``kafka_up`` once a second, whatever the loop is blocked on."""
        while not stop.wait(1.0):
            up = int(connected(consumer, self._last_records))
            self.state.count_ingest(IngestUpdate(kafka_up=up))

    def _count_dead_letter_failure(self, reason: str) -> None:
        self.state.count_ingest(IngestUpdate(dead_letter_failures={reason: 1}))

    def _count_checkpoint_error(self, reason: str) -> None:
        self.state.count_ingest(IngestUpdate(checkpoint_errors={reason: 1}))
