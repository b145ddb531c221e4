"""Peer comparison: Quix Streams on the same events, in the same broker, beside the floor.

Run from the repository root (a script, not a pytest test; see tests/bench/README.md)::

    python tests/bench/peer_quix.py [--events 400000] [--cells 1000] [--partitions 2]
                                    [--venv .bench-venvs/quix] [--quix-version 3.28.1]
                                    [--json out.json]

Quix Streams is not a project dependency: the script creates its own virtualenv (``--venv``,
reused when it exists) and installs ``quixstreams==--quix-version`` from PyPI into it. Then:

1. starts an embedded broker and fills one topic with ``bench_process.py``'s spine events
   (``--events`` over ``--cells`` cells, keyed by cell; one model x segments x regions);
2. the floor (poll + ``orjson.loads``, nothing else), in this process;
3. the Quix app, in the virtualenv's interpreter: a consumer group reading the topic from the
   beginning, JSON values, event time from the ``timestamp`` field, a 60 s tumbling window per
   key (the cell) with ``count`` and ``mean`` of the score (RocksDB state with its changelog
   topic, Quix's defaults), emitting closed windows. A step before the window counts the
   records; the app stops at the N-th. It reports its start-up (process start to the first
   record), its steady rate (first to N-th record) and its CPU seconds (``getrusage``, all
   threads, librdkafka's included) over that span;
4. unless ``--no-tilewatch``: the real ``tilewatch run`` process on the same topic (a fresh
   group), measured as ``bench_process.py`` does, and the ratio of the steady rates.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/peer_quix.py``
    sys.path.insert(0, _ROOT)

from tests.bench.bench_process import PREDICTIONS, produce_spine, run_replicas  # noqa: E402
from tests.bench.harness import (  # noqa: E402
    bench_settings,
    broker_with_topics,
    print_rows,
    run_floor,
    write_json,
)

#: The Quix app, run by the virtualenv's python: ``APP BROKER TOPIC GROUP EVENTS STATE_DIR``.
APP = r"""
import json, resource, sys, time
from datetime import timedelta

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Mean
from quixstreams.models.topics import manager

# The embedded broker's topic configs have no "retention.ms", which Quix reads to configure its
# changelog topics: infinite, as an unset retention would mean.
_derive = manager.TopicManager.derive_topic_config.__func__


def _derive_with_retention(cls, topics):
    for t in topics:
        t.broker_config.extra_config.setdefault("retention.ms", "-1")
    return _derive(cls, topics)


manager.TopicManager.derive_topic_config = classmethod(_derive_with_retention)


def proc_age():
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rpartition(")")[2].split()[19])
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) - ticks / 100.0  # USER_HZ


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


broker, topic_name, group, events, state_dir = sys.argv[1:6]
events = int(events)
app = Application(
    broker_address=broker,
    consumer_group=group,
    auto_offset_reset="earliest",
    state_dir=state_dir,
    loglevel="WARNING",
)
topic = app.topic(
    topic_name,
    value_deserializer="json",
    timestamp_extractor=lambda value, headers, ts, ttype: int(value["timestamp"] * 1000),
)
seen = {"n": 0, "t0": None, "cpu0": None, "startup": None, "t1": None, "cpu1": None}


def count(value):
    seen["n"] += 1
    if seen["t0"] is None:
        seen["t0"], seen["cpu0"], seen["startup"] = time.perf_counter(), cpu(), proc_age()
    if seen["n"] == events:
        seen["t1"], seen["cpu1"] = time.perf_counter(), cpu()
        app.stop()


