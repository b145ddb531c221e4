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
    """Where a replay starts and ends, per partition (``(topic, partition)`` keys).

    The end of a partition is the fetch high watermark the first fetch of it reports (brokers'
    ``ListOffsets`` answers are not always exact: the embedded test broker's are not), so
    :attr:`end` fills in as the replay goes; until then :attr:`estimate` holds ``end_offsets``.
    """

    start: dict[tuple[str, int], int]
    end: dict[tuple[str, int], int]
    estimate: dict[tuple[str, int], int]

    @property
    def total(self) -> int:
        """Records the replay reads (estimated until every partition was fetched once)."""
        return sum(
            max(0, self.end.get(k, self.estimate.get(k, 0)) - self.start[k]) for k in self.start
        )


def _key(tp: Any) -> tuple[str, int]:
    return (tp.topic, tp.partition)


def plan_range(
    consumer: Any, topics: Sequence[str], start_ms: int
) -> tuple[list[Any], ReplayRange]:
    """The partitions of ``topics`` and where to start reading each."""
    from kafka import TopicPartition

    tps = []
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise StreamError(f"topic {topic!r} does not exist or has no partitions")
        tps += [TopicPartition(topic, p) for p in sorted(parts)]
    high = consumer.end_offsets(tps)
    begin = consumer.offsets_for_times({tp: start_ms for tp in tps})
    rng = ReplayRange({}, {}, {})
    for tp in tps:
        found = begin.get(tp)
        rng.start[_key(tp)] = high[tp] if found is None else found.offset
        rng.estimate[_key(tp)] = high[tp]
    return tps, rng


def replay_batches(
    kafka: KafkaSettings,
    topics: Sequence[str],
    start_ms: int,
    end_ms: int | None,
    *,
    consumer_factory: Callable[[], Any] | None = None,
    on_plan: Callable[[ReplayRange], None] | None = None,
    poll_timeout_ms: int = 500,
    idle_seconds: float = 30.0,
) -> Iterator[Mapping[Any, list[Any]]]:
    """Poll batches (``{TopicPartition: [records]}``) of ``topics`` from the first record at
    or after ``start_ms`` to the fetch high watermark, stopping a partition early at its first
    record stamped at or after ``end_ms`` (milliseconds; None: no such stop)."""
    consumer = (consumer_factory or (lambda: new_restore_consumer(kafka)))()
    try:
        tps, rng = plan_range(consumer, topics, start_ms)
        if on_plan is not None:
            on_plan(rng)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, rng.start[_key(tp)])
        remaining = set(tps)
        idle = 0.0
        while remaining:
            batch = consumer.poll(timeout_ms=poll_timeout_ms, max_records=kafka.max_poll_records)
            out: dict[Any, list[Any]] = {}
            for tp, records in batch.items():
                if tp not in remaining:
                    continue
                end = rng.end.setdefault(_key(tp), _highwater(consumer, tp, records))
                keep = [
                    r
                    for r in records
                    if r.offset < end
                    and (end_ms is None or not r.timestamp or r.timestamp < end_ms)
                ]
                if keep:
                    out[tp] = keep
                if len(keep) < len(records):  # past the end: this partition is done
                    rng.end[_key(tp)] = keep[-1].offset + 1 if keep else records[0].offset
            for tp in list(remaining):
                stop = rng.end.get(_key(tp))
                if stop is None:
                    hw = consumer.highwater(tp)
                    if hw is not None:  # an empty fetch reported the watermark
                        stop = rng.end[_key(tp)] = hw
                if stop is not None and consumer.position(tp) >= stop:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if out:
                idle = 0.0
                yield out
                continue
            idle += poll_timeout_ms / 1000
            if idle > idle_seconds:
                raise StreamError(
                    f"no records for {idle_seconds:g} s although the range is not read to its "
                    "end: " + ", ".join(f"{tp.topic}/{tp.partition}" for tp in remaining)
                )
    finally:
        consumer.close(autocommit=False)


def _highwater(consumer: Any, tp: Any, records: Sequence[Any]) -> int:
    """The fetch high watermark of ``tp`` (the last record's next offset if none is known)."""
    hw = consumer.highwater(tp)
    return int(hw) if hw is not None else records[-1].offset + 1
