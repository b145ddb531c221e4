"""Wiring: one config in, a running monitor out (state, Kafka loop, collector, endpoint).

This is the only place that knows all three packages; each of them only knows its settings.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)

from tilewatch.aggregators.arrays import IntArray
from tilewatch.aggregators.cells.classes import ClassVocabulary
from tilewatch.aggregators.drift.profile import DriftProfile
from tilewatch.aggregators.health.evaluate import HierarchyResult
from tilewatch.aggregators.state.history import WindowHistory
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.aggregators.vectors.tracker import VectorTracker
from tilewatch.config import Config
from tilewatch.exporters.grafana.dashboard_statistics import dashboard_statistics
from tilewatch.exporters.prometheus.budget import CellBudget
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.exporters.prometheus.health_collector import HealthCollector
from tilewatch.exporters.prometheus.http import MetricsServer
from tilewatch.exporters.prometheus.labeling_collector import LabelingCollector
from tilewatch.exporters.prometheus.vector_families import VectorCollector
from tilewatch.exporters.web import Api, TilePage, TileSource, history_columns
from tilewatch.exporters.web.source import EVENTS, LABELED, history_column_names
from tilewatch.generate import generator_inputs
from tilewatch.progress import DEFAULT_INTERVAL, Progress
from tilewatch.streams.clients import BOOTSTRAP_TIMEOUT_SECONDS, check_reachable
from tilewatch.streams.errors import StreamError
from tilewatch.streams.labeling_sink import LabelingStage
from tilewatch.streams.loop import Monitor
from tilewatch.streams.summary import RunSummary

__all__ = [
    "HISTORY_WINDOWS",
    "App",
    "baseline_thresholds",
    "build_classes",
    "build_profile",
    "build_vectors",
    "register_process_metrics",
    "running_detectors",
    "tile_page",
    "tune_gc",
]

#: Windows of each cell the tile page's time strip shows (the replica's window history depth).
HISTORY_WINDOWS = 30

log = logging.getLogger(__name__)

#: Seconds a health evaluation is reused for the labeling queue's flagged cells.
STATUS_MAX_AGE = 10.0


def build_profile(config: Config) -> DriftProfile | None:
    """The drift profile of a config (None when drift is off); loads ``[baseline] path``."""
    if not config.drift_enabled:
        return None
    baseline = None
    if config.baseline.path is not None:
        from tilewatch.reference_file import load_baseline

        baseline = load_baseline(config.baseline.path)
    events = config.events
    return DriftProfile(
        config.drift, (events.score_min, events.score_max), baseline, classes=events.classes
    )


def build_vectors(config: Config) -> VectorTracker | None:
    """The vector statistics of a config (None without ``[events] embedding`` or
    ``attributions``); the references come from ``[baseline] path`` (``docs/embeddings.md``)."""
    events = config.events
    if events.embedding is None and events.attributions is None:
        return None
    from tilewatch.reference_file import load_vectors, vector_settings

    references = {} if config.baseline.path is None else load_vectors(config.baseline.path)
    if not references:
        log.warning(
            "[events] embedding / attributions are read, but %s has no vector reference "
            "(run tilewatch baseline with them set): their events are only counted "
            '(tilewatch_vector_events_skipped_total{reason="no_reference"})',
            config.baseline.path or "no [baseline] path",
        )
    return VectorTracker(
        vector_settings(config),
        references,
        config.cells.window_seconds,
    )


def build_classes(config: Config, profile: DriftProfile | None = None) -> ClassVocabulary | None:
    """The class columns of multi-class models (None without ``[events] scores``), with the
    per-class thresholds of the config and of the profile's baseline."""
    events = config.events
    if events.scores is None:
        return None
    baseline = {} if profile is None or profile.baseline is None else profile.baseline.models
    return ClassVocabulary(
        events.max_classes,
        events.classes,
        events.class_thresholds,
        {m: b.class_thresholds for m, b in baseline.items() if b.class_thresholds},
    )


def baseline_thresholds(profile: DriftProfile | None) -> dict[str, float]:
    """The decision threshold each model's baseline chose (models without one are left out)."""
    if profile is None or profile.baseline is None:
        return {}
    return {
        name: model.threshold.value
        for name, model in profile.baseline.models.items()
        if model.threshold is not None
    }


