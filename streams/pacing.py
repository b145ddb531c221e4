"""Lag, and event-time pacing of the predictions topic and the outcomes topic it is joined with.

kafka-python drains one partition's fetch before another's, so on a backlog one topic can run
hours ahead of the other: labels would then wait for predictions long enough to be orphaned,
or predictions close their windows before their labels are read. Like Kafka Streams'
stream-time synchronisation, :class:`Pacer` pauses the side that is ahead by more than a slack
(half the label grace or the orphan hold, at least one window) while the other side still has
records to read, and resumes it when it has caught up. "Still has records to read" is the
partition's lag, which :meth:`Pacer.measure_lag` records after each poll.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import IngestUpdate, PartitionKey
from tilewatch.streams.clients import ConsumerLike
from tilewatch.streams.topics import Routing

__all__ = ["Pacer"]


class Pacer:
    """Pauses and resumes predictions and outcomes partitions to keep them close in event time.

    Parameters
    ----------
    state
        The replica state: each partition's event time and label time, and the lag.
    routing
        Which outcomes partition goes with which predictions partition.
    pending
        Partitions waiting for their restore (a read-only view of the assignments' set): they
        are neither paced nor resumed here.
    """

    def __init__(
        self, state: ReplicaState, routing: Routing, pending: AbstractSet[PartitionKey]
    ) -> None:
        self.state = state
        self.routing = routing
        self.pending = pending
        #: Partitions paused by :meth:`pace`.
        self.paced: set[PartitionKey] = set()

    def forget(self, keys: Iterable[PartitionKey]) -> None:
        """Stop tracking revoked partitions."""
        self.paced.difference_update(keys)

    def measure_lag(self, consumer: ConsumerLike) -> None:
        """Record each assigned partition's lag: records behind the fetch high watermark."""
        pending, routing, partitions = self.pending, self.routing, self.state.partitions
        lag: dict[PartitionKey, int | None] = {}
        with self.state.lock:
            for tp in consumer.assignment():
                key = (tp.topic, tp.partition)
                high = consumer.highwater(tp)
                if routing.is_outcomes(key):
                    offset = routing.label_offset(partitions, key)
                    if offset is None and key not in pending:
                        # No label read yet: the lag is still real (pacing depends on it).
                        offset = consumer.position(tp)
                else:
                    part = partitions.get(key)
                    offset = None if part is None else part.offset
                if offset is not None and high is not None:
                    lag[key] = max(high - offset, 0)
            self.state.count_ingest(IngestUpdate(lag=lag))

    def pace(self, consumer: ConsumerLike) -> None:
        """Pause the side that is ahead, resume the side that caught up (after each poll)."""
        labels = self.state.labels
        if self.routing.outcomes is None or labels is None:
            return
        from kafka.structs import TopicPartition

        window = self.state.settings.window_seconds
        slack_predictions = max(labels.grace_seconds / 2, window)
        slack_labels = max(labels.join.orphan_ttl_seconds / 2, window)
        lag = self.state.ingest.lag
        pending, paced = self.pending, self.paced
        wanted: dict[PartitionKey, bool] = {}
        with self.state.lock:
            for key, part in self.state.partitions.items():
                label_key = self.routing.outcomes_of(key)
                if key in pending or label_key in pending or part.labels is None:
                    continue
                ahead = part.max_event_time - part.labels.max_label_time
                # Hysteresis: pause past the slack, resume once back within half of it.
                limit = slack_predictions / (2 if key in paced else 1)
                wanted[key] = ahead > limit and lag.get(label_key, 0) > 0
                limit = slack_labels / (2 if label_key in paced else 1)
                wanted[label_key] = -ahead > limit and lag.get(key, 0) > 0
        for key, pause in wanted.items():
            if pause and key not in paced:
                consumer.pause(TopicPartition(*key))
                paced.add(key)
            elif not pause and key in paced:
                consumer.resume(TopicPartition(*key))
                paced.discard(key)
        unpark(consumer)


def unpark(consumer: ConsumerLike) -> None:
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
