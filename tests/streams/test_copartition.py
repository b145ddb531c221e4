"""Monitor.ensure_topics checks that the outcomes topic is co-partitioned (real broker)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.errors import StreamError
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings, LabelTopic

pytestmark = pytest.mark.broker


def monitor(broker: EmbeddedBroker, predictions: str, outcomes: str) -> Monitor:
    settings = KafkaSettings(
        bootstrap_servers=(broker.bootstrap,), topics=(predictions,), dead_letter_topic=None
    )
    state = ReplicaState(CellSettings(), labels=LabelSettings(source="topic", threshold=0.5))
    return Monitor(settings, EventFields(), state, label_topic=LabelTopic(outcomes))


def partitions(broker: EmbeddedBroker, topic: str) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        admin.close()


def test_an_outcomes_topic_with_another_partition_count_is_refused(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    predictions, outcomes = make_topic(3), make_topic(2)
    with pytest.raises(StreamError, match=r"has 2 partitions and the predictions topic .* 3"):
        monitor(broker, predictions, outcomes).ensure_topics()


def test_co_partitioned_topics_are_accepted(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    predictions, outcomes = make_topic(3), make_topic(3)
    monitor(broker, predictions, outcomes).ensure_topics()
    assert partitions(broker, outcomes) == 3


def test_a_missing_outcomes_topic_is_created_with_the_predictions_count(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    predictions, outcomes = make_topic(4), f"test-{uuid.uuid4().hex}"
    monitor(broker, predictions, outcomes).ensure_topics()
    assert partitions(broker, outcomes) == 4
