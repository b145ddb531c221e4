"""Partition assignment: rebalance callbacks, restore from the changelog, and the seeks.

kafka-python 3 runs synchronous rebalance listeners on its IO loop, where blocking work stalls
heartbeats. The listener here therefore only pauses newly assigned partitions and queues the
change; :meth:`Assignments.handle`, called by the loop after each ``poll()``, restores, seeks
and resumes them. A partition revoked and assigned again in the same rebalance keeps its state
and is sought back to its offset.

A newly assigned predictions partition is *pending* until its newest valid checkpoint is
restored and the consumer sought to the checkpoint's offset (or, with none, to the group's
committed offset): the checkpoint, not the committed offset, is the source of truth. An
outcomes partition is pending until its predictions partition is restored, then sought to the
outcomes offset that partition's state covers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import ConsumerRebalanceListener

from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.state.delta_mark import mark_of
from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import IngestUpdate, PartitionKey
from tilewatch.streams.changelog.records import Checkpoint, Refusal
from tilewatch.streams.changelog.store import ChangelogStore, Covered
from tilewatch.streams.clients import ConsumerLike
from tilewatch.streams.memory import release_free_memory
from tilewatch.streams.summary import RunSummary
from tilewatch.streams.topics import Routing

__all__ = ["RESTORE_RETRY", "Assignments"]

log = logging.getLogger(__name__)

#: Seconds to wait before retrying a restore that failed (changelog unreachable).
RESTORE_RETRY = 2.0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Rebalance callbacks: pause and queue only (they run on kafka-python's IO loop)."""

    def __init__(self, assignments: Assignments, consumer: ConsumerLike) -> None:
        self.assignments = assignments
        self.consumer = consumer

    def on_partitions_revoked(self, revoked: Sequence[Any]) -> None:
        self.assignments.queue_revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[Any]) -> None:
        if assigned:
            self.consumer.pause(*assigned)  # local bookkeeping only: no I/O on the IO loop
        self.assignments.queue_assigned(assigned)


