"""One scrape of a `tilewatch` app's registry at a given number of cells, without Kafka.

Run from the repository root (a script, not a pytest test)::

    python tests/bench/bench_scrape.py [--cells 10000] [--events 200000] [--repeat 3]

Builds the app of the default config (cell and health collectors on one registry, the series
budget raised so nothing is left out), applies ``--events`` spine events spread over ``--cells``
leaf cells (one model x segments x regions, two partitions, ten one-minute windows), refreshes,
then times ``exposition.generate`` (what ``/metrics`` serves) and prometheus-client's
``generate_latest`` on the same registry. It reports CPU time (``time.process_time``), which
other processes on a shared machine disturb far less than wall time, and the wall time too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/bench_scrape.py``
    sys.path.insert(0, _ROOT)

from tests.bench.harness import START_TIME, cell_layout, print_rows  # noqa: E402


def timed(fn: Callable[[], bytes], repeat: int) -> dict[str, Any]:
    cpu, wall, size = [], [], 0
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        size = len(fn())
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall), "bytes": size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=10_000)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)

    from prometheus_client import generate_latest

    from tilewatch.app import App
    from tilewatch.config.loader import parse_config
    from tilewatch.exporters.prometheus.exposition import generate

    cfg = parse_config(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]},
            "cells": {"max_cells": max(args.cells, 10_000)},
            "exporter": {"max_exported_cells": 0},
        }
    )
    app = App(cfg)
    state = app.state
    segments, regions = cell_layout(args.cells)
    keys = [
        ("churn", f"seg-{i:03d}", f"reg-{j:03d}") for i in range(segments) for j in range(regions)
    ]
    rng = np.random.default_rng(1)
    batch = 20_000
    for b in range(0, args.events, batch):
        idx = rng.integers(0, len(keys), batch)
        times = START_TIME + (b / args.events) * 600 + np.sort(rng.random(batch)) * 60
        state.apply(("t", b // batch % 2), [keys[i] for i in idx], times, rng.random(batch), b)
    state.refresh()
    ours = timed(lambda: generate(app.registry), args.repeat)
    theirs = timed(lambda: generate_latest(app.registry), 1)
    print_rows(
        f"{len(keys)} leaf cells, {args.events} events",
        [
            (
                "bulk writer (CPU / wall)",
                f"{ours['cpu']:.3f} / {ours['wall']:.3f} s, {ours['bytes']:,} B",
            ),
            (
                "prometheus-client",
                f"{theirs['cpu']:.3f} / {theirs['wall']:.3f} s, {theirs['bytes']:,} B",
            ),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
