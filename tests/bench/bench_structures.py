"""Bytes per structure of the default app's state at many cells, without Kafka or tracemalloc.

Run from the repository root (a script, not a pytest test)::

    python tests/bench/bench_structures.py [--cells 100000] [--events 400000] [--steps]

Builds the app of the default config (``[cells] max_cells`` raised to ``--cells``) and applies
``--events`` spine events with latencies as :mod:`bench_memory` does (one model x segments x
regions, two partitions, event time over ten minutes, batches of 500, each key a new tuple of
new strings as the decoder makes them), refreshing every 40 batches as the runtime does about
once a second. Then prints the process's current and peak RSS and the bytes reachable from
each structure (each object counted once, in the order listed: numpy arrays by their buffers,
views as their base, Python objects by ``sys.getsizeof``). ``--steps`` then runs two refreshes
and scrapes and a first delta round of each partition (every unit), printing CPU time and RSS
after each, the peak reset before each step (``/proc/self/clear_refs``). No tracemalloc, so
the CPU times mean something, on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/bench_structures.py``
    sys.path.insert(0, _ROOT)

from tests.bench.harness import START_TIME, cell_layout  # noqa: E402

_SKIP = ("RLock", "Lock", "Event", "Thread", "Condition")


def _status(field: str) -> float:
    """A ``/proc/self/status`` figure in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes reachable from ``obj`` that are not already in ``seen`` (updated)."""
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, type | type(sys) | type(deep_size)) or type(o).__name__ in _SKIP:
            continue
        if isinstance(o, np.ndarray):
            total += sys.getsizeof(o) if o.base is None else 112
            if o.base is not None:
                stack.append(o.base)
            continue
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--steps", action="store_true", help="then refreshes, scrapes, a delta round")
    args = p.parse_args(argv)

    from tilewatch.app import App
    from tilewatch.config.loader import parse_config

    cfg = parse_config(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]},
            "cells": {"max_cells": max(args.cells, 10_000)},
        }
    )
    app = App(cfg)
    state = app.state
    print(f"app built: RSS {_status('VmRSS'):.0f} MB")
    segments, regions = cell_layout(args.cells)
    keys = [
        ("churn", f"seg-{i:03d}", f"reg-{j:03d}") for i in range(segments) for j in range(regions)
    ]
    rng = np.random.default_rng(1)
    batch = 500
    t0 = time.process_time()
    for n, b in enumerate(range(0, args.events, batch)):
        idx = rng.integers(0, len(keys), batch)
        times = START_TIME + (b + np.arange(batch)) / args.events * 600
        latencies = rng.lognormal(3.5, 0.35, batch).tolist()
        batch_keys = [tuple("".join(["", v]) for v in keys[i]) for i in idx]  # new strings
        state.apply(
            ("t", n % 2), batch_keys, times, rng.random(batch), b // 2 + batch, latencies=latencies
        )
        if n % 40 == 0:
            state.refresh()
    state.refresh()
    cpu = time.process_time() - t0
    print(
        f"{args.events} events ({cpu / args.events * 1e6:.1f} us CPU each): "
        f"RSS {_status('VmRSS'):.0f} MB, peak {_status('VmHWM'):.0f} MB"
    )
    seen: set[int] = {id(keys)}
    seen.update(id(k) for k in keys)
    rows: list[tuple[str, int]] = [("registry", deep_size(state.registry, seen))]
    for pkey, part in state.partitions.items():
        name = f"partition {pkey[1]}"
        rows.append(
            (
                f"{name}: counts",
                sum(
                    deep_size(getattr(part, a), seen) for a in ("events", "late", "last_event_time")
                ),
            )
        )
        rows.append((f"{name}: rolling", deep_size(part.rolling, seen)))
        rows.append((f"{name}: {len(part.open)} open windows", deep_size(part.open, seen)))
        rows.append((f"{name}: {len(part.closed)} closed windows", deep_size(part.closed, seen)))
        rows.append((f"{name}: the rest", deep_size(part, seen)))
    for attr in ("history", "forecasts", "window_cache"):
        rows.append((f"state.{attr}", deep_size(getattr(state, attr), seen)))
    rows.append(("state: the rest", deep_size(state, seen)))
    rows.append(("app: the rest (collectors, caches)", deep_size(app, seen)))
    leaves = len(keys)
    total = sum(size for _n, size in rows)
    for name, size in rows:
        print(f"{size / 2**20:8.1f} MB  {size / leaves:6.0f} B/leaf  {name}")
    print(
        f"{total / 2**20:8.1f} MB  {total / leaves:6.0f} B/leaf  "
        f"total ({len(state.registry)} cells)"
    )
    if args.steps:
        _steps(app)
    return 0


def _steps(app: Any) -> None:
    from tilewatch.aggregators.state.partition_delta import partition_delta
    from tilewatch.exporters.prometheus.exposition import generate
    from tilewatch.streams.changelog import settings_fingerprint
    from tilewatch.streams.changelog.delta import plan_delta

    state = app.state
    gc.collect()
    for i in range(2):
        _reset_peak()
        t = time.process_time()
        state.refresh()
        t1 = time.process_time()
        size = len(generate(app.registry))
        print(
            f"refresh {t1 - t:.2f} s, scrape {i + 1} {time.process_time() - t1:.2f} s CPU "
            f"({size:,} B): RSS {_status('VmRSS'):.0f} MB, peak {_status('VmHWM'):.0f} MB"
        )
    fp = settings_fingerprint(state.settings, state.profile, state.labels)
    for pkey, part in state.partitions.items():
        _reset_peak()
        t = time.process_time()
        with state.lock:
            delta = partition_delta(part, None)
        records, _table, _ = plan_delta(pkey, delta, None, "a", 0, set(), fp)
        print(
            f"first delta round of {pkey}: {time.process_time() - t:.2f} s CPU, "
            f"{len(records)} records, {sum(len(v or b'') for _k, v in records):,} B: "
            f"RSS {_status('VmRSS'):.0f} MB, peak {_status('VmHWM'):.0f} MB"
        )
        del records, delta


if __name__ == "__main__":
    sys.exit(main())