class Assignments:
    """The partitions this replica owns, and the restore of newly assigned ones.

    Parameters
    ----------
    state
        The replica state partitions are assigned to and revoked from.
    routing
        Which partitions are outcomes partitions, and their owners.
    changelog
        Where checkpoints are restored from (None: checkpoints are off, partitions start
        empty at the committed offset).
    summary
        The run's summary: restored and committed offsets are recorded there.
    auto_offset_reset
        Where a partition with neither checkpoint nor committed offset starts.
    """

    def __init__(
        self,
        state: ReplicaState,
        routing: Routing,
        changelog: ChangelogStore | None,
        summary: RunSummary,
        auto_offset_reset: str,
    ) -> None:
        self.state = state
        self.routing = routing
        self.changelog = changelog
        self.summary = summary
        self.auto_offset_reset = auto_offset_reset
        #: Assigned partitions waiting for their restore (not read, checkpointed or committed).
        self.pending: set[PartitionKey] = set()
        self._lock = threading.Lock()  # guards the queues filled by the listener
        self._revoked: list[Any] = []
        self._assigned: list[Any] = []
        self._restore_after = 0.0

    def listener(self, consumer: ConsumerLike) -> ConsumerRebalanceListener:
        """The rebalance listener to subscribe ``consumer`` with."""
        return _Listener(self, consumer)

    def queue_revoked(self, revoked: Sequence[Any]) -> None:
        """Remember revoked partitions until :meth:`handle` (called on the IO loop)."""
        with self._lock:
            self._revoked.extend(revoked)

    def queue_assigned(self, assigned: Sequence[Any]) -> None:
        """Remember assigned (already paused) partitions until :meth:`handle`."""
        with self._lock:
            self._assigned.extend(assigned)

    def handle(self, consumer: ConsumerLike) -> list[PartitionKey]:
        """Apply the queued rebalance and restore what is pending; returns the revoked keys.

        Checkpoints are never written for a partition after it was revoked: the new owner
        replays from the last checkpoint instead.
        """
        with self._lock:
            revoked, self._revoked = self._revoked, []
            assigned, self._assigned = self._assigned, []
        assigned_keys = {(tp.topic, tp.partition) for tp in assigned}
        revoked_keys: list[PartitionKey] = []
        for tp in revoked:
            key = (tp.topic, tp.partition)
            revoked_keys.append(key)
            self.pending.discard(key)
            if self.routing.is_outcomes(key):
                self.summary.committed.pop(key, None)
                self.state.count_ingest(IngestUpdate(lag={key: None}))
                continue  # its state belongs to the predictions partition
            if key in assigned_keys and key in self.state.partitions:
                continue  # assigned straight back: keep the state, seek below
            self.state.revoke(key)
            self.summary.committed.pop(key, None)
            if self.changelog is not None:
                self.changelog.forget(key)
        for tp in assigned:
            key = (tp.topic, tp.partition)
            if self.routing.is_outcomes(key):
                self.pending.add(key)  # sought once its predictions partition is ready
                continue
            part = self.state.partitions.get(key)
            if part is not None:  # kept across the rebalance
                if part.offset is not None:
                    consumer.seek(tp, part.offset)
                consumer.resume(tp)
            else:
                self.pending.add(key)
        if self.pending and time.monotonic() >= self._restore_after:
            self._restore(consumer)
        return revoked_keys

    def _restore(self, consumer: ConsumerLike) -> None:
        from kafka.structs import TopicPartition

        label_keys = sorted(k for k in self.pending if self.routing.is_outcomes(k))
        keys = sorted(k for k in self.pending if not self.routing.is_outcomes(k))
        if not keys:
            self._restore_labels(consumer, label_keys)
            return
        found: dict[PartitionKey, Iterable[Checkpoint]] = dict.fromkeys(keys, ())
        if self.changelog is not None:
            try:
                found = dict(self.changelog.read(keys))
            except Exception as exc:
                log.error("cannot restore %s: %s; retrying in %.0f s", keys, exc, RESTORE_RETRY)
                self._restore_after = time.monotonic() + RESTORE_RETRY
                return
        for key in keys:
            tp = TopicPartition(*key)
            # Decoded one at a time and dropped once used: one partition's state in memory.
            restored, used = self._first_valid(key, found.pop(key, []))
            with self.state.lock:
                self.state.assign(key, restored)
                result = "restored" if restored is not None else "empty"
                self.state.count_ingest(IngestUpdate(checkpoint_restores={result: 1}))
                # What the restored units hold: the first round writes only what changes.
                mark = None if restored is None else mark_of(restored)
            if restored is not None:
                assert self.changelog is not None
                label_offset = None if restored.labels is None else restored.labels.offset
                covered = Covered(restored.offset, label_offset)
                self.changelog.restored(key, covered, used, mark)
            used = None
            if restored is not None and restored.offset is not None:
                consumer.seek(tp, restored.offset)
                self.summary.committed[key] = restored.offset
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
            self.pending.discard(key)
        self._restore_labels(consumer, label_keys)
        if any(self.summary.restored.get(key) is not None for key in keys):
            release_free_memory()  # the decoded checkpoints' pages, freed but kept by malloc

    def _first_valid(
        self, key: PartitionKey, candidates: Iterable[Checkpoint]
    ) -> tuple[PartitionState | None, Checkpoint | None]:
        """The partition rebuilt from the newest checkpoint whose state validates, and that
        checkpoint; the invalid ones before it are refused (``invalid_state``)."""
        for ckpt in candidates:
            try:
                return self.state.restore_partition(ckpt.state), ckpt
            except StateError as exc:
                assert self.changelog is not None
                self.changelog.refuse(Refusal(key, ckpt.slot, "invalid_state", str(exc)))
        return None, None

    def _restore_labels(self, consumer: ConsumerLike, label_keys: list[PartitionKey]) -> None:
        """Seek assigned outcomes partitions to where their predictions partition's state ends."""
        from kafka.structs import TopicPartition

        for key in label_keys:
            owner = self.routing.owner(key)
            if owner in self.pending:
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
            offset = self.routing.label_offset(self.state.partitions, key)
            if offset is not None:
                consumer.seek(tp, offset)
                self.summary.committed[key] = offset
                where = f"labels from offset {offset}"
            else:
                where = self._seek_to_durable_start(consumer, tp)
            log.info("outcomes partition %s/%d: %s", key[0], key[1], where)
            consumer.resume(tp)
            self.pending.discard(key)

    def _seek_to_durable_start(self, consumer: ConsumerLike, tp: Any) -> str:
        """Seek an empty partition to the group's committed offset, or per auto_offset_reset."""
        committed = consumer.committed(tp)
        if committed is not None:
            consumer.seek(tp, committed)
            return f"no checkpoint, starting empty at the committed offset {committed}"
        if self.auto_offset_reset == "earliest":
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek_to_end(tp)
        return f"no checkpoint and no committed offset, starting at the {self.auto_offset_reset}"
