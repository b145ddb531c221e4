"""Pure online statistics of tilewatch: cells, windows, rolling windows, merged snapshots.

No Kafka, no Prometheus, no I/O: ``streams`` feeds batches in, ``exporters`` reads snapshots.
"""

from __future__ import annotations

from aggregators.baseline import Baseline, BaselineSettings, ModelBaseline, build_model_baseline
from aggregators.binning import CategoryIndex, bin_counts, bin_numeric, finite_mask, numeric_edges
from aggregators.cells import CellKey, CellRegistry
from aggregators.drift import (
    benjamini_hochberg,
    chi2_pvalue,
    gate,
    js_distance,
    mean_zscore,
    psi,
    t_interval,
    wilson_interval,
)
from aggregators.error_detectors import ERROR_DETECTORS, ErrorDetectors
from aggregators.errors import StateError, TilewatchError
from aggregators.fairness import Gap, performance_gaps
from aggregators.hierarchy import HierarchyInputs, HierarchyResult, evaluate
from aggregators.hierarchy_settings import BaseMetric, Component, HierarchySettings, Indicator
from aggregators.join import Joined, JoinSettings, LabelJoin, ParsedJoin
from aggregators.moments import Moments, group_moments, merge_moments, variance
from aggregators.partition import ApplyResult, PartitionState, WindowAcc
from aggregators.performance import (
    PERFORMANCE_TASKS,
    ParsedRows,
    PerfAcc,
    PerformanceSettings,
    PerformanceStats,
    correct_probability,
    derive_performance,
    estimate_all,
)
from aggregators.replica import IngestStats, PartitionKey, ReplicaState, Snapshot
from aggregators.rolling import RollingWindows
from aggregators.settings import ALL, OTHER, UNKNOWN, CellSettings
from aggregators.threshold import THRESHOLD_RULES, Threshold, choose_threshold

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
