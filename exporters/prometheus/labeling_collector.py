"""The labeling queue's counters: records selected per reason, per leaf cell and its roll-ups.

The counts live in each partition's queue (checkpointed with it, so they survive restarts like
the other cumulative counters); a scrape copies them under the state's lock, adds the
partitions and rolls each leaf up to its variants (the registry's ``rollups``) outside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from tilewatch.aggregators.labeling.settings import REASONS
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.exporters.prometheus.catalog import LABELING_METRICS
from tilewatch.exporters.prometheus.families import describe, family

__all__ = ["LabelingCollector"]


class LabelingCollector(Collector):
    """Exports :data:`~tilewatch.exporters.prometheus.catalog.LABELING_METRICS`.

    Parameters
    ----------
    state
        The replica state whose partitions hold the queues.
    dimensions
        The configured dimension names (the cell labels after ``model``).
    failures
        Records the producer could not deliver (the stage's counter).
    """

    def __init__(
        self, state: ReplicaState, dimensions: Sequence[str], failures: Callable[[], int]
    ) -> None:
        self._state = state
        self._cell = ("model", *dimensions)
        self._failures = failures

    def describe(self) -> Iterator[Metric]:
        """Names and types only."""
        yield from describe(LABELING_METRICS)

    def collect(self) -> Iterator[Metric]:
        state = self._state
        with state.lock:
            n = len(state.registry)
            keys = list(state.registry.keys)
            rollups = state.registry.rollups.copy()
            tables = [
                p.labeling.selected[:n].copy()
                for p in state.partitions.values()
                if p.labeling is not None
            ]
            no_threshold = sum(
                p.labeling.no_threshold for p in state.partitions.values() if p.labeling is not None
            )
        leaf_counts = np.zeros((n, len(REASONS)), dtype=np.int64)
        for table in tables:
            leaf_counts[: len(table)] += table
        rolled = np.zeros_like(leaf_counts)
        leaves = np.flatnonzero(leaf_counts.any(axis=1))
        if len(leaves):
            variants = rollups[leaves]
            np.add.at(
                rolled, variants.ravel(), np.repeat(leaf_counts[leaves], variants.shape[1], axis=0)
            )
        selected = family("tilewatch_labeling_selected_total", self._cell)
        for i, r in np.argwhere(rolled > 0).tolist():
            selected.add_metric([*keys[i], REASONS[r]], float(rolled[i, r]))
        yield selected
        yield family("tilewatch_labeling_failures_total", value=float(self._failures()))
        yield family("tilewatch_labeling_no_threshold_total", value=float(no_threshold))
