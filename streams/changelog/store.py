"""The changelog store: partition checkpoints written to and restored from a compacted topic.

Two slots per partition, ``a`` and ``b``, take turns: a checkpoint is always written into the
slot that was *not* restored or written last. Log compaction keeps the latest chunk of each
slot, so a crash halfway through writing one slot leaves the other slot whole. Restoring reads
the changelog partition to its high watermark (taken from fetch responses, never from
``end_offsets()``, which some brokers answer too low), checks both slots
(:func:`~tilewatch.streams.changelog.records.decode_slot`), and takes the valid one with the
higher sequence number. Refused slots are counted and logged.

The store also remembers, per source partition, which offsets its last written or restored
checkpoint covers (:meth:`ChangelogStore.checkpointed`): the runtime commits exactly those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tilewatch.aggregators.state.partition_delta import BLOCKS, DeltaMark, PartitionDelta
from tilewatch.aggregators.state.snapshot import PartitionKey
from tilewatch.streams.changelog.candidates import Candidates
from tilewatch.streams.changelog.delta import (
    delta_prefix,
    delta_seq,
    head_prefix,
    plan_delta,
    unit_prefix,
)
from tilewatch.streams.changelog.records import (
    Checkpoint,
    Refusal,
    encode_checkpoint,
    slot_seq,
)
from tilewatch.streams.errors import StreamError

__all__ = ["Candidates", "ChangelogStore", "Covered"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Covered:
    """The offsets a partition's last written or restored checkpoint covers (None: unknown)."""

    #: Next offset of the source partition the checkpointed state is complete up to.
    offset: int | None = None
    #: Next offset of the co-partitioned outcomes partition, for labels read from a topic.
    label_offset: int | None = None


@dataclass
class _Slots:
    """What this replica knows of a partition's slots: where to write next, what is covered."""

    next_slot: str = "a"
    next_seq: int = 0
    covered: Covered = Covered()
    #: The head slot the next delta checkpoint is written to.
    head_slot: str = "a"
    #: Unit references of the last acknowledged (or restored) delta head; None: none.
    table: dict[str, Any] | None = None
    #: What the last acknowledged delta checkpoint held (None: the next round writes all).
    mark: DeltaMark | None = None
    #: Record keys of this partition on the changelog, by unit ("" for full-checkpoint keys).
    keys: dict[str, set[bytes]] = field(default_factory=dict)
    #: Keys no acknowledged head needs: tombstoned in the next round.
    garbage: set[bytes] = field(default_factory=set)


def _other(slot: str) -> str:
    return "b" if slot == "a" else "a"


