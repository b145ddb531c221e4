"""Two replicas in one consumer group; one stops mid-stream (SIGTERM) or dies (SIGKILL).

Its partitions move to the survivor, which restores them from the changelog (the stopped
replica's last checkpoints) and replays the records after them. The survivor alone must then
hold every event exactly once, and every cell statistic must equal a single-replica reference
run on the same topic. The rebalance time (signal to the survivor owning and serving all four
partitions) is recorded as the test property ``rebalance_seconds`` and printed.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import kafka_clients
from tests.e2e.support.events import Event, far_future_events, make_stream, records_of
from tests.e2e.support.process import TilewatchProcess, settled_metrics
from tests.e2e.support.scrape import caught_up, compare_metrics, leaf_events_total, series, value
from tests.helpers import produce
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

PARTITIONS = 4
SEED = 20260404
N_EVENTS = 100_000
SPAN_SECONDS = 300.0
#: Produced before the replicas start; the rest is produced while they run, in chunks.
FIRST = 20_000
CHUNK = 5_000
CHUNK_PAUSE = 0.15
#: The victim is stopped once this fraction of the live production is out.
STOP_AT = 0.4


class _Producer(threading.Thread):
    """Produces ``events`` in chunks with short pauses; ``sent`` counts acknowledged records."""

    def __init__(self, bootstrap: str, topic: str, events: list[Event]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.events = bootstrap, topic, events
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for i in range(0, len(self.events), CHUNK):
                values, keys = records_of(self.events[i : i + CHUNK])
                produce(self.bootstrap, self.topic, values, keys)
                self.sent += len(values)
                time.sleep(CHUNK_PAUSE)
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def finish(self, timeout: float = 60.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error


def _restores(metrics: dict) -> dict[str, float]:
    return {
        dict(labels)["result"]: v
        for labels, v in series(metrics, "tilewatch_checkpoint_restores_total").items()
    }


def _brief(metrics: dict) -> str:
    lag = {
        dict(k)["partition"]: v for k, v in series(metrics, "tilewatch_consumer_lag_events").items()
    }
    return (
        f"assigned={value(metrics, 'tilewatch_partitions_assigned')} lag={lag} "
        f"read={value(metrics, 'tilewatch_read_events_total')} "
        f"leaf_events={leaf_events_total(metrics):.0f} restores={_restores(metrics)}"
    )


def _wait_both(
    a: TilewatchProcess,
    b: TilewatchProcess,
    what: str,
    predicate: Callable[[dict, dict], bool],
    timeout: float = 60.0,
) -> tuple[dict, dict]:
    deadline = time.monotonic() + timeout
    while True:
        ma = a.wait_until(f"{what} (replica a scrape)", lambda m: True)
        mb = b.wait_until(f"{what} (replica b scrape)", lambda m: True)
        if predicate(ma, mb):
            return ma, mb
        if time.monotonic() >= deadline:
            pytest.fail(
                f"waited {timeout:g} s for {what}; last scrapes: a {_brief(ma)}, b {_brief(mb)}"
                f"\n{a.describe()}\n{b.describe()}"
            )
        time.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
@pytest.mark.parametrize("client", kafka_clients(slow=True, cooperative=True))
def test_a_replica_leaves_mid_stream_and_the_survivor_ends_exactly_like_one_replica(
    client: str,
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    record_property: Callable[[str, object], None],
    stop: signal.Signals,
) -> None:
    topic = make_topic(PARTITIONS)
    data = make_stream(SEED, N_EVENTS, SPAN_SECONDS)
    far = far_future_events(data, first_index=N_EVENTS, after=1000.0)
    events = [*data, *far]
    values, keys = records_of(events[:FIRST])
    produce(broker.bootstrap, topic, values, keys)

    reference = start_tilewatch(
        tilewatch_config(topic, kafka={"max_poll_records": 5000}, state={"checkpoints": False}),
        name="reference",
    )
    tag = uuid.uuid4().hex[:12]
    shared = {
        "group_id": f"e2e-scale-{tag}",
        "dead_letter_topic": f"e2e-dlq-scale-{tag}",
        "max_poll_records": 500,
    }
    survivor = start_tilewatch(tilewatch_config(topic, kafka=shared), name="survivor")
    victim = start_tilewatch(tilewatch_config(topic, kafka=shared), name="victim")
    _wait_both(
        survivor,
        victim,
        f"both replicas owning partitions, {PARTITIONS} in all, and counting",
        lambda s, v: (
            (value(s, "tilewatch_partitions_assigned") or 0) > 0
            and (value(v, "tilewatch_partitions_assigned") or 0) > 0
            and value(s, "tilewatch_partitions_assigned")
            + value(v, "tilewatch_partitions_assigned")
            == PARTITIONS
            and leaf_events_total(v) > 0
        ),
    )

    producer = _Producer(broker.bootstrap, topic, events[FIRST:])
    producer.start()
    live = len(events) - FIRST
    deadline = time.monotonic() + 60
    while producer.sent < STOP_AT * live and producer.is_alive():
        assert time.monotonic() < deadline, "the producer is stuck"
        time.sleep(0.02)
    before = survivor.metrics()
    moved = victim.metrics()
    victim_partitions = int(value(moved, "tilewatch_partitions_assigned") or 0)
    assert 0 < victim_partitions < PARTITIONS
    assert producer.is_alive(), "the stop should land while records are still produced"

    stopped_at = time.monotonic()
    victim.signal(stop)
    assert victim.wait_exit(30) == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
    survivor.wait_until(
        f"the survivor owning and serving all {PARTITIONS} partitions",
        lambda m: (
            value(m, "tilewatch_partitions_assigned") == PARTITIONS
            and len(series(m, "tilewatch_consumer_lag_events")) == PARTITIONS
        ),
    )
    rebalance = time.monotonic() - stopped_at
    record_property("rebalance_seconds", round(rebalance, 2))
    print(f"\n{stop.name}: the survivor served all {PARTITIONS} partitions after {rebalance:.2f} s")

    producer.finish()
    got = settled_metrics(
        survivor,
        f"the survivor caught up with {len(events)} produced events",
        lambda m: caught_up(m, PARTITIONS) and leaf_events_total(m) >= len(events),
    )
    ref = settled_metrics(
        reference,
        f"the reference read all {len(events)} records",
        lambda m: (
            value(m, "tilewatch_read_events_total") == len(events) and caught_up(m, PARTITIONS)
        ),
    )

    # Exactly once, and the same statistics as one replica reading everything.
    assert leaf_events_total(ref) == len(events)
    assert leaf_events_total(got) == len(events)
    problems = compare_metrics(ref, got)
    assert not problems, f"{len(problems)} differences from the reference:\n" + "\n".join(
        problems[:30]
    )

    # The victim's partitions were restored from checkpoints (not started empty). The
    # survivor's own partitions may be restored too: when the join spans several polls, the
    # revocation and the new assignment reach the loop separately and the state is dropped.
    restored = _restores(got).get("restored", 0) - _restores(before).get("restored", 0)
    empty = _restores(got).get("empty", 0) - _restores(before).get("empty", 0)
    assert restored >= victim_partitions and empty == 0, (
        f"restores before {_restores(before)}, after {_restores(got)}\n{survivor.describe()}"
    )
    assert not series(got, "tilewatch_checkpoint_errors_total"), survivor.describe()


def _settled_pair(
    a: TilewatchProcess,
    b: TilewatchProcess,
    what: str,
    predicate: Callable[[dict, dict], bool],
    gap: float = 0.5,
) -> tuple[dict, dict]:
    """Two scrapes of each replica ``gap`` s apart for which ``predicate`` holds and in which
    neither replica's read and leaf counts moved: both are idle."""

    def counts(m: dict) -> tuple[float | None, float]:
        return value(m, "tilewatch_read_events_total"), leaf_events_total(m)

    previous: tuple[dict, dict] | None = None
    while True:
        ma, mb = _wait_both(a, b, what, predicate)
        if previous is not None and (counts(ma), counts(mb)) == tuple(map(counts, previous)):
            return ma, mb
        previous = ma, mb
        time.sleep(gap)


