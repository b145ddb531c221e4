"""Pure online statistics of tilewatch: cells, windows, rolling windows, merged snapshots.

No Kafka, no Prometheus, no I/O: ``streams`` feeds batches in, ``exporters`` reads snapshots.

The rooms, and what each may import from tilewatch (each one only rooms above it)::

    errors, arrays, codec   the basic modules: errors, numpy array types and growth,
                            plain-data checks; nothing else from tilewatch
    stats                   statistics without cells            basics
    cells                   cell keys, roll-ups, windows        basics, stats
    drift                   references, drift profile, tests    basics, stats, cells
    labels                  label join, performance             basics, stats, cells
    state                   partitions, replica, snapshot       basics, stats, cells, drift, labels
    health                  the health hierarchy                all of the above

This module re-exports the names most callers need.
"""

from __future__ import annotations

from tilewatch.aggregators.cells.registry import CellKey, CellRegistry
from tilewatch.aggregators.cells.settings import ALL, OTHER, UNKNOWN, CellSettings
from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelBaseline,
    build_model_baseline,
)
from tilewatch.aggregators.errors import StateError, TilewatchError
from tilewatch.aggregators.health.evaluate import HierarchyInputs, HierarchyResult, evaluate
from tilewatch.aggregators.health.settings import (
    BaseMetric,
    Component,
    HierarchySettings,
    Indicator,
)
from tilewatch.aggregators.labels.error_detectors import ERROR_DETECTORS, ErrorDetectors
from tilewatch.aggregators.labels.fairness import Gap, performance_gaps
from tilewatch.aggregators.labels.join import Joined, JoinSettings, LabelJoin
from tilewatch.aggregators.labels.join_codec import ParsedJoin
from tilewatch.aggregators.labels.metrics import PerformanceStats, derive_performance, estimate_all
from tilewatch.aggregators.labels.settings import PERFORMANCE_TASKS, PerformanceSettings
from tilewatch.aggregators.labels.sums import PerfAcc, correct_probability
from tilewatch.aggregators.labels.sums_codec import ParsedRows
from tilewatch.aggregators.state.partition import ApplyResult, PartitionState
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import IngestStats, PartitionKey, Snapshot
from tilewatch.aggregators.state.window_acc import WindowAcc
from tilewatch.aggregators.stats.binning import (
    CategoryIndex,
    bin_counts,
    bin_numeric,
    finite_mask,
    numeric_edges,
)
from tilewatch.aggregators.stats.decisions import benjamini_hochberg, gate
from tilewatch.aggregators.stats.divergence import chi2_pvalue, js_distance, mean_zscore, psi
from tilewatch.aggregators.stats.intervals import t_interval, wilson_interval
from tilewatch.aggregators.stats.moments import Moments, group_moments, merge_moments, variance
from tilewatch.aggregators.stats.rolling import RollingWindows
from tilewatch.aggregators.stats.threshold import THRESHOLD_RULES, Threshold, choose_threshold

__all__ = [
    "ALL",
    "ERROR_DETECTORS",
    "OTHER",
    "PERFORMANCE_TASKS",
    "THRESHOLD_RULES",
    "UNKNOWN",
    "ApplyResult",
    "BaseMetric",
    "Baseline",
    "BaselineSettings",
    "CategoryIndex",
    "CellKey",
    "CellRegistry",
    "CellSettings",
    "Component",
    "ErrorDetectors",
    "Gap",
    "HierarchyInputs",
    "HierarchyResult",
    "HierarchySettings",
    "Indicator",
    "IngestStats",
    "JoinSettings",
    "Joined",
    "LabelJoin",
    "ModelBaseline",
    "Moments",
    "ParsedJoin",
    "ParsedRows",
    "PartitionKey",
    "PartitionState",
    "PerfAcc",
    "PerformanceSettings",
    "PerformanceStats",
    "ReplicaState",
    "RollingWindows",
    "Snapshot",
    "StateError",
    "Threshold",
    "TilewatchError",
    "WindowAcc",
    "benjamini_hochberg",
    "bin_counts",
    "bin_numeric",
    "build_model_baseline",
    "chi2_pvalue",
    "choose_threshold",
    "correct_probability",
    "derive_performance",
    "estimate_all",
    "evaluate",
    "finite_mask",
    "gate",
    "group_moments",
    "js_distance",
    "mean_zscore",
    "merge_moments",
    "numeric_edges",
    "performance_gaps",
    "psi",
    "t_interval",
    "variance",
    "wilson_interval",
]
