"""Where memory goes at many cells: the default config's state, fed spine events, without Kafka.

Run from the repository root (a script, not a pytest test)::

    python tests/bench/bench_memory.py [--cells 100000] [--events 400000] [--top 12]

Builds the app of the default config (``[cells] max_cells`` raised to ``--cells``), applies
``--events`` spine events with latencies over the leaf cells (one model x segments x regions,
two partitions, event time over ten minutes, batches of 500 as the loop reads them), then
refreshes, scrapes once, takes a delta checkpoint round of both partitions (every unit: the
first round, encoded as the store writes it), then applies 100 and ``--changed`` more events
to one partition and takes a round after each (only the changed units). Prints, after each
step, the process's current and peak RSS (``VmRSS``, ``VmHWM``) and tracemalloc's current and
peak, then tracemalloc's largest allocation sites of the state. tracemalloc slows everything:
read it for memory, never for time.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/bench_memory.py``
    sys.path.insert(0, _ROOT)

from tests.bench.harness import START_TIME, cell_layout, print_rows  # noqa: E402


def _status(field: str) -> float:
    """A ``/proc/self/status`` figure in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--top", type=int, default=12)
    p.add_argument(
        "--changed", type=int, default=5000, help="events of the second measured delta round"
    )
    args = p.parse_args(argv)

    from tilewatch.aggregators.state.partition_delta import partition_delta
    from tilewatch.app import App
    from tilewatch.config.loader import parse_config
    from tilewatch.exporters.prometheus.exposition import generate
    from tilewatch.streams.changelog import settings_fingerprint
    from tilewatch.streams.changelog.delta import plan_delta

    tracemalloc.start(12)
    rows: list[tuple[str, str]] = []

    def step(name: str) -> None:
        cur, peak = tracemalloc.get_traced_memory()
        rows.append(
            (
                name,
                f"RSS {_status('VmRSS'):.0f} MB (peak {_status('VmHWM'):.0f}), "
                f"traced {cur / 2**20:.0f} MB (peak {peak / 2**20:.0f})",
            )
        )

    cfg = parse_config(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]},
            "cells": {"max_cells": max(args.cells, 10_000)},
        }
    )
    app = App(cfg)
    state = app.state
    segments, regions = cell_layout(args.cells)
    keys = [
        ("churn", f"seg-{i:03d}", f"reg-{j:03d}") for i in range(segments) for j in range(regions)
    ]
    step("app built")
    rng = np.random.default_rng(1)
    batch = 500
    t0 = time.process_time()
    for b in range(0, args.events, batch):
        idx = rng.integers(0, len(keys), batch)
        times = START_TIME + (b + np.arange(batch)) / args.events * 600
        latencies = rng.lognormal(3.5, 0.35, batch).tolist()
        part = ("t", b // batch % 2)
        offset = b // 2 + batch
        state.apply(
            part, [keys[i] for i in idx], times, rng.random(batch), offset, latencies=latencies
        )
    cpu = time.process_time() - t0
    step(f"{args.events} events applied ({cpu / args.events * 1e6:.1f} us CPU each, traced)")
    snap = tracemalloc.take_snapshot()
    state.refresh()
    step("refreshed")
    size = len(generate(app.registry))
    step(f"one scrape ({size:,} B)")
    fp = settings_fingerprint(state.settings, state.profile, state.labels)

    def checkpoint_round(marks: dict[Any, Any]) -> tuple[int, int]:
        """One delta round of every partition against ``marks`` (updated): records encoded as
        the store writes them; returns (units, bytes)."""
        units = size = 0
        for pkey, part in state.partitions.items():
            with state.lock:
                delta = partition_delta(part, marks.get(pkey))
            records, table, _ = plan_delta(pkey, delta, None, "a", 0, set(), fp)
            units += len(records) - 1
            size += sum(len(k) + len(v or b"") for k, v in records)
            marks[pkey] = delta.mark
            del records, table, delta
        return units, size

    marks: dict[Any, Any] = {}
    units, size = checkpoint_round(marks)
    step(f"first delta round, every unit ({units} records, {size:,} B)")
    # Then a round after a few events over a few cells: what it writes grows with the change.
    for few in (100, args.changed):
        idx = rng.integers(0, len(keys), few)
        times = START_TIME + 600 + np.arange(few) / few
        lat = rng.lognormal(3.5, 0.35, few).tolist()
        state.apply(
            ("t", 0), [keys[i] for i in idx], times, rng.random(few), args.events, latencies=lat
        )
        units, size = checkpoint_round(marks)
        step(f"delta round after {few} more events ({units} records, {size:,} B)")
    leaves = len(keys)
    print_rows(f"{leaves} leaf cells, {args.events} events, default config", rows)
    # Group by the innermost frame in this repository (numpy's frames say little).
    sites: dict[str, int] = {}
    for s in snap.statistics("traceback"):
        frame = next(
            (
                f
                for f in reversed(s.traceback)
                if _ROOT in f.filename
                and "/.venv/" not in f.filename
                and not f.filename.endswith("aggregators/arrays.py")  # grow(): its callers
            ),
            s.traceback[-1],
        )
        site = f"{frame.filename.removeprefix(_ROOT + '/')}:{frame.lineno}"
        sites[site] = sites.get(site, 0) + s.size
    total = sum(sites.values())
    print(f"\ntraced after the events: {total / 2**20:.0f} MB, {total / leaves:.0f} B per leaf")
    for site, size in sorted(sites.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{size / 2**20:8.1f} MB  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
