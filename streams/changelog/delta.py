"""The record format of delta checkpoints (version 4): units, and a head that names them.

A delta checkpoint of a partition (:mod:`tilewatch.aggregators.state.partition_delta`) is
written as

- one record set per changed *unit* (a block of cells, or a block of one window) in its binary
  form (:mod:`~tilewatch.streams.changelog.unit_codec`: the unit's cell keys once, then numpy
  columns), compressed with zlib and cut into chunks of at most
  ``CHUNK_BYTES``, under the keys ``topic/partition/d/u/<unit>/<slot>/<chunk>``. Each unit has
  two slots, ``a`` and ``b``: a new version goes to the slot the current head does not name, so
  the head's version stays whole;
- then a *head*: the partition-level state and, per unit, the slot, chunk count and SHA-256 of
  the version it stands for (compressed JSON, chunked, under ``topic/partition/d/h/<slot>/<chunk>``)
  and last a manifest record ``topic/partition/d/h/<slot>/manifest`` (format, version, source,
  cell settings, sequence number, offset, and the head payload's chunk count and SHA-256).

Version 3 wrote units as compressed JSON (one list per row, the cell key in each): a restore
reads both (:data:`READ_VERSIONS`; a unit's first bytes say which form it is), so a head
written after an upgrade may name JSON units of the last version-3 head beside binary ones.

Heads take turns in two slots as full checkpoints do; sequence numbers are shared with the
full (version 2) slots, so a restore takes the newest valid checkpoint of either kind. The
compacted changelog keeps the latest record of each key, which is the latest version of each
unit slot: a head and exactly the unit versions it names form one consistent cut.

A head that is incomplete (a chunk of it or of a unit it names missing), corrupt (a hash that
does not match, bad compression or JSON), foreign (format, version, source or settings) or whose
state does not validate is refused with a reason, never applied in part. Pure: no Kafka, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.state.partition_delta import PartitionDelta, merge_units, unit_window
from tilewatch.aggregators.state.snapshot import PartitionKey
from tilewatch.aggregators.state.unit_columns import UnitColumns
from tilewatch.streams.changelog import deflate
from tilewatch.streams.changelog.records import (
    MAX_STATE_BYTES,
    Checkpoint,
    Refusal,
    chunk_records,
    manifest_record,
)
from tilewatch.streams.changelog.unit_codec import MAGIC, unit_from_bytes, unit_to_bytes

__all__ = [
    "DELTA_FORMAT",
    "DELTA_VERSION",
    "decode_delta",
    "delta_prefix",
    "delta_seq",
    "encode_head",
    "encode_unit",
    "frozen_json",
    "head_prefix",
    "other_slot",
    "plan_delta",
    "unit_prefix",
]

DELTA_FORMAT = "tilewatch-partition-delta"
DELTA_VERSION = 4
#: Versions a restore reads: 3 wrote every unit as JSON; 4 writes units in binary form
#: (:mod:`~tilewatch.aggregators.state.unit_columns`) and may still name JSON units of a
#: version-3 head that did not change since.
READ_VERSIONS = (3, 4)

#: A unit's reference in a head: ``[slot, chunks, sha256]``.
UnitRef = list[Any]


def delta_prefix(source: PartitionKey) -> str:
    """The key prefix of every delta record of a source partition."""
    return f"{source[0]}/{source[1]}/d/"


def head_prefix(source: PartitionKey, slot: str) -> str:
    """The key prefix of a head slot's records."""
    return f"{delta_prefix(source)}h/{slot}/"


def unit_prefix(source: PartitionKey, unit: str, slot: str) -> str:
    """The key prefix of one unit slot's chunks."""
    return f"{delta_prefix(source)}u/{unit}/{slot}/"


def encode_unit(
    source: PartitionKey, unit: str, slot: str, data: UnitColumns
) -> tuple[list[tuple[bytes, bytes]], UnitRef]:
    """The records of one unit version (its binary form, compressed), and the reference a
    head keeps of it."""
    payload = deflate.compress(unit_to_bytes(data))
    records = chunk_records(unit_prefix(source, unit, slot), payload)
    return records, [slot, len(records), hashlib.sha256(payload).hexdigest()]


