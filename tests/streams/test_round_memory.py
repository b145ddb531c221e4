"""What a checkpoint round holds at once: one partition's delta (taken when its turn comes,
after the partition before it is flushed), and histogram units in the narrowest dtype their
counts fit, the large rows of a compacted window included."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.streams.test_delta_checkpoint import FP, SETTINGS, SOURCE, _same, _Writer
from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.partition_delta import partition_delta
from tilewatch.aggregators.state.unit_columns import HistTable
from tilewatch.streams.changelog import Checkpoint
from tilewatch.streams.changelog.delta import delta_prefix
from tilewatch.streams.changelog.store import ChangelogStore
from tilewatch.streams.dev.broker import EmbeddedBroker

OTHER = ("events", 3)


def _keys_on(bootstrap: str, topic: str) -> list[str]:
    """Every key written to ``topic`` so far (read to the end the fetches report)."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    keys: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=300)
            for records in got.values():
                keys.extend(r.key.decode() for r in records)
            if not got and keys:
                break
    finally:
        consumer.close()
    return keys


@pytest.mark.broker
def test_a_round_takes_each_partitions_delta_after_the_one_before_is_flushed(
    broker: EmbeddedBroker,
) -> None:
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 1)

    def store() -> ChangelogStore:
        return ChangelogStore(
            topic=topic,
            fingerprint=FP,
            producer_factory=lambda: KafkaProducer(bootstrap_servers=broker.bootstrap),
            consumer_factory=lambda: KafkaConsumer(
                bootstrap_servers=broker.bootstrap, enable_auto_commit=False
            ),
            on_refusal=lambda reason: None,
            timeout_seconds=30,
        )

    first, second = _Writer(seed=1), _Writer(seed=2)
    first.batch(3000, 0, 30)
    second.batch(3000, 0, 30)
    taken: list[tuple[Any, list[str]]] = []

    def take(source: Any, part: PartitionState) -> Any:
        def thunk() -> Any:
            taken.append((source, _keys_on(broker.bootstrap, topic) if taken else []))
            return partition_delta(part, None)

        return thunk

    writer = store()
    try:
        writer.write_delta({SOURCE: take(SOURCE, first.part), OTHER: take(OTHER, second.part)})
    finally:
        writer.close()
    assert [s for s, _ in taken] == [SOURCE, OTHER]  # one at a time, in order
    on_topic = taken[1][1]
    # When the second delta was taken, the first partition's records (units and head) were
    # on the broker already, and nothing of the second.
    assert on_topic and all(k.startswith(delta_prefix(SOURCE)) for k in on_topic)
    assert any(k.startswith(delta_prefix(SOURCE) + "h/") for k in on_topic)
    found = store().read([SOURCE, OTHER])
    for source, w in ((SOURCE, first), (OTHER, second)):
        newest = next(iter(found[source]))
        _same(newest, w.part)


def test_a_compacted_window_with_rows_past_65535_writes_and_restores_exactly() -> None:
    """A roll-up cell with more than 65,535 events in one latency bin of a window: compacted,
    its rows are kept apart as uint32; the round writes them (as int32, the narrowest table
    dtype that holds them) and the restore gives the same partition."""
    w = _Writer()
    w.part.hist_bins["latency"] = 40
    n = 70_000
    keys = [("m", "big")] * n + [("m", f"s{i}") for i in range(300)]
    times = np.sort(w.rng.uniform(0, 9, len(keys)))
    bins = np.concatenate([np.full(n, 7), w.rng.integers(0, 40, 300)])
    w.part.apply(keys, times, w.rng.random(len(keys)), bins={"latency": bins})
    w.part.offset = len(keys)
    w.batch(50, 25, 26)  # closes window 0: compacted, the large row apart
    assert 0 in w.part.closed and "latency" in w.part.closed[0]._wide
    units = dict(partition_delta(w.part, None).iter_columns())
    tables = [u.sections["hist:latency"]["table"] for n, u in units.items() if n.endswith("/w0")]
    # The blocks of the large rows (the cell and its model roll-up) hold them as int32, every
    # other block is as narrow as its counts.
    assert {t.dtype.str for t in tables if t.max() > 65535} == {"<i4"}
    assert {t.dtype.str for t in tables if t.max() <= 255} == {"|u1"}
    assert sum(t.max() > 65535 for t in tables) in (1, 2)
    w.round()
    checkpoint = w.newest()
    assert isinstance(checkpoint, Checkpoint)
    tables = [
        t
        for entry in checkpoint.state["closed"]
        for t in (entry[2].values() if len(entry) > 2 else ())
        if isinstance(t, HistTable)
    ]
    assert max(int(t.table.max()) for t in tables) >= n  # the model roll-up has a few more
    _same(checkpoint, w.part)
    restored = PartitionState.from_dict(CellRegistry(SETTINGS), checkpoint.state)
    cells, counts = restored.closed[0].hist_of("latency")
    big = restored.registry.keys.index(("m", "big"))
    assert int(counts[list(cells).index(big), 7]) == n
