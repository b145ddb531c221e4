"""Scale benchmark: the real ``tilewatch run`` process at 100, 10k and 100k leaf cells.

Run from the repository root (a script, not a pytest test; see tests/bench/README.md)::

    python tests/bench/bench_scale.py [--cells 100,10000] [--events 600000]
                                      [--partitions 2] [--json out.json]

For each cell count it:

1. starts an :class:`~tilewatch.streams.dev.broker.EmbeddedBroker`, creates the input topic and
   fills it (in a spawned child) with ``--events`` spine events keyed by cell (one model x
   segments x regions, ``tests.bench.harness.spine_spec``), event time over ten minutes;
2. reads the same records with the **floor** (poll + ``orjson.loads`` only, in this process);
3. starts ``tilewatch run --config FILE`` (the console script) with the **default config**
   except what must differ: the broker, topic and group, ``[cells] max_cells`` raised to the
   cell count when above the default, a free loopback port, and the Kafka client's session
   timeouts (the embedded broker answers a group join after half of ``session_timeout_ms``);
   checkpoints are on (the default, every 10 s);
4. times it without scraping (a scrape at 100k cells costs seconds of the monitor's CPU): from
   the log line of the last partition assigned to the moment the process goes idle (below 15 %
   of one core over 1 s, read from ``/proc/PID/stat`` every 0.2 s); events/s = events / that
   time, and its CPU time per event; then waits until the group's committed offsets cover
   every record (the checkpoint after the last batch);
5. once every record is committed: times three scrapes of ``/metrics`` (time, bytes, lines;
   one untimed scrape was taken when the endpoint started serving, before any event, as
   Prometheus scrapes from the start),
   reads ``VmHWM`` (peak RSS) of the process, stops it with SIGTERM (final checkpoint), reads
   the changelog topic (bytes written, checkpoint rounds from ``tilewatch_checkpoints_total``);
6. **restore**: starts a second ``tilewatch run`` with the same config and measures the time
   from spawning it to the log line of the last partition restored, then stops it.

With ``--steady``, between 5 and 6 a second ``--events`` events of the same cells, event times
in the next ten minutes, are produced into the topic while no process runs; the restoring
process of 6 then reads them as a backlog, at full speed: from its last partition restored to
idle (as in 4), its events/s against the floor and its CPU per event are the **steady state**
(every cell exists: no cell is created, a checkpoint round writes what changed), the figures
the 100k-against-100-cells target is about. The first pass's figure includes creating every
cell and the first checkpoint of each. (Producing the second pass while the process runs, as
an earlier version did, paces it by the producer, about 19,000 events/s here, so the span's
once-a-second and once-per-interval work is divided by fewer events than the process can
take: that is not its cost per event.)

The figures mean something only when the machine is quiet: it prints the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/bench_scale.py``
    sys.path.insert(0, _ROOT)

from tests.bench.bench_throughput import SPAN_SECONDS, START_TIME, produce  # noqa: E402
from tests.bench.harness import (  # noqa: E402
    bench_settings,
    broker_with_topics,
    print_rows,
    run_floor,
    write_json,
)
from tests.bench.spy import start_py_spy, stop_py_spy  # noqa: E402
from tests.e2e.support.process import TILEWATCH_BIN  # noqa: E402
from tests.e2e.support.scrape import parse_metrics, scrape, value  # noqa: E402
from tests.helpers import free_port  # noqa: E402

#: The default ``[cells] max_cells``: raised to the cell count above it.
DEFAULT_MAX_CELLS = 10_000
#: Give up waiting for the monitor after this many seconds.
TIMEOUT = 900.0
#: Seconds between two looks at the committed offsets.
POLL = 0.2
TOPIC = "scale-predictions"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="100,10000", help="leaf cell counts, comma-separated")
    p.add_argument("--events", type=int, default=600_000, help="events per run (default 600000)")
    p.add_argument("--partitions", type=int, default=2, help="topic partitions (default 2)")
    p.add_argument("--scrapes", type=int, default=3, help="timed scrapes (default 3)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep each size's config and process logs in WORKDIR/cells-N (default: a temp dir)",
    )
    p.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    p.add_argument(
        "--extra",
        default="",
        help='TOML appended to the config, e.g. "[forecast]\\nstatistics = []" (default: none)',
    )
    p.add_argument(
        "--steady",
        action="store_true",
        help="a second pass of --events events over the same cells: steady-state CPU per event",
    )
    p.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="PATH",
        help="with --steady: profile the steady pass with py-spy (collapsed stacks written to "
        "PATH-cellsN.txt; the top entries are printed); py-spy must be installed",
    )
    return p.parse_args(argv)


def write_config(
    path: Path, bootstrap: str, group: str, port: int, cells: int, extra: str = ""
) -> Path:
    lines = [
        "[kafka]",
        f'bootstrap_servers = "{bootstrap}"',
        f'topics = ["{TOPIC}"]',
        f'group_id = "{group}"',
        "",
        "[kafka.client]",
        "session_timeout_ms = 6000",
        "heartbeat_interval_ms = 2000",
        "max_poll_interval_ms = 60000",
        "",
        "[exporter]",
        f'listen = "127.0.0.1:{port}"',
        "",
    ]
    if cells > DEFAULT_MAX_CELLS:
        lines += ["[cells]", f"max_cells = {cells}", ""]
    path.write_text("\n".join(lines) + extra.replace("\\n", "\n"))
    return path


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (kB) of ``pid``."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(rest.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Committed:
    """The group's committed offsets, read without joining the group."""

    def __init__(self, bootstrap: str, group: str, partitions: int) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        self._tps = [TopicPartition(TOPIC, p) for p in range(partitions)]

    def total(self) -> int:
        return sum(self._consumer.committed(tp) or 0 for tp in self._tps)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def changelog_figures(bootstrap: str, topic: str) -> dict[str, Any]:
    """Records and value bytes on the changelog topic (every version: the broker keeps all)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        from kafka import TopicPartition

        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = size = 0
        idle = 0
        while idle < 5:
            batch = consumer.poll(timeout_ms=500, max_records=10_000)
            if not batch:
                idle += 1
                continue
            idle = 0
            for recs in batch.values():
                records += len(recs)
                size += sum(len(r.value or b"") + len(r.key or b"") for r in recs)
    finally:
        consumer.close(autocommit=False)
    return {"records": records, "bytes": size}


def start(config: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    err = config.parent / f"{name}.stderr"
    with err.open("wb") as stderr, (config.parent / f"{name}.stdout").open("wb") as stdout:
        proc = subprocess.Popen(
            [TILEWATCH_BIN, "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    return proc, err


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9
    return int(proc.returncode)


ASSIGNED = re.compile(r"partition \S+/(\d+): ")
#: The process is idle when it uses less than this share of one core over :data:`IDLE_SECONDS`.
IDLE_SHARE = 0.15
#: CPU share (of one core) that marks the process busy; low, since on a loaded machine a busy
#: process gets well under a core (with 0.5 a run under a load average of 7 never started).
BUSY_SHARE = 0.3
IDLE_SECONDS = 1.0


def follow(
    proc: subprocess.Popen[bytes],
    err: Path,
    committed: Committed,
    events: int,
    partitions: int,
    ready: re.Pattern[str] | None = None,
    committed_total: int | None = None,
) -> dict[str, Any]:
    """Time the run from the moment every partition is assigned (``ready``: the log line that
    says so, per partition) to the moment the process goes idle (it has read everything), from
    its CPU time sampled every :data:`POLL` s; then wait until every record is committed (the
    checkpoint after the last batch; ``committed_total`` records, default ``events``)."""
    ready = ready or ASSIGNED
    deadline = time.monotonic() + TIMEOUT
    t_spawn = time.monotonic()

    def check() -> None:
        if proc.poll() is not None:
            raise RuntimeError(
                f"tilewatch exited with {proc.returncode}: {err.read_text()[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"tilewatch did not finish in {TIMEOUT} s")

    while len({m[1] for m in ready.finditer(err.read_text(errors="replace"))}) < partitions:
        check()
        time.sleep(0.02)
    t0, cpu0 = time.monotonic(), cpu_seconds(proc.pid)
    samples = [(t0, cpu0)]
    rss: list[tuple[float, int]] = []  # (seconds since assignment, RSS MB)
    busy_seen = False
    while True:
        check()
        time.sleep(POLL)
        samples.append((time.monotonic(), cpu_seconds(proc.pid)))
        rss.append((round(samples[-1][0] - t0, 1), proc_status(proc.pid)["VmRSS"] // 1024))
        window = [s for s in samples if s[0] >= samples[-1][0] - IDLE_SECONDS]
        if samples[-1][0] - t0 < IDLE_SECONDS or len(window) < 2:
            continue
        share = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
        if share >= BUSY_SHARE:
            busy_seen = True
        elif busy_seen and share < IDLE_SHARE:
            t1, cpu1 = window[0]  # the idle stretch began here
            break
    while committed.total() < (committed_total or events):
        check()
        time.sleep(POLL)
    return {
        "assign_seconds": t0 - t_spawn,
        "seconds": t1 - t0,
        "events_per_second": events / (t1 - t0),
        "cpu_us_per_event": 1e6 * (cpu1 - cpu0) / events,
        "cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "spawn_to_all_committed_seconds": time.monotonic() - t_spawn,
        "rss_mb_timeline": rss,
    }


def first_scrape(proc: subprocess.Popen[bytes], err: Path, url: str) -> None:
    """Scrape once as soon as the endpoint serves, before any event is counted (a few
    milliseconds), as Prometheus does from the start: the process then knows something
    scrapes, and prepares each newly reported window's text while idle."""
    deadline = time.monotonic() + TIMEOUT
    while "metrics at " not in err.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"tilewatch never served metrics: {err.read_text()[-2000:]}")
        time.sleep(0.02)
    scrape(url, timeout=30.0)


