"""The real ``tilewatch run`` process with each Kafka client, against each client's floor.

Run from the repository root (a script, not a pytest test; see tests/bench/README.md)::

    python tests/bench/bench_confluent.py [--events 400000] [--cells 1000] [--partitions 2]
                                          [--client both|kafka-python|confluent] [--repeat 1]
                                          [--json out.json]

On one embedded broker, one topic filled once (spine events keyed by cell,
``tests.bench.harness.spine_spec``), in this order, ``--repeat`` times:

- **floor A**: kafka-python ``poll`` + ``orjson.loads`` of every value, nothing else
  (``tests.bench.harness.run_floor``);
- **floor B**: confluent-kafka ``consume`` + ``orjson.loads`` of every value, nothing else,
  with the prefetch settings tilewatch gives its consumer (``FETCH_QUEUE``; also once with
  librdkafka's defaults, printed beside it);
- ``tilewatch run`` with the default config (checkpoints on, metrics endpoint up, not scraped)
  and ``[kafka] client_library`` = each client, timed from the log line of the last partition
  assigned to the first scrape showing every record read (end-to-end: scraped every 0.5 s,
  then every 20 ms from shortly before the end the rate so far predicts, so a run of about a
  second is not timed up to half a second late), and in
  steady state (the slope of ``tilewatch_read_events_total`` from 10 % to 90 % of the
  records); CPU per event from ``/proc``.

Targets (issue 14): confluent end-to-end >= 2.5x the kafka-python figure and >= 0.5 of floor B.
The figures mean something only on a quiet machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/bench_confluent.py``
    sys.path.insert(0, _ROOT)

from tests.bench.bench_scale import cpu_seconds, start, stop, write_config  # noqa: E402
from tests.bench.bench_throughput import produce  # noqa: E402
from tests.bench.harness import (  # noqa: E402
    bench_settings,
    broker_with_topics,
    print_rows,
    run_floor,
    write_json,
)
from tests.bench.spy import start_py_spy, stop_py_spy  # noqa: E402
from tests.e2e.support.scrape import scrape  # noqa: E402
from tests.helpers import free_port  # noqa: E402
from tilewatch.streams.confluent_options import FETCH_QUEUE  # noqa: E402
from tilewatch.streams.settings import KafkaSettings  # noqa: E402

TOPIC = "scale-predictions"  # bench_scale's write_config reads this topic
#: Seconds between scrapes of the measured process (as a busy Prometheus would, at most).
SCRAPE_EVERY = 0.5
#: Seconds between scrapes once the end is near (as predicted from the last two scrapes).
SCRAPE_NEAR_END = 0.02
#: Give up on a run after this many seconds.
TIMEOUT = 300.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--client", choices=("both", "kafka-python", "confluent"), default="both")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="PATH",
        help="profile each tilewatch run with py-spy (collapsed stacks written to "
        "PATH-CLIENT.txt; the top entries are printed); py-spy must be installed",
    )
    return parser.parse_args(argv)


def run_floor_b(settings: KafkaSettings, events: int, fetch_queue: bool = True) -> dict[str, Any]:
    """confluent-kafka ``consume`` + ``orjson.loads`` of every value until ``events`` read.

    With ``fetch_queue`` the consumer prefetches as tilewatch's does
    (:data:`~tilewatch.streams.confluent_options.FETCH_QUEUE`), else with librdkafka's
    defaults (which wait up to a second between fetches once 100,000 records are queued).
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(settings.bootstrap_servers),
        "group.id": f"floor-b-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
    }
    if fetch_queue:
        config.update(FETCH_QUEUE)
    consumer = Consumer(config)
    loads = orjson.loads
    count = 0
    try:
        parts = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in sorted(parts)])
        t0: float | None = None
        cpu0 = 0.0
        deadline = time.monotonic() + 300
        while count < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"floor B: read {count} of {events} records in 300 s")
            messages = consumer.consume(settings.max_poll_records, settings.poll_timeout_seconds)
            if not messages:
                continue
            if t0 is None:
                t0, cpu0 = time.perf_counter(), time.process_time()
            for msg in messages:
                if msg.error() is None:
                    loads(msg.value())
                    count += 1
        t1, cpu1 = time.perf_counter(), time.process_time()
    finally:
        consumer.close()
    assert t0 is not None
    return {
        "seconds": t1 - t0,
        "events_per_second": events / (t1 - t0),
        "cpu_us_per_event": 1e6 * (cpu1 - cpu0) / events,
    }


