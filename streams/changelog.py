"""Partition checkpoints in a compacted changelog topic.

A checkpoint is one partition's state (``PartitionState.to_dict()``: plain data, never pickle)
together with the offset up to which that state is complete. It is written as JSON, compressed
with zlib and cut into records of at most :data:`CHUNK_BYTES`, then a manifest record that names
the format, version, source partition, cell settings, sequence number, offset, chunk count and
the SHA-256 of the whole payload.

Two slots per partition, ``a`` and ``b``, take turns: a checkpoint is always written into the
slot that was *not* restored or written last. Record keys are ``topic/partition/slot/part``, so
log compaction keeps the latest chunk of each slot, and a crash halfway through writing one
slot leaves the other slot whole. Restoring reads the changelog partition to its high
watermark (taken from fetch responses, never from ``end_offsets()``, which some brokers answer
too low), checks both slots, and takes the valid one with the higher sequence number.

A slot that is incomplete, corrupt (hash, compression, JSON), foreign (another format, version,
source partition or cell settings) or whose state does not validate is refused with a reason
(:data:`REFUSALS`) and counted; it is never applied, not even in part.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftProfile
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.state.replica import PartitionKey
from tilewatch.aggregators.stats.latency import LATENCY_BINS
from tilewatch.streams.errors import StreamError

__all__ = [
    "CHUNK_BYTES",
    "FORMAT",
    "REFUSALS",
    "VERSION",
    "ChangelogStore",
    "Checkpoint",
    "Refusal",
    "decode_slot",
    "encode_checkpoint",
    "settings_fingerprint",
]

log = logging.getLogger(__name__)

FORMAT = "tilewatch-partition-checkpoint"
VERSION = 1
#: Largest changelog record value (below Kafka's default 1 MB message limit).
CHUNK_BYTES = 512 * 1024
#: Largest decompressed checkpoint accepted (a guard against decompression bombs).
MAX_STATE_BYTES = 2 * 1024**3

#: Why a checkpoint slot was refused (the ``reason`` label of
#: ``tilewatch_checkpoint_errors_total``).
REFUSALS: dict[str, str] = {
    "incomplete": "a chunk named by the manifest is missing (a write was cut short)",
    "corrupt": "the payload does not match its hash, or is not valid compressed JSON",
    "foreign": "another format or version, another source partition, or other cell settings",
    "invalid_state": "the partition state inside does not validate",
    "write_failed": "a checkpoint could not be written to the changelog",
}


@dataclass(frozen=True)
class Checkpoint:
    """A decoded, checked checkpoint slot (its state not yet applied)."""

    source: PartitionKey
    slot: str
    seq: int
    offset: int | None
    state: dict[str, Any]
    written_at: float


@dataclass(frozen=True)
class Refusal:
    """A slot that was not used, and why."""

    source: PartitionKey
    slot: str
    reason: str
    detail: str


def settings_fingerprint(
    cells: CellSettings, profile: DriftProfile | None = None, labels: LabelSettings | None = None
) -> dict[str, Any]:
    """The settings a checkpoint's meaning depends on: cells, the histogram layout, labels."""
    hist_bins = {**(profile.hist_bins if profile is not None else {}), "latency": LATENCY_BINS}
    out: dict[str, Any] = {
        "dimensions": list(cells.dimensions),
        "window_seconds": cells.window_seconds,
        "rolling_events": cells.rolling_events,
        "label_max_length": cells.label_max_length,
        "histograms": dict(sorted(hist_bins.items())),
    }
    if profile is not None:
        out["features"] = list(profile.features)
    if labels is not None:
        out["labels"] = {
            "source": labels.source,
            "task": labels.performance.task,
            "calibration_bins": labels.performance.calibration_bins,
        }
    return out


def _prefix(source: PartitionKey, slot: str) -> str:
    return f"{source[0]}/{source[1]}/{slot}/"


def encode_checkpoint(
    source: PartitionKey,
    slot: str,
    seq: int,
    state: dict[str, Any],
    fingerprint: dict[str, Any],
    now: float | None = None,
) -> list[tuple[bytes, bytes]]:
    """The changelog records (key, value) of one checkpoint: chunks first, manifest last."""
    payload = zlib.compress(orjson.dumps(state), 1)
    chunks = [payload[i : i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)] or [b""]
    prefix = _prefix(source, slot)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "source": {"topic": source[0], "partition": source[1]},
        "slot": slot,
        "seq": seq,
        "offset": state.get("offset"),
        "chunks": len(chunks),
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "settings": fingerprint,
        "written_at": time.time() if now is None else now,
    }
    records = [(f"{prefix}{i}".encode(), chunk) for i, chunk in enumerate(chunks)]
    records.append((f"{prefix}manifest".encode(), orjson.dumps(manifest)))
    return records


