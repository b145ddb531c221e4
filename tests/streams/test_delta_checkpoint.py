"""Delta checkpoints: only changed units written, restored exactly, bad data refused.

The changelog is modelled as a dict of the latest value of each key (what compaction keeps);
one test goes through the broker with the store.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from tilewatch.aggregators import CellRegistry, CellSettings, PartitionState
from tilewatch.aggregators.state.delta_mark import mark_of
from tilewatch.aggregators.state.partition_delta import (
    BLOCKS,
    block_of_key,
    merge_units,
    partition_delta,
)
from tilewatch.streams.changelog import (
    ChangelogStore,
    Checkpoint,
    Refusal,
    settings_fingerprint,
)
from tilewatch.streams.changelog.delta import (
    decode_delta,
    head_prefix,
    plan_delta,
    unit_prefix,
)
from tilewatch.streams.changelog.store import Candidates
from tilewatch.streams.dev.broker import EmbeddedBroker

SETTINGS = CellSettings(
    dimensions=("segment",), window_seconds=10, grace_seconds=0, rolling_events=50
)
FP = settings_fingerprint(SETTINGS)
SOURCE = ("events", 2)


class _Writer:
    """A partition, its changelog (latest value per key) and the state of the last round."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        self.part = PartitionState(CellRegistry(SETTINGS), offset=0)
        self.log: dict[bytes, bytes | None] = {}
        self.table: dict[str, Any] | None = None
        self.mark: Any = None
        self.seq = 0

    def batch(self, n: int, t0: float, t1: float, cells: int = 400) -> None:
        keys = [("m", f"s{i}") for i in self.rng.integers(0, cells, n)]
        self.part.apply(keys, np.sort(self.rng.uniform(t0, t1, n)), self.rng.random(n))
        self.part.offset = (self.part.offset or 0) + n

    def round(self, apply: bool = True) -> tuple[list[tuple[bytes, bytes | None]], Any]:
        delta = partition_delta(self.part, self.mark)
        slot = "ab"[self.seq % 2]
        records, table, _keys = plan_delta(SOURCE, delta, self.table, slot, self.seq, set(), FP)
        if apply:
            self.log.update(records)
            self.table, self.mark = table, delta.mark
            self.seq += 1
        return records, delta

    def newest(self) -> Checkpoint | Refusal | None:
        return decode_delta(SOURCE, "ab"[(self.seq - 1) % 2], self.log, FP)


def _canonical(state: dict[str, Any]) -> dict[str, Any]:
    """A partition's plain data rebuilt and with rows sorted by key (restore order differs)."""
    d = PartitionState.from_dict(CellRegistry(SETTINGS), state).to_dict()
    d["cells"].sort()
    d["rolling"]["cells"].sort()
    for name in ("open", "closed"):
        for entry in d[name]:
            entry[1].sort()
            for rows in entry[2].values() if len(entry) > 2 else ():
                rows.sort()
    return orjson.loads(orjson.dumps(d))  # type: ignore[no-any-return]


def _same(checkpoint: Any, part: PartitionState) -> None:
    assert isinstance(checkpoint, Checkpoint), checkpoint
    assert checkpoint.offset == part.offset
    assert _canonical(checkpoint.state) == _canonical(orjson.loads(orjson.dumps(part.to_dict())))


def test_block_of_key_is_stable_and_spread() -> None:
    # CRC-32, not Python's salted hash: the same block in every process.
    assert block_of_key(("m", "s1")) == block_of_key(("m", "s1"))
    blocks = {block_of_key(("m", f"s{i}")) for i in range(2000)}
    assert blocks == set(range(BLOCKS))


