"""Health of every cell and model: component scores, business indicators and their drivers.

:class:`HealthCollector` reads the same :class:`~tilewatch.aggregators.state.replica.Snapshot` as
:class:`~tilewatch.exporters.prometheus.cell_collector.CellCollector`, turns it into per-cell
statistic arrays (:func:`~tilewatch.aggregators.health.inputs.cell_statistics`), evaluates the
configured hierarchy with the pure :func:`tilewatch.aggregators.health.evaluate.evaluate` (a few
vectorized numpy passes over the cells) and yields the metric families of
:data:`~tilewatch.exporters.prometheus.catalog.HEALTH_METRICS`. Scraping changes no state. The
statistics a base metric may name are listed in
:data:`tilewatch.aggregators.health.inputs.STATISTICS`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from tilewatch.aggregators.health.aging import SILENCE, model_clocks
from tilewatch.aggregators.health.evaluate import Driver, HierarchyInputs, HierarchyResult, evaluate
from tilewatch.aggregators.health.inputs import cell_statistics, model_gaps, version_first_seen
from tilewatch.aggregators.health.settings import HierarchySettings
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.budget import CellBudget
from tilewatch.exporters.prometheus.catalog import HEALTH_METRICS
from tilewatch.exporters.prometheus.cell_labels import CellLabels
from tilewatch.exporters.prometheus.exposition import CellFamily
from tilewatch.exporters.prometheus.families import (
    CellRows,
    Family,
    describe,
    family,
    table_family,
)

__all__ = ["HealthCollector"]

FloatArray = npt.NDArray[np.float64]


class HealthCollector(Collector):
    """Yields the health families from a snapshot per scrape.

    Parameters
    ----------
    snapshot
        Returns a fresh consistent snapshot (``ReplicaState.snapshot``).
    dimensions
        The cell dimensions (label names besides ``model``).
    settings
        The hierarchy to evaluate.
    detectors
        Drift detectors that run (cells without a detection read ``drift_active`` 0).
    clock
        Wall-clock time for the aging signals.
    budget
        The series budget shared with the cell collector (the same cells are exported).
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        dimensions: tuple[str, ...],
        settings: HierarchySettings,
        *,
        detectors: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        budget: CellBudget | None = None,
    ) -> None:
        self.budget = budget
        self._snapshot = snapshot
        self._dimensions = dimensions
        self._cell_labels = ["model", *dimensions]
        self._labels = CellLabels(self._cell_labels)
        self._settings = settings
        self._statistic = {m.name: m.statistic for m in settings.metrics}
        self._detectors = tuple(detectors)
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        """Names and types only, so registering does not take a snapshot."""
        yield from describe(HEALTH_METRICS)

    def evaluate(self, snap: Snapshot, now: float | None = None) -> HierarchyResult:
        """The hierarchy evaluated on one snapshot at ``now`` (default: the clock)."""
        now = self._clock() if now is None else now
        stats = cell_statistics(snap, now, self._detectors)
        inputs = HierarchyInputs(
            dimensions=self._dimensions,
            keys=snap.keys,
            is_leaf=snap.is_leaf,
            model_ids=snap.model_ids,
            model_names=snap.model_names,
            statistics=stats,
            gaps=model_gaps(snap),
            version_first_seen=version_first_seen(snap),
            now=now,
        )
        return evaluate(inputs, self._settings)

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        now = self._clock()
        result = self.evaluate(snap, now)
        exported, unexported = (
            (None, 0)
            if self.budget is None
            else self.budget.select(snap, lambda: self._unhealthy(snap, result))
        )
        rows = CellRows(snap, self._cell_labels, self._labels, exported, unexported)
        keys, present = rows.keys, rows.present
        ndims = len(self._dimensions)
        cell_score = self._cell_family("tilewatch_component_score", rows.labels)
        cell_status = self._cell_family("tilewatch_component_status", rows.labels)
        m_score = family("tilewatch_model_component_score")
        m_status = family("tilewatch_model_component_status")
        m_cells = family("tilewatch_model_component_cells")
        info = self._cell_family("tilewatch_health_driver_info", rows.labels)
        cells = self._labels
        present_arr = np.asarray(present, dtype=np.int64)
        for comp in result.components:
            members = [(name, self._statistic[name]) for name in comp.members]
            comp_label = (("component", comp.name),)
            cell_score.add_cells(cells, keys, present, comp.score[present_arr], before=comp_label)
            status_p = comp.status[present_arr]
            driver_p = comp.driver[present_arr]
            ok = status_p >= 0
            rows_ok = present_arr[ok]
            cell_status.add_cells(
                cells, keys, rows_ok, status_p[ok].astype(np.float64), before=comp_label
            )
            driven = driver_p[ok]
            for d in np.unique(driven).tolist():
                sel = rows_ok[driven == d]
                info.add_cells(
                    cells,
                    keys,
                    sel,
                    np.ones(len(sel)),
                    before=(("level", "cell"), ("component", comp.name), ("indicator", "")),
                    after=(("driver", members[d][0]), ("statistic", members[d][1])),
                )
            for m, model in enumerate(snap.model_names):
                m_score.add_metric([comp.name, model], float(comp.model_score[m]))
                m_cells.add_metric([comp.name, model], float(comp.model_cells[m]))
                if comp.model_status[m] >= 0:
                    m_status.add_metric([comp.name, model], float(comp.model_status[m]))
                    self._driver(info, "model", comp.name, "", model, comp.model_drivers[m], ndims)
        value = family("tilewatch_business_indicator")
        b_status = family("tilewatch_business_status")
        for ind in result.indicators:
            for m, model in enumerate(snap.model_names):
                value.add_metric([ind.name, model], float(ind.value[m]))
                if ind.status[m] >= 0:
                    b_status.add_metric([ind.name, model], float(ind.status[m]))
                    driver = ind.drivers[m]
                    comp_name = driver.component if driver is not None else ""
                    self._driver(info, "business", comp_name, ind.name, model, driver, ndims)
        yield from (cell_score, cell_status, m_score, m_status, m_cells, value, b_status, info)
        yield rows.family("tilewatch_cell_silence_seconds", result.statistics[SILENCE])
        clocks = model_clocks(snap.last_event_time, snap.model_ids, len(snap.model_names))
        lags = {
            model: max(now - float(clock), 0.0)
            for model, clock in zip(snap.model_names, clocks.tolist(), strict=True)
            if math.isfinite(clock)
        }
        yield table_family("tilewatch_model_pipeline_lag_seconds", lags)
        first_seen = version_first_seen(snap)
        if first_seen:
            ages = {model: max(now - first, 0.0) for model, first in first_seen.items()}
            yield table_family("tilewatch_model_version_age_seconds", ages)

    def unhealthy(self, snap: Snapshot) -> npt.NDArray[np.bool_]:
        """Cells whose status is amber or red in some component (the budget's priority)."""
        return self._unhealthy(snap, self.evaluate(snap))

    @staticmethod
    def _unhealthy(snap: Snapshot, result: HierarchyResult) -> npt.NDArray[np.bool_]:
        bad = np.zeros(len(snap.keys), dtype=bool)
        for comp in result.components:
            status = np.asarray(comp.status)
            bad[: len(status)] |= status >= 1
        return bad

    @staticmethod
    def _cell_family(name: str, cell: list[str]) -> CellFamily:
        fam = family(name, cell)
        assert isinstance(fam, CellFamily)
        return fam

    @staticmethod
    def _driver(
        info: Family,
        level: str,
        component: str,
        indicator: str,
        model: str,
        driver: Driver | None,
        ndims: int,
    ) -> None:
        if driver is None:
            return
        cell = list(driver.key[1:]) if len(driver.key) == ndims + 1 else [""] * ndims
        info.add_metric(
            [level, component, indicator, model, *cell, driver.metric, driver.statistic], 1.0
        )