def timed_scrapes(url: str, n: int) -> dict[str, Any]:
    times, sizes, text = [], [], ""
    for _ in range(n):
        t0 = time.perf_counter()
        text = scrape(url, timeout=120.0)
        times.append(time.perf_counter() - t0)
        sizes.append(len(text.encode()))
    metrics = parse_metrics(text)
    return {
        "seconds_median": statistics.median(times),
        "seconds": times,
        "bytes": sizes[-1],
        "lines": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "read_events_total": value(metrics, "tilewatch_read_events_total"),
        "checkpoints_total": value(metrics, "tilewatch_checkpoints_total"),
        "checkpoint_last_bytes": value(metrics, "tilewatch_checkpoint_last_bytes"),
    }


RESTORED = re.compile(r"partition \S+/(\d+): restored up to offset (\d+)")


def measure_restore(
    config: Path,
    partitions: int,
    backlog: tuple[str, str, int] | None = None,
    spy: tuple[Path, str] | None = None,
) -> dict[str, Any]:
    """Time a second process's restore (spawn to the last partition restored); with
    ``backlog`` (bootstrap, group, events not yet read), then its steady state: the same
    cells, from the last partition restored to idle (:func:`follow`), profiled by py-spy
    when ``spy`` (path prefix, name) is given."""
    proc, err = start(config, "restore")
    steady = None
    t0 = time.monotonic()
    seen: dict[int, float] = {}
    serving: float | None = None
    try:
        while len(seen) < partitions:
            if proc.poll() is not None:
                raise RuntimeError(f"restoring tilewatch exited with {proc.returncode}")
            if time.monotonic() - t0 > TIMEOUT:
                raise RuntimeError("partitions not restored in time")
            text = err.read_text(errors="replace")
            if serving is None and "metrics at " in text:
                serving = time.monotonic() - t0
            for m in RESTORED.finditer(text):
                seen.setdefault(int(m[1]), time.monotonic() - t0)
            time.sleep(0.05)
        hwm = proc_status(proc.pid)["VmHWM"] / 1024
        if backlog is not None:
            bootstrap, group, events = backlog
            committed = Committed(bootstrap, group, partitions)
            recorder = None if spy is None else start_py_spy(spy[0], proc.pid, spy[1])
            try:
                total = committed.total() + events
                steady = follow(proc, err, committed, events, partitions, RESTORED, total)
            finally:
                committed.close()
                profile = None if recorder is None else stop_py_spy(*recorder)
            steady["profile"] = profile
            steady["peak_rss_mb"] = proc_status(proc.pid)["VmHWM"] / 1024
    finally:
        code = stop(proc)
    return {
        "steady": steady,
        "spawn_to_restored_seconds": max(seen.values()),
        "spawn_to_serving_seconds": serving,
        "peak_rss_mb": hwm,
        "exit": code,
    }


