"""Real-process throughput: ``tilewatch run`` as users run it, against the floor, same events.

Run from the repository root (a script, not a pytest test; see tests/bench/README.md)::

    python tests/bench/bench_process.py [--profile spine|drift-labels|multiclass] [--events 400000]
                                        [--cells 1000] [--partitions 2] [--replicas 1]
                                        [--scrape-interval 15] [--client NAME] [--json out.json]

What it does, in one run:

1. starts an :class:`~tilewatch.streams.dev.broker.EmbeddedBroker` and fills the topics (in a
   spawned child): ``spine`` is ``bench_throughput.py``'s traffic (``--events`` events over
   ``--cells`` cells, 3 features); ``drift-labels`` is ``bench_labels.py``'s (predictions with
   3 features on one topic, about 0.9 as many labels on a co-partitioned outcomes topic) plus
   a baseline file of an independent sample of the same generator, so that the drift stage
   (score and feature histograms against the baseline, ADWIN, PageHinkley) and the label join
   (performance, HDDM_A on the errors) all run;
2. the **floor**: a group-less kafka-python consumer polling every topic of the run and calling
   ``orjson.loads`` on every value, nothing else (this process; its main-thread CPU time);
3. ``tilewatch run --config FILE`` (the console script) with the **default config** except what
   must differ: broker, topics, group, a free loopback port, with ``drift-labels`` the
   ``[baseline]`` path and ``[labels]`` (source ``topic``), and ``--client NAME`` as
   ``[kafka] client_library`` (``kafka-python`` or ``confluent``). Checkpoints are on (every
   10 s), the metrics endpoint is up and this script
   scrapes ``/metrics`` every ``--scrape-interval`` seconds, as Prometheus does (gzip
   asked for; median and longest time to the last byte reported);
4. **start-up**: from the process start to its first counted record, as it logs it
   (``first records counted (N read), S s after the process started``, from ``/proc``), with
   the log's milestones seen by this script (metrics served, partitions assigned);
5. **steady state**: from the moment that line appears (a scrape then reads the count) to
   the moment every process goes idle
   (below 15 % of one core over 1 s, read from ``/proc/PID/stat`` every 0.2 s):
   events/s = records read in that span / its length (read from the scrapes), and CPU
   seconds per record of every thread of every replica in that span (the floor: its main
   thread, the only one working);
6. waits until the group's committed offsets cover every record, takes a last scrape and checks
   ``tilewatch_read_events_total`` (summed over the replicas) equals the records produced and,
   for the spine, that the leaf cells' ``tilewatch_events_total`` add up to the events;
7. SIGTERM (final checkpoint), exit code 0 required.

``--replicas 1,2`` runs one replica, then two in one group (a fresh group each, same topic):
the scale-out cost is the CPU per record of two against one. The in-process figures
(``bench_throughput.py``: the ``Monitor`` without checkpoints, endpoint or threads) are the
breakdown of these.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/bench_process.py``
    sys.path.insert(0, _ROOT)

from tests.bench.bench_scale import cpu_seconds, proc_status  # noqa: E402
from tests.bench.harness import (  # noqa: E402
    START_TIME,
    bench_settings,
    broker_with_topics,
    print_rows,
    run_floor,
    spine_spec,
    write_json,
)
from tests.bench.spy import start_py_spy, stop_py_spy  # noqa: E402
from tests.e2e.support.process import TILEWATCH_BIN  # noqa: E402
from tests.e2e.support.scrape import (  # noqa: E402
    leaf_events_total,
    parse_metrics,
    scrape,
    scrape_gzip,
    value,
)
from tests.helpers import free_port  # noqa: E402

PROFILES = ("spine", "drift-labels", "multiclass")
#: Classes per event of the multiclass profile (the spine's traffic with ten probabilities).
CLASSES = 10
PREDICTIONS = "bench-predictions"
OUTCOMES = "bench-outcomes"
#: Give up on a run after this many seconds.
TIMEOUT = 300.0
#: Seconds between two CPU samples of the processes.
SAMPLE = 0.2
#: A process is idle below this share of one core over :data:`IDLE_SECONDS`.
IDLE_SHARE = 0.15
IDLE_SECONDS = 1.0
#: Events of the drift-labels profile's baseline sample.
BASELINE_EVENTS = 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=PROFILES, default="spine")
    p.add_argument("--events", type=int, default=400_000, help="predictions (default 400000)")
    p.add_argument("--cells", type=int, default=1000, help="leaf cells (default 1000)")
    p.add_argument("--partitions", type=int, default=2, help="topic partitions (default 2)")
    p.add_argument(
        "--replicas", default="1", help="replica counts to run, comma-separated (default 1)"
    )
    p.add_argument(
        "--scrape-interval", type=float, default=15.0, help="seconds between scrapes (15)"
    )
    p.add_argument(
        "--client",
        default=None,
        help="the Kafka client library, written as [kafka] client_library = NAME "
        "(kafka-python or confluent; without it, the default client)",
    )
    p.add_argument(
        "--kafka-client",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [kafka.client] setting (repeatable; integers as such), e.g. "
        "session_timeout_ms=6000: the config is then not the default one",
    )
    p.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    p.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="profile the steady span of each replica with py-spy (collapsed stacks written to "
        "PATH-xN-I.txt; the top entries are printed); py-spy must be installed and ptrace allowed",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep configs and logs here (default: a temp dir)",
    )
    args = p.parse_args(argv)
    args.replica_counts = [int(r) for r in args.replicas.split(",")]
    if args.events < 1 or args.cells < 1 or args.partitions < 1:
        p.error("--events, --cells and --partitions must be >= 1")
    if any(r < 1 or r > args.partitions for r in args.replica_counts):
        p.error("each replica count must be between 1 and --partitions")
    return args


# -- traffic -------------------------------------------------------------------------------------


def produce_spine(bootstrap: str, events: int, cells: int) -> dict[str, Any]:
    from tests.bench.bench_throughput import produce

    out = produce(bootstrap, PREDICTIONS, events, cells)
    out["records"] = {PREDICTIONS: events}
    return out


def produce_multiclass(bootstrap: str, events: int, cells: int) -> dict[str, Any]:
    from tests.bench.bench_multiclass import produce_multiclass as produce

    return produce(bootstrap, PREDICTIONS, events, cells, CLASSES)


def produce_drift_labels(bootstrap: str, events: int, cells: int) -> dict[str, Any]:
    from tests.bench.bench_labels import produce_labels

    out = produce_labels(bootstrap, events, cells)
    out["records"] = {PREDICTIONS: out["predictions"], OUTCOMES: out["labels"]}
    return out


def write_bench_baseline(path: Path, cells: int) -> dict[str, Any]:
    """A baseline (as ``tilewatch baseline`` writes it) of an independent sample of the
    drift-labels traffic: the same generator spec, another seed."""
    import dataclasses

    from tilewatch.aggregators.drift.reference import (
        Baseline,
        BaselineSettings,
        ModelColumns,
        build_model_baseline,
    )
    from tilewatch.reference_file import write_baseline
    from tilewatch.streams.dev.traffic import TrafficGenerator

    t0 = time.perf_counter()
    spec = dataclasses.replace(spine_spec(cells), label_share=1.0, seed=8)
    gen = TrafficGenerator(spec, start_time=START_TIME - 3600.0)
    cols = ModelColumns()
    for e in gen.events(BASELINE_EVENTS, spread_seconds=600.0):
        cols.scores.append(e["score"])
        cols.labels.append(e["label"])
        cols.predictions.append(e["prediction"])
        cols.features.append(e["features"])
    settings = BaselineSettings()
    model = build_model_baseline(cols, settings, 0.0, 1.0)
    baseline = Baseline(
        created_at="2026-01-01T00:00:00Z",
        sources=[{"path": "<bench sample>", "format": "generated", "rows": BASELINE_EVENTS}],
        score_range=(0.0, 1.0),
        settings=settings,
        models={"churn": model},
        rows_read=BASELINE_EVENTS,
    )
    write_baseline(baseline, str(path))
    return {"events": BASELINE_EVENTS, "seconds": time.perf_counter() - t0}


def write_config(
    path: Path,
    profile: str,
    bootstrap: str,
    group: str,
    port: int,
    cells: int,
    client: str | None,
    baseline: Path | None,
    kafka_client: list[str] | None = None,
) -> Path:
    """The default config, except the broker, topic, group, port (and the profile's stages)."""
    lines = [
        "[kafka]",
        f'bootstrap_servers = "{bootstrap}"',
        f'topics = ["{PREDICTIONS}"]',
        f'group_id = "{group}"',
    ]
    if client is not None:
        lines.append(f'client_library = "{client}"')
    if kafka_client:
        lines += ["", "[kafka.client]"]
        for setting in kafka_client:
            key, _, val = setting.partition("=")
            lines.append(f"{key.strip()} = {val.strip() if val.strip().isdigit() else repr(val)}")
    lines += ["", "[exporter]", f'listen = "127.0.0.1:{port}"', ""]
    if cells > 10_000:  # the default [cells] max_cells
        lines += ["[cells]", f"max_cells = {cells}", ""]
    if profile == "multiclass":
        names = ", ".join(f'"class_{i:02d}"' for i in range(CLASSES))
        lines += ["[events]", 'scores = "probs"', f"classes = [{names}]", ""]
    if profile == "drift-labels":
        assert baseline is not None
        lines += [
            "[baseline]",
            f'path = "{baseline}"',
            "",
            "[labels]",
            'source = "topic"',
            f'topic = "{OUTCOMES}"',
            "threshold = 0.5",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


# -- the processes --------------------------------------------------------------------------------


class Replica:
    """One ``tilewatch run`` process, its output files, endpoint and CPU samples."""

    def __init__(self, config: Path, name: str, port: int) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.err = config.parent / f"{name}.stderr"
        with self.err.open("wb") as err, (config.parent / f"{name}.stdout").open("wb") as out:
            self.spawned = time.monotonic()
            self.proc = subprocess.Popen(
                [TILEWATCH_BIN, "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.first_count: float | None = None
        #: Seconds from process start to the first counted record, as the process logs it.
        self.startup = 0.0
        self.milestones: dict[str, float] = {}
        self.last_metrics: dict[Any, float] = {}

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.proc.returncode}: "
                f"{self.err.read_text(errors='replace')[-2000:]}"
            )

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def scrape(self, timeout: float = 60.0) -> dict[Any, float] | None:
        try:
            self.last_metrics = parse_metrics(scrape(self.url, timeout=timeout))
        except (urllib.error.URLError, ConnectionError, OSError):
            return None
        return self.last_metrics

    def read(self) -> float:
        """Records read: predictions and outcomes."""
        m = self.last_metrics
        return (value(m, "tilewatch_read_events_total") or 0.0) + (
            value(m, "tilewatch_label_records_total") or 0.0
        )

    def note_milestones(self) -> None:
        text = self.err.read_text(errors="replace")
        now = time.monotonic() - self.spawned
        for name, needle in (
            ("metrics_served", "metrics at "),
            ("partition_assigned", "partition "),
        ):
            if name not in self.milestones and needle in text:
                self.milestones[name] = now

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return int(self.proc.returncode)


FIRST = re.compile(r"first records counted \((\d+) read\), ([\d.]+) s after the process started")


def wait_first_count(replicas: list[Replica], deadline: float) -> None:
    """Wait until each replica logs its first counted records (``tilewatch.app`` logs the
    seconds since its process started); reads its milestones meanwhile."""
    while any(r.first_count is None for r in replicas):
        for r in replicas:
            r.check()
            r.note_milestones()
            if r.first_count is None:
                m = FIRST.search(r.err.read_text(errors="replace"))
                if m is not None:
                    r.first_count = time.monotonic()
                    r.startup = float(m[2])
        if time.monotonic() > deadline:
            raise RuntimeError("no record counted in time")
        time.sleep(0.05)


class Scraper(threading.Thread):
    """Scrapes every replica every ``interval`` seconds, as Prometheus does (gzip asked for:
    ``bytes`` is the compressed size; the time is to the last byte)."""

    def __init__(self, replicas: list[Replica], interval: float) -> None:
        super().__init__(name="bench-scraper", daemon=True)
        self.replicas, self.interval = replicas, interval
        self.stop_event = threading.Event()
        self.seconds: list[float] = []
        self.bytes = 0

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            for r in self.replicas:
                t0 = time.perf_counter()
                try:
                    body = scrape_gzip(r.url, timeout=60.0)
                except (urllib.error.URLError, OSError):
                    continue
                self.seconds.append(time.perf_counter() - t0)
                self.bytes = len(body)


def committed_total(bootstrap: str, group: str, topics: dict[str, int]) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(
            consumer.committed(TopicPartition(t, p)) or 0
            for t, n in topics.items()
            for p in range(n)
        )
    finally:
        consumer.close(autocommit=False)


def run_replicas(
    count: int,
    args: argparse.Namespace,
    bootstrap: str,
    records: dict[str, int],
    tmp: Path,
    baseline: Path | None,
) -> dict[str, Any]:
    total = sum(records.values())
    group = f"bench-process-{uuid.uuid4().hex[:8]}"
    replicas = []
    for i in range(count):
        port = free_port()
        config = write_config(
            tmp / f"r{count}-{i}.toml",
            args.profile,
            bootstrap,
            group,
            port,
            args.cells,
            args.client,
            baseline,
            getattr(args, "kafka_client", None),
        )
        replicas.append(Replica(config, f"r{count}-{i}", port))
    deadline = time.monotonic() + TIMEOUT
    scraper = Scraper(replicas, args.scrape_interval)
    try:
        wait_first_count(replicas, deadline)
        # Steady state starts once every replica counts records.
        t0 = time.monotonic()
        cpu0 = [r.cpu() for r in replicas]
        read0 = 0.0
        for r in replicas:
            r.scrape()
            read0 += r.read()
        scraper.start()
        spies = [
            start_py_spy(args.py_spy, r.proc.pid, f"x{count}-{i}")
            for i, r in enumerate(replicas)
            if args.py_spy is not None
        ]
        samples: list[tuple[float, float]] = [(t0, sum(cpu0))]
        while True:
            for r in replicas:
                r.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replicas did not go idle in time: {samples[-10:]}")
            time.sleep(SAMPLE)
            samples.append((time.monotonic(), sum(r.cpu() for r in replicas)))
            window = [s for s in samples if s[0] >= samples[-1][0] - IDLE_SECONDS]
            if samples[-1][0] - t0 < IDLE_SECONDS or len(window) < 2:
                continue
            share = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
            if (
                share < IDLE_SHARE * count
                and sum(r.read() for r in replicas if r.scrape()) >= total
            ):
                t1, cpu1 = window[0]  # idle, everything read: the idle stretch began here
                break
        profiles = [stop_py_spy(*spy) for spy in spies]
        while committed_total(bootstrap, group, {t: args.partitions for t in records}) < total:
            for r in replicas:
                r.check()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "offsets not committed in time: "
                    f"{committed_total(bootstrap, group, {t: args.partitions for t in records})}"
                    f" of {total}"
                )
            time.sleep(0.5)
        scraper.stop_event.set()
        scraper.join()
        read = 0.0
        leaf = 0.0
        for r in replicas:
            r.scrape()
            read += r.read()
            leaf += leaf_events_total(r.last_metrics)
        peak_rss = [proc_status(r.proc.pid)["VmHWM"] / 1024 for r in replicas]
    finally:
        scraper.stop_event.set()
        codes = [r.stop() for r in replicas]
    if any(codes):
        raise RuntimeError(f"exit codes {codes}")
    if read != total:
        raise RuntimeError(f"read {read} records, produced {total}")
    if args.profile != "drift-labels" and leaf != args.events:
        raise RuntimeError(f"leaf events_total {leaf}, expected {args.events}")
    steady = total - read0
    first = [r.startup for r in replicas]
    return {
        "replicas": count,
        "startup_seconds": max(first),
        "startup_seconds_each": first,
        "milestones": [r.milestones for r in replicas],
        "records_before_steady": read0,
        "steady_seconds": t1 - t0,
        "events_per_second": steady / (t1 - t0),
        "cpu_seconds": cpu1 - sum(cpu0),
        "cpu_us_per_event": 1e6 * (cpu1 - sum(cpu0)) / steady,
        "cpu_share": (cpu1 - sum(cpu0)) / (t1 - t0),
        "scrapes": len(scraper.seconds),
        "scrape_seconds_max": max(scraper.seconds, default=0.0),
        "scrape_seconds_median": statistics.median(scraper.seconds) if scraper.seconds else 0.0,
        "scrape_bytes": scraper.bytes,
        "peak_rss_mb": peak_rss,
        "leaf_events_total": leaf,
        "profiles": profiles,
        # (seconds since the steady span began, cores used over the last sample)
        "cpu_timeline": [
            (round(b[0] - t0, 1), round((b[1] - a[1]) / (b[0] - a[0]), 2))
            for a, b in itertools.pairwise(samples)
            if b[0] <= t1
        ],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load0 = os.getloadavg()
    topics = {PREDICTIONS: args.partitions}
    if args.profile == "drift-labels":
        topics[OUTCOMES] = args.partitions
    result: dict[str, Any] = {
        "profile": args.profile,
        "events": args.events,
        "cells": args.cells,
        "partitions": args.partitions,
        "scrape_interval": args.scrape_interval,
        "client": args.client,
        "kafka_client": args.kafka_client,
        "load_average_at_start": load0,
    }
    with (
        broker_with_topics(topics) as broker,
        tempfile.TemporaryDirectory(prefix="bench-process-") as tmpdir,
    ):
        tmp = Path(tmpdir) if args.workdir is None else args.workdir
        tmp.mkdir(parents=True, exist_ok=True)
        bootstrap = broker.bootstrap
        target = {
            "spine": produce_spine,
            "multiclass": produce_multiclass,
            "drift-labels": produce_drift_labels,
        }[args.profile]
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            prod = pool.apply(target, (bootstrap, args.events, args.cells))
        records: dict[str, int] = prod["records"]
        total = sum(records.values())
        result["produce"] = prod
        baseline = None
        if args.profile == "drift-labels":
            baseline = tmp / "baseline.json"
            result["baseline"] = write_bench_baseline(baseline, args.cells)
        print(
            f"profile {args.profile}: {total} records ({records}) over {args.cells} cells, "
            f"{args.partitions} partitions",
            flush=True,
        )
        floor = run_floor(bench_settings(bootstrap, tuple(records)), total)
        floor["cpu_us_per_event"] = 1e6 * floor["main_thread_cpu_share"] * floor["seconds"] / total
        result["floor"] = floor
        print(
            f"floor      {floor['events_per_second']:>10,.0f} records/s, "
            f"{floor['cpu_us_per_event']:.1f} us CPU/record",
            flush=True,
        )
        runs = []
        for count in args.replica_counts:
            run = run_replicas(count, args, bootstrap, records, tmp, baseline)
            run["ratio_to_floor"] = run["events_per_second"] / floor["events_per_second"]
            run["cpu_ratio_to_floor"] = run["cpu_us_per_event"] / floor["cpu_us_per_event"]
            runs.append(run)
            print(
                f"tilewatch x{count} {run['events_per_second']:>10,.0f} records/s "
                f"({run['ratio_to_floor']:.2f} of floor), {run['cpu_us_per_event']:.1f} us "
                f"CPU/record ({run['cpu_ratio_to_floor']:.2f}x floor), start-up "
                f"{run['startup_seconds']:.2f} s",
                flush=True,
            )
        result["runs"] = runs
    result["load_average_at_end"] = os.getloadavg()
    rows = [
        ("profile", f"{args.profile}, {total:,} records, {args.cells} cells"),
        ("load average (1 min)", f"{load0[0]:.2f} -> {result['load_average_at_end'][0]:.2f}"),
        (
            "floor",
            f"{floor['events_per_second']:,.0f} records/s, {floor['cpu_us_per_event']:.1f} us CPU",
        ),
    ]
    for run in runs:
        n = run["replicas"]
        rows += [
            (
                f"tilewatch x{n} steady",
                f"{run['events_per_second']:,.0f} records/s = {run['ratio_to_floor']:.2f} of floor",
            ),
            (
                f"tilewatch x{n} CPU/record",
                f"{run['cpu_us_per_event']:.1f} us = {run['cpu_ratio_to_floor']:.2f}x floor",
            ),
            (
                f"tilewatch x{n} start-up",
                f"{run['startup_seconds']:.2f} s to the first counted record "
                f"(milestones {run['milestones']})",
            ),
            (
                f"tilewatch x{n} scrapes",
                f"{run['scrapes']} (median {run['scrape_seconds_median'] * 1e3:.0f} ms, max "
                f"{run['scrape_seconds_max'] * 1e3:.0f} ms, {run['scrape_bytes']:,} B gzip); "
                f"peak RSS {run['peak_rss_mb']}",
            ),
        ]
    for run in runs:
        for prof in run["profiles"]:
            print(f"\n== py-spy {prof['path']} ({prof['samples']} samples, busy only)")
            for kind in ("threads", "self", "inclusive"):
                print(f"  -- {kind}")
                for f, share in prof[kind]:
                    print(f"  {share:6.1%}  {f[:150]}")
    if len(runs) > 1:
        base = runs[0]["cpu_us_per_event"]
        for run in runs[1:]:
            rows.append(
                (
                    f"CPU x{run['replicas']} / x{runs[0]['replicas']}",
                    f"{run['cpu_us_per_event'] / base:.2f}",
                )
            )
    print_rows("results", rows)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
