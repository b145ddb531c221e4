"""SIGTERM / SIGINT: finish the batch, commit exactly what was processed, exit 0; a restart
resumes right after it (nothing skipped, nothing read twice).

With checkpoints (the default) the restarted monitor also restores the counts: the final state
holds every event exactly once. With ``[state] checkpoints = false`` it starts from zero and
holds exactly the events read after the restart."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.e2e.support.events import make_stream, records_of
from tests.e2e.support.process import TilewatchProcess, parse_summary
from tests.e2e.support.scrape import series, value
from tests.helpers import fast_client_settings, produce
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

N = 60_000
PARTITIONS = 3
#: Small batches, so that a stop lands well inside the stream and each batch is short.
MAX_POLL_RECORDS = 500


def _committed(broker: EmbeddedBroker, group_id: str, topic: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets, read with a consumer that never joins the group."""
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        **fast_client_settings(),
    )
    try:
        out = {}
        for p in range(PARTITIONS):
            offset = consumer.committed(TopicPartition(topic, p))
            if offset is not None:
                out[(topic, p)] = offset
        return out
    finally:
        consumer.close(autocommit=False)


def _leaf_total(metrics: dict) -> float:
    return sum(
        v
        for labels, v in series(metrics, "tilewatch_events_total").items()
        if "__all__" not in dict(labels).values()
    )


@pytest.mark.parametrize("checkpoints", [True, False], ids=["checkpoints", "no-checkpoints"])
def test_stop_commits_what_was_processed_and_a_restart_resumes_there(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    checkpoints: bool,
) -> None:
    topic = make_topic(PARTITIONS)
    events = make_stream(7, N, 120.0)
    values, keys = records_of(events)
    produce(broker.bootstrap, topic, values, keys)
    config = tilewatch_config(
        topic,
        kafka={"max_poll_records": MAX_POLL_RECORDS},
        state={"checkpoints": checkpoints, "checkpoint_interval": "300ms"},
    )

    first = start_tilewatch(config, name="first")
    first.wait_until(
        f"a quarter of the {N} records read",
        lambda m: (value(m, "tilewatch_read_events_total") or 0) >= N // 4,
    )
    first.signal(signal.SIGTERM)
    assert first.wait_exit(30) == 0, first.describe()
    run1 = parse_summary(first.stdout())
    assert 0 < run1.read < N, f"the stop should land inside the stream: {run1}"
    assert (run1.valid, run1.late, run1.invalid) == (run1.read, 0, 0)
    committed = _committed(broker, first.group_id, topic)
    assert committed == run1.committed
    assert sum(committed.values()) == run1.read, (
        "committed offsets must cover exactly what was read"
    )

    second = start_tilewatch(config, name="second")
    metrics = second.wait_read(N - run1.read)
    assert _leaf_total(metrics) == (N if checkpoints else N - run1.valid)
    assert value(metrics, "tilewatch_late_events_total", model="alpha") == 0
    second.signal(signal.SIGINT)
    assert second.wait_exit(30) == 0, second.describe()
    run2 = parse_summary(second.stdout())
    assert (run2.read, run2.valid) == (N - run1.read, N - run1.valid)
    final = _committed(broker, second.group_id, topic)
    # The second run commits only the partitions it read from; the others stay where run 1 left.
    assert final == {**run1.committed, **run2.committed}
    assert sum(final.values()) == N
