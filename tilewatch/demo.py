"""``tilewatch demo``: embedded broker, synthetic traffic, the monitor, a live terminal heatmap."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO

import numpy as np

from tilewatch.aggregators.arrays import IntArray
from tilewatch.aggregators.drift.profile import DriftSettings
from tilewatch.aggregators.health.evaluate import HierarchyResult
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.app import App
from tilewatch.config import parse_config
from tilewatch.config.hierarchy_defaults import default_components
from tilewatch.exporters.prometheus.http import ExporterError
from tilewatch.exporters.terminal import LABELLED, SAMPLES, STATISTICS, render_heatmap
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.producer import produce_traffic
from tilewatch.streams.dev.traffic import TrafficSpec

__all__ = [
    "DEGRADE_CELL_SHARE",
    "DEMO_MODELS",
    "DEMO_TOPIC",
    "demo_config",
    "run_demo",
    "worst_status",
]

log = logging.getLogger(__name__)

DEMO_TOPIC = "predictions"
#: Traffic share of the degrading cell (smb x eu-west): about 500 events and 150 labelled ones
#: per 10 s window at 2,000 events/s, well above ``min_samples`` (30), so every statistic shows
#: it; the seed alone gives it 0.5%, whose 15-39 labelled events hid its accuracy.
DEGRADE_CELL_SHARE = 0.025
#: The demo's models: a binary churn model and a multi-class intent model.
DEMO_MODELS = ("churn", "intent")


def demo_config(bootstrap: str, port: int, window: str = "10s") -> dict[str, Any]:
    """The demo's config, as the TOML tables would read: inline labels enable performance.

    Examples
    --------
    >>> from tilewatch.config import parse_config
    >>> cfg = parse_config(demo_config("127.0.0.1:9092", 0), source="<demo>")
    >>> cfg.labels.source, cfg.labels.threshold, cfg.cells.window_seconds
    ('inline', 0.5, 10.0)
    >>> cfg.events.scores, [c.name for c in cfg.hierarchy.components][-1]
    ('probs', 'classes')
    """
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [DEMO_TOPIC],
            "group_id": "tilewatch-demo",
            "client": {
                "session_timeout_ms": 6000,
                "heartbeat_interval_ms": 2000,
                "max_poll_interval_ms": 20000,
            },
        },
        # A second model, "intent", is multi-class (class probabilities in "probs"); once
        # degraded, its smb x eu-west cell labels "billing" as "technical" (docs/multiclass.md).
        "events": {"scores": "probs"},
        "cells": {"window": window, "grace": "2s"},
        # The traffic carries inline labels (30% of events, Bernoulli of the score): performance
        # per cell, and the degrading cell's accuracy drop. HDDM_A on the error streams: DDM
        # raises false alarms on about half of the stable cells within a few hundred labels.
        "labels": {"threshold": 0.5, "min_samples": 30, "error_detector": "hddm_a"},
        "exporter": {"listen": f"127.0.0.1:{port}"},
        # The demo model's labels are Bernoulli(score): a healthy cell errs on 15-50% of its
        # labelled events (the cells whose scores sit near 0.5 the most) and its binned
        # calibration error reaches about 0.2 from sampling alone. The defaults (0.15/0.25 and
        # 0.05/0.1) would paint every tile red; these leave the healthy cells green and make
        # the degrading one (error ratio about 0.55, calibration error about 0.27) red.
        # The default components and a "classes" one: the multi-class accuracy.
        "hierarchy": {
            "metrics": {
                "error_ratio": {"amber": 0.55, "red": 0.65},
                "calibration_error": {"amber": 0.2, "red": 0.25},
                # Healthy intent cells are right on about 85-95% of their labelled events;
                # the degrading one falls to about 55%.
                "class_accuracy": {
                    "metric": "tilewatch_window_class_accuracy_ratio",
                    "direction": "lower_is_worse",
                    "count": "tilewatch_window_class_labeled_events",
                    "min_samples": 30,
                    "amber": 0.7,
                    "red": 0.6,
                },
            },
            "components": {
                **default_components(DriftSettings(), regression=False),
                "classes": {"members": ["class_accuracy"]},
            },
        },
    }


def per_model_statistic(snap: Snapshot, statistic: str, model: str) -> str:
    """The statistic a model's heatmap shows: ``window_accuracy`` of a model whose labelled
    events are all multi-class ones (class probabilities, no binary score) is
    ``window_class_accuracy``."""
    if statistic != "window_accuracy" or snap.multiclass is None:
        return statistic
    mine = np.array([k[0] == model for k in snap.keys], dtype=bool)
    binary = 0 if snap.performance is None else int(snap.performance.stats.labeled[mine].sum())
    multi = int(np.asarray(snap.multiclass.labeled)[mine].sum())
    return "window_class_accuracy" if multi > 0 and binary == 0 else statistic


def worst_status(result: HierarchyResult) -> IntArray | None:
    """Each cell's worst component status (-1: no verdict), or None without components."""
    if not result.components:
        return None
    worst: IntArray = np.max(np.vstack([c.status for c in result.components]), axis=0)
    return worst


