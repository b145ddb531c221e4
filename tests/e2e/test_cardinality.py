"""A cardinality flood through the broker: 100k distinct segment values against max_cells 500.

One producer sends 100 000 valid events of one model, each with a segment value never seen
before (1% of them 10 kB long, a few equal to the reserved labels, a few with characters the
exposition format must escape, and a group whose values differ only past ``label_max_length``)
to a ``tilewatch run`` with ``[cells] max_cells = 500``. Once it has read everything:

- the scrape holds at most ``max_cells`` + 1 leaf series per cell metric (the +1 is the model's
  ``__other__`` overflow cell) and at most ``2 ** d`` times that with roll-ups;
- ``tilewatch_cells_overflow_total`` is exactly the events that did not reach a real leaf cell,
  and exactly the events of the ``__other__`` leaf cell (with three partitions the order in
  which new values arrive is not deterministic, so the test checks these identities rather
  than which values got a cell);
- no label value is longer than ``label_max_length``;
- ``tilewatch_read_events_total`` reconciles (valid + late + invalid);
- the process RSS stays bounded (``/proc/<pid>/status``; see :data:`RSS_BOUND_MB`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from tests.e2e.support.layout import ALL
from tests.e2e.support.process import TilewatchProcess
from tests.e2e.support.scrape import series, value
from tilewatch.config import ConfigError, load_config
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

SEED = 5150
N = 100_000
PARTITIONS = 3
MAX_CELLS = 500
LABEL_MAX_LENGTH = 48
MODEL = "churn"
OTHER = "__other__"
REGIONS = ("eu", "us", "ap")
#: Every LONG_EVERY-th event has a segment value of about LONG_CHARS characters.
LONG_EVERY = 100
LONG_CHARS = 10_000
#: Events whose segment values differ only after the first LABEL_MAX_LENGTH characters: they
#: all share one canonical cell (if any of them got a cell at all).
COLLIDE_EVERY = 1_000
COLLIDE_OFFSET = 10
#: The first events: values a producer must not be able to write into roll-up or overflow cells
#: with, and values the exposition format must escape.
SPECIAL = (
    (OTHER, OTHER),
    (ALL, "eu"),
    (OTHER, "us"),
    ("eu", ALL),
    ('quote"d', "eu"),
    ("new\nline", "us"),
    ("back\\slash", "ap"),
    ("ünïcödé ✓", "eu"),
    ("😀" * 80, "ap"),
)
#: RSS bound of the monitor process. Measured here: a peak (VmHWM) of 94 to 107 MB (the
#: throughput benchmark peaks at 127 MB for 1 066 cells). The state is small (<= 501 leaves,
#: 100 rolling events each), but a fetch can carry 5 000 records of up to 10 kB per partition,
#: so about twice the measured peak leaves room for those buffers. A registry that kept every
#: distinct value would not fit: 100k leaves with their roll-ups, each with per-partition
#: arrays and an 800 B rolling row, come to an estimated 250 MB or more.
RSS_BOUND_MB = 200.0

#: Metrics with one series per cell (leaf or roll-up) that has events.
CELL_METRICS = (
    "tilewatch_events_total",
    "tilewatch_window_events",
    "tilewatch_window_score_mean",
    "tilewatch_window_score_variance",
    "tilewatch_rolling_events",
    "tilewatch_rolling_score_mean",
    "tilewatch_rolling_score_variance",
    "tilewatch_last_event_timestamp_seconds",
)


def _segment(i: int) -> tuple[str, str]:
    """(segment, region) of event ``i``: every raw segment value is distinct."""
    if i < len(SPECIAL):
        return SPECIAL[i]
    region = REGIONS[i % len(REGIONS)]
    if i % COLLIDE_EVERY == COLLIDE_OFFSET:
        return "collide-" + "y" * LABEL_MAX_LENGTH + f"-{i:06d}", "eu"  # one canonical key
    if i % LONG_EVERY == 0:
        return f"long-{i:06d}-" + "x" * LONG_CHARS, region
    return f"seg-{i:06d}", region


def _events(start: float) -> list[bytes]:
    rng = np.random.default_rng(SEED)
    scores = rng.random(N).round(6).tolist()
    out = []
    for i in range(N):
        segment, region = _segment(i)
        payload = {
            "event_id": f"c{i}",
            "model": MODEL,
            "segment": segment,
            "region": region,
            "score": scores[i],
            "timestamp": start + i * 60.0 / N,  # rising in every partition: nothing is late
        }
        out.append(orjson.dumps(payload))
    return out


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, max_request_size=4 << 20
    )
    failures: list[BaseException] = []
    try:
        for i, v in enumerate(values):
            producer.send(topic, key=f"k{i}".encode(), value=v).add_errback(failures.append)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    assert not failures, f"{len(failures)} records not delivered: {failures[0]!r}"


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    """``VmRSS`` (or ``VmHWM``, the peak) of a process, in kB, from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class _RssSampler(threading.Thread):
    """Samples the RSS of ``pid`` every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[int] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.samples.append(_rss_kb(self.pid))
            except (OSError, AssertionError):
                return
            self.halt.wait(self.interval)


def _is_leaf(labels: frozenset[tuple[str, str]]) -> bool:
    return ALL not in dict(labels).values()


def test_distinct_values_flood_stays_within_max_cells(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    record_property: Callable[[str, object], None],
) -> None:
    topic = make_topic(PARTITIONS)
    config = tilewatch_config(
        topic,
        cells={"max_cells": MAX_CELLS, "label_max_length": LABEL_MAX_LENGTH},
        state={"checkpoints": False},
    )
    values = _events(time.time() - 600.0)
    largest = max(map(len, values))
    assert largest > LONG_CHARS
    max_bytes = load_config(config).events.max_event_bytes
    assert largest < max_bytes, f"max_event_bytes {max_bytes} must admit the {largest} B values"

    monitor = start_tilewatch(config, name="cardinality")
    sampler = _RssSampler(monitor.pid)
    sampler.start()
    try:
        _produce(broker.bootstrap, topic, values)
        metrics = monitor.wait_read(N, timeout=120)
        time.sleep(0.5)  # a last refresh of the rolling statistics; the counts are final
        metrics = monitor.metrics()
        text = monitor.scrape()
        rss_now = _rss_kb(monitor.pid)
        rss_peak = _rss_kb(monitor.pid, "VmHWM")
    finally:
        sampler.halt.set()
        sampler.join()
    record_property("rss_end_mb", rss_now / 1024)
    record_property("rss_peak_mb", rss_peak / 1024)
    print(
        f"\nRSS of tilewatch run: {rss_now / 1024:.1f} MB after catching up, peak (VmHWM) "
        f"{rss_peak / 1024:.1f} MB, max sampled {max(sampler.samples, default=0) / 1024:.1f} MB "
        f"over {len(sampler.samples)} samples; exposition {len(text)} B"
    )
    assert monitor.process is not None and monitor.process.poll() is None, monitor.describe()

    # -- reconciliation ------------------------------------------------------------------------
    read = value(metrics, "tilewatch_read_events_total")
    events = series(metrics, "tilewatch_events_total")
    leaves = {labels: v for labels, v in events.items() if _is_leaf(labels)}
    valid = sum(leaves.values())
    late = sum(series(metrics, "tilewatch_late_events_total").values())
    invalid = sum(series(metrics, "tilewatch_invalid_events_total").values())
    assert read == N
    assert (valid, late, invalid) == (N, 0, 0), (valid, late, invalid)

    # -- bounded series ------------------------------------------------------------------------
    other_labels = frozenset({("model", MODEL), ("segment", OTHER), ("region", OTHER)})
    assert other_labels in leaves, "the registry never overflowed into the __other__ cell"
    assert len(leaves) == MAX_CELLS + 1, f"{len(leaves)} leaf series, expected {MAX_CELLS} + 1"
    assert value(metrics, "tilewatch_cells", kind="leaf") == MAX_CELLS + 1
    rollup_bound = (MAX_CELLS + 1) * 4  # 2 ** d variants per leaf, d = 2
    for name in CELL_METRICS:
        cells = series(metrics, name)
        n_leaves = sum(1 for labels in cells if _is_leaf(labels))
        assert n_leaves <= MAX_CELLS + 1, f"{name}: {n_leaves} leaf series"
        assert len(cells) <= rollup_bound, f"{name}: {len(cells)} series"

    # -- overflow accounting -------------------------------------------------------------------
    overflow = series(metrics, "tilewatch_cells_overflow_total")
    assert set(overflow) == {frozenset({("model", MODEL)})}, overflow
    overflow_total = overflow[frozenset({("model", MODEL)})]
    in_real_cells = sum(v for labels, v in leaves.items() if labels != other_labels)
    assert overflow_total == valid - in_real_cells
    assert leaves[other_labels] == overflow_total
    assert overflow_total >= N - MAX_CELLS * 2  # at most a few hundred events got real cells
    # Reserved values never name a real cell: they carry a "_" suffix.
    for labels in leaves:
        if labels != other_labels:
            values_ = dict(labels)
            assert OTHER not in values_.values() and ALL not in values_.values(), values_
    # Values that differ only past label_max_length share one canonical cell: if it exists,
    # it holds every one of them (it was created by the first of them, and every later one
    # finds it, whatever the registry's fill level).
    collide = ("collide-" + "y" * LABEL_MAX_LENGTH)[:LABEL_MAX_LENGTH]
    n_collide = sum(1 for i in range(N) if i % COLLIDE_EVERY == COLLIDE_OFFSET)
    collided = sum(v for labels, v in leaves.items() if dict(labels)["segment"] == collide)
    assert collided in (0, n_collide), (collided, n_collide)

    # -- label lengths -------------------------------------------------------------------------
    too_long = {
        (name, k, v[:20] + "...")
        for name, labels in metrics
        for k, v in labels
        if len(v) > LABEL_MAX_LENGTH
    }
    assert not too_long, sorted(too_long)[:5]
    assert any(len(v) == LABEL_MAX_LENGTH for labels in leaves for _, v in labels), (
        "expected some values cut to exactly label_max_length"
    )

    # -- memory --------------------------------------------------------------------------------
    assert rss_peak / 1024 < RSS_BOUND_MB, f"peak RSS {rss_peak / 1024:.0f} MB"


def test_reserved_values_stay_within_label_max_length(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    topic = make_topic(1)
    # Below 10 a suffixed reserved value ('__other___') could not fit: the config refuses it.
    too_short = tilewatch_config(topic, cells={"label_max_length": 9})
    with pytest.raises(ConfigError, match=r"label_max_length: expected an integer >= 10"):
        load_config(too_short)
    length = 10
    config = tilewatch_config(
        topic, cells={"label_max_length": length}, state={"checkpoints": False}
    )
    assert load_config(config).cells.label_max_length == length
    segments = (OTHER, OTHER + "tail", ALL, "ok")
    now = time.time()
    values = [
        orjson.dumps({"model": MODEL, "segment": s, "region": "eu", "score": 0.5, "timestamp": now})
        for s in segments
    ]
    monitor = start_tilewatch(config, name="label-length")
    _produce(broker.bootstrap, topic, values)
    metrics = monitor.wait_read(len(values))
    segments_seen = {
        dict(labels)["segment"] for labels in series(metrics, "tilewatch_events_total")
    }
    assert {"ok", ALL + "_"} <= segments_seen
    too_long = sorted(v for v in segments_seen if len(v) > length)
    assert not too_long, f"label values longer than label_max_length = {length}: {too_long}"
