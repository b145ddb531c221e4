"""Kafka -> ``tilewatch run`` -> /metrics, every number checked exactly against numpy.

One known stream (20 000 valid events over 2 models x 4 segments x 3 regions, keyed by cell,
event times rising over 60 s with a jitter below the grace, plus 51 bad records of every
reject reason and one far-future event per leaf cell so that every data window closes) is
produced before the monitor starts. Once it has read everything, every leaf and roll-up cell
must match numpy: cumulative counts, the rolling window of the last ``rolling_events`` events
(per partition, merged) and the model's last closed window. Then a few late events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import kafka_clients
from tests.e2e.support.events import (
    BadRecord,
    Event,
    far_future_events,
    interleave,
    make_bad_records,
    make_stream,
    records_of,
)
from tests.e2e.support.expected import expected_stats
from tests.e2e.support.layout import MODELS, T0, WINDOW_SECONDS, cell_labels
from tests.e2e.support.process import TilewatchProcess
from tests.e2e.support.scrape import series, value
from tests.helpers import consume_all, produce
from tests.oracles import close, sample_mean, sample_variance
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

SEED = 20260101
N_VALID = 20_000
N_BAD = 51  # three of each of the 17 kinds in support.events.BAD_KINDS
SPAN_SECONDS = 60.0


def _partition_order(
    broker: EmbeddedBroker, topic: str, events: list[Event], total: int
) -> tuple[list[Event], dict[str, int]]:
    """The events in partition order, and the partition of each, read back from the topic."""
    by_id = {e.event_id: e for e in events}
    records = consume_all(broker.bootstrap, topic, total)
    assert len(records) == total
    ordered: list[Event] = []
    partition_of: dict[str, int] = {}
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        try:
            payload = json.loads(rec.value) if rec.value is not None else None
        except ValueError:
            continue
        if isinstance(payload, dict) and payload.get("event_id") in by_id:
            event = by_id[payload["event_id"]]
            ordered.append(event)
            partition_of[event.event_id] = rec.partition
    assert len(ordered) == len(events), "some valid events were not read back from the topic"
    return ordered, partition_of


def _check_cells(metrics: dict, events: list[Event], data: list[Event], partition_of) -> list[str]:
    """Every mismatch between the scrape and numpy, as readable lines."""
    exp = expected_stats(events, partition_of, data)
    problems: list[str] = []

    def check(name: str, cell: tuple[str, str, str], want: float) -> None:
        got = value(metrics, name, **dict(cell_labels(cell)))
        if not close(got, want):
            problems.append(f"{name}{cell}: got {got!r}, numpy says {want!r}")

    for cell, count in sorted(exp.events.items()):
        check("tilewatch_events_total", cell, count)
        rolling = exp.rolling[cell]
        check("tilewatch_rolling_events", cell, len(rolling))
        check("tilewatch_rolling_score_mean", cell, sample_mean(rolling))
        check("tilewatch_rolling_score_variance", cell, sample_variance(rolling))
        window = exp.window[cell]
        check("tilewatch_window_events", cell, len(window))
        check("tilewatch_window_score_mean", cell, sample_mean(window))
        check("tilewatch_window_score_variance", cell, sample_variance(window))
    exported = {
        tuple(dict(labels)[k] for k in ("model", "segment", "region"))
        for labels in series(metrics, "tilewatch_events_total")
    }
    if exported != set(exp.events):
        problems.append(
            f"cells exported but not expected: {sorted(exported - set(exp.events))}; "
            f"expected but not exported: {sorted(set(exp.events) - exported)}"
        )
    for model in MODELS:
        got = value(metrics, "tilewatch_window_end_timestamp_seconds", model=model)
        if got != exp.window_end[model]:
            problems.append(
                f"window end of {model}: got {got!r}, expected {exp.window_end[model]!r}"
            )
    return problems


@pytest.mark.parametrize("client", kafka_clients())
def test_every_cell_matches_numpy_then_late_events_are_only_counted_late(
    client: str,
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    topic = make_topic(3)
    data = make_stream(SEED, N_VALID, SPAN_SECONDS)
    far = far_future_events(data, first_index=N_VALID, after=1000.0)
    bad = make_bad_records(N_BAD)
    stream: list[Event | BadRecord] = [*interleave(SEED, data, bad), *far]
    values, keys = records_of(stream)
    produce(broker.bootstrap, topic, values, keys)
    valid = [*data, *far]
    ordered, partition_of = _partition_order(broker, topic, valid, len(stream))
    assert len({partition_of[e.event_id] for e in valid}) == 3, (
        "the stream should use every partition"
    )

    monitor = start_tilewatch(tilewatch_config(topic))
    metrics = monitor.wait_until(
        f"{len(stream)} records read, {N_BAD} dead-lettered and rolling windows refreshed",
        lambda m: (
            value(m, "tilewatch_read_events_total") == len(stream)
            and value(m, "tilewatch_dead_letter_events_total") == N_BAD
            and all(v > 0 for v in series(m, "tilewatch_rolling_events").values())
        ),
    )

    problems = _check_cells(metrics, ordered, data, partition_of)
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:30])

    # Reject reasons, late events (none yet) and the cell table.
    want_invalid = Counter(b.reason for b in bad)
    got_invalid = {
        dict(labels)["reason"]: v
        for labels, v in series(metrics, "tilewatch_invalid_events_total").items()
    }
    assert got_invalid == dict(want_invalid)
    assert {
        dict(k)["model"]: v for k, v in series(metrics, "tilewatch_late_events_total").items()
    } == {m: 0 for m in MODELS}
    leaves = {e.cell for e in valid}
    assert value(metrics, "tilewatch_cells", kind="leaf") == len(leaves)
    assert value(metrics, "tilewatch_partitions_assigned") == 3
    assert value(metrics, "tilewatch_dead_letter_failures_total") is None  # no failure series
    assert not series(metrics, "tilewatch_dead_letter_failures_total")

    # The dead-letter topic holds every bad record, unchanged, with its reason.
    dead = consume_all(broker.bootstrap, monitor.dead_letter_topic, N_BAD)
    assert len(dead) == N_BAD
    by_key = {b.key: b for b in bad}
    got = {}
    for rec in dead:
        headers = dict(rec.headers)
        got[rec.key] = (rec.value, headers["tilewatch.reason"].decode())
        assert headers["tilewatch.source.topic"].decode() == topic
    assert got == {k: (b.value, b.reason) for k, b in by_key.items()}

    # Late events: older than every partition's watermark, in windows closed long ago.
    late_cells = [
        ("alpha", "s0", "eu"),
        ("alpha", "s1", "us"),
        ("alpha", "s3", "ap"),
        ("beta", "s2", "eu"),
        ("beta", "s0", "ap"),
    ]
    late = [
        Event(
            f"late{i}",
            cell,
            T0 + 2 * WINDOW_SECONDS + 0.5 + i,
            0.9,
            {
                "model": cell[0],
                "segment": cell[1],
                "region": cell[2],
                "score": 0.9,
                "timestamp": T0 + 2 * WINDOW_SECONDS + 0.5 + i,
            },
        )
        for i, cell in enumerate(late_cells)
    ]
    produce(broker.bootstrap, topic, [e.value for e in late], [e.key for e in late])
    after = monitor.wait_read(len(stream) + len(late))
    late_by_model = Counter(cell[0] for cell in late_cells)
    for model in MODELS:
        assert value(after, "tilewatch_late_events_total", model=model) == late_by_model[model]
    before_totals = series(metrics, "tilewatch_events_total")
    assert series(after, "tilewatch_events_total") == before_totals
    assert series(after, "tilewatch_window_events") == series(metrics, "tilewatch_window_events")
