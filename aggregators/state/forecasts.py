"""Per-cell forecasts of window statistics, updated once per reported window (never per event).

For each forecast statistic, one :class:`~tilewatch.aggregators.stats.forecast.DampedTrend`
holds a series per cell. :meth:`CellForecasts.record` runs in the consumer thread after a
refresh (under the replica's lock): when a model reports a new window, the statistic of each of
its cells in that window is one observation (a cell without a value, NaN, is left unchanged);
other models' cells are untouched. :meth:`CellForecasts.view` copies the forecasts for a
snapshot. The statistics:

- ``score_mean``: the window's mean score (every window);
- ``score_psi``: the window's debiased score PSI against the cell's reference (with drift);
- ``accuracy``: the accuracy of the latest final labelled window (with ``[labels]``; the
  performance window, which closes later than the score window).

Examples
--------
>>> from tilewatch.aggregators.cells.settings import CellSettings
>>> from tilewatch.aggregators.state.replica import ReplicaState
>>> rs = ReplicaState(CellSettings(dimensions=("segment",), window_seconds=10, grace_seconds=0))
>>> rs.forecasts = CellForecasts(horizon=2)
>>> for w in range(6):  # one event a window, the score rising by 0.1 (5 windows closed)
...     _ = rs.apply(("p", 0), [("m", "a")], np.array([10.0 * w]), np.array([0.1 * w]), 0)
...     rs.refresh()
>>> snap = rs.snapshot()
>>> mean, lower, upper = snap.forecasts["score_mean"]
>>> i = snap.cell(("m", "a"))
>>> np.round(mean[:, i], 3).tolist(), bool(lower[0, i] <= mean[0, i] <= upper[0, i])
([0.432, 0.494], True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray
from tilewatch.aggregators.state.reported import PastWindow, past_window
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.aggregators.stats.forecast import DampedTrend

__all__ = [
    "FORECAST_STATISTICS",
    "MAX_HORIZON",
    "CellForecasts",
    "ForecastSettings",
    "ForecastView",
]

#: The statistics forecast by default, in export order.
FORECAST_STATISTICS = ("accuracy", "score_mean", "score_psi")

#: The longest horizon ``[forecast] horizon`` accepts (windows ahead).
MAX_HORIZON = 20


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    """The ``[forecast]`` section: which statistics each cell forecasts and how many windows
    ahead (no statistics: no forecasts, no forecast series, panels or alert)."""

    statistics: tuple[str, ...] = FORECAST_STATISTICS
    horizon: int = 5

    def build(self) -> CellForecasts | None:
        """The replica's forecasts (None when no statistic is forecast)."""
        return CellForecasts(self.statistics, self.horizon) if self.statistics else None


#: statistic -> (mean, lower, upper), each ``(horizon, cells)``.
ForecastView = dict[str, tuple[FloatArray, FloatArray, FloatArray]]


def _observed(stat: str, snap: Snapshot | PastWindow) -> tuple[FloatArray, dict[str, float]] | None:
    """Each cell's value of ``stat`` in its model's reported window, and the window ends."""
    if stat == "score_mean":
        return snap.window_mean, snap.window_end
    if stat == "score_psi":
        if isinstance(snap, PastWindow):
            return None if snap.score_psi is None else (snap.score_psi, snap.window_end)
        return None if snap.drift is None else (snap.drift.score_psi, snap.window_end)
    if stat == "accuracy":
        perf = snap.performance
        if perf is None or perf.task != "classification":
            return None
        return perf.stats.accuracy, perf.window_end
    raise ValueError(f"no forecast for statistic {stat!r}; known: {FORECAST_STATISTICS}")


class CellForecasts:
    """Forecasts of ``statistics`` for every cell, ``horizon`` windows ahead.

    Parameters
    ----------
    statistics
        Which statistics (of :data:`FORECAST_STATISTICS`).
    horizon
        Windows ahead.
    params
        :class:`DampedTrend` parameters (``alpha``, ``beta``, ``phi``, ``coverage``, ``memory``).
    """

    def __init__(
        self,
        statistics: Sequence[str] = FORECAST_STATISTICS,
        horizon: int = 5,
        **params: Any,
    ) -> None:
        unknown = [s for s in statistics if s not in FORECAST_STATISTICS]
        if unknown or horizon < 1:
            raise ValueError(
                f"forecasts: unknown statistics {unknown} (known: {FORECAST_STATISTICS}) or "
                f"horizon {horizon} < 1"
            )
        self.statistics = tuple(statistics)
        self.horizon = horizon
        self.series = {s: DampedTrend(0, **params) for s in self.statistics}
        self._last: dict[tuple[str, str], float] = {}
        #: The statistics the snapshots provide (accuracy needs labels, PSI drift).
        self.active: set[str] = set()
        self._view: ForecastView = {}
        self._window = -(2**62)  # the latest window number catch_up() recorded
        self._view_cells = -1

    @property
    def coverage(self) -> float:
        """Nominal coverage of the intervals."""
        return next(iter(self.series.values())).coverage if self.series else math.nan

    def record(self, snap: Snapshot | PastWindow) -> bool:
        """Add the newly reported windows of ``snap``; True when a forecast changed."""
        changed = False
        for stat in self.statistics:
            found = _observed(stat, snap)
            if found is None:
                continue
            self.active.add(stat)
            values, ends = found
            new = [
                i
                for i, m in enumerate(snap.model_names)
                if ends.get(m, -math.inf) > self._last.get((stat, m), -math.inf)
            ]
            if not new:
                continue
            for i in new:
                self._last[(stat, snap.model_names[i])] = ends[snap.model_names[i]]
            rows = np.flatnonzero(np.isin(snap.model_ids, new))
            self.series[stat].update(np.asarray(values, dtype=np.float64)[rows], rows)
            changed = True
        if changed:
            self._view_cells = -1
        return changed

    def catch_up(self, state: Any, snap: Snapshot) -> None:
        """Record every window ``state`` (a ReplicaState) closed since the last call, then
        ``snap``: a refresh after a backlog reports only the latest window, so each missed one
        still closed in some partition is read first, its score statistics alone
        (:func:`~tilewatch.aggregators.state.reported.past_window`)."""
        size = state.settings.window_seconds
        ends = list(snap.window_end.values())
        latest = round(max(ends) / size) - 1 if ends else None
        with state.lock:
            closed = {w for part in state.partitions.values() for w in part.closed}
        if latest is not None:
            for w in sorted(w for w in closed if self._window < w < latest):
                past = past_window(state, w)
                with state.lock:
                    self.record(past)
            self._window = max(self._window, latest)
        with state.lock:
            self.record(snap)

    def view(self, n: int) -> ForecastView:
        """The forecasts of the first ``n`` cells (computed once per change; read-only)."""
        if self._view_cells != n:
            out: ForecastView = {}
            for stat, series in self.series.items():
                if stat not in self.active:
                    continue
                series.resize(n)
                mean, lower, upper = series.forecast(self.horizon)
                out[stat] = (mean[:, :n], lower[:, :n], upper[:, :n])
                for a in out[stat]:
                    a.flags.writeable = False
            self._view, self._view_cells = out, n
        return self._view