def running_detectors(config: Config) -> tuple[str, ...]:
    """The detectors that run per cell (drift detectors, and the label stage's error one)."""
    out = list(config.drift.detectors) if config.drift_enabled else []
    error = getattr(config.labels, "error_detector", None)
    if error:
        out.append(error)
    return tuple(out)


def tile_page(
    state: ReplicaState,
    evaluate: Callable[[Snapshot], HierarchyResult],
    config: Config,
    detectors: Sequence[str],
    vectors: VectorTracker | None = None,
) -> TilePage:
    """The tile page of a monitor: the dashboards' statistics, a window history on ``state``."""
    inputs = generator_inputs(config)
    statistics = dashboard_statistics(inputs)
    labels = config.labels is not None
    state.history = WindowHistory(
        history_column_names(statistics, labels),
        history_columns(statistics, detectors),
        depth=HISTORY_WINDOWS,
    )
    min_samples = {EVENTS: inputs.min_samples}
    if inputs.labels is not None:
        min_samples[LABELED] = inputs.labels.min_samples
    source = TileSource(
        state.snapshot, evaluate, statistics, min_samples, history=state.history, lock=state.lock
    )
    metric_statistic = {m.name: m.statistic for m in config.hierarchy.metrics}
    return TilePage(Api(source, metric_statistic, vectors=vectors, vectors_lock=state.lock))


def register_process_metrics(registry: CollectorRegistry) -> None:
    """prometheus-client's ``process_*`` (memory, CPU, open files, start time), ``python_info``
    and ``python_gc_*`` metrics on ``registry``: the generated alerts on memory and restarts
    read them (``process_*`` exist on Linux only)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


def _process_age_seconds() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None elsewhere)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _log_first_records(read: int) -> None:
    """The start-up time: from process start to the first counted record."""
    age = _process_age_seconds()
    log.info(
        "first records counted (%d read)%s",
        read,
        "" if age is None else f", {age:.2f} s after the process started",
    )


def tune_gc() -> None:
    """Make the garbage collector cheap for a streaming process (process-wide; call once).

    The per-event objects (Kafka records, decoded dicts, key tuples) are short-lived and hold
    no reference cycles, yet their allocation count triggers about 1,600 young collections per
    500k events, about 10% of the loop's time. Objects alive at start-up are frozen out of
    collection and the young-generation threshold is raised; cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@dataclass