def run_size(
    cells: int,
    events: int,
    partitions: int,
    scrapes: int,
    extra: str = "",
    steady: bool = False,
    workdir: Path | None = None,
    py_spy: Path | None = None,
) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    with broker_with_topics({TOPIC: partitions}) as broker:
        bootstrap = broker.bootstrap
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(1)
        prod = pool.apply(produce, (bootstrap, TOPIC, events, cells))
        floor = run_floor(bench_settings(bootstrap, (TOPIC,)), events)
        second = None
        group = f"scale-{uuid.uuid4().hex[:8]}"
        keep = None if workdir is None else workdir / f"cells-{cells}"
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(prefix="bench-scale-")
            if keep is None
            else contextlib.nullcontext(str(keep))
        ) as tmp:
            port = free_port()
            config = write_config(
                Path(tmp) / "tilewatch.toml", bootstrap, group, port, cells, extra
            )
            proc, err = start(config, "run")
            committed = Committed(bootstrap, group, partitions)
            try:
                first_scrape(proc, err, f"http://127.0.0.1:{port}/metrics")
                run = follow(proc, err, committed, events, partitions)
                time.sleep(1.0)  # let the loop go idle (refresh on empty poll)
                scrape_fig = timed_scrapes(f"http://127.0.0.1:{port}/metrics", scrapes)
                status = proc_status(proc.pid)
            finally:
                code = stop(proc)
                committed.close()
                pool.terminate()
            if code != 0:
                raise RuntimeError(f"tilewatch exited {code}: {err.read_text()[-2000:]}")
            changelog = changelog_figures(bootstrap, f"{group}-tilewatch-changelog")
            backlog = None
            if steady:  # the second pass waits in the topic for the restoring process
                pool = ctx.Pool(1)
                try:
                    pool.apply(
                        produce,
                        (bootstrap, TOPIC, events, cells, "spine", START_TIME + SPAN_SECONDS),
                    )
                finally:
                    pool.terminate()
                backlog = (bootstrap, group, events)
            spy = None if py_spy is None else (py_spy, f"cells{cells}")
            restore = measure_restore(config, partitions, backlog, spy)
            second = restore.pop("steady")
    rounds = (scrape_fig["checkpoints_total"] or 0) / partitions
    return {
        "cells": cells,
        "events": events,
        "partitions": partitions,
        "load_average": [load0, os.getloadavg()[0]],
        "produce": prod,
        "floor_events_per_second": floor["events_per_second"],
        "run": run,
        "steady": second,
        "steady_ratio": None
        if second is None
        else second["events_per_second"] / floor["events_per_second"],
        "ratio": run["events_per_second"] / floor["events_per_second"],
        "peak_rss_mb": status["VmHWM"] / 1024,
        "rss_mb_end": status["VmRSS"] / 1024,
        "scrape": scrape_fig,
        "changelog": changelog,
        "checkpoint_rounds": rounds,
        "changelog_bytes_per_round": changelog["bytes"] / rounds if rounds else None,
        "restore": restore,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    for cells in [int(c) for c in args.cells.split(",")]:
        r = run_size(
            cells,
            args.events,
            args.partitions,
            args.scrapes,
            args.extra,
            args.steady,
            args.workdir,
            args.py_spy,
        )
        results.append(r)
        s = r["scrape"]
        print_rows(
            f"{cells} leaf cells, {args.events} events, {args.partitions} partitions",
            [
                ("load average", "{:.2f} -> {:.2f}".format(*r["load_average"])),
                ("floor", f"{r['floor_events_per_second']:,.0f} events/s"),
                ("tilewatch", f"{r['run']['events_per_second']:,.0f} events/s"),
                ("ratio", f"{r['ratio']:.2f}"),
                ("CPU per event", f"{r['run']['cpu_us_per_event']:.1f} us"),
                (
                    "steady-state CPU per event",
                    "-"
                    if r["steady"] is None
                    else f"{r['steady']['cpu_us_per_event']:.1f} us "
                    f"({r['steady']['events_per_second']:,.0f} events/s, ratio "
                    f"{r['steady_ratio']:.2f}; peak RSS {r['steady']['peak_rss_mb']:.0f} MB)",
                ),
                ("peak RSS", f"{r['peak_rss_mb']:.0f} MB"),
                (
                    "changelog",
                    f"{r['changelog']['bytes']:,} B in {r['changelog']['records']} records, "
                    f"{r['checkpoint_rounds']:.0f} rounds",
                ),
                (
                    "per checkpoint round",
                    "-"
                    if r["changelog_bytes_per_round"] is None
                    else f"{r['changelog_bytes_per_round']:,.0f} B",
                ),
                (
                    "restore (spawn to restored)",
                    f"{r['restore']['spawn_to_restored_seconds']:.2f} s (serving metrics after "
                    f"{r['restore']['spawn_to_serving_seconds'] or math.nan:.2f} s; peak RSS "
                    f"{r['restore']['peak_rss_mb']:.0f} MB)",
                ),
                (
                    "scrape",
                    f"{s['seconds_median'] * 1000:.0f} ms, {s['bytes']:,} B, {s['lines']:,} lines",
                ),
                ("read_events_total", f"{s['read_events_total']:.0f}"),
            ],
        )
        profile = None if r["steady"] is None else r["steady"]["profile"]
        if profile is not None:
            print(f"  steady pass profile ({profile['samples']} samples): {profile['path']}")
            for kind in ("self", "inclusive"):
                for name, share in profile[kind]:
                    print(f"    {kind:9} {100 * share:5.1f}%  {name}")
        expected = args.events  # the first process's scrape (the second pass is read later)
        if s["read_events_total"] != expected:
            print(f"ERROR: read {s['read_events_total']} of {expected}")
            return 1
    write_json(args.json, {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
