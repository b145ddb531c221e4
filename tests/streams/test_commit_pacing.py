"""Checkpoint rounds kept under a share of the loop's time: a slow round stretches the next gap.

The rounds write real checkpoints to a changelog topic on the embedded broker; a round there
takes milliseconds, so a short interval (50 ms) is what makes one "slow" against it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.changelog import settings_fingerprint
from tilewatch.streams.changelog.store import ChangelogStore
from tilewatch.streams.commit import CHECKPOINT_SHARE, MAX_STRETCH, Committer
from tilewatch.streams.deadletter import DeadLetterSink
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.summary import RunSummary
from tilewatch.streams.topics import Routing

SOURCE = ("predictions", 0)


def _committer(broker: EmbeddedBroker, topic: str, interval: float) -> Committer:
    state = ReplicaState(CellSettings(dimensions=("segment",), window_seconds=60))
    refusals: list[str] = []
    changelog = ChangelogStore(
        topic=topic,
        fingerprint=settings_fingerprint(state.settings, state.profile, state.labels),
        producer_factory=lambda: KafkaProducer(bootstrap_servers=broker.bootstrap),
        consumer_factory=lambda: KafkaConsumer(bootstrap_servers=broker.bootstrap),
        on_refusal=refusals.append,
        timeout_seconds=30,
    )
    dead_letters = DeadLetterSink(None, lambda: None, lambda reason: None)  # type: ignore[arg-type,return-value]
    return Committer(
        state,
        Routing(("predictions",), None),
        dead_letters,
        changelog,
        set(),
        RunSummary(),
        interval,
    )


def _apply(committer: Committer, n: int, offset: int) -> None:
    rng = np.random.default_rng(offset)
    keys = [("m", f"s{i}") for i in rng.integers(0, 500, n)]
    times = np.sort(rng.uniform(1000.0, 1050.0, n))
    committer.state.apply(SOURCE, keys, times, rng.random(n), next_offset=offset + n)


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_a_round_over_its_share_of_the_interval_stretches_the_next_gap(
    broker: EmbeddedBroker, make_topic: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    committer = _committer(broker, make_topic(1), interval=0.05)
    _apply(committer, 5000, 0)
    with caplog.at_level(logging.INFO, logger="tilewatch.streams.commit"):
        start = time.monotonic()
        committer.commit(None)
        took = time.monotonic() - start
    assert committer.changelog is not None
    assert committer.changelog.checkpointed(SOURCE).offset == 5000  # the round did write
    # A round to the broker takes more than 2.5 ms (5% of 50 ms): the gap is 20 rounds long,
    # at most six intervals.
    assert took > 0.05 * CHECKPOINT_SHARE
    assert committer.gap == pytest.approx(min(took / CHECKPOINT_SHARE, 0.05 * MAX_STRETCH), 0.2)
    assert committer.gap > 0.05
    assert "a checkpoint round took" in caplog.text
    assert not committer.due(start + 0.05)
    assert committer.due(start + committer.gap + 0.001)
    # The same round against a longer interval is inside its share again: back to it, said.
    committer.interval_seconds = 60.0
    _apply(committer, 5000, 5000)
    with caplog.at_level(logging.INFO, logger="tilewatch.streams.commit"):
        committer.commit(None)
    assert committer.gap == 60.0
    assert "checkpoint rounds are due every 60 s again" in caplog.text


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_a_round_well_inside_the_interval_leaves_it_alone(
    broker: EmbeddedBroker, make_topic: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    committer = _committer(broker, make_topic(1), interval=60.0)
    for i in range(3):
        _apply(committer, 2000, 2000 * i)
        with caplog.at_level(logging.INFO, logger="tilewatch.streams.commit"):
            committer.commit(None)
        assert committer.gap == 60.0  # a round of 500 cells takes far less than 3 s
    assert committer.changelog is not None
    assert committer.changelog.checkpointed(SOURCE).offset == 6000
    assert "checkpoint round" not in caplog.text
