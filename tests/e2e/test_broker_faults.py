"""Broker faults ("survive everything", part 3): a frozen broker, a dead-letter topic that
refuses records, and the heartbeat check behind ``tilewatch_kafka_up``.

The pause test freezes a broker of its own (SIGSTOP), never the session broker other tests
share, and always stops it.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from tests.e2e.conftest import kafka_clients
from tests.e2e.support.config import extend_config, write_config
from tests.e2e.support.events import (
    BadRecord,
    interleave,
    make_bad_records,
    make_stream,
    records_of,
)
from tests.e2e.support.layout import ALL, T0
from tests.e2e.support.process import TilewatchProcess
from tests.e2e.support.scrape import parse_metrics, scrape, series, value
from tests.helpers import consume_all, fast_client_settings, produce
from tilewatch.streams.clients import connected as _connected
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker]

PARTITIONS = 3


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker for this test alone (it gets paused); stopped, even when paused, at teardown."""
    with EmbeddedBroker() as running:
        yield running


def _leaf_total(metrics: dict[Any, float]) -> float:
    return sum(
        v
        for labels, v in series(metrics, "tilewatch_events_total").items()
        if ALL not in dict(labels).values()
    )


def _by_reason(metrics: dict[Any, float], name: str) -> dict[str, float]:
    return {dict(labels)["reason"]: v for labels, v in series(metrics, name).items()}


def _total(metrics: dict[Any, float], name: str) -> float:
    return sum(series(metrics, name).values())


# -- 1. the broker freezes for longer than the session timeout ---------------------------------

#: Longer than the session timeout of the fast client settings (6 s).
PAUSE_SECONDS = 10.0
SAMPLE_EVERY = 0.3
#: A scrape must answer within this while the broker is frozen.
SCRAPE_TIMEOUT = 1.0
N_FIRST = 4000
N_SECOND = 4000
#: The mid-stream phase: a warm-up, then a backlog that takes a few seconds to read.
WARM_UP = 1000
N_BACKLOG = 60_000


class KafkaUpStuck(AssertionError):
    """kafka_up did not drop during a broker freeze (the known bug an xfail names)."""


@dataclass
class Sample:
    at: float  # seconds since the pause (negative: before it)
    latency: float | None  # seconds the scrape took; None if it failed
    kafka_up: float | None
    read: float | None
    error: str = ""


def _sample(monitor: TilewatchProcess, origin: float) -> Sample:
    start = time.monotonic()
    try:
        metrics = parse_metrics(scrape(monitor.url, timeout=SCRAPE_TIMEOUT))
    except (urllib.error.URLError, OSError) as exc:
        return Sample(start - origin, None, None, None, repr(exc))
    return Sample(
        start - origin,
        time.monotonic() - start,
        value(metrics, "tilewatch_kafka_up"),
        value(metrics, "tilewatch_read_events_total"),
    )


def _sample_for(
    monitor: TilewatchProcess,
    origin: float,
    seconds: float,
    until: Callable[[Sample], bool] | None = None,
) -> list[Sample]:
    """Scrape every ``SAMPLE_EVERY`` s for ``seconds`` (or until ``until(sample)``)."""
    out: list[Sample] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert monitor.process is not None
        assert monitor.process.poll() is None, f"tilewatch exited: {monitor.describe()}"
        out.append(_sample(monitor, origin))
        if until is not None and until(out[-1]):
            break
        time.sleep(max(0.0, SAMPLE_EVERY - (out[-1].latency or 0.0)))
    return out


