"""What the tile page reads: one snapshot, its health, and each page statistic as arrays.

:class:`TileSource` takes a snapshot (copied under the state lock by
``ReplicaState.snapshot``), evaluates the configured hierarchy on it exactly as the
:class:`~tilewatch.exporters.prometheus.health_collector.HealthCollector` does, and keeps the
result as a :class:`TileFrame` for ``ttl`` seconds, so the requests of one page refresh (grid,
time views, drivers) share one snapshot and the cost stays that of one scrape. Nothing is
computed per event and nothing in the state changes.

The page's statistics are the dashboards' (:class:`~tilewatch.exporters.grafana.
dashboard_statistics.Statistic`: metric, fixed colour scale, direction, thresholds), read from
the hierarchy's statistic arrays (:func:`statistic_values`); :func:`history_columns` records the
same values per window into the replica's
:class:`~tilewatch.aggregators.state.history.WindowHistory`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.health.evaluate import HierarchyResult
from tilewatch.aggregators.health.inputs import cell_statistics
from tilewatch.aggregators.state.history import HistoryColumns, WindowHistory
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.aggregators.stats.intervals import t_interval
from tilewatch.exporters.grafana.dashboard_statistics import Statistic

__all__ = [
    "EVENTS",
    "LABELED",
    "TileFrame",
    "TileSource",
    "history_columns",
    "statistic_bounds",
    "statistic_values",
]

#: History columns of the sample counts (besides one column per statistic key).
EVENTS = "tilewatch_window_events"
LABELED = "tilewatch_window_labeled_events"
#: Statistics read from the performance view (their window is the performance window).
_LABEL_COUNT = LABELED


def statistic_values(stat: Statistic, stats: Mapping[str, FloatArray], n: int) -> FloatArray:
    """The statistic per cell: its metric (with selector), or the worst over ``stat.reduce``.

    Cells without a value (statistic absent, gated, no events) read NaN.
    """
    if stat.reduce:
        prefix = f"{stat.metric}{{{stat.reduce}="
        columns = [v for k, v in stats.items() if k.startswith(prefix)]
        if not columns:
            return np.full(n, math.nan)
        table = np.vstack(columns)
        out = np.full(n, math.nan)
        has = ~np.isnan(table).all(axis=0)
        out[has] = np.nanmax(table[:, has], axis=0)
        return out
    values = stats.get(stat.source)
    return np.full(n, math.nan) if values is None else np.asarray(values, dtype=np.float64)


def statistic_bounds(
    stat: Statistic, stats: Mapping[str, FloatArray], snap: Snapshot
) -> tuple[FloatArray, FloatArray] | None:
    """The 95% confidence bounds of the statistic per cell, where tilewatch computes them.

    The score mean's Student-t interval, the Wilson intervals of accuracy and error rate; None
    for the statistics without one (PSI, latency quantile, detector flags, worst-feature shares).
    """
    if stat.reduce:
        return None
    lower, upper = stats.get(f"{stat.metric}_lower"), stats.get(f"{stat.metric}_upper")
    if lower is not None and upper is not None:
        return np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    if stat.metric == "tilewatch_window_score_mean":
        return t_interval(snap.window_mean, snap.window_variance, snap.window_count)
    return None


def _is_label_statistic(stat: Statistic) -> bool:
    return stat.count == _LABEL_COUNT


def history_columns(statistics: Sequence[Statistic], detectors: Sequence[str]) -> HistoryColumns:
    """The reader a :class:`WindowHistory` of the page statistics is built with.

    Two groups: the score-side statistics and the event count at each model's reported window,
    the label statistics and the labeled count at its performance window (the latest window no
    label can change any more).
    """

    def read(snap: Snapshot) -> list[tuple[dict[str, float], dict[str, FloatArray]]]:
        n = len(snap.keys)
        stats = cell_statistics(snap, time.time(), detectors)
        scores: dict[str, FloatArray] = {EVENTS: stats[EVENTS]}
        labels: dict[str, FloatArray] = {}
        for stat in statistics:
            target = labels if _is_label_statistic(stat) else scores
            target[stat.key] = statistic_values(stat, stats, n)
        groups = [(snap.window_start, scores)]
        perf = snap.performance
        if perf is not None and LABELED in stats:
            labels[LABELED] = stats[LABELED]
            size = _window_size(snap)
            starts = {m: end - size for m, end in perf.window_end.items()}
            groups.append((starts, labels))
        return groups

    return read


def _window_size(snap: Snapshot) -> float:
    for model, start in snap.window_start.items():
        end = snap.window_end.get(model)
        if end is not None and end > start:
            return end - start
    return math.nan


def history_column_names(statistics: Sequence[Statistic], labels: bool) -> list[str]:
    """Every column :func:`history_columns` writes."""
    return [EVENTS, *([LABELED] if labels else []), *(s.key for s in statistics)]


@dataclass(frozen=True)
class TileFrame:
    """One snapshot as the page sees it: statistics, bounds, counts, health, flags."""

    snap: Snapshot
    taken: float
    #: Page statistic key -> value per cell.
    values: dict[str, FloatArray]
    #: Page statistic key -> (lower, upper) per cell, where the statistic has an interval.
    bounds: dict[str, tuple[FloatArray, FloatArray]]
    #: Count metric (EVENTS, LABELED) -> count per cell.
    counts: dict[str, FloatArray]
    health: HierarchyResult
    #: Worst component status per cell: -1 no verdict, 0 OK, 1 WARN, 2 CRIT.
    status: IntArray
    #: Drift flag signals set, and detectors active, per cell (names).
    flags: list[list[str]]
    #: (model, *dimension values) -> cell index, for the page's look-ups.
    index: dict[tuple[str, ...], int]


class TileSource:
    """Snapshots for the page, evaluated once per ``ttl`` seconds.

    Parameters
    ----------
    snapshot
        ``ReplicaState.snapshot``.
    evaluate
        The health hierarchy on a snapshot (``HealthCollector.evaluate``).
    statistics
        The dashboards' statistics, in display order.
    min_samples
        Count metric (:data:`EVENTS`, :data:`LABELED`) -> the ``min_samples`` that gates it.
    history, lock
        The replica's window history (None: no time strip) and the lock it is read under.
    ttl
        Seconds a frame is reused.
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        evaluate: Callable[[Snapshot], HierarchyResult],
        statistics: Sequence[Statistic],
        min_samples: Mapping[str, int],
        *,
        history: WindowHistory | None = None,
        lock: threading.RLock | None = None,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot = snapshot
        self._evaluate = evaluate
        self.statistics = tuple(statistics)
        self.by_key = {s.key: s for s in self.statistics}
        self.min_samples = dict(min_samples)
        self.history = history
        self._lock = lock or threading.RLock()
        self._ttl = ttl
        self._clock = clock
        self._frame: TileFrame | None = None
        self._frame_lock = threading.Lock()

    def frame(self) -> TileFrame:
        """The current frame (a fresh one when the last is older than ``ttl``)."""
        with self._frame_lock:
            now = self._clock()
            if self._frame is None or now - self._frame.taken >= self._ttl:
                self._frame = self._build(now)
            return self._frame

    def read_history(
        self, model_ids: IntArray, cells: Sequence[int]
    ) -> tuple[IntArray, dict[str, FloatArray]] | None:
        """The recorded windows of ``cells`` (a copy taken under the state lock)."""
        if self.history is None:
            return None
        with self._lock:
            return self.history.read(model_ids, cells)

    def _build(self, now: float) -> TileFrame:
        snap = self._snapshot()
        result = self._evaluate(snap)
        stats = result.statistics
        n = len(snap.keys)
        values = {s.key: statistic_values(s, stats, n) for s in self.statistics}
        bounds = {}
        for s in self.statistics:
            found = statistic_bounds(s, stats, snap)
            if found is not None:
                bounds[s.key] = found
        counts = {EVENTS: np.asarray(stats[EVENTS], dtype=np.float64)}
        if LABELED in stats:
            counts[LABELED] = np.asarray(stats[LABELED], dtype=np.float64)
        status = np.full(n, -1, dtype=np.int64)
        for comp in result.components:
            status = np.maximum(status, comp.status[:n])
        flags: list[list[str]] = [[] for _ in range(n)]
        if snap.drift is not None:
            for signal, mask in snap.drift.flags.items():
                for i in np.flatnonzero(mask[:n]).tolist():
                    flags[i].append(f"drift flag: {signal}")
        for (cell, detector), (_count, _when, active) in sorted(snap.detections.items()):
            if active and cell < n:
                flags[cell].append(f"{detector} detected a drift")
        index = {tuple(k): i for i, k in enumerate(snap.keys)}
        return TileFrame(snap, now, values, bounds, counts, result, status, flags, index)
