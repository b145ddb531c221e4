"""Delta checkpoints across the unit format change: version-3 heads (JSON units) still restore,
and a version-4 round over them names JSON and binary units side by side."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import numpy as np
import orjson

from tests.streams.test_delta_checkpoint import FP, SOURCE, _same, _Writer
from tilewatch.aggregators.state.partition_delta import partition_delta
from tilewatch.streams.changelog import Checkpoint, Refusal, deflate
from tilewatch.streams.changelog.delta import (
    DELTA_VERSION,
    decode_delta,
    encode_head,
    head_prefix,
    unit_prefix,
)
from tilewatch.streams.changelog.records import chunk_records
from tilewatch.streams.changelog.unit_codec import MAGIC, unit_from_bytes


def _version3_round(w: _Writer) -> None:
    """What a version-3 writer wrote for ``w``'s partition: every unit as compressed JSON."""
    delta = partition_delta(w.part, None)
    table: dict[str, Any] = {}
    for name, unit in delta.iter_units():
        payload = zlib.compress(orjson.dumps(unit), 1)
        records = chunk_records(unit_prefix(SOURCE, name, "a"), payload)
        w.log.update(records)
        table[name] = ["a", len(records), hashlib.sha256(payload).hexdigest()]
    records = encode_head(SOURCE, "a", w.seq, delta.head, table, FP)
    key, manifest = records[-1]
    records[-1] = (key, orjson.dumps({**orjson.loads(manifest), "version": 3}))
    w.log.update(records)
    w.table, w.mark = table, delta.mark
    w.seq += 1


def _payload(w: _Writer, unit: str) -> bytes:
    ref = (w.table or {})[unit]
    chunks = [w.log[f"{unit_prefix(SOURCE, unit, ref[0])}{i}".encode()] for i in range(ref[1])]
    return zlib.decompress(b"".join(c or b"" for c in chunks))


def test_a_version_3_checkpoint_restores_and_a_round_over_it_mixes_formats() -> None:
    assert DELTA_VERSION == 4
    w = _Writer()
    w.batch(4000, 0, 60)
    _version3_round(w)
    _same(w.newest(), w.part)
    # The next round (version 4) rewrites the changed units only, in binary form.
    w.part.apply([("m", "s7")], np.array([61.0]), np.array([0.5]))
    w.part.offset = (w.part.offset or 0) + 1
    _records, delta = w.round()
    assert 0 < len(delta.units) < len(w.table or {})
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    manifest = orjson.loads(w.log[f"{head_prefix(SOURCE, 'b')}manifest".encode()] or b"")
    assert manifest["version"] == 4
    kinds = {_payload(w, u)[:4] == MAGIC for u in w.table or {}}
    assert kinds == {True, False}  # JSON units of the old head, binary ones of the new
    _same(checkpoint, w.part)


def test_a_binary_unit_that_does_not_match_its_header_refuses_the_head() -> None:
    w = _Writer()
    w.batch(500, 0, 30)
    w.round()
    name = sorted(w.table or {})[0]
    data = _payload(w, name)
    assert data[:4] == MAGIC
    bad = zlib.compress(data[:-8], 1)  # a column cut short, with a matching SHA-256
    records = chunk_records(unit_prefix(SOURCE, name, "a"), bad)
    w.log.update(records)
    table = {**(w.table or {}), name: ["a", len(records), hashlib.sha256(bad).hexdigest()]}
    w.log.update(encode_head(SOURCE, "a", 0, partition_delta(w.part, None).head, table, FP))
    result = decode_delta(SOURCE, "a", w.log, FP)
    assert isinstance(result, Refusal) and result.reason == "corrupt", result
    assert "bad binary unit" in result.detail
    # The same bytes read directly say why.
    try:
        unit_from_bytes(data[:-8])
    except ValueError as exc:
        assert "past the end" in str(exc)
    else:
        raise AssertionError("a cut unit was read")


def test_units_compressed_by_either_library_restore() -> None:
    """Checkpoints are written by ISA-L when ``isal`` is installed, by zlib otherwise: the
    same format, so a replica restores what a replica with the other library wrote."""
    w = _Writer()
    w.batch(3000, 0, 60)
    w.round()
    assert deflate.BACKEND == "isal"  # a dependency: the faster path is the one users run
    table: dict[str, Any] = {}
    for name in sorted(w.table or {}):
        plain = _payload(w, name)  # ISA-L's stream, read by the standard zlib
        payload = zlib.compress(plain, 6)  # what a replica without isal (or older) writes
        records = chunk_records(unit_prefix(SOURCE, name, "b"), payload)
        w.log.update(records)
        table[name] = ["b", len(records), hashlib.sha256(payload).hexdigest()]
    head = partition_delta(w.part, None).head
    w.log.update(encode_head(SOURCE, "b", w.seq, head, table, FP))
    checkpoint = decode_delta(SOURCE, "b", w.log, FP)
    assert isinstance(checkpoint, Checkpoint), checkpoint
    _same(checkpoint, w.part)