sdf = app.dataframe(topic)
sdf = sdf.update(count)
sdf = sdf.apply(lambda value: value["score"])
sdf = sdf.tumbling_window(timedelta(seconds=60)).agg(count=Count(), mean=Mean()).final()
app.run()
span = seen["t1"] - seen["t0"]
print(json.dumps({
    "records": seen["n"],
    "startup_seconds": seen["startup"],
    "seconds": span,
    "events_per_second": (events - 1) / span,
    "cpu_us_per_event": 1e6 * (seen["cpu1"] - seen["cpu0"]) / (events - 1),
}))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--cells", type=int, default=1000)
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--venv", type=Path, default=Path(".bench-venvs/quix"))
    p.add_argument("--quix-version", default="3.28.1")
    p.add_argument(
        "--no-tilewatch",
        action="store_true",
        help="skip the real tilewatch run process on the same topic (bench_process.py's run)",
    )
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def ensure_venv(venv: Path, version: str) -> Path:
    """The virtualenv's python, with ``quixstreams==version`` installed (created if missing)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    check = subprocess.run(
        [str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0 or check.stdout.strip() != version:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"quixstreams=={version}"], check=True
        )
    return python


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = ensure_venv(args.venv, args.quix_version)
    load0 = os.getloadavg()[0]
    with (
        broker_with_topics({PREDICTIONS: args.partitions}) as broker,
        tempfile.TemporaryDirectory(prefix="peer-quix-") as tmp,
    ):
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            prod = pool.apply(produce_spine, (broker.bootstrap, args.events, args.cells))
        floor = run_floor(bench_settings(broker.bootstrap, (PREDICTIONS,)), args.events)
        floor["cpu_us_per_event"] = (
            1e6 * floor["main_thread_cpu_share"] * floor["seconds"] / args.events
        )
        app = Path(tmp) / "quix_app.py"
        app.write_text(APP)
        out = subprocess.run(
            [
                str(python),
                str(app),
                broker.bootstrap,
                PREDICTIONS,
                f"quix-{uuid.uuid4().hex[:8]}",
                str(args.events),
                str(Path(tmp) / "state"),
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if out.returncode != 0:
            raise RuntimeError(f"the Quix app failed ({out.returncode}): {out.stderr[-3000:]}")
        quix: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        tilewatch: dict[str, Any] | None = None
        if not args.no_tilewatch:
            run_args = argparse.Namespace(
                profile="spine",
                events=args.events,
                cells=args.cells,
                partitions=args.partitions,
                scrape_interval=15.0,
                client=None,
                py_spy=None,
            )
            tilewatch = run_replicas(
                1, run_args, broker.bootstrap, {PREDICTIONS: args.events}, Path(tmp), None
            )
    if quix["records"] != args.events:
        raise RuntimeError(f"Quix read {quix['records']} records, expected {args.events}")
    result = {
        "events": args.events,
        "cells": args.cells,
        "partitions": args.partitions,
        "quix_version": args.quix_version,
        "load_average": [load0, os.getloadavg()[0]],
        "produce": prod,
        "floor": floor,
        "quix": quix,
        "quix_ratio_to_floor": quix["events_per_second"] / floor["events_per_second"],
        "tilewatch": tilewatch,
    }
    rows = []
    if tilewatch is not None:
        result["tilewatch_over_quix"] = tilewatch["events_per_second"] / quix["events_per_second"]
        rows = [
            (
                "tilewatch run (default)",
                f"{tilewatch['events_per_second']:,.0f} events/s "
                f"({tilewatch['events_per_second'] / floor['events_per_second']:.2f} of floor), "
                f"{tilewatch['cpu_us_per_event']:.1f} us CPU/event, start-up "
                f"{tilewatch['startup_seconds']:.2f} s",
            ),
            ("tilewatch / quix", f"{result['tilewatch_over_quix']:.1f}x"),
        ]
    print_rows(
        f"Quix Streams {args.quix_version}: tumbling 60 s count + mean per key",
        [
            ("load average", "{:.2f} -> {:.2f}".format(*result["load_average"])),
            (
                "floor",
                f"{floor['events_per_second']:,.0f} events/s, "
                f"{floor['cpu_us_per_event']:.1f} us CPU/event",
            ),
            (
                "quix steady",
                f"{quix['events_per_second']:,.0f} events/s "
                f"({result['quix_ratio_to_floor']:.2f} of floor), "
                f"{quix['cpu_us_per_event']:.1f} us CPU/event",
            ),
            ("quix start-up", f"{quix['startup_seconds']:.2f} s to the first record"),
            *rows,
        ],
    )
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