def _show(samples: list[Sample]) -> str:
    return " ".join(
        f"{s.at:+.1f}s:up={s.kafka_up:g}" if s.latency is not None else f"{s.at:+.1f}s:FAILED"
        for s in samples
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "phase",
    [
        "between-halves",
        "mid-stream",
    ],
)
@pytest.mark.parametrize("client", kafka_clients(slow=True))
def test_broker_paused_past_the_session_timeout(
    client: str,
    own_broker: EmbeddedBroker,
    start_tilewatch: Callable[..., TilewatchProcess],
    tmp_path: Path,
    phase: str,
) -> None:
    """SIGSTOP the broker for 10 s (> session timeout), then SIGCONT: metrics keep being
    served, ``kafka_up`` comes back to 1, the process lives on, and every valid event is
    counted exactly once; the invalid records are each either dead-lettered or counted as a
    dead-letter failure.

    ``between-halves``: the first half is consumed and checkpointed, the broker is paused,
    and the second half (with the invalid records) is produced after the resume; ``kafka_up``
    must be seen at 0 during the pause. ``mid-stream``: a 60,000-record backlog (with the
    invalid records) is being consumed, with checkpoints every 300 ms, when the broker freezes.
    """
    topic = f"faults-{uuid.uuid4().hex}"
    own_broker.create_topic(topic, PARTITIONS)
    busy = phase == "mid-stream"
    n_first = WARM_UP if busy else N_FIRST
    events = make_stream(31, (N_BACKLOG if busy else N_FIRST + N_SECOND), 120.0)
    bad = make_bad_records(17)  # one of each bad kind
    first = events[:n_first]
    rest: list[Any] = interleave(32, events[n_first:], bad)
    produce(own_broker.bootstrap, topic, *records_of(first))
    config = write_config(
        tmp_path / "pause.toml",
        own_broker.bootstrap,
        topic,
        kafka={"max_poll_records": 500, "client_library": client},
        state={"checkpoint_interval": "300ms"},
    )
    monitor = start_tilewatch(config, name="pause")
    monitor.wait_until(
        f"the first {n_first} records read with kafka_up 1",
        lambda m: (
            value(m, "tilewatch_read_events_total") == n_first
            and value(m, "tilewatch_kafka_up") == 1
        ),
    )
    producer_errors: list[BaseException] = []
    background = threading.Thread(
        target=_produce_slowly, args=(own_broker.bootstrap, topic, rest, producer_errors)
    )
    if busy:  # the rest is produced in the background, through the pause
        background.start()
        monitor.wait_until(
            "the stream being consumed",
            lambda m: (value(m, "tilewatch_read_events_total") or 0) >= n_first + 5000,
        )
    else:
        time.sleep(1.0)  # let the checkpoint and commit of the first half land

    origin = time.monotonic()
    own_broker.pause()
    try:
        during = _sample_for(monitor, origin, PAUSE_SECONDS)
    finally:
        own_broker.resume()
    resumed_at = time.monotonic() - origin
    after = _sample_for(monitor, origin, 40.0, until=lambda s: s.kafka_up == 1)

    trace = f"during: {_show(during)}\nafter: {_show(after)}"
    failed = [s for s in during if s.latency is None]
    assert not failed, f"scrapes failed while the broker was paused: {failed}\n{trace}"
    slowest = max(s.latency or 0.0 for s in during)
    assert slowest < SCRAPE_TIMEOUT, trace
    down = [s.at for s in during if s.kafka_up == 0]
    if not busy:
        assert down, f"kafka_up never went to 0 during a {PAUSE_SECONDS:g} s pause\n{trace}"
    assert after and after[-1].kafka_up == 1, f"kafka_up did not come back to 1\n{trace}"
    up_after = after[-1].at - resumed_at
    read_during = sorted({s.read for s in during if s.read is not None})

    if busy:
        background.join(60)
        assert not background.is_alive() and not producer_errors, producer_errors
    else:  # the second half, with the bad records, once the broker is back
        produce(own_broker.bootstrap, topic, *records_of(rest))
    n_valid, n_invalid = len(events), len(bad)
    monitor.wait_until(
        f"{n_valid} events counted and {n_invalid} rejects dead-lettered or failed",
        lambda m: (
            _leaf_total(m) == n_valid
            and _total(m, "tilewatch_invalid_events_total") == n_invalid
            # dead_letter_events_total is published at commit, after the flush
            and (value(m, "tilewatch_dead_letter_events_total") or 0)
            + _total(m, "tilewatch_dead_letter_failures_total")
            == n_invalid
        ),
        timeout=60,
    )
    time.sleep(1.0)  # nothing more may arrive (a double count would show now)
    metrics = monitor.metrics()
    assert monitor.process is not None and monitor.process.poll() is None, monitor.describe()

    assert _leaf_total(metrics) == n_valid, "lost or double-counted events"
    assert _total(metrics, "tilewatch_late_events_total") == 0
    expected_invalid: dict[str, float] = {}
    for record in bad:
        expected_invalid[record.reason] = expected_invalid.get(record.reason, 0) + 1
    assert _by_reason(metrics, "tilewatch_invalid_events_total") == expected_invalid
    dead = value(metrics, "tilewatch_dead_letter_events_total") or 0
    failures = _total(metrics, "tilewatch_dead_letter_failures_total")
    assert dead + failures == n_invalid
    read = value(metrics, "tilewatch_read_events_total") or 0
    restores = _by_reason_result(metrics)
    stderr = monitor.stderr_path.read_text(errors="replace")
    restored_lines = re.findall(r"restored up to offset \d+", stderr)
    replayed = read - (n_valid + n_invalid)
    assert replayed >= 0
    if replayed:  # re-read after a rebalance: only from a restored checkpoint
        assert restores.get("restored", 0) >= 1 and restored_lines, (
            f"{replayed:g} records were read twice without a restore: {restores}"
        )
    print(
        f"\nbroker pause {PAUSE_SECONDS:g} s ({phase}): kafka_up 0 first at "
        f"{f'+{down[0]:.1f} s' if down else 'never'} after the pause; 1 again "
        f"{up_after:.1f} s after the resume; slowest scrape {slowest * 1000:.0f} ms; "
        f"read during the pause {read_during[0]:g}..{read_during[-1]:g}; "
        f"read {read:g} (replayed {replayed:g}); restores {restores}; "
        f"'restored up to offset' lines: {len(restored_lines)}; "
        f"dead-lettered {dead:g}, failures {failures:g}\n{trace}"
    )
    # After a rebalance kafka_up reads 0 until the first heartbeat (see the xfail below).
    monitor.wait_until("kafka_up 1", lambda m: value(m, "tilewatch_kafka_up") == 1, timeout=10)
    if not down:  # only reachable mid-stream: everything else held
        raise KafkaUpStuck(f"kafka_up stayed 1 through a {PAUSE_SECONDS:g} s freeze\n{trace}")


