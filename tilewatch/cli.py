"""The ``tilewatch`` command line: run, demo, broker, produce-demo, check-config, baseline,
generate, backfill (the arguments are in :mod:`tilewatch.arguments`)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from tilewatch.aggregators.errors import TilewatchError
from tilewatch.arguments import build_parser
from tilewatch.logs import configure_logging

__all__ = ["main"]


_parser = build_parser  # tests and the docs check walk it


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("tilewatch").info("signal %d: finishing the batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _interrupt_on_signals() -> None:
    """SIGTERM and SIGHUP stop the demo like Ctrl-C, so its broker is always stopped; SIGINT
    raises KeyboardInterrupt even when the parent ignored it (a script's background job
    starts with SIGINT ignored, and Python keeps an inherited ignore), as ``run`` stops on it."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def _run(args: argparse.Namespace) -> int:
    from tilewatch.app import App
    from tilewatch.config import load_config
    from tilewatch.streams.memory import tune_allocator

    tune_allocator()  # before any thread starts (see the module)
    app = App(load_config(args.config), progress_interval=args.progress_interval)
    _stop_on_signals(app.stop_event)
    summary = app.run()
    print(
        f"tilewatch: read {summary.read} records ({summary.valid} valid, {summary.late} late, "
        f"{summary.invalid} invalid); committed "
        + " ".join(f"{t}/{p}={o}" for (t, p), o in sorted(summary.committed.items())),
        flush=True,
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from tilewatch.check import check_files
    from tilewatch.config import load_config

    cfg = load_config(args.config)
    files = check_files(cfg)
    print(f"{cfg.source}: ok")
    print(
        f"  kafka: {', '.join(cfg.kafka.bootstrap_servers)} topics={list(cfg.kafka.topics)} "
        f"group={cfg.kafka.group_id} dead_letter_topic={cfg.kafka.dead_letter_topic}"
    )
    print(
        f"  cells: dimensions={list(cfg.cells.dimensions)} window={cfg.cells.window_seconds}s "
        f"grace={cfg.cells.grace_seconds}s rolling_events={cfg.cells.rolling_events} "
        f"max_cells={cfg.cells.max_cells}"
    )
    exp = cfg.exporter
    scheme = "https" if exp.tls is not None else "http"
    auth = " (basic auth)" if exp.basic_auth is not None else ""
    print(f"  exporter: {scheme}://{exp.host}:{exp.port}/metrics{auth}")
    st = cfg.state
    if st.checkpoints:
        topic = st.topic_for(cfg.kafka.group_id)
        print(f"  state: checkpoints to {topic} every {st.checkpoint_interval_seconds}s")
    else:
        print("  state: in memory only (checkpoints = false)")
    h = cfg.hierarchy
    comps = ", ".join(f"{c.name}({'+'.join(c.member_names)})" for c in h.components)
    print(f"  hierarchy: components {comps or 'none'}")
    print(f"  hierarchy: indicators {', '.join(i.name for i in h.indicators) or 'none'}")
    for note in h.notes:
        print(f"  note: {note}")
    for line in files:
        print(f"  {line}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tilewatch.config import load_config
    from tilewatch.generate import render, stale, write

    cfg = load_config(args.config)
    root = Path(args.root)
    if args.check:
        old = stale(cfg, root)
        for rel in old:
            print(f"stale: {rel}")
        print(f"tilewatch: {len(old)} of {len(render(cfg))} generated files stale")
        return 1 if old else 0
    changed = write(cfg, root)
    for path in changed:
        print(f"wrote {path}")
    print(f"tilewatch: {len(changed)} generated files written, the others were up to date")
    return 0


def _produce(args: argparse.Namespace) -> int:
    from tilewatch.streams.clients import check_reachable
    from tilewatch.streams.dev.producer import produce_traffic
    from tilewatch.streams.dev.traffic import TrafficSpec

    check_reachable(args.bootstrap)
    until = [
        f"{args.duration:g} s" if args.duration else "",
        f"{args.total} events" if args.total else "",
    ]
    print(
        f"tilewatch: sending about {args.rate:g} events/s to {args.topic!r} at "
        f"{','.join(args.bootstrap)} until " + (" or ".join(u for u in until if u) or "Ctrl-C"),
        flush=True,
    )
    stop = threading.Event()
    _stop_on_signals(stop)
    sent = produce_traffic(
        args.bootstrap,
        args.topic,
        spec=TrafficSpec(invalid_share=args.invalid_share, seed=args.seed),
        rate=args.rate,
        duration=args.duration,
        total=args.total,
        stop=stop,
        labels_topic=args.labels_topic,
        label_delay=args.label_delay,
    )
    where = "" if args.labels_topic is None else f", their labels to {args.labels_topic!r}"
    print(f"tilewatch: sent {sent} events to {args.topic!r}{where}")
    return 0


def _backfill(args: argparse.Namespace) -> int:
    from tilewatch.backfill import Backfill, parse_time
    from tilewatch.config import load_config

    cfg = load_config(args.config)
    start = parse_time(args.start)
    end = None if args.end is None else parse_time(args.end)
    backfill = Backfill(
        cfg, start, end, args.output, promtool=args.promtool, job=args.job, instance=args.instance
    )
    result = backfill.run_file(args.input) if args.input else backfill.run_topics()
    print(
        f"tilewatch: backfill read {result.read} records ({result.valid} valid, "
        f"{result.late} late, {result.invalid} invalid); wrote {result.windows} windows, "
        f"{result.samples} samples, {len(result.blocks)} blocks to {args.output}",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tilewatch`` console script."""
    args = _parser().parse_args(argv)
    kafka_logs = configure_logging(args.log_level.upper())
    try:
        return _dispatch(args)
    except TilewatchError as exc:
        error = exc
    finally:
        kafka_logs.flush()  # the client's held-back lines first: the error is the last line
        kafka_logs.remove()
    print(f"tilewatch: error: {error}", file=sys.stderr)
    return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "check-config":
        return _check(args)
    if args.command == "generate":
        return _generate(args)
    if args.command == "demo":
        from tilewatch.demo import run_demo

        _interrupt_on_signals()
        return run_demo(
            duration=args.duration, statistic=args.statistic, port=args.port, rate=args.rate
        )
    if args.command == "broker":
        from tilewatch.dev_broker import run_broker

        _interrupt_on_signals()
        return run_broker(
            host=args.host,
            port=args.port,
            topics=args.topic or ["predictions"],
            partitions=args.partitions,
        )
    if args.command == "produce-demo":
        return _produce(args)
    if args.command == "backfill":
        return _backfill(args)
    if args.command == "baseline":
        from tilewatch.reference_file import run as run_baseline

        return run_baseline(args.config, args.input, args.output, args.format, args.max_bad_share)
    return 2


if __name__ == "__main__":
    sys.exit(main())