class App:
    """A monitor built from a config. Nothing starts until :meth:`serve` or :meth:`run`.

    Parameters
    ----------
    config
        The validated configuration.
    registry
        Where the collector is registered (a fresh one by default; never the global one).
    progress_interval
        Seconds between the progress lines :meth:`run` logs (None: none).
    """

    config: Config
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    progress_interval: float | None = DEFAULT_INTERVAL

    def __post_init__(self) -> None:
        cfg = self.config
        profile = build_profile(cfg)
        self.state = ReplicaState(
            cfg.cells,
            profile,
            labels=cfg.labels,
            thresholds=baseline_thresholds(profile),
            classes=build_classes(cfg, profile),
        )
        self.state.forecasts = cfg.forecast.build()  # docs/forecast.md
        self.state.labeling = cfg.labeling
        queue = cfg.labeling
        #: Embedding and attribution statistics (None: neither is configured).
        self.vectors = build_vectors(cfg)
        self.monitor = Monitor(
            cfg.kafka,
            cfg.events,
            self.state,
            state_settings=cfg.state,
            label_topic=cfg.label_topic,
            labeling=None
            if queue is None
            else lambda factory: LabelingStage(queue, self.state, factory, self._cell_status),
            vectors=self.vectors,
        )
        self.monitor.on_first_records = _log_first_records
        register_process_metrics(self.registry)
        self.health = HealthCollector(
            self.state.snapshot,
            cfg.cells.dimensions,
            cfg.hierarchy,
            detectors=running_detectors(cfg),
        )
        # One series budget for both collectors, so they export the same cells.
        budget = CellBudget(cfg.exporter.max_exported_cells, self.health.unhealthy)
        self.health.budget = budget
        self.cells = CellCollector(self.state.snapshot, cfg.cells.dimensions, budget)
        self.registry.register(self.cells)
        self._warmed: tuple[object, int] = (None, 0)  # (window view, scrapes) of the last warm
        self.monitor.on_idle = self._warm_scrape
        self.registry.register(self.health)
        stage = self.monitor.labeling
        if stage is not None:
            cap, failed = cfg.exporter.max_exported_cells, stage.failed_count
            collector = LabelingCollector(self.state, cfg.cells.dimensions, failed, cap)
            self.registry.register(collector)
        if self.vectors is not None:
            self.registry.register(
                VectorCollector(
                    self.vectors,
                    self.state.lock,
                    cfg.cells.dimensions,
                    cfg.exporter.max_exported_cells,
                )
            )
        self.page = tile_page(
            self.state, self.health.evaluate, cfg, running_detectors(cfg), vectors=self.vectors
        )
        self.server = MetricsServer(
            self.registry,
            cfg.exporter.host,
            cfg.exporter.port,
            tls=cfg.exporter.tls,
            auth=cfg.exporter.basic_auth,
            routes=self.page.routes(),
        )
        self.stop_event = threading.Event()
        self._status: tuple[float, dict[tuple[str, ...], int]] | None = None

    def _cell_status(self, leaf: IntArray) -> IntArray:
        """Worst health status of leaf cells (-1 none, 0 green, 1 amber, 2 red) for the
        labeling queue, from an evaluation at most ``STATUS_MAX_AGE`` seconds old."""
        now = time.monotonic()
        if self._status is None or now - self._status[0] > STATUS_MAX_AGE:
            snap = self.state.snapshot()
            worst = np.full(len(snap.keys), -1, dtype=np.int64)
            for comp in self.health.evaluate(snap).components:
                n = len(comp.status)
                worst[:n] = np.maximum(worst[:n], comp.status)
            self._status = (now, dict(zip(snap.keys, worst.tolist(), strict=True)))
        table, keys = self._status[1], self.state.registry.keys
        return np.array([table.get(keys[i], -1) for i in leaf.tolist()], dtype=np.int64)

    def _warm_scrape(self) -> None:
        """While the consumer is idle, format a newly reported window's families for the next
        scrape (``CellCollector.warm``): once per reported window, and at most once per
        scrape since the last warm (so that nothing is formatted for a scraper that is not
        there, and labels changing a closed window often cost no more than the scrapes do)."""
        view, scrapes = self.state.window_cache, self.cells.scrapes
        if view is None or view is self._warmed[0] or scrapes == self._warmed[1]:
            return
        try:
            formatted = self.cells.warm()
        except Exception:  # a scrape would say the same; never stop the consumer for it
            log.exception("formatting the reported window's families ahead of a scrape failed")
            formatted = 1
        # A warm that found nothing to format (no cell yet, or a scrape was first) does not
        # count against the scrapes.
        self._warmed = (view, scrapes if formatted else self._warmed[1])

    def serve(self) -> MetricsServer:
        """Start the metrics endpoint."""
        self.server.start()
        log.info("metrics at %s, tile page at %s", self.server.url, self.server.page_url)
        return self.server

    def run(self) -> RunSummary:
        """Serve metrics and consume until :attr:`stop_event` is set; then stop everything."""
        if self.server._server is None:
            self.serve()
        tune_gc()
        try:
            try:
                kafka = self.config.kafka
                within = kafka.client.get("bootstrap_timeout_ms")
                if not isinstance(within, int | float) or isinstance(within, bool) or within <= 0:
                    within = BOOTSTRAP_TIMEOUT_SECONDS * 1000
                check_reachable(
                    kafka.bootstrap_servers, timeout=float(within) / 1000, stop=self.stop_event
                )
            except StreamError as exc:
                raise StreamError(
                    f"{exc}; check [kafka] bootstrap_servers in {self.config.source}"
                ) from exc
            if self.stop_event.is_set():  # Ctrl-C while waiting for Kafka
                return self.monitor.summary
            progress_stop = threading.Event()
            if self.progress_interval is not None:
                Progress(self.monitor.summary, self.state, self.progress_interval).start(
                    progress_stop
                )
            try:
                return self.monitor.run(self.stop_event)
            finally:
                progress_stop.set()
        finally:
            self.server.stop()

    def stop(self) -> None:
        """Ask :meth:`run` to finish its batch, commit and return."""
        self.stop_event.set()
