"""The confluent-kafka (librdkafka) client behind the loop's consumer and producer seam.

``[kafka] client_library = "confluent"`` selects it (``pip install tilewatch[confluent]``).
:class:`ConfluentConsumer` and :class:`~tilewatch.streams.confluent_producer.ConfluentProducer`
speak the part of kafka-python's API the loop, the assignments, the pacer, the committer, the
dead-letter sink and the changelog store use (:class:`~tilewatch.streams.clients.ConsumerLike`,
:class:`~tilewatch.streams.deadletter.ProducerLike`), with kafka-python's ``TopicPartition``
and ``OffsetAndMetadata`` as the currency, so the delivery guarantee of
:mod:`tilewatch.streams.loop` holds unchanged:

- **rebalances**: librdkafka calls ``on_assign`` / ``on_revoke`` (``on_lost`` counts as a
  revoke) inside ``consume()``, on the loop's thread; the partitions are assigned (one by
  one under ``partition.assignment.strategy = "cooperative-sticky"``), then handed to the
  listener kafka-python calls, which pauses new ones until
  :class:`~tilewatch.streams.assignment.Assignments` has restored and sought them (a seek
  refused before the fetcher starts assigns the partition again at that offset); records
  of partitions revoked during a ``consume()`` call are dropped;
- **offsets** are committed synchronously, only when the committer asks (no auto commit);
- **high watermarks** come from the fetch responses (``get_watermark_offsets(cached=True)``)
  and from end-of-partition events, never from a broker query alone (Tansu's can be too low);
- **errors**: a message carrying a librdkafka error is logged (once a second at most per
  code) and skipped; a fatal error raises StreamError; a failed commit raises kafka-python's
  ``KafkaError``, which the committer retries.
- **liveness** (``kafka_up``): the brokers' response counters of librdkafka's statistics
  (emitted every second): no response for two heartbeat intervals (plus a second) means the
  brokers do not answer, the rule :func:`~tilewatch.streams.clients.connected` applies to
  kafka-python's heartbeats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from kafka.errors import KafkaError as PyKafkaError
from kafka.structs import TopicPartition

from tilewatch.streams.confluent_options import librdkafka_config
from tilewatch.streams.confluent_producer import (
    LIBRDKAFKA_LOGGER,
    STATS_INTERVAL_SECONDS,
    load_library,
)
from tilewatch.streams.confluent_record import ConfluentRecord, ConfluentRun
from tilewatch.streams.errors import StreamError
from tilewatch.streams.settings import KafkaSettings

__all__ = [
    "ConfluentConsumer",
    "ConfluentRecord",
    "ConfluentRun",
    "new_confluent_consumer",
    "new_confluent_restore_consumer",
]

log = logging.getLogger(__name__)


class ConfluentConsumer:
    """A confluent-kafka ``Consumer`` with the kafka-python methods the loop calls.

    Parameters
    ----------
    config
        librdkafka configuration (:func:`~tilewatch.streams.confluent_options.librdkafka_config`).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        ck = load_library()
        self._ck = ck
        config = dict(config)
        self._heartbeat_seconds = float(config.get("heartbeat.interval.ms", 3000)) / 1000.0
        # librdkafka's Python binding does not say which protocol the group uses; the
        # cooperative one is chosen by this assignor (alone: it cannot be mixed with others).
        strategy = str(config.get("partition.assignment.strategy", ""))
        self._incremental = "cooperative-sticky" in strategy
        config.setdefault("statistics.interval.ms", int(STATS_INTERVAL_SECONDS * 1000))
        config["stats_cb"] = self._on_stats
        config["error_cb"] = self._on_error
        config.setdefault("logger", logging.getLogger(LIBRDKAFKA_LOGGER))
        try:
            self._consumer = ck.Consumer(config)
        except (ck.KafkaException, ValueError, TypeError) as exc:
            raise StreamError(f"cannot create the confluent-kafka consumer: {exc}") from exc
        self._positions: dict[tuple[str, int], int] = {}
        self._ends: dict[tuple[str, int], int] = {}
        self._tps: dict[tuple[str, int], TopicPartition] = {}
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        #: Partitions revoked by a rebalance callback during the current poll.
        self._moved: set[TopicPartition] = set()
        #: Where each partition was last sought: where it starts if assigned again (a seek refused).
        self._starts: dict[TopicPartition, int] = {}
        self._listener: Any = None
        self._rx = -1
        self._last_rx = time.monotonic()
        self._last_error_log: dict[int, float] = {}
        self._lock = threading.Lock()  # the liveness fields, read by the probe thread

    # --- topic partitions -------------------------------------------------------------
    def _tp(self, topic: str, partition: int) -> TopicPartition:
        key = (topic, partition)
        tp = self._tps.get(key)
        if tp is None:
            tp = self._tps[key] = TopicPartition(topic, partition)
        return tp

    def _ctp(self, tp: TopicPartition, offset: int | None = None) -> Any:
        if offset is None:
            return self._ck.TopicPartition(tp.topic, tp.partition)
        return self._ck.TopicPartition(tp.topic, tp.partition, offset)

    # --- group membership -------------------------------------------------------------
    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None:
        """Join the group for ``topics``; ``listener`` gets kafka-python's two callbacks."""
        self._listener = listener
        self._consumer.subscribe(
            list(topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _cooperative(self) -> bool:
        """Whether the group rebalances incrementally (``cooperative-sticky`` assignment)."""
        return self._incremental

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        tps = [self._tp(p.topic, p.partition) for p in partitions]
        if self._cooperative():  # only the added partitions
            consumer.incremental_assign(partitions)
            self._assigned.update(tps)
            self._forget(tps)
        else:  # the whole new assignment
            consumer.assign(partitions)
            self._assigned = set(tps)
            self._positions.clear()
            self._starts.clear()
        if self._listener is not None:
            self._listener.on_partitions_assigned(tps)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        tps = [self._tp(p.topic, p.partition) for p in partitions]
        self._moved.update(tps)
        if self._listener is not None:
            self._listener.on_partitions_revoked(tps)
        self._forget(tps)
        self._assigned.difference_update(tps)
        self._paused.difference_update(tps)
        try:
            if self._cooperative():
                consumer.incremental_unassign(partitions)
            else:
                consumer.unassign()
        except self._ck.KafkaException as exc:
            log.debug("unassign after revoke: %s", exc)

    def _forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop what is known of where ``tps`` are read: they are newly assigned or revoked,
        so a position read under an earlier assignment no longer says where they start."""
        for tp in tps:
            self._positions.pop((tp.topic, tp.partition), None)
            self._starts.pop(tp, None)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read ``partitions`` without a group (the changelog's restore consumer)."""
        tps = list(partitions)
        self._assigned = set(tps)
        self._positions.clear()
        self._starts.clear()
        self._consumer.assign([self._ctp(tp) for tp in tps])

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    # --- reading ------------------------------------------------------------------------
    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, ConfluentRun]:
        """Up to ``max_records`` messages, grouped by partition in the order they came.

        librdkafka runs the rebalance callbacks in the middle of ``consume()`` and still returns
        the messages it had collected before them, so a batch can hold records (and partition
        ends) of a partition revoked in that very call, or revoked and assigned again (eager
        protocol). They belong to the earlier assignment and are dropped: counted as a
        position, a later assignment of the partition would start from there instead of the
        offset it is sought to; handed to the loop, a partition kept across the rebalance
        (sought back to its state's offset) would count them twice. Nothing of a partition
        assigned in the call is fetched before the call returns: the listener pauses it in
        the callback until it is restored and sought.
        """
        self._moved = set()
        limit = max_records or 500
        consume = self._consumer.consume
        try:
            # As kafka-python's poll: what is queued, else the first message to come and what
            # came with it (``consume(n, timeout)`` waits for ``n`` messages or the timeout).
            messages = consume(limit, 0)
            if not messages and timeout_ms > 0:
                messages = consume(1, timeout_ms / 1000.0)
                if messages and limit > 1:
                    messages.extend(consume(limit - 1, 0))
        except self._ck.KafkaException as exc:
            raise StreamError(f"confluent-kafka consumer failed: {exc}") from exc
        out: dict[TopicPartition, ConfluentRun] = {}
        if not messages:
            return out
        dropped = ConfluentRun("", -1)  # messages of an earlier assignment
        current = dropped  # the first message sets the appends (it starts a run)
        last_topic: str | None = None
        last_partition = -1
        positions, assigned, moved = self._positions, self._assigned, self._moved
        for msg in messages:
            if msg.error() is not None:
                self._message_error(msg.error(), msg.topic(), msg.partition(), msg.offset())
                continue
            partition = msg.partition()
            if partition != last_partition or msg.topic() != last_topic:
                if current is not dropped:
                    positions[(current.topic, current.partition)] = current.next_offset()
                topic = msg.topic()
                tp = self._tp(topic, partition)
                if tp in assigned and tp not in moved:
                    current = out.get(tp) or out.setdefault(tp, ConfluentRun(topic, partition))
                else:
                    current = dropped
                add_message, add_value = current.messages.append, current.values.append
                last_topic, last_partition = topic, partition
            add_message(msg)
            add_value(msg.value())
        if current is not dropped:
            positions[(current.topic, current.partition)] = current.next_offset()
        if dropped:
            log.debug("dropped %d records of an earlier assignment", len(dropped))
        return out

    def _message_error(self, err: Any, topic: str | None, partition: int, offset: int) -> None:
        code = err.code()
        if code == self._ck.KafkaError._PARTITION_EOF:
            key = (str(topic), partition)
            self._ends[key] = offset
            tp = self._tp(str(topic), partition)
            if tp in self._assigned and tp not in self._moved:  # else: an earlier assignment's
                self._positions[key] = offset
            return
        if err.fatal():
            raise StreamError(f"confluent-kafka consumer failed: {err.str()}")
        self._log_error(code, f"{topic}/{partition}@{offset}: {err.str()}")

    def _log_error(self, code: int, text: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log.get(code, -1e9) >= STATS_INTERVAL_SECONDS:
            self._last_error_log[code] = now
            log.warning("Kafka client error (librdkafka): %s", text)

    def _on_error(self, err: Any) -> None:
        self._log_error(err.code(), err.str())

    # --- positions ----------------------------------------------------------------------
    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._seek(partition, offset)
        self._positions[(partition.topic, partition.partition)] = offset

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        # To the first offset the broker names: sought to the logical beginning, librdkafka
        # resolves it itself and starts fetching about 0.5 s later.
        for tp in partitions or tuple(self._assigned):
            try:
                self.seek(tp, self.beginning_offsets([tp])[tp])
            except self._ck.KafkaException:
                self._seek(tp, self._ck.OFFSET_BEGINNING)
                self._positions.pop((tp.topic, tp.partition), None)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp in partitions or tuple(self._assigned):
            self._seek(tp, self._ck.OFFSET_END)
            self._positions.pop((tp.topic, tp.partition), None)

    def _start_of(self, tp: TopicPartition) -> int:
        """Where an assigned partition resumes when it is assigned again: the position read
        or sought, else where it was last sought (logical), else its committed offset."""
        known = self._positions.get((tp.topic, tp.partition))
        if known is not None:
            return known
        start: int = self._starts.get(tp, self._ck.OFFSET_INVALID)
        return start

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        try:
            self._consumer.seek(self._ctp(tp, offset))
            self._starts[tp] = offset
            return
        except self._ck.KafkaException as exc:
            retry = (self._ck.KafkaError._STATE, self._ck.KafkaError._PREV_IN_PROGRESS)
            if exc.args[0].code() not in retry or tp not in self._assigned:
                raise StreamError(
                    f"cannot seek {tp.topic}/{tp.partition} to {offset}: {exc}"
                ) from exc
        # A partition whose fetcher has not started yet (just assigned: librdkafka is still
        # fetching its committed offset) or is still stopping (assigned before) cannot be
        # sought: assign it again with the offset, keeping the others where they are. The
        # offset asked for wins over any position known from before.
        self._starts[tp] = offset
        self._positions.pop((tp.topic, tp.partition), None)
        if self._cooperative():
            try:
                self._consumer.incremental_unassign([self._ctp(tp)])
                self._consumer.incremental_assign([self._ctp(tp, offset)])
                if tp in self._paused:
                    self._consumer.pause([self._ctp(tp)])
            except self._ck.KafkaException as exc:
                raise StreamError(
                    f"cannot seek {tp.topic}/{tp.partition} to {offset}: {exc}"
                ) from exc
            return
        starts = [
            self._ctp(other, offset if other == tp else self._start_of(other))
            for other in sorted(self._assigned)
        ]
        try:
            self._consumer.assign(starts)
            if self._paused:
                self._consumer.pause([self._ctp(p) for p in self._paused])
        except self._ck.KafkaException as exc:
            raise StreamError(f"cannot seek {tp.topic}/{tp.partition} to {offset}: {exc}") from exc

    def position(self, partition: TopicPartition) -> int:
        """The next offset to read: the last read or sought, else librdkafka's, else the low
        watermark (nothing read yet)."""
        known = self._positions.get((partition.topic, partition.partition))
        if known is not None:
            return known
        try:
            offset: int = self._consumer.position([self._ctp(partition)])[0].offset
        except self._ck.KafkaException:
            offset = -1
        if offset >= 0:
            return offset
        try:
            low = int(self._consumer.get_watermark_offsets(self._ctp(partition), cached=True)[0])
        except self._ck.KafkaException:
            low = -1
        return max(low, 0)

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end as the last fetch response (or end-of-partition event) said."""
        end = self._ends.get((partition.topic, partition.partition))
        try:
            high = int(self._consumer.get_watermark_offsets(self._ctp(partition), cached=True)[1])
        except self._ck.KafkaException:
            high = -1
        if high < 0:
            return end
        return high if end is None else max(high, end)

    def beginning_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return self._watermarks(partitions, 0)  # asked of the broker, one query each

    def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        # The broker's answer (Tansu's can be too low: tells an empty partition, not an end).
        return self._watermarks(partitions, 1)

    def _watermarks(self, tps: Sequence[TopicPartition], end: int) -> dict[TopicPartition, int]:
        query = self._consumer.get_watermark_offsets
        return {tp: int(query(self._ctp(tp), timeout=10.0, cached=False)[end]) for tp in tps}

    def committed(self, partition: TopicPartition) -> int | None:
        try:
            found = self._consumer.committed([self._ctp(partition)], timeout=10.0)
        except self._ck.KafkaException as exc:
            raise StreamError(
                f"cannot read the committed offset of {partition.topic}/{partition.partition}: "
                f"{exc}"
            ) from exc
        offset = int(found[0].offset)
        return offset if offset >= 0 else None

    def commit(self, offsets: Mapping[TopicPartition, Any] | None = None) -> None:
        """Commit exactly ``offsets`` (kafka-python ``OffsetAndMetadata`` values) and wait."""
        if not offsets:
            return
        wanted = [self._ctp(tp, int(om.offset)) for tp, om in offsets.items()]
        try:
            results = self._consumer.commit(offsets=wanted, asynchronous=False)
        except self._ck.KafkaException as exc:
            raise PyKafkaError(f"offset commit failed: {exc}") from exc
        failed = [r for r in results or [] if r.error is not None]
        if failed:
            raise PyKafkaError(
                "offset commit failed for "
                + ", ".join(f"{r.topic}/{r.partition}: {r.error}" for r in failed)
            )

    # --- flow control -------------------------------------------------------------------
    def pause(self, *partitions: TopicPartition) -> None:
        if partitions:
            self._consumer.pause([self._ctp(tp) for tp in partitions])
            self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        if partitions:
            self._consumer.resume([self._ctp(tp) for tp in partitions])
            self._paused.difference_update(partitions)

    # --- liveness -----------------------------------------------------------------------
    def _on_stats(self, text: str) -> None:
        try:
            brokers = orjson.loads(text).get("brokers", {})
            rx = sum(int(b.get("rx", 0)) for b in brokers.values())
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            return
        with self._lock:
            if rx != self._rx:
                self._rx = rx
                self._last_rx = time.monotonic()

    def is_connected(self, last_records: float) -> bool:
        """Whether the brokers answered (or records arrived) within two heartbeat intervals
        plus a second (the rule of :func:`~tilewatch.streams.clients.connected`)."""
        limit = 2 * max(self._heartbeat_seconds, STATS_INTERVAL_SECONDS) + 1.0
        now = time.monotonic()
        with self._lock:
            last = max(self._last_rx, last_records)
        return now - last <= limit

    def close(self, autocommit: bool = True) -> None:
        """Leave the group (no commit: tilewatch commits explicitly)."""
        try:
            self._consumer.close()
        except (self._ck.KafkaException, RuntimeError) as exc:
            log.debug("closing the confluent-kafka consumer: %s", exc)


def new_confluent_consumer(
    settings: KafkaSettings, copartitioned: bool = False
) -> ConfluentConsumer:
    """The group consumer; ``copartitioned``: range assignment (outcomes beside predictions)."""
    config = librdkafka_config(settings, "consumer")
    if copartitioned:
        config["partition.assignment.strategy"] = "range"
    return ConfluentConsumer(config)


def new_confluent_restore_consumer(settings: KafkaSettings) -> ConfluentConsumer:
    """A consumer that is assigned the changelog partitions (no group join)."""
    return ConfluentConsumer(librdkafka_config(settings, "restore"))