@contextlib.contextmanager
def _no_interrupts(out: TextIO) -> Iterator[None]:
    """While the demo stops, a second Ctrl-C (or SIGTERM) only says so; it does not abort the
    clean-up half way (which would leave the broker to die before its clients)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        print("tilewatch demo: still stopping, one moment", file=out, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_demo(
    *,
    duration: float | None = None,
    statistic: str = "window_score_mean",
    port: int = 9464,
    rate: float = 2000.0,
    window: str = "10s",
    refresh: float = 3.0,
    out: TextIO = sys.stdout,
    color: bool | None = None,
) -> int:
    """Run the whole demo until Ctrl-C or ``duration`` seconds; returns an exit code."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {sorted(STATISTICS)}")
    if color is None:
        color = out.isatty()
    stop = threading.Event()
    broker = EmbeddedBroker().start()
    threads: list[threading.Thread] = []
    app: App | None = None
    try:
        broker.create_topic(DEMO_TOPIC, partitions=6)
        config = parse_config(demo_config(broker.bootstrap, port, window), source="<demo>")
        app = App(config)
        try:
            app.serve()
        except ExporterError as exc:
            if port == 0:
                raise
            app.server.port = 0
            app.serve()
            print(
                f"tilewatch demo: port {port} is busy ({exc.__cause__ or exc}); "
                f"serving on port {app.server.port} instead",
                file=out,
                flush=True,
            )
        print(f"tilewatch demo: broker {broker.bootstrap}, topic {DEMO_TOPIC!r}", file=out)
        print(f"metrics at {app.server.url}   (Ctrl-C stops)", file=out)
        print(f"tile page at {app.server.page_url}", file=out, flush=True)
        monitor = app.monitor
        threads.append(threading.Thread(target=monitor.run, args=(stop,), name="monitor"))
        spec = TrafficSpec(
            models=DEMO_MODELS,
            class_models=(DEMO_MODELS[1],),
            invalid_share=0.01,
            degrade_after_seconds=60.0,
            degrade_cell_share=DEGRADE_CELL_SHARE * len(DEMO_MODELS),  # per degraded cell
        )
        min_samples = {SAMPLES: config.drift.min_samples}
        if config.labels is not None:
            min_samples[LABELLED] = config.labels.performance.min_samples
        threads.append(
            threading.Thread(
                target=produce_traffic,
                args=(broker.bootstrap, DEMO_TOPIC),
                kwargs={"spec": spec, "rate": rate, "stop": stop},
                name="producer",
            )
        )
        for t in threads:
            t.daemon = True
            t.start()
        started = time.monotonic()
        while duration is None or time.monotonic() - started < duration:
            time.sleep(
                min(refresh, max(0.0, (duration or refresh) - (time.monotonic() - started)))
                if duration
                else refresh
            )
            snap = app.state.snapshot()
            status_of = worst_status(app.health.evaluate(snap))
            # One heatmap per model: the binary churn model, then the multi-class intent one
            # (whose accuracy is the multi-class one: top class = label).
            text = "\n\n".join(
                render_heatmap(
                    snap,
                    per_model_statistic(snap, statistic, model),
                    model or None,
                    color=color,
                    min_samples=min_samples,
                    status=status_of,
                )
                for model in [m for m in DEMO_MODELS if m in snap.model_names] or [""]
            )
            ing = snap.ingest
            status = (
                f"read {ing.read}  invalid {sum(ing.invalid.values())}  "
                f"dead-lettered {ing.dead_lettered}  lag {sum(ing.lag.values())}  "
                f"elapsed {time.monotonic() - started:.0f}s"
            )
            if color:
                out.write("\x1b[2J\x1b[H")
            out.write(
                f"{text}\n{status}\nmetrics at {app.server.url}   "
                f"tile page at {app.server.page_url}\n\n"
            )
            out.flush()
    except KeyboardInterrupt:
        print("\ntilewatch demo: stopping", file=out, flush=True)
    finally:
        # Clients first (the monitor finishes its batch and commits, the producer flushes),
        # then the endpoint, then the broker they talk to.
        with _no_interrupts(out):
            stop.set()
            closing = None
            if app is not None:  # the endpoint stops beside the clients (its poll takes 0.5 s)
                closing = threading.Thread(target=app.server.stop, name="endpoint-stop")
                closing.start()
            for t in threads:
                t.join(timeout=30)
            if closing is not None:
                closing.join(timeout=30)
            # In-memory storage, nothing to lose; and Tansu delays its exit on SIGTERM until a
            # pending group join completes (up to 5 s), so it is killed after a short grace.
            broker.stop(timeout=0.2)
    summary = app.monitor.summary if app is not None else None
    counts = (
        ""
        if summary is None
        else f": read {summary.read} records ({summary.valid} valid, {summary.late} late, "
        f"{summary.invalid} invalid)"
    )
    print(f"tilewatch demo: stopped{counts}", file=out, flush=True)
    return 0
