"""The record format of partition checkpoints: encode one, check and decode one slot.

A checkpoint is one partition's state (``PartitionState.to_dict()``: plain data, never pickle)
together with the offset up to which that state is complete. It is written as JSON, compressed
with zlib (:mod:`~tilewatch.streams.changelog.deflate`) and cut into records of at most
:data:`CHUNK_BYTES`, then a manifest record that names the format, version, source partition,
cell settings, sequence number, offset, chunk count and the SHA-256 of the whole payload.
Record keys are ``topic/partition/slot/part``.

A slot that is incomplete, corrupt (hash, compression, JSON), foreign (another format, version,
source partition or cell settings) or whose state does not validate is refused with a reason
(:data:`REFUSALS`); it is never applied, not even in part. Pure: no Kafka, no I/O.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftProfile
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.state.snapshot import PartitionKey
from tilewatch.aggregators.stats.latency import LATENCY_BINS
from tilewatch.streams.changelog import deflate

__all__ = [
    "CHUNK_BYTES",
    "FORMAT",
    "MAX_STATE_BYTES",
    "REFUSALS",
    "VERSION",
    "Checkpoint",
    "Refusal",
    "chunk_records",
    "decode_slot",
    "encode_checkpoint",
    "manifest_record",
    "settings_fingerprint",
    "slot_seq",
]

FORMAT = "tilewatch-partition-checkpoint"
#: Version 2 writes rolling windows as blocks of moments; version 1 (raw rolling values) is
#: still read. A version-1 reader refuses version 2 as foreign instead of misreading it.
VERSION = 2
#: Versions this reader accepts.
READABLE_VERSIONS = (1, 2)
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
    #: A delta checkpoint's unit references (``[slot, chunks, sha256]`` by unit); None for a
    #: full one.
    units: dict[str, Any] | None = None
    #: The blocks a delta checkpoint's cells were cut into (its head's ``blocks``; None: not
    #: named): a restore keeps naming its units only when they are cut as this version cuts.
    blocks: int | None = None


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


def chunk_records(prefix: str, payload: bytes) -> list[tuple[bytes, bytes]]:
    """``payload`` cut into records ``<prefix>0``, ``<prefix>1``, ... (one empty if empty)."""
    parts = [payload[i : i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)] or [b""]
    return [(f"{prefix}{i}".encode(), part) for i, part in enumerate(parts)]


def manifest_record(
    prefix: str,
    header: tuple[str, int],
    source: PartitionKey,
    slot: str,
    seq: int,
    offset: Any,
    chunks: int,
    payload: bytes,
    fingerprint: dict[str, Any],
    now: float | None,
) -> tuple[bytes, bytes]:
    """The manifest record closing a checkpoint's chunks (``header``: format and version)."""
    manifest = {
        "format": header[0],
        "version": header[1],
        "source": {"topic": source[0], "partition": source[1]},
        "slot": slot,
        "seq": seq,
        "offset": offset,
        "chunks": chunks,
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "settings": fingerprint,
        "written_at": time.time() if now is None else now,
    }
    return f"{prefix}manifest".encode(), orjson.dumps(manifest)


def encode_checkpoint(
    source: PartitionKey,
    slot: str,
    seq: int,
    state: dict[str, Any],
    fingerprint: dict[str, Any],
    now: float | None = None,
) -> list[tuple[bytes, bytes]]:
    """The changelog records (key, value) of one checkpoint: chunks first, manifest last."""
    payload = deflate.compress(orjson.dumps(state))
    prefix = _prefix(source, slot)
    records = chunk_records(prefix, payload)
    records.append(
        manifest_record(
            prefix,
            (FORMAT, VERSION),
            source,
            slot,
            seq,
            state.get("offset"),
            len(records),
            payload,
            fingerprint,
            now,
        )
    )
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
    version = manifest.get("version")
    if (
        manifest.get("format") != FORMAT
        or type(version) is not int
        or version not in READABLE_VERSIONS
    ):
        return refuse(
            "foreign",
            f"format {manifest.get('format')!r:.60} version {manifest.get('version')!r:.20}, "
            f"expected {FORMAT!r} version {' or '.join(map(str, READABLE_VERSIONS))}",
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
        inflater = deflate.decompressobj()
        data = inflater.decompress(payload, MAX_STATE_BYTES)
        if inflater.unconsumed_tail:
            return refuse("corrupt", f"state larger than {MAX_STATE_BYTES} bytes")
        state = orjson.loads(data)
    except (deflate.Error, orjson.JSONDecodeError) as exc:
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


def slot_seq(source: PartitionKey, slot: str, latest: Mapping[bytes, bytes | None]) -> int:
    """The sequence number a slot's manifest names, even a refused one (-1: none readable)."""
    raw = latest.get(f"{_prefix(source, slot)}manifest".encode())
    try:
        manifest = orjson.loads(raw) if raw is not None else {}
        value = manifest.get("seq", -1) if isinstance(manifest, dict) else -1
        return value if type(value) is int else -1
    except orjson.JSONDecodeError:
        return -1