def decode_slot(
    source: PartitionKey,
    slot: str,
    latest: Mapping[bytes, bytes | None],
    fingerprint: dict[str, Any],
) -> Checkpoint | Refusal | None:
    """Check one slot given the latest value of every changelog key; None if never written."""
    prefix = _prefix(source, slot)
    raw = latest.get(f"{prefix}manifest".encode())
    if raw is None:
        return None

    def refuse(reason: str, detail: str) -> Refusal:
        return Refusal(source, slot, reason, detail)

    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return refuse("corrupt", f"manifest is not JSON: {exc}")
    if not isinstance(manifest, dict):
        return refuse("corrupt", "manifest is not a JSON object")
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        return refuse(
            "foreign",
            f"format {manifest.get('format')!r:.60} version {manifest.get('version')!r:.20}, "
            f"expected {FORMAT!r} version {VERSION}",
        )
    if manifest.get("source") != {"topic": source[0], "partition": source[1]}:
        return refuse("foreign", f"written for {manifest.get('source')!r:.80}")
    if manifest.get("settings") != fingerprint:
        return refuse(
            "foreign",
            f"written with cell settings {manifest.get('settings')!r:.200}, "
            f"the config now has {fingerprint!r}",
        )
    seq, chunks, digest = manifest.get("seq"), manifest.get("chunks"), manifest.get("sha256")
    if type(seq) is not int or type(chunks) is not int or chunks < 1 or type(digest) is not str:
        return refuse("corrupt", "manifest lacks seq, chunks or sha256")
    parts = [latest.get(f"{prefix}{i}".encode()) for i in range(chunks)]
    if any(p is None for p in parts):
        return refuse("incomplete", f"{sum(p is None for p in parts)} of {chunks} chunks missing")
    payload = b"".join(p for p in parts if p is not None)
    if hashlib.sha256(payload).hexdigest() != digest:
        return refuse("corrupt", "payload does not match its SHA-256")
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(payload, MAX_STATE_BYTES)
        if inflater.unconsumed_tail:
            return refuse("corrupt", f"state larger than {MAX_STATE_BYTES} bytes")
        state = orjson.loads(data)
    except (zlib.error, orjson.JSONDecodeError) as exc:
        return refuse("corrupt", f"payload is not compressed JSON: {exc}")
    if not isinstance(state, dict):
        return refuse("corrupt", "state is not a JSON object")
    if state.get("offset") != manifest.get("offset"):
        return refuse("corrupt", "state offset differs from the manifest's")
    written_at = manifest.get("written_at")
    return Checkpoint(
        source=source,
        slot=slot,
        seq=seq,
        offset=state.get("offset"),
        state=state,
        written_at=float(written_at) if isinstance(written_at, int | float) else 0.0,
    )


@dataclass
class _Slots:
    """What this replica knows of a partition's slots: where to write next."""

    next_slot: str = "a"
    next_seq: int = 0
    written_offset: int | None = None


@dataclass
class ChangelogStore:
    """Reads and writes partition checkpoints on the changelog topic.

    Parameters
    ----------
    topic
        The compacted changelog topic.
    fingerprint
        :func:`settings_fingerprint` of the running config.
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
            slots.written_offset = states[source].get("offset")
            slots.next_slot = "b" if slots.next_slot == "a" else "a"
            slots.next_seq += 1
        return written

    def forget(self, source: PartitionKey) -> None:
        """Drop what is known of a partition's slots (it was revoked)."""
        self._slots.pop(source, None)

    def read(self, sources: Iterable[PartitionKey]) -> dict[PartitionKey, list[Checkpoint]]:
        """Valid checkpoints of each source partition, newest first (refusals are counted).

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
            consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + self.timeout_seconds
            while True:
                for records in consumer.poll(timeout_ms=200).values():
                    for rec in records:
                        if rec.key is not None and any(rec.key.startswith(p) for p in prefixes):
                            latest[rec.key] = rec.value
                done = all(
                    (hw := consumer.highwater(tp)) is not None and consumer.position(tp) >= hw
                    for tp in tps
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
        out: dict[PartitionKey, list[Checkpoint]] = {}
        for source in wanted:
            found: list[Checkpoint] = []
            seqs = [-1]
            for slot in ("a", "b"):
                result = decode_slot(source, slot, latest, self.fingerprint)
                if isinstance(result, Refusal):
                    self.refuse(result)
                    seq = _manifest_seq(latest.get(f"{_prefix(source, slot)}manifest".encode()))
                    seqs.append(seq)
                elif result is not None:
                    found.append(result)
                    seqs.append(result.seq)
            found.sort(key=lambda c: c.seq, reverse=True)
            out[source] = found
            # Write next into the slot that does not hold the newest valid checkpoint, with a
            # sequence number above every one seen, so a later restore prefers it.
            newest = found[0].slot if found else "b"
            self._slots[source] = _Slots(
                next_slot="b" if newest == "a" else "a", next_seq=max(seqs) + 1
            )
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


def _manifest_seq(raw: bytes | None) -> int:
    try:
        seq = orjson.loads(raw) if raw is not None else {}
        value = seq.get("seq", -1) if isinstance(seq, dict) else -1
        return value if type(value) is int else -1
    except orjson.JSONDecodeError:
        return -1
