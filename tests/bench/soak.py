"""Soak test: ``tilewatch run`` under steady traffic for a long time; does its memory grow?

Run from the repository root (a script, not a pytest test; see tests/bench/README.md)::

    python tests/bench/soak.py [--rate 30000] [--duration 600] [--partitions 4]
                               [--sample-interval 10] [--max-growth 5] [--json out.json]

What it does:

1. Starts an :class:`~tilewatch.streams.dev.broker.EmbeddedBroker` and creates a topic.
2. Starts ``tilewatch run --config FILE`` as a subprocess (the console script next to this
   interpreter), with 1-minute windows, 30 s grace, checkpoints off, a dead-letter topic, and
   metrics on a free loopback port.
3. Starts a producer in a spawned child process:
   :func:`tilewatch.streams.dev.producer.produce_traffic` (the demo traffic: 8 segments x 6 regions,
   1% invalid records, event time = wall clock, keyed by cell) at ``--rate`` events/s for
   ``--duration`` seconds, with a bulk producer configuration (``linger_ms=50``, ``batch_size=1
   MiB``).
4. Every ``--sample-interval`` seconds, samples the monitor's RSS (``VmRSS`` of
   ``/proc/<pid>/status``), the broker's RSS, the records produced so far and a scrape
   (``tilewatch_read_events_total``, ``tilewatch_consumer_lag_events``), and prints a line.
5. When the producer is done: waits (at most 60 s) for the monitor to read every record, stops
   it with SIGTERM (it must exit 0) and the broker.

It prints the RSS growth between the first sample at or after 20% of the run (after warm-up)
and the last sample taken while producing, in %; the effective produce and consume rates; and
the consumer lag at the end of production and after draining. The exit code is 1 if the growth
is ``--max-growth`` % or more, if the monitor died or did not exit 0, or if it did not read
every record produced; 0 otherwise.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
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
if _ROOT not in sys.path:  # run as ``python tests/bench/soak.py``
    sys.path.insert(0, _ROOT)

from tests.bench.harness import broker_with_topics, current_rss_mb, write_json  # noqa: E402
from tests.e2e.support.process import TILEWATCH_BIN  # noqa: E402
from tests.e2e.support.scrape import parse_metrics, scrape, series, value  # noqa: E402
from tests.helpers import free_port  # noqa: E402

#: The RSS baseline is the first sample at or after this share of the run (warm-up excluded).
BASELINE_SHARE = 0.2
#: Length of the windows (shares of the run) whose median RSS is compared: the one starting at
#: BASELINE_SHARE and the last one of the production.
WINDOW_SHARE = 0.1
#: Seconds to wait for the monitor to catch up once the producer is done.
DRAIN_TIMEOUT = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=30_000.0, help="events/s (default 30000)")
    p.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    p.add_argument("--partitions", type=int, default=4, help="topic partitions (default 4)")
    p.add_argument("--sample-interval", type=float, default=10.0, help="seconds (default 10)")
    p.add_argument(
        "--max-growth", type=float, default=5.0, help="fail at this RSS growth in %% (default 5)"
    )
    p.add_argument("--invalid-share", type=float, default=0.01, help="default 0.01")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    return p.parse_args(argv)


# -- processes ---------------------------------------------------------------------------------


def write_config(path: Path, bootstrap: str, topic: str, port: int) -> Path:
    tag = uuid.uuid4().hex[:8]
    path.write_text(
        "\n".join(
            [
                "[kafka]",
                f'bootstrap_servers = "{bootstrap}"',
                f'topics = ["{topic}"]',
                f'group_id = "soak-{tag}"',
                f'dead_letter_topic = "soak-dlq-{tag}"',
                'commit_interval = "1s"',
                "",
                "[kafka.client]",
                # Tansu answers a group join after about half of session_timeout_ms.
                "session_timeout_ms = 6000",
                "heartbeat_interval_ms = 2000",
                "max_poll_interval_ms = 30000",
                "",
                "[cells]",
                'window = "1m"',
                'grace = "30s"',
                "",
                "[state]",
                "checkpoints = false",
                "",
                "[exporter]",
                f'listen = "127.0.0.1:{port}"',
                "",
            ]
        )
    )
    return path


def _produce_child(
    bootstrap: str,
    topic: str,
    rate: float,
    duration: float,
    invalid_share: float,
    progress: Any,
    conn: Any,
) -> None:
    from tilewatch.streams.dev.producer import produce_traffic
    from tilewatch.streams.dev.traffic import TrafficSpec

    def on_progress(sent: int) -> None:
        progress.value = sent

    try:
        t0 = time.monotonic()
        sent = produce_traffic(
            bootstrap,
            topic,
            spec=TrafficSpec(invalid_share=invalid_share),
            rate=rate,
            duration=duration,
            client={"linger_ms": 50, "batch_size": 1 << 20},
            on_progress=on_progress,
        )
        progress.value = sent
        conn.send(("ok", {"sent": sent, "seconds": time.monotonic() - t0}))
    except BaseException as exc:  # reported by the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


def read_progress(url: str) -> dict[str, Any]:
    """Read, lag (sum over partitions) and invalid count from one scrape."""
    metrics = parse_metrics(scrape(url, timeout=10))
    return {
        "read": value(metrics, "tilewatch_read_events_total") or 0.0,
        "lag": sum(series(metrics, "tilewatch_consumer_lag_events").values()),
        "invalid": sum(series(metrics, "tilewatch_invalid_events_total").values()),
        "partitions": value(metrics, "tilewatch_partitions_assigned") or 0.0,
    }


# -- the run -----------------------------------------------------------------------------------


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    figures["load_average_start"] = os.getloadavg()[0]
    samples: list[dict[str, Any]] = []
    figures["samples"] = samples
    readings: list[tuple[float, float]] = []  # (t, RSS MB) once a second
    figures["readings"] = readings
    topic = f"soak-{uuid.uuid4().hex[:8]}"
    with broker_with_topics({topic: args.partitions}) as broker:
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        config = write_config(workdir / "tilewatch.toml", broker.bootstrap, topic, port)
        broker_pid = broker._process.pid if broker._process is not None else None
        with (workdir / "tilewatch.log").open("wb") as log:
            monitor = subprocess.Popen(
                [TILEWATCH_BIN, "--log-level", "WARNING", "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        ctx = multiprocessing.get_context("spawn")
        progress = ctx.Value("q", 0)
        receiver, sender = ctx.Pipe(duplex=False)
        producer = ctx.Process(
            target=_produce_child,
            args=(
                broker.bootstrap,
                topic,
                args.rate,
                args.duration,
                args.invalid_share,
                progress,
                sender,
            ),
            name="soak-producer",
        )
        try:
            # Let the monitor join its group before traffic starts, so the run is steady state.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and monitor.poll() is None:
                try:
                    if read_progress(url)["partitions"] > 0:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            producer.start()
            sender.close()
            t0 = time.monotonic()
            print(
                f"soak: {args.rate:g} events/s for {args.duration:g} s into {args.partitions} "
                f"partitions; monitor pid {monitor.pid}, metrics {url}"
            )
            print(
                f"{'t (s)':>7} {'RSS (MB)':>9} {'median':>7} {'broker':>8} {'produced':>10} "
                f"{'read':>10} {'consume/s':>10} {'lag':>8}"
            )
            next_sample = t0
            since = 0  # readings[since:] were taken since the last sample
            next_reading = t0
            while producer.is_alive():
                if monitor.poll() is not None:
                    raise RuntimeError(f"tilewatch exited with code {monitor.returncode}")
                now = time.monotonic()
                if now >= next_reading:
                    readings.append((now - t0, current_rss_mb(monitor.pid)))
                    next_reading += 1.0
                if now >= next_sample:
                    samples.append(_sample(now - t0, monitor.pid, broker_pid, progress, url))
                    samples[-1]["rss_median_mb"] = statistics.median(r for _, r in readings[since:])
                    since = len(readings)
                    _print_sample(samples)
                    next_sample += args.sample_interval
                wake = min(next_sample, next_reading)
                time.sleep(min(0.2, max(wake - time.monotonic(), 0.0)))
            produced_at = time.monotonic() - t0
            readings.append((produced_at, current_rss_mb(monitor.pid)))
            samples.append(_sample(produced_at, monitor.pid, broker_pid, progress, url))
            samples[-1]["rss_median_mb"] = statistics.median(r for _, r in readings[since:])
            _print_sample(samples)
            report: tuple[str, Any] = receiver.recv() if receiver.poll(10) else ("error", "none")
            status, payload = report
            if status != "ok":
                raise RuntimeError(f"the producer failed: {payload}")
            sent = int(payload["sent"])
            figures["produced"] = sent
            figures["produce_seconds"] = payload["seconds"]
            figures["lag_end_of_production"] = samples[-1]["lag"]
            # Drain: wait until every record produced is read.
            deadline = time.monotonic() + DRAIN_TIMEOUT
            last = samples[-1]
            while last["read"] < sent and time.monotonic() < deadline:
                time.sleep(0.5)
                last = read_progress(url)
            figures["drain_seconds"] = time.monotonic() - t0 - produced_at
            figures["read_after_drain"] = last["read"]
            figures["lag_after_drain"] = last["lag"]
            figures["rss_after_drain_mb"] = current_rss_mb(monitor.pid)
        finally:
            if producer.is_alive():
                producer.kill()
            producer.join(10)
            if monitor.poll() is None:
                monitor.send_signal(signal.SIGTERM)
                try:
                    monitor.wait(30)
                except subprocess.TimeoutExpired:
                    monitor.kill()
                    monitor.wait()
        figures["exit_code"] = monitor.returncode
    figures["load_average_end"] = os.getloadavg()[0]
    return figures


def _sample(t: float, pid: int, broker_pid: int | None, progress: Any, url: str) -> dict[str, Any]:
    try:
        metrics = read_progress(url)
    except OSError as exc:
        metrics = {"read": math.nan, "lag": math.nan, "invalid": math.nan, "error": repr(exc)}
    return {
        "t": t,
        "rss_mb": current_rss_mb(pid),
        "broker_rss_mb": current_rss_mb(broker_pid) if broker_pid is not None else math.nan,
        "produced": int(progress.value),
        **metrics,
    }


def _print_sample(samples: list[dict[str, Any]]) -> None:
    s = samples[-1]
    rate = math.nan
    if len(samples) > 1 and s["t"] > samples[-2]["t"]:
        rate = (s["read"] - samples[-2]["read"]) / (s["t"] - samples[-2]["t"])
    print(
        f"{s['t']:7.1f} {s['rss_mb']:9.1f} {s['rss_median_mb']:7.1f} {s['broker_rss_mb']:8.0f} "
        f"{s['produced']:10d} {s['read']:10.0f} {rate:10.0f} {s['lag']:8.0f}",
        flush=True,
    )


def analyse(figures: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Add the derived figures; return the reasons the soak failed (empty: it passed)."""
    problems: list[str] = []
    samples = figures["samples"]
    end = samples[-1]
    base = next((s for s in samples if s["t"] >= BASELINE_SHARE * args.duration), samples[0])
    # The RSS moves by about +-10% from one second to the next (fetch buffers, batches being
    # decoded), so single readings cannot resolve 5%. The growth that decides compares the
    # median of the 1 s readings over the window of WINDOW_SHARE of the run starting at
    # BASELINE_SHARE with the median over the last such window of the production.
    readings = figures["readings"]
    span = WINDOW_SHARE * args.duration
    start = BASELINE_SHARE * args.duration
    stop = readings[-1][0]
    early = [r for t, r in readings if start <= t < start + span]
    late = [r for t, r in readings if stop - span <= t]
    base_mb, end_mb = statistics.median(early), statistics.median(late)
    growth = 100.0 * (end_mb - base_mb) / base_mb
    figures.update(
        rss_baseline_mb=base_mb,
        rss_baseline_window=(start, start + span),
        rss_end_mb=end_mb,
        rss_end_window=(stop - span, stop),
        rss_max_mb=max(r for _, r in readings),
        rss_growth_percent=growth,
        rss_point_baseline_mb=base["rss_mb"],
        rss_point_end_mb=end["rss_mb"],
        rss_growth_point_percent=100.0 * (end["rss_mb"] - base["rss_mb"]) / base["rss_mb"],
        produce_rate=figures["produced"] / figures["produce_seconds"],
        consume_rate_steady=(end["read"] - base["read"]) / max(end["t"] - base["t"], 1e-9),
        consume_rate_overall=figures["read_after_drain"]
        / max(end["t"] + figures["drain_seconds"], 1e-9),
    )
    if not growth < args.max_growth:
        problems.append(f"RSS grew {growth:.2f}% (limit {args.max_growth:g}%)")
    if figures["exit_code"] != 0:
        problems.append(f"tilewatch exited with code {figures['exit_code']}")
    if figures["read_after_drain"] != figures["produced"]:
        problems.append(
            f"tilewatch read {figures['read_after_drain']:.0f} of {figures['produced']} records "
            f"within {DRAIN_TIMEOUT:g} s after production ended"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tilewatch-soak-") as tmp:
        try:
            figures = soak(args, Path(tmp))
        except RuntimeError as exc:
            log = Path(tmp) / "tilewatch.log"
            tail = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []
            print(f"soak: error: {exc}", *tail, sep="\n", file=sys.stderr)
            return 1
    problems = analyse(figures, args)
    f = figures
    print(
        f"\nproduced {f['produced']} events in {f['produce_seconds']:.1f} s "
        f"({f['produce_rate']:.0f} events/s, target {args.rate:g})\n"
        f"consumed {f['consume_rate_steady']:.0f} events/s from 20% of the run to its end, "
        f"{f['consume_rate_overall']:.0f} events/s overall (drain {f['drain_seconds']:.1f} s)\n"
        f"consumer lag: {f['lag_end_of_production']:.0f} records at the end of production, "
        f"{f['lag_after_drain']:.0f} after draining\n"
        f"RSS, median of the 1 s readings: {f['rss_baseline_mb']:.1f} MB over "
        f"t={f['rss_baseline_window'][0]:.0f}-{f['rss_baseline_window'][1]:.0f} s, "
        f"{f['rss_end_mb']:.1f} MB over t={f['rss_end_window'][0]:.0f}-"
        f"{f['rss_end_window'][1]:.0f} s: growth {f['rss_growth_percent']:+.2f}% "
        f"(limit {args.max_growth:g}%); max reading {f['rss_max_mb']:.1f} MB\n"
        f"RSS, single readings: {f['rss_point_baseline_mb']:.1f} MB at the first sample at or "
        f"after 20% of the run, {f['rss_point_end_mb']:.1f} MB at the end: "
        f"{f['rss_growth_point_percent']:+.2f}% (not used: noise is about +-10%)\n"
        f"tilewatch exit code {f['exit_code']}; 1-minute load average "
        f"{f['load_average_start']:.2f} at start, {f['load_average_end']:.2f} at the end"
    )
    write_json(args.json, figures)
    for problem in problems:
        print(f"soak: FAILED: {problem}", file=sys.stderr)
    if not problems:
        print("soak: passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