ASSIGNED = re.compile(r"partition \S+/(\d+): ")
READ = re.compile(r"^tilewatch_read_events_total(?:\{[^}]*\})? (\S+)$", re.MULTILINE)


def read_events(text: str) -> float:
    """``tilewatch_read_events_total`` of an exposition text, found without parsing the rest
    (parsing every cell's samples with prometheus-client took the bench 0.3-0.5 s per scrape
    at 1,000 cells: the end of a run was seen up to a second late).

    >>> read_events('tilewatch_read_events_total 42.0')
    42.0
    """
    return sum(float(v) for v in READ.findall(text))


def next_wait(samples: list[tuple[float, float]], events: int) -> float:
    """Seconds to the next scrape: :data:`SCRAPE_EVERY`, or less once the rate between the last
    two samples says fewer than that many seconds are left (then :data:`SCRAPE_NEAR_END` after
    80 % of the predicted rest).

    >>> next_wait([(0.0, 0.0), (0.5, 100.0)], 1000)
    0.5
    >>> round(next_wait([(0.0, 0.0), (0.5, 900.0)], 1000), 3)
    0.044
    >>> next_wait([(0.0, 0.0), (0.5, 999.0)], 1000)
    0.02
    """
    if len(samples) < 2:
        return SCRAPE_EVERY
    (t0, n0), (t1, n1) = samples[-2], samples[-1]
    if n1 <= n0 or t1 <= t0:
        return SCRAPE_EVERY
    left = (events - n1) * (t1 - t0) / (n1 - n0)
    if left >= SCRAPE_EVERY:
        return SCRAPE_EVERY
    return max(SCRAPE_NEAR_END, 0.8 * left)


def follow(
    proc: subprocess.Popen[bytes], err: Path, url: str, events: int, partitions: int
) -> dict[str, Any]:
    """From the log line of the last partition assigned to the first scrape (every
    :data:`SCRAPE_EVERY` s) that shows every record read; the steady rate is the slope of
    ``tilewatch_read_events_total`` between 10 % and 90 % of the records."""
    deadline = time.monotonic() + TIMEOUT
    t_spawn = time.monotonic()

    def check() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"tilewatch exited {proc.returncode}: {err.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"tilewatch did not read {events} records in {TIMEOUT} s")

    while len(set(ASSIGNED.findall(err.read_text(errors="replace")))) < partitions:
        check()
        time.sleep(0.02)
    t0, cpu0 = time.monotonic(), cpu_seconds(proc.pid)
    samples: list[tuple[float, float]] = [(t0, 0.0)]
    while samples[-1][1] < events:
        check()
        time.sleep(next_wait(samples, events))
        try:
            text = scrape(url, timeout=5.0)
        except OSError:
            continue
        taken = time.monotonic()  # before the bench's own parsing
        samples.append((taken, read_events(text)))
    t1, cpu1 = samples[-1][0], cpu_seconds(proc.pid)
    lo = next(s for s in samples if s[1] >= 0.1 * events)
    hi = next(s for s in samples if s[1] >= 0.9 * events)
    steady = (hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0] else math.nan
    first = next(s for s in samples if s[1] > 0)
    return {
        "assign_seconds": t0 - t_spawn,
        "first_read_seconds": first[0] - t0,
        "samples": [(round(t - t0, 2), int(n)) for t, n in samples],
        "seconds": t1 - t0,
        "events_per_second": events / (t1 - t0),
        "steady_events_per_second": steady,
        "cpu_us_per_event": 1e6 * (cpu1 - cpu0) / events,
    }


