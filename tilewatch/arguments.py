"""The ``tilewatch`` command line's arguments: one sub-parser per command, every option with its
help and default, and the argument types that reject bad values before anything starts."""

from __future__ import annotations

import argparse
import math

from tilewatch import __version__
from tilewatch.exporters.terminal import STATISTICS

__all__ = ["bootstrap_servers", "build_parser", "positive_seconds", "seconds", "share"]


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already says its default;
    required options and ``None`` defaults (which the help explains) get nothing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.required or action.default in (None, argparse.SUPPRESS):
            return text
        if not action.option_strings:
            return text
        default = action.default
        if isinstance(default, bool):
            shown = "on" if default else "off"
        elif isinstance(default, list):
            shown = " ".join(str(d) for d in default)
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})"


def share(text: str) -> float:
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0.0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0 (a duration of 0 or less would stop before starting)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0.0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0.0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected events per second > 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _partitions(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of partitions >= 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a TCP port 0..65535 (0: any free), got {text!r}"
        )
    return value


def bootstrap_servers(text: str) -> list[str]:
    """``HOST:PORT[,HOST:PORT...]``, each with a non-empty host and a port 1..65535."""
    servers = [s.strip() for s in text.split(",") if s.strip()]
    if not servers:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT[,HOST:PORT...], got {text!r}")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise argparse.ArgumentTypeError(
                f"expected HOST:PORT[,HOST:PORT...] (e.g. 127.0.0.1:9092), got {server!r}"
            )
    return servers