def _produce_slowly(
    bootstrap: str, topic: str, stream: list[Any], errors: list[BaseException]
) -> None:
    """Produce ``stream`` in 20 chunks over about 5 s; errors are kept for the test."""
    try:
        step = -(-len(stream) // 20)
        for i in range(0, len(stream), step):
            produce(bootstrap, topic, *records_of(stream[i : i + step]), timeout=60)
            time.sleep(0.25)
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


def _by_reason_result(metrics: dict[Any, float]) -> dict[str, float]:
    return {
        dict(labels).get("result", "?"): v
        for labels, v in series(metrics, "tilewatch_checkpoint_restores_total").items()
    }


# -- 2. the dead-letter producer refuses oversized records ---------------------------------------

MAX_EVENT_BYTES = 1000
MAX_REQUEST_SIZE = 20_000
HUGE_VALUE_BYTES = 50_000


def _huge(i: int) -> BadRecord:
    """A well-formed event padded to 50 kB: rejected only for its size."""
    payload = {
        "event_id": f"huge{i}",
        "model": "alpha",
        "segment": "s0",
        "region": "eu",
        "score": 0.5,
        "timestamp": T0 + 6.0,
        "padding": "x" * HUGE_VALUE_BYTES,
    }
    return BadRecord(f"huge-{i}".encode(), json.dumps(payload).encode(), "too_large")


@pytest.mark.timeout(90)
def test_dead_letter_failures_are_counted_and_logged_and_consumption_goes_on(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    start_tilewatch: Callable[..., TilewatchProcess],
    tmp_path: Path,
) -> None:
    """``[kafka.client] max_request_size`` also binds the dead-letter producer: 50 kB rejects
    cannot be dead-lettered. Each is counted once as ``too_large`` in both the invalid and the
    dead-letter failure counters and logged with its source coordinates; small rejects are
    still dead-lettered, and the valid events around them are all counted."""
    topic = make_topic(PARTITIONS)
    events = make_stream(41, 3000, 60.0)
    huge = [_huge(i) for i in range(5)]
    small = make_bad_records(4)
    stream: list[Any] = interleave(42, events, [*huge, *small])
    # Checkpoints off: the changelog producer shares [kafka.client], and a 20 kB request limit
    # would also refuse checkpoint chunks; this test is about the dead-letter producer alone.
    config = extend_config(
        write_config(tmp_path / "dlq.toml", broker.bootstrap, topic, state={"checkpoints": False}),
        client={"max_request_size": MAX_REQUEST_SIZE},
        events={"max_event_bytes": MAX_EVENT_BYTES},
    )
    monitor = start_tilewatch(config, name="dlq")
    produce(broker.bootstrap, topic, *records_of(stream))
    n_total = len(stream)
    metrics = monitor.wait_until(
        f"all {n_total} records read and every reject dead-lettered or failed",
        lambda m: (
            value(m, "tilewatch_read_events_total") == n_total
            and (value(m, "tilewatch_dead_letter_events_total") or 0)
            + _total(m, "tilewatch_dead_letter_failures_total")
            == len(huge) + len(small)
        ),
        timeout=60,
    )
    assert monitor.process is not None and monitor.process.poll() is None, monitor.describe()
    assert _leaf_total(metrics) == len(events), "valid events after the failures were lost"
    assert _by_reason(metrics, "tilewatch_dead_letter_failures_total") == {"too_large": 5}
    invalid = _by_reason(metrics, "tilewatch_invalid_events_total")
    assert invalid.pop("too_large") == len(huge)
    assert sum(invalid.values()) == len(small)
    assert value(metrics, "tilewatch_dead_letter_events_total") == len(small)

    # Each failure is logged with the topic, partition and offset it can still be read at.
    source = consume_all(broker.bootstrap, topic, n_total)
    coords = sorted(
        (r.partition, r.offset) for r in source if r.key is not None and r.key.startswith(b"huge-")
    )
    assert len(coords) == len(huge)
    stderr = monitor.stderr_path.read_text(errors="replace")
    logged = sorted(
        (int(p), int(o))
        for t, p, o in re.findall(r"could not dead-letter (\S+)/(\d+)@(\d+) \(too_large\)", stderr)
        if t == topic
    )
    assert logged == coords, f"stderr:\n{monitor.stderr_tail(60)}"
    dead = consume_all(broker.bootstrap, monitor.dead_letter_topic, len(small))
    assert sorted(r.key for r in dead) == sorted(r.key for r in small)


# -- 3. the heartbeat check behind tilewatch_kafka_up ------------------------------------------


class _FakeConsumer:
    """Just what ``_connected`` reads of a kafka-python consumer."""

    def __init__(self, metrics: Any, heartbeat_interval_ms: int = 2000) -> None:
        self._metrics = metrics
        self.config = {"heartbeat_interval_ms": heartbeat_interval_ms}

    def metrics(self) -> Any:
        if isinstance(self._metrics, Exception):
            raise self._metrics
        return self._metrics


def _heartbeat(ago: float) -> dict[str, dict[str, float]]:
    return {
        "consumer-fetch-manager-metrics": {"records-lag-max": 0.0},
        "consumer-coordinator-metrics": {"last-heartbeat-seconds-ago": ago},
    }


@pytest.mark.parametrize(
    ("ago", "up"),
    [
        (0.0, True),
        (1.9, True),
        (5.0, True),  # 2 intervals of 2 s plus 1 s: the limit
        (5.01, False),
        (30.0, False),
        (float("inf"), False),  # kafka-python before the first heartbeat
    ],
)
def test_connected_follows_the_last_heartbeat(ago: float, up: bool) -> None:
    assert _connected(_FakeConsumer(_heartbeat(ago))) is up  # type: ignore[arg-type]


def test_connected_scales_with_the_heartbeat_interval() -> None:
    assert _connected(_FakeConsumer(_heartbeat(20.0), heartbeat_interval_ms=10_000))  # type: ignore[arg-type]
    assert not _connected(_FakeConsumer(_heartbeat(21.5), heartbeat_interval_ms=10_000))  # type: ignore[arg-type]


def test_connected_is_true_for_a_test_double_without_metrics() -> None:
    class Double:
        pass

    assert _connected(Double()) is True  # type: ignore[arg-type]


def test_connected_is_false_when_metrics_raise() -> None:
    assert _connected(_FakeConsumer(RuntimeError("closed"))) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metrics",
    [
        {"consumer-fetch-manager-metrics": {"records-lag-max": 0.0}},
        {"consumer-coordinator-metrics": {"heartbeat-rate": 0.5}},
        None,
    ],
    ids=["no-coordinator-group", "no-heartbeat-metric", "metrics-disabled"],
)
def test_connected_is_false_without_coordinator_metrics(metrics: Any) -> None:
    assert _connected(_FakeConsumer(metrics)) is False  # type: ignore[arg-type]


