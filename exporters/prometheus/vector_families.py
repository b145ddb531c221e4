"""The embedding and explanation families: a collector over a
:class:`~tilewatch.aggregators.vectors.tracker.VectorTracker`.

Each scrape copies, under the state lock, each model's latest judged window (immutable once
judged) and the counters, and builds the families of
:data:`~tilewatch.exporters.prometheus.catalog.VECTOR_METRICS` outside it. Scraping changes
nothing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client.core import Metric

from tilewatch.aggregators.vectors.tracker import ClosedWindow, VectorTracker
from tilewatch.aggregators.vectors.vector_flags import VECTOR_SIGNALS
from tilewatch.exporters.prometheus.catalog import VECTOR_METRICS
from tilewatch.exporters.prometheus.families import describe, family, table_family

__all__ = ["VectorCollector"]

ALL = "__all__"


class VectorCollector:
    """Yields the vector families of the tracker's latest windows.

    Parameters
    ----------
    tracker
        The monitor's vector statistics.
    lock
        The lock the monitor holds while it applies a batch (``ReplicaState.lock``).
    dimensions
        The cell dimension names (the labels after ``model``).
    max_leaf_cells
        Most leaf cells exported per scrape (``[exporter] max_exported_cells``; 0: all): those
        with a vector flag first, then by events in the window, then by key. The model-wide
        cells are always exported; the leaf cells left out are counted in
        ``tilewatch_vector_cells_unexported`` and stay readable in ``/api/embeddings``.
    """

    def __init__(
        self,
        tracker: VectorTracker,
        lock: Any,
        dimensions: Sequence[str],
        max_leaf_cells: int = 0,
    ) -> None:
        self.tracker = tracker
        self.lock = lock or threading.RLock()
        self.cell = ("model", *dimensions)
        self.max_leaf_cells = max_leaf_cells

    def _exported(self, latest: dict[str, ClosedWindow]) -> tuple[set[tuple[Any, ...]], int]:
        """The leaf cells (model, values...) of this scrape, and how many were left out."""
        rank: dict[tuple[Any, ...], tuple[bool, int]] = {}
        for model, window in latest.items():
            d = window.decisions
            flagged = np.zeros(len(d.keys), dtype=np.bool_)
            for signal in VECTOR_SIGNALS:
                flagged |= d.flags[signal]
            for i, (cells, _cls) in enumerate(d.keys):
                if ALL in cells:
                    continue
                key = (model, *cells)
                was = rank.get(key, (False, 0))
                volume = int(max(d.count[i], d.attr_count[i]))
                rank[key] = (was[0] or bool(flagged[i]), max(was[1], volume))
        if not self.max_leaf_cells or len(rank) <= self.max_leaf_cells:
            return set(rank), 0
        order = sorted(rank, key=lambda k: (not rank[k][0], -rank[k][1], k))
        return set(order[: self.max_leaf_cells]), len(rank) - self.max_leaf_cells

    def describe(self) -> Iterator[Metric]:
        yield from describe(VECTOR_METRICS)

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            latest: dict[str, ClosedWindow] = dict(self.tracker.latest)
            bad = dict(self.tracker.bad_embeddings)
            skipped = dict(self.tracker.skipped)
        cell = self.cell
        fams = {
            name: family(name, cell)
            for name in (
                "tilewatch_window_embedding_events",
                "tilewatch_window_embedding_psi",
                "tilewatch_window_embedding_distance",
                "tilewatch_window_embedding_distance_pvalue",
                "tilewatch_window_vector_flag",
                "tilewatch_window_attribution_mean",
                "tilewatch_window_attribution_share_ratio",
                "tilewatch_window_attribution_share_change",
                "tilewatch_window_attribution_rank_correlation",
            )
        }
        exported, unexported = self._exported(latest)
        explained = family("tilewatch_embedding_explained_variance_ratio")
        references = self.tracker.references
        for model in sorted(references):  # from the baseline: before any window is judged
            projection = references[model].projection
            if projection is not None:
                for j, share in enumerate(projection.explained.tolist()):
                    explained.add_metric([model, str(j)], share)
        for model in sorted(latest):
            ref = references.get(model)
            d = latest[model].decisions
            features = [] if ref is None else list(ref.features)
            for i, (cells, cls) in enumerate(d.keys):
                if ALL not in cells and (model, *cells) not in exported:
                    continue
                labels = [model, *cells, cls]
                tested_emb = not math.isnan(d.distance[i])
                tested_attr = bool(features) and not math.isnan(d.attr_mean[i, 0])
                if d.count[i] == 0 and d.attr_count[i] == 0:
                    continue
                fams["tilewatch_window_embedding_events"].add_metric(labels, float(d.count[i]))
                if tested_emb:
                    for j, value in enumerate(d.psi[i].tolist()):
                        fams["tilewatch_window_embedding_psi"].add_metric([*labels, str(j)], value)
                    fams["tilewatch_window_embedding_distance"].add_metric(
                        labels, float(d.distance[i])
                    )
                    fams["tilewatch_window_embedding_distance_pvalue"].add_metric(
                        labels, float(d.distance_pvalue[i])
                    )
                if tested_attr:
                    for j, name in enumerate(features):
                        fams["tilewatch_window_attribution_mean"].add_metric(
                            [*labels, name], float(d.attr_mean[i, j])
                        )
                        fams["tilewatch_window_attribution_share_ratio"].add_metric(
                            [*labels, name], float(d.attr_share[i, j])
                        )
                        fams["tilewatch_window_attribution_share_change"].add_metric(
                            [*labels, name], float(d.attr_share[i, j] - d.ref_share[i, j])
                        )
                    fams["tilewatch_window_attribution_rank_correlation"].add_metric(
                        labels, float(d.rank_correlation[i])
                    )
                if tested_emb or tested_attr:
                    for signal in VECTOR_SIGNALS:
                        fams["tilewatch_window_vector_flag"].add_metric(
                            [*labels, signal], float(d.flags[signal][i])
                        )
        yield from fams.values()
        yield family("tilewatch_vector_cells_unexported", value=float(unexported))
        yield explained
        yield table_family("tilewatch_bad_embeddings_total", {k: float(v) for k, v in bad.items()})
        yield table_family(
            "tilewatch_vector_events_skipped_total", {k: float(v) for k, v in skipped.items()}
        )