def _config(parser: argparse.ArgumentParser, what: str = "TOML config file") -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help=what)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``tilewatch`` console script."""
    fmt = _HelpFormatter
    p = argparse.ArgumentParser(
        prog="tilewatch",
        description="Streaming model-health monitor: Kafka prediction events in, per-cell "
        "statistics, drift and health out to Prometheus.",
        epilog="Start with `tilewatch demo`; `tilewatch COMMAND --help` for a command's options.",
        formatter_class=fmt,
    )
    p.add_argument("--version", action="version", version=f"tilewatch {__version__}")
    p.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of tilewatch's own messages",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=description, formatter_class=fmt)

    run = command(
        "run",
        "consume prediction events and serve metrics",
        "Join the consumer group, consume the [kafka] topics, serve /metrics and the tile page "
        "at [exporter] listen. Ctrl-C or SIGTERM finishes the batch, commits and prints a "
        "summary.",
    )
    _config(run)
    run.add_argument(
        "--progress-interval",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="log a progress line (read, valid, invalid, late, lag, cells, events/s) this often",
    )

    check = command(
        "check-config",
        "validate a config file and the files it names, and print the settings",
        "Validate a config file, load every file it refers to ([baseline] path, TLS "
        "certificates and keys) and print the effective settings. Exit 2 on the first error.",
    )
    _config(check)

    gen = command(
        "generate",
        "write the rules, Alertmanager config, runbooks and dashboards",
        "Write the Prometheus recording and alerting rules (with promtool tests), the "
        "Alertmanager config, the runbooks and the Grafana dashboards derived from a config.",
    )
    _config(gen)
    gen.add_argument("--root", default=".", metavar="DIR", help="repository root to write into")
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file is stale"
    )

    demo = command(
        "demo",
        "embedded broker + synthetic traffic + live heatmap",
        "Start an embedded Kafka-protocol broker, produce synthetic prediction traffic (one "
        "cell, smb x eu-west, degrades after a minute), run the monitor on it and redraw a "
        "terminal heatmap. Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--duration",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stop after SECONDS (default: run until Ctrl-C)",
    )
    demo.add_argument(
        "--statistic",
        default="window_score_mean",
        choices=sorted(STATISTICS),
        metavar="NAME",
        help=f"the heatmap's statistic, one of: {', '.join(sorted(STATISTICS))}",
    )
    demo.add_argument(
        "--port",
        type=_port,
        default=9464,
        help="metrics and tile page port (a busy port falls back to a free one, and says so)",
    )
    demo.add_argument("--rate", type=_positive_rate, default=2000.0, help="events per second")

    broker = command(
        "broker",
        "run the embedded dev broker (no Docker needed) until Ctrl-C",
        "Run the demo's embedded Kafka-protocol broker (Tansu, in memory) on its own, for "
        "`tilewatch run` and `tilewatch produce-demo` without a Kafka of your own. Prints the "
        "bootstrap address; Ctrl-C or SIGTERM stops it (nothing is kept).",
    )
    broker.add_argument("--host", default="127.0.0.1", help="address to listen on")
    broker.add_argument("--port", type=_port, default=9092, help="port (0: any free port)")
    broker.add_argument(
        "--topic",
        action="append",
        default=None,
        metavar="NAME",
        help="topic to create, repeatable (default: predictions)",
    )
    broker.add_argument(
        "--partitions", type=_partitions, default=6, help="partitions of each topic"
    )

    prod = command(
        "produce-demo",
        "send the demo traffic to any Kafka",
        "Send the demo's synthetic prediction traffic, keyed by cell, to a topic of any "
        "Kafka (for example `tilewatch broker`).",
    )
    prod.add_argument(
        "--bootstrap",
        required=True,
        type=bootstrap_servers,
        metavar="HOST:PORT[,HOST:PORT]",
        help="Kafka bootstrap servers",
    )
    prod.add_argument("--topic", default="predictions", help="topic to send to")
    prod.add_argument("--rate", type=_positive_rate, default=2000.0, help="events per second")
    prod.add_argument(
        "--duration",
        type=positive_seconds,
        default=None,
        metavar="SECONDS",
        help="stop after SECONDS (default: until Ctrl-C or --total)",
    )
    prod.add_argument(
        "--total",
        type=_count,
        default=None,
        metavar="N",
        help="stop after N events (default: until Ctrl-C or --duration)",
    )
    prod.add_argument(
        "--invalid-share", type=share, default=0.01, help="share of deliberately invalid records"
    )
    prod.add_argument("--seed", type=int, default=7, help="random seed of the traffic")
    prod.add_argument(
        "--labels-topic",
        default=None,
        help="send the labels to this outcomes topic (same partition count as --topic) "
        "(default: labels inline in the predictions)",
    )
    prod.add_argument(
        "--label-delay",
        type=seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds between a prediction and its label on --labels-topic",
    )

    base = command(
        "baseline",
        "build a reference baseline from a holdout set",
        "Build the per-cell reference baseline (score and feature distributions, label "
        "statistics) from a validation or training set, for drift and data-quality checks.",
    )
    _config(base, "TOML config file ([events], [baseline])")
    base.add_argument(
        "--input",
        required=True,
        action="append",
        metavar="DATA",
        help="data file (repeat for several)",
    )
    base.add_argument("--output", required=True, metavar="FILE", help="baseline JSON to write")
    base.add_argument(
        "--format",
        choices=["csv", "jsonl", "parquet"],
        default=None,
        help="input format (default: from each file's extension)",
    )
    base.add_argument(
        "--max-bad-share",
        type=share,
        default=0.01,
        help="fail when more than this share of rows is malformed",
    )

    back = command(
        "backfill",
        "replay retained history into Prometheus TSDB blocks",
        "Replay the retained range of the [kafka] topics (a consumer outside the group: no "
        "offsets committed, no changelog written) or a JSON Lines / Parquet file of events "
        "through the same aggregation, and write each closed window's metrics, stamped with "
        "the window's end, as Prometheus TSDB blocks (promtool tsdb create-blocks-from "
        "openmetrics). See docs/backfill.md.",
    )
    _config(back)
    back.add_argument(
        "--from", dest="start", required=True, metavar="TIME",
        help="start: epoch seconds, RFC 3339 (2026-12-01T00:00:00Z) or a duration ago (7d)",
    )  # fmt: skip
    back.add_argument(
        "--to", dest="end", default=None, metavar="TIME",
        help="end (same forms, or 'now'; default: the newest record)",
    )  # fmt: skip
    back.add_argument(
        "--input", default=None, metavar="FILE",
        help="a .jsonl or .parquet file of events to read (default: the [kafka] topics)",
    )  # fmt: skip
    back.add_argument(
        "--output", default="backfill-blocks", metavar="DIR",
        help="folder for the TSDB blocks (default: backfill-blocks)",
    )  # fmt: skip
    back.add_argument(
        "--promtool",
        default="promtool",
        metavar="PATH",
        help="promtool to run (default: promtool on the PATH)",
    )
    back.add_argument(
        "--job", default="tilewatch", help="the job label of the live scrapes (default: tilewatch)"
    )
    back.add_argument(
        "--instance", default=None,
        help="the instance label of the live scrapes (default: the [exporter] listen address)",
    )  # fmt: skip
    return p