@pytest.mark.parametrize("client", kafka_clients(slow=True, cooperative=True))
def test_two_replicas_starting_together_count_every_event_once_between_them(
    client: str,
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    """The second replica joins while the first reads live traffic, before the first
    checkpoint (interval 60 s; with the default 10 s the same holds for any rebalance within
    a partition's first 10 s). Each partition's events must be in exactly one replica's
    state, so the two replicas' leaf counts add up to the stream."""
    topic = make_topic(PARTITIONS)
    data = make_stream(SEED + 1, 60_000, SPAN_SECONDS)
    tag = uuid.uuid4().hex[:12]
    shared = {
        "group_id": f"e2e-scale-{tag}",
        "dead_letter_topic": f"e2e-dlq-scale-{tag}",
        "max_poll_records": 500,
    }
    state = {"checkpoint_interval": "60s"}
    first = start_tilewatch(tilewatch_config(topic, kafka=shared, state=state), name="first")
    producer = _Producer(broker.bootstrap, topic, data)
    producer.start()
    first.wait_until(
        "the first replica counting on every partition",
        lambda m: len(series(m, "tilewatch_consumer_lag_events")) == PARTITIONS,
    )
    second = start_tilewatch(tilewatch_config(topic, kafka=shared, state=state), name="second")
    producer.finish()

    def assigned(m: dict) -> int:
        return int(value(m, "tilewatch_partitions_assigned") or 0)

    ma, mb = _settled_pair(
        first,
        second,
        "both replicas owning partitions, idle",
        lambda a, b: (
            assigned(a) > 0
            and assigned(b) > 0
            and assigned(a) + assigned(b) == PARTITIONS
            and all(v == 0 for v in series(a, "tilewatch_consumer_lag_events").values())
            and all(v == 0 for v in series(b, "tilewatch_consumer_lag_events").values())
        ),
    )
    total = leaf_events_total(ma) + leaf_events_total(mb)
    assert total == len(data), (
        f"the replicas hold {total:.0f} events, the stream has {len(data)}: "
        f"first {_brief(ma)}; second {_brief(mb)}\n{first.describe()}\n{second.describe()}"
    )