@dataclass
class ChangelogStore:
    """Reads and writes partition checkpoints on the changelog topic.

    Parameters
    ----------
    topic
        The compacted changelog topic.
    fingerprint
        :func:`~tilewatch.streams.changelog.records.settings_fingerprint` of the running config.
    producer_factory, consumer_factory
        Build kafka-python clients (``consumer_factory`` must not join a group).
    on_refusal
        Called with each refused slot's reason (the runtime counts them).
    """

    topic: str
    fingerprint: dict[str, Any]
    producer_factory: Callable[[], Any]
    consumer_factory: Callable[[], Any]
    on_refusal: Callable[[str], None]
    timeout_seconds: float = 60.0
    _producer: Any = None
    _slots: dict[PartitionKey, _Slots] = field(default_factory=dict)
    _partitions: int | None = None

    def _changelog_partitions(self) -> int:
        if self._partitions is None:
            parts = self._get_producer().partitions_for(self.topic)
            if not parts:
                raise StreamError(f"changelog topic {self.topic!r} has no partitions")
            self._partitions = len(parts)
        return self._partitions

    def _get_producer(self) -> Any:
        if self._producer is None:
            self._producer = self.producer_factory()
        return self._producer

    def partition_of(self, source: PartitionKey) -> int:
        """The changelog partition holding a source partition's checkpoints."""
        return source[1] % self._changelog_partitions()

    def checkpointed(self, source: PartitionKey) -> Covered:
        """What the last checkpoint written or restored for ``source`` covers."""
        slots = self._slots.get(source)
        return Covered() if slots is None else slots.covered

    def next_slot(self, source: PartitionKey) -> tuple[str, int]:
        """The slot and sequence number the next checkpoint of ``source`` is written with."""
        slots = self._slots.get(source) or _Slots()
        return slots.next_slot, slots.next_seq

    def write(self, states: Mapping[PartitionKey, dict[str, Any]]) -> int:
        """Write one checkpoint per partition and wait until all are acknowledged.

        Returns the bytes written. Raises StreamError (after counting ``write_failed``) if any
        record is not acknowledged within the timeout; the slots then stay as they were, so the
        next attempt writes the same slot again.
        """
        from kafka.errors import KafkaError

        producer = self._get_producer()
        futures = []
        written = 0
        plans: dict[PartitionKey, _Slots] = {}
        try:
            for source, state in states.items():
                slots = self._slots.setdefault(source, _Slots())
                records = encode_checkpoint(
                    source, slots.next_slot, slots.next_seq, state, self.fingerprint
                )
                slots.keys.setdefault("", set()).update(k for k, _v in records)
                partition = self.partition_of(source)
                for key, value in records:
                    futures.append(
                        producer.send(self.topic, key=key, value=value, partition=partition)
                    )
                    written += len(key) + len(value)
                plans[source] = slots
            producer.flush(timeout=self.timeout_seconds)
            for future in futures:
                future.get(timeout=0)
        except (KafkaError, StreamError) as exc:
            self.on_refusal("write_failed")
            raise StreamError(f"cannot write checkpoints to {self.topic!r}: {exc}") from exc
        for source, slots in plans.items():
            state = states[source]
            labels = state.get("labels")
            slots.covered = Covered(
                offset=state.get("offset"),
                # A checkpoint without labels leaves the outcomes offset where it was.
                label_offset=slots.covered.label_offset if labels is None else labels["offset"],
            )
            slots.next_slot = "b" if slots.next_slot == "a" else "a"
            slots.next_seq += 1
        return written

    def restored(
        self,
        source: PartitionKey,
        covered: Covered,
        checkpoint: Checkpoint | None = None,
        mark: DeltaMark | None = None,
    ) -> None:
        """Record what the checkpoint of ``source`` that the runtime restored covers.

        ``mark``: what the partition restored from a delta ``checkpoint`` holds
        (:func:`~tilewatch.aggregators.state.delta_mark.mark_of`, taken before any batch).
        The first delta round then writes only the units that changed since the restore and
        names the restored ones for the rest, as any later round does. Without it, or when
        the checkpoint's cells were cut into other blocks than this version's, that round
        writes every unit (into the other slots). The restored head's units are kept until
        the next head is acknowledged either way.
        """
        slots = self._slots.setdefault(source, _Slots())
        slots.covered = covered
        slots.mark = None
        if checkpoint is not None and checkpoint.units is not None:
            slots.table = dict(checkpoint.units)
            slots.head_slot = _other(checkpoint.slot)
            if checkpoint.blocks == BLOCKS:
                slots.mark = mark

    def delta_mark(self, source: PartitionKey) -> DeltaMark | None:
        """What the last acknowledged delta checkpoint of ``source`` held (None: write all)."""
        slots = self._slots.get(source)
        return None if slots is None else slots.mark

    def write_delta(
        self, deltas: Mapping[PartitionKey, PartitionDelta | Callable[[], PartitionDelta]]
    ) -> int:
        """Write one delta checkpoint per partition and wait until all are acknowledged.

        A partition's delta may be given as a function that takes it: it is then called when
        that partition's turn comes, so one partition's copies exist at a time (the first
        round after a restore copies every unit of the partition).

        Per partition, in one batch: tombstones for keys no acknowledged head needs any more,
        the changed units (each into the slot the current head does not name), then the head.
        Returns the bytes written. Raises StreamError (after counting ``write_failed``) if any
        record is not acknowledged; nothing is then taken as written, so the next round
        compares with the same mark and writes the same slots again.
        """
        from kafka.errors import KafkaError

        producer = self._get_producer()
        futures = []
        written = 0
        plans: dict[PartitionKey, tuple[_Slots, dict[str, Any], dict[str, set[bytes]]]] = {}
        taken: dict[PartitionKey, tuple[Any, Any, DeltaMark]] = {}  # offsets and mark
        try:
            for source, given in deltas.items():
                delta = given() if callable(given) else given
                labels = delta.head.get("labels")
                taken[source] = (
                    delta.head.get("offset"),
                    None if labels is None else labels["offset"],
                    delta.mark,
                )
                slots = self._slots.setdefault(source, _Slots())
                records, table, new_keys = plan_delta(
                    source,
                    delta,
                    slots.table,
                    slots.head_slot,
                    slots.next_seq,
                    slots.garbage,
                    self.fingerprint,
                )
                partition = self.partition_of(source)
                for key, value in records:
                    futures.append(
                        producer.send(self.topic, key=key, value=value, partition=partition)
                    )
                    written += len(key) + (0 if value is None else len(value))
                plans[source] = (slots, table, new_keys)
                # One partition's records in memory at a time (about 13 MB each at 100,000
                # cells); what was acknowledged counts only once every partition's is.
                del records, delta
                producer.flush(timeout=self.timeout_seconds)
            for future in futures:
                future.get(timeout=0)
        except (KafkaError, StreamError) as exc:
            self.on_refusal("write_failed")
            raise StreamError(f"cannot write checkpoints to {self.topic!r}: {exc}") from exc
        for source, (slots, table, new_keys) in plans.items():
            offset, label_offset, mark = taken[source]
            slots.covered = Covered(
                offset=offset,
                label_offset=slots.covered.label_offset if label_offset is None else label_offset,
            )
            for key in slots.garbage:
                for keys in slots.keys.values():
                    keys.discard(key)
            slots.garbage = set()
            for unit, keys in new_keys.items():
                slot = table[unit][0]
                # The version just written replaces that slot's: its extra chunks are garbage.
                mine = unit_prefix(source, unit, slot).encode()
                old = slots.keys.setdefault(unit, set())
                slots.garbage |= {k for k in old if k.startswith(mine) and k not in keys}
                old |= keys
            for unit, keys in slots.keys.items():
                if unit not in table:  # full-checkpoint slots, units of evicted windows
                    slots.garbage |= keys
            slots.keys = {u: k for u, k in slots.keys.items() if u in table}
            slots.table = table
            slots.mark = mark
            slots.head_slot = _other(slots.head_slot)
            slots.next_seq += 1
        return written

    def forget(self, source: PartitionKey) -> None:
        """Drop what is known of a partition's slots (it was revoked)."""
        self._slots.pop(source, None)

    def read(self, sources: Iterable[PartitionKey]) -> dict[PartitionKey, Candidates]:
        """The checkpoints of each source partition, newest first: each is checked and decoded
        as it is iterated, the refused ones counted and skipped.

        Reads each needed changelog partition from the beginning up to its high watermark.
        """
        from kafka.structs import TopicPartition

        wanted = list(sources)
        if not wanted:
            return {}
        prefixes = {f"{s[0]}/{s[1]}/".encode(): s for s in wanted}
        tps = sorted({TopicPartition(self.topic, self.partition_of(s)) for s in wanted})
        latest: dict[bytes, bytes | None] = {}
        consumer = self.consumer_factory()
        try:
            consumer.assign(tps)
            # One ListOffsets round trip each for where the partitions start and end: an empty
            # changelog partition (a new group) is then not fetched at all (an empty fetch waits
            # for fetch_max_wait_ms). Only emptiness is read from them: some brokers (the
            # embedded one) answer end_offsets() with the last batch's base offset + 1, so
            # reading still stops at the high watermark the fetches report.
            ends = _offsets(consumer, "end_offsets", tps)
            starts = _offsets(consumer, "beginning_offsets", tps)
            unread = [tp for tp in tps if not _empty(ends.get(tp), starts.get(tp))]
            if unread:
                consumer.assign(unread)
                consumer.seek_to_beginning(*unread)
            deadline = time.monotonic() + self.timeout_seconds
            while unread:
                for records in consumer.poll(timeout_ms=200).values():
                    for rec in records:
                        if rec.key is not None and any(rec.key.startswith(p) for p in prefixes):
                            latest[rec.key] = rec.value
                done = all(
                    (hw := consumer.highwater(tp)) is not None and consumer.position(tp) >= hw
                    for tp in unread
                )
                if done:
                    break
                if time.monotonic() > deadline:
                    raise StreamError(
                        f"restoring from {self.topic!r} did not reach the end of "
                        f"{[tp.partition for tp in tps]} within {self.timeout_seconds:.0f} s"
                    )
        finally:
            consumer.close()
        out: dict[PartitionKey, Candidates] = {}
        for source in wanted:
            # Newest first by the sequence number its manifest names; each is checked and
            # decoded only when the restore comes to it (one partition's state at a time).
            order: list[tuple[int, str, str]] = []
            for slot in ("a", "b"):
                if latest.get(f"{source[0]}/{source[1]}/{slot}/manifest".encode()) is not None:
                    order.append((slot_seq(source, slot, latest), "full", slot))
                if latest.get(f"{head_prefix(source, slot)}manifest".encode()) is not None:
                    order.append((delta_seq(source, slot, latest), "delta", slot))
            order.sort(key=lambda o: o[0], reverse=True)
            out[source] = Candidates(self, source, order, latest)
            # Write next into the slots that do not hold the newest checkpoints, with a
            # sequence number above every one seen, so a later restore prefers it (a restored
            # delta head sets its own, :meth:`restored`).
            full = [slot for _s, kind, slot in order if kind == "full"]
            heads = [slot for _s, kind, slot in order if kind == "delta"]
            slots = _Slots(
                next_slot=_other(full[0] if full else "b"),
                next_seq=max([-1, *(seq for seq, _k, _s in order)]) + 1,
                head_slot=_other(heads[0] if heads else "b"),
            )
            # Every record of this partition now on the changelog, for the garbage collection
            # that follows the first acknowledged delta head.
            base, units_at = f"{source[0]}/{source[1]}/".encode(), delta_prefix(source).encode()
            heads_at = f"{delta_prefix(source)}h/".encode()
            for key, value in latest.items():
                if value is None or not key.startswith(base) or key.startswith(heads_at):
                    continue
                if key.startswith(units_at):
                    unit = key[len(units_at) + 2 :].decode(errors="replace").rsplit("/", 2)[0]
                else:
                    unit = ""
                slots.keys.setdefault(unit, set()).add(key)
            self._slots[source] = slots
        return out

    def refuse(self, refusal: Refusal) -> None:
        """Count and log a refused slot."""
        log.error(
            "refused checkpoint %s/%d slot %s (%s): %s",
            refusal.source[0],
            refusal.source[1],
            refusal.slot,
            refusal.reason,
            refusal.detail,
        )
        self.on_refusal(refusal.reason)

    def close(self) -> None:
        """Close the producer."""
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None


def _offsets(consumer: Any, method: str, tps: list[Any]) -> dict[Any, int | None]:
    """``consumer.method(tps)`` (``end_offsets``/``beginning_offsets``); empty when the client
    lacks it (another client library) or the broker does not answer (the read then fetches and
    relies on the high watermark, as without this check)."""
    try:
        return dict(getattr(consumer, method)(tps) or {})
    except Exception as exc:  # an old broker or a stand-in consumer: fall back to fetching
        log.debug("changelog offsets not available (%s); reading to the high watermark", exc)
        return {}


def _empty(end: int | None, start: int | None) -> bool:
    """Whether a partition with these end and start offsets holds no record (unknown: no)."""
    return end is not None and end <= (start or 0)