@pytest.mark.timeout(60)
def test_connected_with_a_real_consumer(broker: EmbeddedBroker, make_topic: Any) -> None:
    """The metric names ``_connected`` reads are kafka-python's: down before the first join,
    up once the group is joined."""
    topic = make_topic(1)
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=f"connected-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        **fast_client_settings(),
    )
    try:
        assert "last-heartbeat-seconds-ago" in consumer.metrics()["consumer-coordinator-metrics"]
        assert _connected(consumer) is False
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not _connected(consumer):
            assert time.monotonic() < deadline, consumer.metrics()
            consumer.poll(timeout_ms=200)
        assert consumer.assignment()
    finally:
        consumer.close(autocommit=False)


@pytest.mark.timeout(60)
def test_kafka_up_is_1_while_the_first_records_are_consumed(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    start_tilewatch: Callable[..., TilewatchProcess],
    tmp_path: Path,
) -> None:
    topic = make_topic(PARTITIONS)
    events = make_stream(51, 1000, 10.0)
    produce(broker.bootstrap, topic, *records_of(events))
    config = write_config(tmp_path / "join.toml", broker.bootstrap, topic)
    monitor = start_tilewatch(config, name="join")
    metrics = monitor.wait_read(len(events))
    up = value(metrics, "tilewatch_kafka_up")
    if up != 1:
        raise KafkaUpStuck(f"kafka_up {up} while the first {len(events)} records were read")
