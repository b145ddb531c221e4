"""Checkpoint and commit, in one order, in one place.

:meth:`Committer.commit` is the only way offsets reach the group, and it always does, in order:

1. flush the dead-letter producer (every rejected record of the batches being committed is in
   the dead-letter topic, or counted as a failure and logged), and the labeling queue's (every
   record its closed windows selected is in the queue topic, or counted and logged);
2. with checkpoints on: copy, under the state's lock, what changed in each owned partition
   that moved since its last checkpoint (a delta checkpoint: the units of cells that changed
   and the partition's head, plain data, and the offsets it covers);
3. write those checkpoints to the changelog and wait for the acknowledgements (a failed write
   is logged and retried at the next round, again against the last acknowledged checkpoint;
   offsets then stay where the last checkpoint was);
4. commit exactly the offsets the durable state covers: each partition's last checkpointed
   offset (and its outcomes partition's), or without checkpoints the offsets the state has
   processed. Pending partitions (not yet restored) are left alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from functools import partial

from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.partition_delta import DeltaMark, PartitionDelta, partition_delta
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import IngestUpdate, PartitionKey
from tilewatch.streams.changelog.delta import frozen_json
from tilewatch.streams.changelog.store import ChangelogStore
from tilewatch.streams.clients import ConsumerLike
from tilewatch.streams.deadletter import DeadLetterSink
from tilewatch.streams.errors import StreamError
from tilewatch.streams.labeling_sink import LabelingStage
from tilewatch.streams.summary import RunSummary
from tilewatch.streams.topics import Routing

__all__ = ["CHECKPOINT_SHARE", "MAX_STRETCH", "Committer", "next_round_gap"]

log = logging.getLogger(__name__)

#: The most of the loop's time checkpoint rounds may take: after a round of ``d`` seconds the
#: next is due ``d / CHECKPOINT_SHARE`` seconds after it started, when that is longer than the
#: interval. At 100 to 10,000 cells a round takes milliseconds and the interval holds; at
#: 100,000 cells, with every cell changed between rounds, a round takes about a second.
CHECKPOINT_SHARE = 0.05
#: The interval stretches to at most this many times its configured length.
MAX_STRETCH = 6.0


def next_round_gap(interval: float, last_round: float) -> float:
    """Seconds from the start of a round that took ``last_round`` seconds to the next one.

    >>> next_round_gap(10.0, 0.004)
    10.0
    >>> next_round_gap(10.0, 1.1)
    22.0
    >>> next_round_gap(10.0, 30.0)  # a stalled broker: at most MAX_STRETCH intervals
    60.0
    >>> next_round_gap(0.0, 0.5)  # no checkpoints, commits every poll: no stretch
    0.0
    """
    if interval <= 0:
        return interval
    return min(max(interval, last_round / CHECKPOINT_SHARE), MAX_STRETCH * interval)


class Committer:
    """Checkpoints partition state and commits the offsets it covers (see the module).

    Parameters
    ----------
    state, routing
        The replica state, and which outcomes partition belongs to which predictions one.
    dead_letters
        Flushed first.
    changelog
        Where checkpoints go (None: checkpoints are off).
    pending
        Partitions waiting for their restore (a read-only view of the assignments' set).
    summary
        The run's summary; ``committed`` is read (to skip unchanged offsets) and updated.
    interval_seconds
        How often :meth:`due` asks for a round.
    labeling
        The labeling queue's stage, flushed with the dead letters (None: no queue).
    """

    def __init__(
        self,
        state: ReplicaState,
        routing: Routing,
        dead_letters: DeadLetterSink,
        changelog: ChangelogStore | None,
        pending: AbstractSet[PartitionKey],
        summary: RunSummary,
        interval_seconds: float,
        labeling: LabelingStage | None = None,
    ) -> None:
        self.state = state
        self.routing = routing
        self.dead_letters = dead_letters
        self.changelog = changelog
        self.pending = pending
        self.summary = summary
        self.interval_seconds = interval_seconds
        self.labeling = labeling
        # With checkpoints the first round waits a whole interval; without, the first poll
        # commits.
        self._last = time.monotonic() if changelog is not None else 0.0
        #: Seconds from the start of the last round to the next (:func:`next_round_gap`).
        self.gap = interval_seconds
        self._stretched = False

    def due(self, now: float) -> bool:
        """Whether the next round is due (monotonic time): ``interval_seconds`` after the last
        round started, or longer after a round that took more than ``CHECKPOINT_SHARE`` of
        that (:func:`next_round_gap`)."""
        return now - self._last >= self.gap

    def commit(self, consumer: ConsumerLike | None) -> None:
        """One round: flush dead letters, checkpoint what moved, commit what is durable."""
        self._last = start = time.monotonic()
        self.dead_letters.flush()
        if self.labeling is not None:
            self.labeling.flush()
        if self.changelog is not None:
            self._checkpoint(self.changelog)
        if consumer is not None:
            self._commit_offsets(consumer)
        if self.changelog is not None:  # without checkpoints a round is a commit: no stretch
            self._pace(time.monotonic() - start)

    def _pace(self, took: float) -> None:
        """Set when the next round is due after one that took ``took`` seconds."""
        gap = next_round_gap(self.interval_seconds, took)
        stretched = gap > self.interval_seconds
        if stretched != self._stretched:
            self._stretched = stretched
            if stretched:
                log.info(
                    "a checkpoint round took %.2f s: the next in %.3g s, not %g s (rounds are "
                    "kept under %.0f%% of the loop's time)",
                    took,
                    gap,
                    self.interval_seconds,
                    100 * CHECKPOINT_SHARE,
                )
            else:
                log.info("checkpoint rounds are due every %g s again", self.interval_seconds)
        self.gap = gap

    def _checkpoint(self, changelog: ChangelogStore) -> None:
        """Steps 2 and 3: snapshot the partitions that moved, write them, wait for the acks."""
        with self.state.lock:
            states: dict[PartitionKey, Callable[[], PartitionDelta]] = {}
            for key, part in self.state.partitions.items():
                if key in self.pending:
                    continue
                labels = part.labels
                # Labels read before any prediction count too: their offset must survive.
                if part.offset is None and not (labels is not None and labels.offset):
                    continue
                covered = changelog.checkpointed(key)
                if part.offset != covered.offset or (
                    labels is not None and labels.offset != covered.label_offset
                ):
                    states[key] = partial(self._delta, part, changelog.delta_mark(key))
        if not states:
            return
        try:
            written = changelog.write_delta(states)
        except StreamError as exc:
            log.error("%s; will retry, offsets stay uncommitted", exc)
            return
        self.state.count_ingest(
            IngestUpdate(
                checkpoints_written=len(states),
                checkpoint_last_bytes=written,
                checkpoint_last_time=time.time(),
            )
        )

    def _delta(self, part: PartitionState, mark: DeltaMark | None) -> PartitionDelta:
        """A partition's delta, taken under the state's lock when the store asks for it: one
        partition's copies in memory at a time. The round runs on the loop's thread, so no
        batch is applied between the first partition's delta and the last one's."""
        with self.state.lock:
            return partition_delta(part, mark, frozen_json)

    def _commit_offsets(self, consumer: ConsumerLike) -> None:
        """Step 4: commit the offsets the durable state covers, where they moved."""
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata, TopicPartition

        changelog, pending = self.changelog, self.pending
        with self.state.lock:
            self.state.count_ingest(IngestUpdate(dead_lettered=self.dead_letters.sent))
            parts = self.state.partitions
            durable: dict[PartitionKey, int | None] = {
                key: changelog.checkpointed(key).offset if changelog is not None else part.offset
                for key, part in parts.items()
                if key not in pending
            }
            if self.routing.outcomes is not None:
                for key, part in parts.items():
                    label_key = self.routing.outcomes_of(key)
                    if key in pending or label_key in pending:
                        continue
                    if changelog is not None:
                        durable[label_key] = changelog.checkpointed(key).label_offset
                    else:
                        durable[label_key] = None if part.labels is None else part.labels.offset
        committed = self.summary.committed
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(off, "", -1)
            for (t, p), off in durable.items()
            if off is not None and off != committed.get((t, p))
        }
        if not offsets:
            return
        try:
            consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed (will retry): %s", exc)
            return
        for tp, om in offsets.items():
            committed[(tp.topic, tp.partition)] = om.offset