def run_process(
    bootstrap: str,
    events: int,
    cells: int,
    partitions: int,
    client: str,
    spy: Path | None = None,
) -> dict:
    group = f"bench-{client}-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-confluent-") as tmp:
        config = write_config(Path(tmp) / "tilewatch.toml", bootstrap, group, port, cells)
        text = config.read_text().replace("[kafka]\n", f'[kafka]\nclient_library = "{client}"\n', 1)
        config.write_text(text)
        proc, err = start(config, client)
        recorder = None if spy is None else start_py_spy(spy, proc.pid, client)
        try:
            run = follow(proc, err, f"http://127.0.0.1:{port}/metrics", events, partitions)
        finally:
            profile = None if recorder is None else stop_py_spy(*recorder)
            code = stop(proc)
        if profile is not None:
            run["profile"] = profile
            print(f"py-spy, tilewatch run with {client}:", profile, flush=True)
        if code != 0:
            raise RuntimeError(f"tilewatch exited {code}: {err.read_text()[-2000:]}")
    return run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clients = ["kafka-python", "confluent"] if args.client == "both" else [args.client]
    load0 = os.getloadavg()[0]
    rounds: list[dict[str, Any]] = []
    with broker_with_topics({TOPIC: args.partitions}) as broker:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            prod = pool.apply(produce, (broker.bootstrap, TOPIC, args.events, args.cells))
        settings = bench_settings(broker.bootstrap, (TOPIC,))
        for _ in range(args.repeat):
            one: dict[str, Any] = {}
            one["floor_a"] = run_floor(settings, args.events)["events_per_second"]
            floor_b = run_floor_b(settings, args.events)
            one["floor_b"] = floor_b["events_per_second"]
            one["floor_b_cpu_us_per_event"] = floor_b["cpu_us_per_event"]
            one["floor_b_defaults"] = run_floor_b(settings, args.events, False)["events_per_second"]
            for client in clients:
                one[client] = run_process(
                    broker.bootstrap, args.events, args.cells, args.partitions, client, args.py_spy
                )
            rounds.append(one)
    med = statistics.median
    result: dict[str, Any] = {
        "events": args.events,
        "cells": args.cells,
        "partitions": args.partitions,
        "load_average": [load0, os.getloadavg()[0]],
        "mean_event_bytes": prod["mean_event_bytes"],
        "rounds": rounds,
        "floor_a": med(r["floor_a"] for r in rounds),
        "floor_b": med(r["floor_b"] for r in rounds),
        "floor_b_defaults": med(r["floor_b_defaults"] for r in rounds),
    }
    rows = [
        ("load average", "{:.2f} -> {:.2f}".format(*result["load_average"])),
        ("floor A (kafka-python)", f"{result['floor_a']:,.0f} events/s"),
        (
            "floor B (confluent)",
            f"{result['floor_b']:,.0f} events/s, "
            f"{med(r['floor_b_cpu_us_per_event'] for r in rounds):.1f} us CPU/event "
            f"(librdkafka's fetch queue defaults: {result['floor_b_defaults']:,.0f} events/s)",
        ),
    ]
    for client in clients:
        rate = med(r[client]["events_per_second"] for r in rounds)
        steady = med(r[client]["steady_events_per_second"] for r in rounds)
        cpu = med(r[client]["cpu_us_per_event"] for r in rounds)
        floor = result["floor_a" if client == "kafka-python" else "floor_b"]
        result[client] = {
            "events_per_second": rate,
            "steady_events_per_second": steady,
            "cpu_us_per_event": cpu,
        }
        rows.append(
            (
                f"tilewatch run, {client}",
                f"{rate:,.0f} events/s end-to-end ({rate / floor:.2f} of its floor), "
                f"{steady:,.0f} steady ({steady / floor:.2f}), {cpu:.1f} us CPU/event",
            )
        )
    if len(clients) == 2:
        ratio = (
            result["confluent"]["events_per_second"] / result["kafka-python"]["events_per_second"]
        )
        result["confluent_over_kafka_python"] = ratio
        rows.append(("confluent / kafka-python", f"{ratio:.2f}x (target >= 2.5x)"))
    print_rows(f"{args.events} events, {args.cells} cells, {args.partitions} partitions", rows)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