def test_a_round_writes_only_what_changed_and_restores_exactly() -> None:
    w = _Writer()
    w.batch(5000, 0, 100)
    first, delta = w.round()
    assert delta.full
    _same(w.newest(), w.part)
    # A few events in one new window, over 3 cells: their cells units and that window only.
    w.part.apply(
        [("m", "s1"), ("m", "s2"), ("m", "s3")],
        np.array([101.0, 102, 103]),
        np.array([0.1, 0.2, 0.3]),
    )
    w.part.offset = (w.part.offset or 0) + 3
    second, delta = w.round()
    reg = w.part.registry
    touched = reg.rollups[reg.index_many([("m", "s1"), ("m", "s2"), ("m", "s3")])].ravel()
    blocks = {block_of_key(reg.keys[i]) for i in touched.tolist()}  # leaves and roll-ups
    assert len(blocks) > 1
    assert set(delta.units) == {f"{b}/c" for b in blocks} | {f"{b}/w10" for b in blocks}
    size = sum(len(k) + len(v or b"") for k, v in second)
    assert size < sum(len(k) + len(v or b"") for k, v in first) / 4
    _same(w.newest(), w.part)
    # Nothing changed: only the head is written.
    _third, delta = w.round()
    assert delta.units == {}
    _same(w.newest(), w.part)


def test_the_mark_of_a_state_holds_its_counts_and_windows_as_copies() -> None:
    w = _Writer()
    w.batch(3000, 0, 45)  # open and closed windows
    assert w.part.open and w.part.closed
    n = len(w.part.registry)
    mark = mark_of(w.part)
    assert mark.windows == frozenset([*w.part.open, *w.part.closed])
    assert mark.events.tolist() == w.part.events[:n].tolist()
    assert mark.late.tolist() == w.part.late[:n].tolist()
    assert sorted(mark.open_counts) == sorted(w.part.open)  # closed windows never change
    for win, acc in w.part.open.items():
        assert mark.open_counts[win].tolist() == acc.sized(n)[0].tolist()
    # Copies: the state moving on leaves the mark as it was, and the next round sees it.
    before = mark.events.copy()
    w.batch(500, 45, 48)
    assert mark.events.tolist() == before.tolist()
    assert partition_delta(w.part, mark).units


def _restore(w: _Writer) -> tuple[PartitionState, Checkpoint]:
    """The partition restored from the writer's newest head, as the runtime restores it."""
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint) and checkpoint.units is not None
    assert checkpoint.blocks == BLOCKS
    registry = CellRegistry(SETTINGS)
    parsed = PartitionState.validate(registry, checkpoint.state)
    return PartitionState.from_dict(registry, checkpoint.state, parsed=parsed), checkpoint


def test_after_a_restore_a_round_writes_what_changed_and_names_the_restored_units() -> None:
    w = _Writer()
    w.batch(5000, 0, 100)  # ten windows, nine of them closed
    full, _delta = w.round()
    restored, checkpoint = _restore(w)
    _same(checkpoint, restored)
    # The restarted writer: the restored head's units and a mark of what they hold.
    after = _Writer()
    after.part, after.log, after.seq = restored, dict(w.log), w.seq
    after.table, after.mark = dict(checkpoint.units or {}), mark_of(restored)
    # Nothing changed since the restore: only the head.
    records, delta = after.round()
    assert delta.units == {} and not delta.full
    _same(after.newest(), restored)
    # Three events in the open window: those cells' blocks only; the closed windows named as
    # restored, never written again.
    keys = [("m", "s1"), ("m", "s2"), ("m", "s3")]
    restored.apply(keys, np.array([95.0, 96, 97]), np.array([0.1, 0.2, 0.3]))
    restored.offset = (restored.offset or 0) + 3
    records, delta = after.round()
    reg = restored.registry
    touched = reg.rollups[reg.index_many(keys)].ravel()
    blocks = {block_of_key(reg.keys[i]) for i in touched.tolist()}
    assert set(delta.units) == {f"{b}/c" for b in blocks} | {f"{b}/w9" for b in blocks}
    size = sum(len(k) + len(v or b"") for k, v in records)
    assert size < sum(len(k) + len(v or b"") for k, v in full) / 4
    newest = after.newest()
    _same(newest, restored)
    assert isinstance(newest, Checkpoint) and newest.units is not None
    for unit, ref in newest.units.items():  # untouched units: the restored references
        if unit not in delta.units:
            assert ref == (checkpoint.units or {})[unit]
    # And what the two heads hold restores exactly once more.
    again, _checkpoint = _restore(after)
    assert _canonical(again.to_dict()) == _canonical(restored.to_dict())


