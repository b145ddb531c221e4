"""Rolling statistics stay exported while traffic keeps arriving.

Under steady traffic the runtime refreshes rolling moments at most once a second
(``tilewatch.streams.loop.REFRESH_INTERVAL``); between refreshes a scrape must still show each
cell's rolling window, never an empty one (a snapshot now merges the blocks written since the
last refresh, so it shows every event; the window shrinks only as its oldest block leaves).

Regression test: at 6197e00 ``RollingWindows.moments()`` reported count 0 for every row written
since the last refresh, so busy cells flickered to ``rolling_events 0`` / NaN (over 1 000 drops
in ~70 scrapes here) and roll-ups merged only the partitions that happened to be clean.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.e2e.support.config import ROLLING_EVENTS
from tests.e2e.support.events import make_stream, records_of
from tests.e2e.support.process import TilewatchProcess
from tests.e2e.support.scrape import series, value
from tests.helpers import produce
from tilewatch.aggregators.stats.rolling import block_length
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

WARM_UP = 4_000
STEADY = 20_000
CHUNK = 100
CHUNK_PAUSE_SECONDS = 0.02  # about 5 000 events/s for 4 s: the consumer is never idle
#: Most a merged window may shrink between two scrapes: the oldest block of each of the 3
#: partitions leaving it (tilewatch.aggregators.stats.rolling).
MAX_SHRINK = 3 * (block_length(ROLLING_EVENTS) - 1)


def test_rolling_window_of_a_busy_cell_never_drops_out_between_refreshes(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    topic = make_topic(3)
    events = make_stream(99, WARM_UP + STEADY, 60.0)
    values, keys = records_of(events)
    produce(broker.bootstrap, topic, values[:WARM_UP], keys[:WARM_UP])
    monitor = start_tilewatch(tilewatch_config(topic))
    warm = monitor.wait_until(
        f"{WARM_UP} records read and every rolling window refreshed",
        lambda m: (
            value(m, "tilewatch_read_events_total") == WARM_UP
            and all(v > 0 for v in series(m, "tilewatch_rolling_events").values())
        ),
    )

    errors: list[BaseException] = []

    def feed() -> None:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        try:
            for i in range(WARM_UP, WARM_UP + STEADY, CHUNK):
                for v, k in zip(values[i : i + CHUNK], keys[i : i + CHUNK], strict=True):
                    producer.send(topic, value=v, key=k)
                time.sleep(CHUNK_PAUSE_SECONDS)
            producer.flush(30)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            producer.close(5)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    previous = series(warm, "tilewatch_rolling_events")
    drops: list[str] = []
    scrapes = 0
    while feeder.is_alive():
        metrics = monitor.metrics()
        scrapes += 1
        current = series(metrics, "tilewatch_rolling_events")
        means = series(metrics, "tilewatch_rolling_score_mean")
        for labels, before in previous.items():
            now = current.get(labels, 0.0)
            # Once refreshed, a rolling window never empties; it only shrinks as its oldest
            # block leaves it (by at most block - 1 events per partition, 3 partitions here).
            # (A cell first seen since the last refresh may still show 0.)
            if before > 0 and (
                now < before - MAX_SHRINK or math.isnan(means.get(labels, math.nan))
            ):
                drops.append(f"{dict(labels)}: rolling_events {before:g} -> {now:g}")
        previous = {k: max(v, previous.get(k, 0.0)) for k, v in current.items()}
        time.sleep(0.05)
    feeder.join()
    assert not errors, errors
    monitor.wait_read(WARM_UP + STEADY)
    assert not drops, f"{len(drops)} drops over {scrapes} scrapes, e.g.:\n" + "\n".join(drops[:10])
