"""Health of every cell and model: component scores, business indicators and their drivers.

:class:`HealthCollector` reads the same :class:`~tilewatch.aggregators.state.replica.Snapshot` as
:class:`~tilewatch.exporters.prometheus.collector.CellCollector`, turns it into per-cell statistic
arrays (:func:`~tilewatch.aggregators.health.inputs.cell_statistics`), evaluates the configured
hierarchy with the pure :func:`tilewatch.aggregators.health.evaluate.evaluate` (a few vectorized
numpy passes over the cells) and yields the metric families of :data:`HEALTH_METRICS`. Scraping
changes no state. The statistics a base metric may name are listed in
:data:`tilewatch.aggregators.health.inputs.STATISTICS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tilewatch.aggregators.health.aging import STALENESS
from tilewatch.aggregators.health.evaluate import Driver, HierarchyInputs, HierarchyResult, evaluate
from tilewatch.aggregators.health.inputs import cell_statistics, model_gaps, version_first_seen
from tilewatch.aggregators.health.settings import HierarchySettings
from tilewatch.aggregators.state.replica import Snapshot
from tilewatch.exporters.prometheus.catalog import MetricDoc

__all__ = ["HEALTH_METRICS", "HealthCollector"]

FloatArray = npt.NDArray[np.float64]


HEALTH_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc(
        "tilewatch_component_score",
        "gauge",
        "component, cell",
        "Health of the component in the cell, 1 - aggregated risk of its base metrics, in "
        "[0, 1] (1 healthy); NaN when no member base metric has a verdict.",
    ),
    MetricDoc(
        "tilewatch_component_status",
        "gauge",
        "component, cell",
        "Status of the component in the cell: 0 green, 1 amber, 2 red; no series without a "
        "verdict.",
    ),
    MetricDoc(
        "tilewatch_model_component_score",
        "gauge",
        "component, model",
        "Health of the component for the model: its worst leaf cell (the model's total cell "
        "when no leaf cell has a verdict); NaN without a verdict.",
    ),
    MetricDoc(
        "tilewatch_model_component_status",
        "gauge",
        "component, model",
        "Status of the model's component (0 green, 1 amber, 2 red); no series without a verdict.",
    ),
    MetricDoc(
        "tilewatch_model_component_cells",
        "gauge",
        "component, model",
        "Leaf cells of the model with a verdict on the component (0: the component is blind).",
    ),
    MetricDoc(
        "tilewatch_business_indicator",
        "gauge",
        "indicator, model",
        "Business indicator of the model (red_traffic_share: ratio of window volume in red "
        "cells; revenue_at_risk: money; fairness_gap: worst gap); NaN when undefined.",
    ),
    MetricDoc(
        "tilewatch_business_status",
        "gauge",
        "indicator, model",
        "Status of the business indicator (0 green, 1 amber, 2 red); no series when undefined.",
    ),
    MetricDoc(
        "tilewatch_health_driver_info",
        "gauge",
        "level, component, indicator, cell, driver, statistic",
        "1 for what drives each status: level (cell, model or business), the component or "
        "indicator, the driving cell's labels, the base metric (driver) and its statistic.",
    ),
    MetricDoc(
        "tilewatch_cell_staleness_seconds",
        "gauge",
        "cell",
        "Seconds between the scrape (wall clock) and the cell's last event time.",
    ),
    MetricDoc(
        "tilewatch_model_version_age_seconds",
        "gauge",
        "model",
        "Seconds since the model's current version was first seen (event time).",
    ),
)
_HELP = {m.name: m.help for m in HEALTH_METRICS}


class HealthCollector(Collector):
    """Yields the health families of :data:`HEALTH_METRICS` from a snapshot per scrape.

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
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        dimensions: tuple[str, ...],
        settings: HierarchySettings,
        *,
        detectors: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._snapshot = snapshot
        self._dimensions = dimensions
        self._cell_labels = ["model", *dimensions]
        self._settings = settings
        self._statistic = {m.name: m.statistic for m in settings.metrics}
        self._detectors = tuple(detectors)
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        """Names and types only, so registering does not take a snapshot."""
        for doc in HEALTH_METRICS:
            yield GaugeMetricFamily(doc.name, doc.help, labels=[])

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
        labels = self._cell_labels
        keys = snap.keys
        present = np.flatnonzero(snap.events_total > 0).tolist()
        ndims = len(self._dimensions)
        score = self._family("tilewatch_component_score", ["component", *labels])
        status = self._family("tilewatch_component_status", ["component", *labels])
        m_score = self._family("tilewatch_model_component_score", ["component", "model"])
        m_status = self._family("tilewatch_model_component_status", ["component", "model"])
        m_cells = self._family("tilewatch_model_component_cells", ["component", "model"])
        info = self._family(
            "tilewatch_health_driver_info",
            ["level", "component", "indicator", *labels, "driver", "statistic"],
        )
        for comp in result.components:
            members = [(name, self._statistic[name]) for name in comp.members]
            for i, s, st, d in zip(
                present,
                comp.score[present].tolist(),
                comp.status[present].tolist(),
                comp.driver[present].tolist(),
                strict=True,
            ):
                score.add_metric([comp.name, *keys[i]], s)
                if st >= 0:
                    status.add_metric([comp.name, *keys[i]], float(st))
                    info.add_metric(["cell", comp.name, "", *keys[i], *members[d]], 1.0)
            for m, model in enumerate(snap.model_names):
                m_score.add_metric([comp.name, model], float(comp.model_score[m]))
                m_cells.add_metric([comp.name, model], float(comp.model_cells[m]))
                if comp.model_status[m] >= 0:
                    m_status.add_metric([comp.name, model], float(comp.model_status[m]))
                    self._driver(info, "model", comp.name, "", model, comp.model_drivers[m], ndims)
        value = self._family("tilewatch_business_indicator", ["indicator", "model"])
        b_status = self._family("tilewatch_business_status", ["indicator", "model"])
        for ind in result.indicators:
            for m, model in enumerate(snap.model_names):
                value.add_metric([ind.name, model], float(ind.value[m]))
                if ind.status[m] >= 0:
                    b_status.add_metric([ind.name, model], float(ind.status[m]))
                    driver = ind.drivers[m]
                    comp_name = driver.component if driver is not None else ""
                    self._driver(info, "business", comp_name, ind.name, model, driver, ndims)
        yield from (score, status, m_score, m_status, m_cells, value, b_status, info)
        stale = self._family("tilewatch_cell_staleness_seconds", labels)
        for i, v in zip(present, result.statistics[STALENESS][present].tolist(), strict=True):
            stale.add_metric(keys[i], v)
        yield stale
        ages = version_first_seen(snap)
        if ages:
            age = self._family("tilewatch_model_version_age_seconds", ["model"])
            for model, first in sorted(ages.items()):
                age.add_metric([model], max(now - first, 0.0))
            yield age

    @staticmethod
    def _family(name: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, _HELP[name], labels=labels)

    @staticmethod
    def _driver(
        info: GaugeMetricFamily,
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
