"""Reading a retained range of topics outside the consumer group, for ``tilewatch backfill``.

The replay never touches the live monitor's group: a consumer without a group id (the
changelog restore's kind of client) is *assigned* every partition of the topics, seeks each to
the first offset whose record timestamp is at or after ``start`` (``offsets_for_times``) and
reads up to a fixed end: the first offset at or after ``end`` when one is given, else the
fetch high watermark taken when the replay starts. It commits nothing and writes no changelog
records. Batches come out grouped by partition, exactly as a group consumer's ``poll`` returns
them, so the monitor's own batch path decodes and applies them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tilewatch.streams.clients import new_restore_consumer
from tilewatch.streams.errors import StreamError
from tilewatch.streams.settings import KafkaSettings

__all__ = ["ReplayRange", "replay_batches"]

log = logging.getLogger(__name__)


@dataclass
class ReplayRange:
    """Where a replay starts and ends, per partition (``(topic, partition)`` keys)."""

    start: dict[tuple[str, int], int]
    end: dict[tuple[str, int], int]

    @property
    def total(self) -> int:
        """Records the replay reads."""
        return sum(max(0, self.end[k] - self.start[k]) for k in self.start)


def _key(tp: Any) -> tuple[str, int]:
    return (tp.topic, tp.partition)


def plan_range(
    consumer: Any, topics: Sequence[str], start_ms: int, end_ms: int | None
) -> tuple[list[Any], ReplayRange]:
    """The partitions of ``topics`` and the offset range of each to read."""
    from kafka import TopicPartition

    tps = []
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise StreamError(f"topic {topic!r} does not exist or has no partitions")
        tps += [TopicPartition(topic, p) for p in sorted(parts)]
    high = consumer.end_offsets(tps)
    begin = consumer.offsets_for_times({tp: start_ms for tp in tps})
    until = consumer.offsets_for_times({tp: end_ms for tp in tps}) if end_ms is not None else {}
    rng = ReplayRange({}, {})
    for tp in tps:
        key = (tp.topic, tp.partition)
        found = begin.get(tp)
        rng.start[key] = high[tp] if found is None else found.offset
        stop = until.get(tp)
        rng.end[key] = high[tp] if stop is None else min(stop.offset, high[tp])
    return tps, rng


def replay_batches(
    kafka: KafkaSettings,
    topics: Sequence[str],
    start_ms: int,
    end_ms: int | None,
    *,
    consumer_factory: Callable[[], Any] | None = None,
    on_plan: Callable[[ReplayRange], None] | None = None,
    poll_timeout_ms: int = 1000,
) -> Iterator[Mapping[Any, list[Any]]]:
    """Poll batches (``{TopicPartition: [records]}``) of ``topics`` between the two record
    times (milliseconds; ``end_ms`` None: up to the high watermark at the start)."""
    consumer = (consumer_factory or (lambda: new_restore_consumer(kafka)))()
    try:
        tps, rng = plan_range(consumer, topics, start_ms, end_ms)
        if on_plan is not None:
            on_plan(rng)
        consumer.assign(tps)
        remaining = set()
        for tp in tps:
            key = (tp.topic, tp.partition)
            if rng.start[key] < rng.end[key]:
                consumer.seek(tp, rng.start[key])
                remaining.add(tp)
            else:
                consumer.pause(tp)
        idle = 0
        while remaining:
            batch = consumer.poll(timeout_ms=poll_timeout_ms, max_records=kafka.max_poll_records)
            out: dict[Any, list[Any]] = {}
            for tp, records in batch.items():
                keep = [r for r in records if r.offset < rng.end[(tp.topic, tp.partition)]]
                if keep:
                    out[tp] = keep
            # done by position, not by the last record: transaction markers and compaction
            # leave offsets without records
            for tp in [tp for tp in remaining if consumer.position(tp) >= rng.end[_key(tp)]]:
                remaining.discard(tp)
                consumer.pause(tp)
            if not batch:
                idle += 1
                if idle * poll_timeout_ms > 60_000:
                    raise StreamError(
                        "no records for 60 s although the range is not read to its end: "
                        + ", ".join(f"{tp.topic}/{tp.partition}" for tp in remaining)
                    )
                continue
            idle = 0
            if out:
                yield out
    finally:
        consumer.close(autocommit=False)
