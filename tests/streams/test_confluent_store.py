"""The changelog store with confluent-kafka's producer and restore consumer (real broker)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tilewatch.aggregators import CellRegistry, CellSettings, PartitionState
from tilewatch.streams.changelog import ChangelogStore, settings_fingerprint
from tilewatch.streams.clients import new_producer, new_restore_consumer
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.settings import KafkaSettings

SETTINGS = CellSettings(dimensions=("segment",), rolling_events=40, max_cells=60_000)
FP = settings_fingerprint(SETTINGS)


def _state(offset: int, n: int, seed: int, cells: int) -> dict:
    rng = np.random.default_rng(seed)
    part = PartitionState(CellRegistry(SETTINGS), offset=offset)
    part.apply([("m", f"s{i}") for i in rng.integers(0, cells, n)], np.full(n, 5.0), rng.random(n))
    part.offset = offset
    return part.to_dict()


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_confluent_store_writes_alternating_slots_and_restores_every_partition_whole(
    broker: EmbeddedBroker,
) -> None:
    """Three changelog partitions read by one assigned consumer: each is read from its
    beginning to the end the fetch reports, including a multi-chunk checkpoint written in
    one producer batch (the broker's ``end_offsets()`` answers that too low)."""
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    settings = KafkaSettings(
        bootstrap_servers=(broker.bootstrap,),
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        client_library="confluent",
        client={"linger_ms": 500, "batch_size": 16 * 1024 * 1024},
    )
    refusals: list[str] = []

    def store() -> ChangelogStore:
        return ChangelogStore(
            topic=topic,
            fingerprint=FP,
            producer_factory=lambda: new_producer(settings),
            consumer_factory=lambda: new_restore_consumer(settings),
            on_refusal=refusals.append,
            timeout_seconds=30,
        )

    small, big, empty = ("events", 0), ("events", 1), ("events", 2)
    writer = store()
    try:
        writer.write({small: _state(10, 500, 1, 40), big: _state(99, 60_000, 5, 20_000)})
        writer.write({small: _state(20, 500, 2, 40)})
        writer.write({small: _state(30, 500, 3, 40)})
    finally:
        writer.close()
    reader = store()
    try:
        found = reader.read([small, big, empty])
    finally:
        reader.close()
    assert [c.offset for c in found[small]] == [30, 20]
    assert [c.slot for c in found[small]] == ["a", "b"]
    assert [c.offset for c in found[big]] == [99]
    assert found[empty] == []
    assert refusals == []
    assert reader.next_slot(small) == ("b", 3)
