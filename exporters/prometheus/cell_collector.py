"""The Prometheus collector of every cell of a replica, read from one snapshot per scrape.

:class:`CellCollector` follows prometheus-client's custom collector protocol. Each scrape takes one
consistent :class:`~tilewatch.aggregators.state.replica.Snapshot` (copied under the state's lock)
and yields fresh metric families outside the lock; nothing is computed per event for Prometheus and
scraping never changes state. Label values are the cell keys themselves (tuples of strings built
once when the cell was created), so a scrape builds no label objects per cell.

The metric names are a public contract, documented in
:mod:`tilewatch.exporters.prometheus.catalog`; the families are built by the ``*_families``
modules, in the order :meth:`CellCollector.collect` lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.budget import CellBudget
from tilewatch.exporters.prometheus.catalog import (
    DRIFT_METRICS,
    FORECAST_METRICS,
    METRICS,
    MULTICLASS_METRICS,
    PERFORMANCE_METRICS,
)
from tilewatch.exporters.prometheus.cell_families import (
    cell_families,
    latency_families,
    model_families,
    version_families,
)
from tilewatch.exporters.prometheus.cell_labels import CellLabels
from tilewatch.exporters.prometheus.drift_families import detection_families, drift_families
from tilewatch.exporters.prometheus.exposition import CellFamily, WindowTexts
from tilewatch.exporters.prometheus.families import CellRows, describe
from tilewatch.exporters.prometheus.forecast_families import forecast_families
from tilewatch.exporters.prometheus.ingest_families import (
    ingest_families,
    invalid_value_families,
)
from tilewatch.exporters.prometheus.multiclass_families import multiclass_families
from tilewatch.exporters.prometheus.performance_families import performance_families

__all__ = ["CellCollector"]


class CellCollector(Collector):
    """Yields the tilewatch metric families from a snapshot taken at scrape time.

    Parameters
    ----------
    snapshot
        Returns a fresh consistent snapshot (``ReplicaState.snapshot``).
    dimensions
        The cell dimensions (label names besides ``model``).
    budget
        The series budget (``[exporter] max_exported_cells``); ``None`` exports every cell.
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        dimensions: tuple[str, ...],
        budget: CellBudget | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._budget = budget
        self._cell_labels = ["model", *dimensions]
        self._labels = CellLabels(self._cell_labels)
        self._window_texts = WindowTexts()
        #: Collections by a scrape (not by :meth:`warm`).
        self.scrapes = 0
        self._warming = False

    def describe(self) -> Iterator[Metric]:
        """Names and types only, so registering does not take a snapshot."""
        yield from describe(
            (*METRICS, *DRIFT_METRICS, *PERFORMANCE_METRICS, *MULTICLASS_METRICS, *FORECAST_METRICS)
        )

    def warm(self) -> int:
        """Format, and compress, the families kept per reported window now (those a scrape
        would format first), so that the next scrape writes them as kept; returns how many.
        The runtime calls it while the consumer is idle, after a new window is reported."""
        self._warming = True
        try:
            fams = [f for f in self.collect() if isinstance(f, CellFamily) and f.on_text]
        finally:
            self._warming = False
        for fam in fams:
            fam.piece().deflated()
        return len(fams)

    def collect(self) -> Iterator[Metric]:
        if not self._warming:
            self.scrapes += 1
        snap = self._snapshot()
        exported, unexported = (None, 0) if self._budget is None else self._budget.select(snap)
        rows = CellRows(
            snap, self._cell_labels, self._labels, exported, unexported, self._window_texts
        )
        yield from cell_families(snap, rows)
        yield from model_families(snap)
        yield from ingest_families(snap)
        if snap.drift is not None:
            yield from drift_families(snap, rows)  # detections included
        elif snap.performance is not None:
            yield from detection_families(snap, rows)  # the error-stream detectors
        yield from latency_families(snap, rows)
        yield from version_families(snap)
        yield from invalid_value_families(snap)
        yield from performance_families(snap, rows)
        yield from multiclass_families(snap, rows)
        yield from forecast_families(snap, rows)
