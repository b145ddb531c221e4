"""The performance families: labels joined, per-cell classification or regression metrics.

Exported when the config has a ``[labels]`` section. Window metrics are those of each model's
latest *final* window (no label can change it any more), whose end is
``tilewatch_performance_window_end_timestamp_seconds``; the label-free estimate is that of the
latest closed window, like the score statistics. Metrics below ``[labels] min_samples`` labeled
events are NaN. Names, types and help are in
:data:`~tilewatch.exporters.prometheus.catalog.PERFORMANCE_METRICS`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from prometheus_client.core import Metric

from tilewatch.aggregators.labels.metrics import PerformanceStats
from tilewatch.aggregators.labels.view import PerformanceView
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.families import CellRows, family, table_family

__all__ = ["performance_families"]


def _classification(s: PerformanceStats) -> tuple[tuple[str, npt.NDArray[np.float64]], ...]:
    """Per-cell window gauges of a classifier: (metric, values)."""
    return (
        ("tilewatch_window_accuracy_ratio", s.accuracy),
        ("tilewatch_window_accuracy_ratio_lower", s.accuracy_lower),
        ("tilewatch_window_accuracy_ratio_upper", s.accuracy_upper),
        ("tilewatch_window_error_ratio", s.error),
        ("tilewatch_window_error_ratio_lower", s.error_lower),
        ("tilewatch_window_error_ratio_upper", s.error_upper),
        ("tilewatch_window_precision_ratio", s.precision),
        ("tilewatch_window_recall_ratio", s.recall),
        ("tilewatch_window_f1", s.f1),
        ("tilewatch_window_brier_score", s.brier),
        ("tilewatch_window_log_loss", s.log_loss),
        ("tilewatch_window_calibration_error", s.calibration_error),
        ("tilewatch_window_estimate_gap_ratio", s.estimate_gap),
        ("tilewatch_window_estimate_gap_bound", s.estimate_bound),
    )


def _regression(s: PerformanceStats) -> tuple[tuple[str, npt.NDArray[np.float64]], ...]:
    """Per-cell window gauges of a regressor: (metric, values)."""
    return (
        ("tilewatch_window_mae", s.mae),
        ("tilewatch_window_rmse", s.rmse),
        ("tilewatch_window_mean_error", s.mean_error),
    )


def performance_families(snap: Snapshot, rows: CellRows) -> Iterator[Metric]:
    """The performance families of a snapshot (none without a [labels] section)."""
    perf = snap.performance
    if perf is None:
        return
    stats = perf.stats
    yield rows.family("tilewatch_window_labeled_events", stats.labeled)
    classification = perf.task == "classification"
    for name, values in _classification(stats) if classification else _regression(stats):
        yield rows.family(name, values)
    if perf.decisions is not None:
        yield from _decisions(perf, rows)
    if classification:
        yield rows.family("tilewatch_window_estimated_accuracy_ratio", perf.estimate)
        yield rows.family("tilewatch_window_estimated_accuracy_bound", perf.estimate_bound)
    yield rows.family("tilewatch_labeled_events_total", perf.labeled_total)
    if classification:  # a regression label is never "wrong"
        yield rows.family("tilewatch_label_errors_total", perf.errors_total)
    yield from _gaps(perf)
    yield table_family("tilewatch_performance_window_end_timestamp_seconds", perf.window_end)
    yield from _counters(snap, perf)


def _decisions(perf: PerformanceView, rows: CellRows) -> Iterator[Metric]:
    """Each cell against its reference error rate, the calibration test, and the flags."""
    d = perf.decisions
    assert d is not None
    yield rows.family("tilewatch_window_reference_error_ratio", d.reference_error)
    yield rows.family("tilewatch_window_error_excess_ratio", d.excess)
    yield rows.family("tilewatch_window_error_excess_rate", d.excess_rate)
    yield rows.family("tilewatch_window_calibration_error_debiased", d.calibration_effect)
    flag = family("tilewatch_window_performance_flag", rows.labels)
    for signal, mask in d.flags.items():
        rows.add(flag, mask.astype(float), signal)
    yield flag
    pvalue = family("tilewatch_window_performance_pvalue", rows.labels)
    for signal, column in d.pvalue.items():
        rows.add(pvalue, column, signal)
    yield pvalue


def _gaps(perf: PerformanceView) -> Iterator[Metric]:
    ratios = {
        metric: family(f"tilewatch_window_{metric}_gap_ratio") for metric in ("accuracy", "error")
    }
    info = family("tilewatch_window_gap_info")
    for gap in perf.gaps:
        ratios[gap.metric].add_metric([gap.model, gap.dimension], gap.gap)
        info.add_metric([gap.model, gap.dimension, gap.metric, gap.worst, gap.best], 1.0)
    yield from ratios.values()
    yield info


def _counters(snap: Snapshot, perf: PerformanceView) -> Iterator[Metric]:
    """The label join's counters (with a topic of labels) and the late labels."""
    c = perf.counters
    if "joined" in c:
        yield family("tilewatch_labels_joined_total", value=c["joined"])
        expired = {"ttl": c["expired"], "budget": c["evicted"]}
        yield table_family("tilewatch_labels_expired_total", expired, sort=False)
        yield family("tilewatch_labels_orphaned_total", value=c["orphaned"])
        duplicates = {"prediction": c["duplicate_predictions"], "label": c["duplicate_labels"]}
        yield table_family("tilewatch_labels_duplicates_total", duplicates, sort=False)
        yield family("tilewatch_labels_missing_id_total", value=c["missing_id"])
        yield family("tilewatch_labels_pending", value=c["pending"])
        yield family("tilewatch_labels_held", value=c["held"])
        yield family("tilewatch_labels_join_bytes", value=c["join_bytes"])
        yield family("tilewatch_label_records_total", value=snap.ingest.label_records)
        yield table_family("tilewatch_invalid_labels_total", snap.ingest.invalid_labels)
    yield family("tilewatch_labels_late_total", value=c["late"])
