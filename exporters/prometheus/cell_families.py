"""The score families of every cell and model: counts, window and rolling statistics, latency,
model versions.

Each function turns one :class:`~tilewatch.aggregators.state.replica.Snapshot` into metric
families of :data:`~tilewatch.exporters.prometheus.catalog.METRICS`; nothing here changes state.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from prometheus_client.core import Metric

from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.aggregators.state.versions import current_versions
from tilewatch.aggregators.stats.latency import LATENCY_QUANTILES, percentile_label
from tilewatch.exporters.prometheus.families import CellRows, family, table_family

__all__ = ["cell_families", "latency_families", "model_families", "version_families"]


def cell_families(snap: Snapshot, rows: CellRows) -> Iterator[Metric]:
    """Events, window and rolling statistics per cell, then the cell table's size by kind."""
    yield rows.family("tilewatch_events_total", snap.events_total)
    yield rows.family("tilewatch_window_events", snap.window_count, window=True)
    yield rows.family("tilewatch_window_score_mean", snap.window_mean, window=True)
    yield rows.family("tilewatch_window_score_variance", snap.window_variance, window=True)
    counts = snap.window_count
    sums = np.where(counts > 0, np.nan_to_num(snap.window_mean) * counts, 0.0)
    m2 = np.where(counts > 1, np.nan_to_num(snap.window_variance) * (counts - 1), 0.0)
    yield rows.family("tilewatch_window_score_summed", sums, window=True)
    yield rows.family("tilewatch_window_score_m2", m2, window=True)
    yield rows.family("tilewatch_rolling_events", snap.rolling_count)
    yield rows.family("tilewatch_rolling_score_mean", snap.rolling_mean)
    yield rows.family("tilewatch_rolling_score_variance", snap.rolling_variance)
    yield rows.family("tilewatch_last_event_timestamp_seconds", snap.last_event_time)
    leaves = int(snap.is_leaf.sum())
    yield table_family("tilewatch_cells", {"leaf": leaves, "rollup": len(snap.keys) - leaves})
    yield family("tilewatch_cells_unexported", value=rows.unexported)


def model_families(snap: Snapshot) -> Iterator[Metric]:
    """Late events, the last closed window's end and overflowed events, per model."""
    yield table_family("tilewatch_late_events_total", snap.late_by_model())
    yield table_family("tilewatch_window_end_timestamp_seconds", snap.window_end)
    yield table_family("tilewatch_cells_overflow_total", snap.overflow)


def latency_families(snap: Snapshot, rows: CellRows) -> Iterator[Metric]:
    """Latency percentiles of the last closed window, per cell with events and latencies."""
    fam = family("tilewatch_window_latency_seconds", rows.labels)
    has = (snap.window_count > 0) & rows.mask
    for q in LATENCY_QUANTILES:
        values = snap.window_latency.get(q)
        if values is not None:
            cells = np.flatnonzero(has & ~np.isnan(values))
            rows.add(fam, values, percentile_label(q), cells=cells)
    yield rows.window(fam)


def version_families(snap: Snapshot) -> Iterator[Metric]:
    """Each model's current version, and when each version was first seen."""
    current = current_versions(snap.model_versions)
    yield table_family(
        "tilewatch_model_version_info",
        {(model, version): 1.0 for model, (version, _first) in current.items()},
    )
    yield table_family(
        "tilewatch_model_version_first_seen_timestamp_seconds",
        {key: t0 for key, (t0, _t1, _n) in snap.model_versions.items()},
    )