def encode_head(
    source: PartitionKey,
    slot: str,
    seq: int,
    head: dict[str, Any],
    units: Mapping[str, UnitRef],
    fingerprint: dict[str, Any],
    now: float | None = None,
) -> list[tuple[bytes, bytes]]:
    """The records of a head (chunks, then the manifest) naming ``units``."""
    payload = deflate.compress(orjson.dumps({"state": head, "units": dict(units)}))
    prefix = head_prefix(source, slot)
    records = chunk_records(prefix, payload)
    header = (DELTA_FORMAT, DELTA_VERSION)
    offset = head.get("offset")
    records.append(
        manifest_record(
            prefix, header, source, slot, seq, offset, len(records), payload, fingerprint, now
        )
    )
    return records


def frozen_json(value: Any) -> Any:
    """``value`` serialized once, embedded as is wherever a later ``orjson.dumps`` meets it
    (``partition_delta``'s ``freeze``: the head's final label windows)."""
    return orjson.Fragment(orjson.dumps(value))


def other_slot(slot: str) -> str:
    """The slot that is not ``slot``."""
    return "b" if slot == "a" else "a"


def plan_delta(
    source: PartitionKey,
    delta: PartitionDelta,
    table: Mapping[str, UnitRef] | None,
    head_slot: str,
    seq: int,
    garbage: set[bytes],
    fingerprint: dict[str, Any],
) -> tuple[list[tuple[bytes, bytes | None]], dict[str, UnitRef], dict[str, set[bytes]]]:
    """The records of one delta round, in write order, the head's unit table, and the keys
    written per unit.

    ``table`` holds the unit references of the last acknowledged head (None: none): units that
    did not change and whose window is still kept are named again as they are; each changed
    unit goes to the slot ``table`` does not name. ``garbage`` (keys no acknowledged head
    needs) is written first as tombstones, the head last.
    """
    prev = dict(table or {})
    windows = set(delta.head["open"]) | set(delta.head["closed"])
    new_table: dict[str, UnitRef] = {}
    if not delta.full:
        for unit, ref in prev.items():
            w = unit_window(unit)
            if w is None or w in windows:
                new_table[unit] = ref
    records: list[tuple[bytes, bytes | None]] = [(k, None) for k in sorted(garbage)]
    new_keys: dict[str, set[bytes]] = {}
    for unit, data in delta.iter_columns():  # one block at a time: encoded as it comes
        slot = other_slot(prev[unit][0]) if unit in prev else "a"
        unit_records, new_table[unit] = encode_unit(source, unit, slot, data)
        records.extend(unit_records)
        new_keys[unit] = {k for k, _v in unit_records}
    records.extend(encode_head(source, head_slot, seq, delta.head, new_table, fingerprint))
    return records, new_table, new_keys


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _blob(
    latest: Mapping[bytes, bytes | None],
    prefix: str,
    chunks: Any,
    digest: Any,
    what: str,
    unit: bool = False,
    shared: dict[tuple[str, ...], list[str]] | None = None,
) -> Any:
    """The plain data of a chunked, hashed, compressed blob (JSON, or a unit's binary form
    when ``unit``, its histograms as tables and its cell keys from ``shared``); raises
    _Refused."""
    if type(chunks) is not int or chunks < 1 or type(digest) is not str:
        raise _Refused("corrupt", f"{what}: no chunk count or sha256")
    parts = [latest.get(f"{prefix}{i}".encode()) for i in range(chunks)]
    missing = sum(p is None for p in parts)
    if missing:
        raise _Refused("incomplete", f"{what}: {missing} of {chunks} chunks missing")
    payload = b"".join(p for p in parts if p is not None)
    if hashlib.sha256(payload).hexdigest() != digest:
        raise _Refused("corrupt", f"{what}: payload does not match its SHA-256")
    try:
        inflater = deflate.decompressobj()
        data = inflater.decompress(payload, MAX_STATE_BYTES)
        if inflater.unconsumed_tail:
            raise _Refused("corrupt", f"{what}: larger than {MAX_STATE_BYTES} bytes")
    except deflate.Error as exc:
        raise _Refused("corrupt", f"{what}: not compressed: {exc}") from None
    if unit and data[: len(MAGIC)] == MAGIC:
        try:
            return unit_from_bytes(data, shared).plain(tables=True)
        except ValueError as exc:
            raise _Refused("corrupt", f"{what}: bad binary unit: {exc}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _Refused("corrupt", f"{what}: not compressed JSON: {exc}") from None


def decode_delta(
    source: PartitionKey,
    slot: str,
    latest: Mapping[bytes, bytes | None],
    fingerprint: dict[str, Any],
) -> Checkpoint | Refusal | None:
    """Check one head slot and every unit it names; None if that head was never written.

    The result's ``state`` is the partition's plain data in the full form
    (``partition_to_dict``'s), its ``units`` the head's unit references.
    """
    prefix = head_prefix(source, slot)
    raw = latest.get(f"{prefix}manifest".encode())
    if raw is None:
        return None
    try:
        try:
            manifest = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _Refused("corrupt", f"head manifest is not JSON: {exc}") from None
        if not isinstance(manifest, dict):
            raise _Refused("corrupt", "head manifest is not a JSON object")
        if manifest.get("format") != DELTA_FORMAT or manifest.get("version") not in READ_VERSIONS:
            raise _Refused(
                "foreign",
                f"format {manifest.get('format')!r:.60} version {manifest.get('version')!r:.20}, "
                f"expected {DELTA_FORMAT!r} version {' or '.join(map(str, READ_VERSIONS))}",
            )
        if manifest.get("source") != {"topic": source[0], "partition": source[1]}:
            raise _Refused("foreign", f"written for {manifest.get('source')!r:.80}")
        if manifest.get("settings") != fingerprint:
            raise _Refused(
                "foreign",
                f"written with cell settings {manifest.get('settings')!r:.200}, "
                f"the config now has {fingerprint!r}",
            )
        seq = manifest.get("seq")
        if type(seq) is not int:
            raise _Refused("corrupt", "head manifest lacks seq")
        body = _blob(latest, prefix, manifest.get("chunks"), manifest.get("sha256"), "head")
        if type(body) is not dict or type(body.get("units")) is not dict:
            raise _Refused("corrupt", "head is not an object with units")
        units: dict[str, Any] = {}
        shared: dict[tuple[str, ...], list[str]] = {}  # each cell key read once
        for name, ref in body["units"].items():
            if type(ref) is not list or len(ref) != 3 or ref[0] not in ("a", "b"):
                raise _Refused("corrupt", f"unit {name!r:.40}: bad reference")
            units[name] = _blob(
                latest,
                unit_prefix(source, name, ref[0]),
                ref[1],
                ref[2],
                f"unit {name!r:.40}",
                unit=True,
                shared=shared,
            )
        try:
            state = merge_units(body.get("state"), units)
        except StateError as exc:
            raise _Refused("invalid_state", str(exc)) from None
        if state.get("offset") != manifest.get("offset"):
            raise _Refused("corrupt", "state offset differs from the manifest's")
    except _Refused as exc:
        return Refusal(source, slot, exc.reason, exc.detail)
    written_at = manifest.get("written_at")
    return Checkpoint(
        source=source,
        slot=slot,
        seq=seq,
        offset=state.get("offset"),
        state=state,
        written_at=float(written_at) if isinstance(written_at, int | float) else 0.0,
        units=body["units"],
        blocks=blocks if type(blocks := body["state"].get("blocks")) is int else None,
    )


def delta_seq(source: PartitionKey, slot: str, latest: Mapping[bytes, bytes | None]) -> int:
    """The sequence number a head slot's manifest names, even a refused one (-1: none)."""
    raw = latest.get(f"{head_prefix(source, slot)}manifest".encode())
    try:
        manifest = orjson.loads(raw) if raw is not None else {}
        value = manifest.get("seq", -1) if isinstance(manifest, dict) else -1
        return value if type(value) is int else -1
    except orjson.JSONDecodeError:
        return -1