def test_evicted_windows_are_dropped_from_the_head() -> None:
    w = _Writer()
    w.batch(2000, 0, 30)
    w.round()
    w.batch(2000, 200, 320)  # closes and evicts the first windows
    _records, delta = w.round()
    assert not {0, 1, 2} & (set(delta.head["open"]) | set(delta.head["closed"]))
    checkpoint = w.newest()
    _same(checkpoint, w.part)
    assert isinstance(checkpoint, Checkpoint) and checkpoint.units is not None
    assert not any(u.endswith(("/w0", "/w1", "/w2")) for u in checkpoint.units)


def test_a_round_cut_short_leaves_the_last_head_whole() -> None:
    w = _Writer()
    w.batch(3000, 0, 50)
    w.round()
    before = orjson.loads(orjson.dumps(w.part.to_dict()))
    w.batch(3000, 50, 90)
    records, _delta = w.round(apply=False)
    # Every unit lands, the head does not: the last head still reads as the state it named.
    for key, value in records:
        if not key.startswith(head_prefix(SOURCE, "b").encode()):
            w.log[key] = value
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    assert _canonical(checkpoint.state) == _canonical(before)
    # Now the head lands without one of its units: that head is incomplete, the other whole.
    for key, value in records:
        w.log[key] = value
    unit_key = next(k for k, _v in records if b"/d/u/" in k)
    w.log[unit_key] = None
    refused = decode_delta(SOURCE, "b", w.log, FP)
    assert isinstance(refused, Refusal) and refused.reason == "incomplete"
    assert isinstance(decode_delta(SOURCE, "a", w.log, FP), Checkpoint)


def _head(w: _Writer) -> tuple[bytes, dict[str, Any]]:
    key = f"{head_prefix(SOURCE, 'a')}manifest".encode()
    raw = w.log[key]
    assert raw is not None
    return key, orjson.loads(raw)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"format": "tilewatch-partition-checkpoint"}, "foreign"),
        ({"version": 2}, "foreign"),
        ({"source": {"topic": "events", "partition": 3}}, "foreign"),
        ({"settings": {**FP, "window_seconds": 60}}, "foreign"),
        ({"sha256": "0" * 64}, "corrupt"),
        ({"offset": 1}, "corrupt"),
    ],
)
def test_foreign_or_corrupt_heads_are_refused(changes: dict[str, Any], reason: str) -> None:
    w = _Writer()
    w.batch(500, 0, 30)
    w.round()
    key, manifest = _head(w)
    w.log[key] = orjson.dumps({**manifest, **changes})
    result = decode_delta(SOURCE, "a", w.log, FP)
    assert isinstance(result, Refusal) and result.reason == reason, result


def test_a_corrupt_unit_refuses_the_head() -> None:
    w = _Writer()
    w.batch(500, 0, 30)
    w.round()
    unit = sorted(u for u in (w.table or {}))[0]
    key = f"{unit_prefix(SOURCE, unit, 'a')}0".encode()
    value = w.log[key]
    assert value is not None
    w.log[key] = value[:-1] + bytes([value[-1] ^ 0xFF])
    result = decode_delta(SOURCE, "a", w.log, FP)
    assert isinstance(result, Refusal) and result.reason == "corrupt"


def test_malformed_units_are_invalid_state() -> None:
    head = {"open": [1], "closed": [], "rolling": {"size": 50, "block": 5}}
    with pytest.raises(Exception, match="malformed"):
        merge_units(head, {"0/w1": {"rows": "nope"}})
    with pytest.raises(Exception, match="malformed"):
        merge_units(head, {"0/zz": {}})


@pytest.mark.broker
def test_store_writes_deltas_collects_garbage_and_restores(broker: EmbeddedBroker) -> None:
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 1)
    refusals: list[str] = []

    def store() -> ChangelogStore:
        return ChangelogStore(
            topic=topic,
            fingerprint=FP,
            producer_factory=lambda: KafkaProducer(
                bootstrap_servers=broker.bootstrap, linger_ms=50
            ),
            consumer_factory=lambda: KafkaConsumer(
                bootstrap_servers=broker.bootstrap, enable_auto_commit=False
            ),
            on_refusal=refusals.append,
            timeout_seconds=30,
        )

    w = _Writer()
    w.batch(4000, 0, 30)
    writer = store()
    try:
        writer.write({SOURCE: w.part.to_dict()})  # a version-2 full checkpoint first
        sizes = []
        for t in (30, 40, 300):
            sizes.append(
                writer.write_delta({SOURCE: partition_delta(w.part, writer.delta_mark(SOURCE))})
            )
            w.part.apply([("m", "s7")], np.array([float(t) + 1]), np.array([0.5]))
            w.part.offset = (w.part.offset or 0) + 1
        sizes.append(
            writer.write_delta({SOURCE: partition_delta(w.part, writer.delta_mark(SOURCE))})
        )
    finally:
        writer.close()
    assert sizes[1] < sizes[0] / 4  # one cell changed: its units and the head
    reader = store()
    found = reader.read([SOURCE])
    candidates = list(found[SOURCE])  # checked and decoded as iterated
    assert refusals == []
    newest = candidates[0]
    assert newest.units is not None and newest.seq == 4
    _same(newest, w.part)
    # The version-2 slot and the units of evicted windows were tombstoned after later heads.
    assert [c.units is None for c in candidates] == [False, False]
    part = reader._slots[SOURCE]
    assert "" not in part.keys
    reader.restored(SOURCE, reader.checkpointed(SOURCE), newest)
    assert reader.delta_mark(SOURCE) is None  # no mark given: the first round writes all
    assert reader.next_slot(SOURCE)[1] == 5
    # Cut into other blocks than this version's: its units cannot be named as they are.
    foreign = dataclasses.replace(newest, blocks=BLOCKS * 2)
    reader.restored(SOURCE, reader.checkpointed(SOURCE), foreign, mark_of(w.part))
    assert reader.delta_mark(SOURCE) is None
    # The runtime's restore: the partition rebuilt from the head, its mark taken before any
    # batch. The first round writes one changed cell's units and the head, names the rest.
    registry = CellRegistry(SETTINGS)
    restored = PartitionState.from_dict(registry, newest.state)
    mark = mark_of(restored)
    reader.restored(SOURCE, reader.checkpointed(SOURCE), newest, mark)
    assert reader.delta_mark(SOURCE) is mark
    restored.apply([("m", "s9")], np.array([302.0]), np.array([0.25]))
    restored.offset = (restored.offset or 0) + 1
    try:
        after = reader.write_delta({SOURCE: partition_delta(restored, reader.delta_mark(SOURCE))})
    finally:
        reader.close()
    assert after < sizes[0] / 4
    third = store()
    try:
        again = list(third.read([SOURCE])[SOURCE])
    finally:
        third.close()
    assert refusals == [] and again[0].seq == 5
    _same(again[0], restored)


def test_restore_decodes_older_checkpoints_only_when_needed() -> None:
    w = _Writer()
    w.batch(500, 0, 30)
    w.round()  # head a, seq 0
    w.batch(500, 30, 60)
    w.round()  # head b, seq 1
    key, manifest = _head(w)
    w.log[key] = orjson.dumps({**manifest, "sha256": "0" * 64})  # the older head is corrupt
    refusals: list[str] = []
    store = ChangelogStore(
        topic="unused",
        fingerprint=FP,
        producer_factory=lambda: None,
        consumer_factory=lambda: None,
        on_refusal=refusals.append,
    )
    candidates = Candidates(store, SOURCE, [(1, "delta", "b"), (0, "delta", "a")], w.log)
    newest = next(iter(candidates))
    _same(newest, w.part)
    assert refusals == []  # the older head was not even read
    assert [c.seq for c in candidates] == [1]
    assert refusals == ["corrupt"]
