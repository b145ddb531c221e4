"""Performance metric families: labels joined, per-cell classification or regression metrics.

Exported when the config has a ``[labels]`` section. Window metrics are those of each model's
latest *final* window (no label can change it any more), whose end is
``tilewatch_performance_window_end_timestamp_seconds``; the label-free estimate is that of the
latest closed window, like the score statistics. Metrics below ``[labels] min_samples`` labeled
events are NaN.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tilewatch.aggregators.labels.view import PerformanceView
from tilewatch.aggregators.state.replica import Snapshot
from tilewatch.exporters.prometheus.catalog import MetricDoc

__all__ = ["PERFORMANCE_METRICS", "performance_families"]

#: Per-cell window gauges: (metric name, PerformanceStats field, help), classification.
_CLASSIFICATION = (
    (
        "tilewatch_window_accuracy_ratio",
        "accuracy",
        "Share of labeled predictions that were right.",
    ),
    (
        "tilewatch_window_accuracy_ratio_lower",
        "accuracy_lower",
        "Lower 95% Wilson bound of the accuracy.",
    ),
    (
        "tilewatch_window_accuracy_ratio_upper",
        "accuracy_upper",
        "Upper 95% Wilson bound of the accuracy.",
    ),
    (
        "tilewatch_window_error_ratio",
        "error",
        "Share of labeled predictions that were wrong (1 - accuracy).",
    ),
    (
        "tilewatch_window_error_ratio_lower",
        "error_lower",
        "Lower 95% Wilson bound of the error rate.",
    ),
    (
        "tilewatch_window_error_ratio_upper",
        "error_upper",
        "Upper 95% Wilson bound of the error rate.",
    ),
    (
        "tilewatch_window_precision_ratio",
        "precision",
        "TP / (TP + FP) at the model's threshold (NaN without positive predictions).",
    ),
    (
        "tilewatch_window_recall_ratio",
        "recall",
        "TP / (TP + FN) at the model's threshold (NaN without positive labels).",
    ),
    ("tilewatch_window_f1", "f1", "F1 score at the model's threshold: 2TP / (2TP + FP + FN)."),
    ("tilewatch_window_brier_score", "brier", "Mean squared difference between score and label."),
    (
        "tilewatch_window_log_loss",
        "log_loss",
        "Mean binary cross-entropy of the scores (clipped to [1e-15, 1 - 1e-15]).",
    ),
    (
        "tilewatch_window_calibration_error",
        "calibration_error",
        "Expected calibration error: mean |positive share - mean score| over [labels] "
        "calibration_bins equal-width score bins, weighted by events.",
    ),
    (
        "tilewatch_window_estimate_gap_ratio",
        "estimate_gap",
        "Realized accuracy minus the label-free estimate on the same labeled events.",
    ),
    (
        "tilewatch_window_estimate_gap_bound",
        "estimate_bound",
        "Half-width of the 95% range the gap stays in when scores are calibrated; a larger "
        "|gap| means they are not.",
    ),
)
_REGRESSION = (
    ("tilewatch_window_mae", "mae", "Mean absolute error of the predictions (regression)."),
    ("tilewatch_window_rmse", "rmse", "Root mean squared error of the predictions (regression)."),
    (
        "tilewatch_window_mean_error",
        "mean_error",
        "Mean signed error, prediction - target (regression).",
    ),
)

PERFORMANCE_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc(
        "tilewatch_window_labeled_events",
        "gauge",
        "cell",
        "Labeled predictions of the cell in its model's performance window (latest final one).",
    ),
    *(MetricDoc(name, "gauge", "cell", text) for name, _f, text in _CLASSIFICATION),
    *(MetricDoc(name, "gauge", "cell", text) for name, _f, text in _REGRESSION),
    MetricDoc(
        "tilewatch_window_estimated_accuracy_ratio",
        "gauge",
        "cell",
        "Label-free expected accuracy: mean probability of being right given the (calibrated) "
        "scores, over every prediction of the latest closed window.",
    ),
    MetricDoc(
        "tilewatch_window_estimated_accuracy_bound",
        "gauge",
        "cell",
        "Half-width of the 95% range the realized accuracy should fall in around the estimate "
        "if scores are calibrated.",
    ),
    MetricDoc(
        "tilewatch_labeled_events_total",
        "counter",
        "cell",
        "Labels credited to the cell since the replica started (late ones included).",
    ),
    MetricDoc(
        "tilewatch_label_errors_total",
        "counter",
        "cell",
        "Labeled predictions that were wrong at the model's threshold (classification).",
    ),
    MetricDoc(
        "tilewatch_window_accuracy_gap_ratio",
        "gauge",
        "model, dimension",
        "Largest accuracy difference between values of the dimension (roll-up cells above "
        "min_samples) in the performance window.",
    ),
    MetricDoc(
        "tilewatch_window_error_gap_ratio",
        "gauge",
        "model, dimension",
        "Largest error-rate difference between values of the dimension in the performance window.",
    ),
    MetricDoc(
        "tilewatch_window_gap_info",
        "gauge",
        "model, dimension, metric, worst, best",
        "1 for each gap: the worst and the best label value of the dimension (metric accuracy or "
        "error).",
    ),
    MetricDoc(
        "tilewatch_performance_window_end_timestamp_seconds",
        "gauge",
        "model",
        "End (epoch seconds) of the model's performance window: its latest window past the "
        "label grace.",
    ),
    MetricDoc("tilewatch_labels_joined_total", "counter", "", "Labels joined to their prediction."),
    MetricDoc(
        "tilewatch_labels_expired_total",
        "counter",
        "reason",
        "Predictions that got no label: reason ttl ([labels] ttl passed) or budget (evicted "
        "by [labels] max_pending).",
    ),
    MetricDoc(
        "tilewatch_labels_orphaned_total",
        "counter",
        "",
        "Labels whose prediction never arrived within [labels] orphan_ttl.",
    ),
    MetricDoc(
        "tilewatch_labels_duplicates_total",
        "counter",
        "side",
        "Repeated event ids: side prediction (first kept) or label (first joined kept).",
    ),
    MetricDoc(
        "tilewatch_labels_missing_id_total",
        "counter",
        "",
        "Predictions without an event id (they cannot be joined).",
    ),
    MetricDoc(
        "tilewatch_labels_late_total",
        "counter",
        "",
        "Labels that arrived after their window's grace: counted in the cumulative counters only.",
    ),
    MetricDoc("tilewatch_labels_pending", "gauge", "", "Predictions waiting for their label."),
    MetricDoc(
        "tilewatch_labels_held", "gauge", "", "Labels waiting for their prediction to arrive."
    ),
    MetricDoc(
        "tilewatch_labels_join_bytes",
        "gauge",
        "",
        "Estimated memory held by the label join (pending predictions and held labels).",
    ),
    MetricDoc(
        "tilewatch_label_records_total",
        "counter",
        "",
        "Records read from the outcomes topic.",
    ),
    MetricDoc(
        "tilewatch_invalid_labels_total",
        "counter",
        "reason",
        "Outcome records rejected (dead-lettered), by reason.",
    ),
)

_DOCS = {m.name: m for m in PERFORMANCE_METRICS}


def _help(name: str) -> str:
    return _DOCS[name].help


def _counter(
    name: str, labels: list[str] | None = None, value: float | None = None
) -> CounterMetricFamily:
    return CounterMetricFamily(name.removesuffix("_total"), _help(name), labels=labels, value=value)


def performance_families(snap: Snapshot, cell_labels: list[str]) -> Iterator[Metric]:
    """The performance families of a snapshot (none without a [labels] section)."""
    perf = snap.performance
    if perf is None:
        return
    keys = snap.keys
    present = np.flatnonzero(snap.events_total > 0).tolist()
    stats = perf.stats

    def gauge(name: str, values: np.ndarray) -> Metric:
        fam = GaugeMetricFamily(name, _help(name), labels=cell_labels)
        for i, v in zip(present, values[present].tolist(), strict=True):
            fam.add_metric(keys[i], v)
        return fam

    yield gauge("tilewatch_window_labeled_events", stats.labeled)
    classification = perf.task == "classification"
    for name, attr, _text in _CLASSIFICATION if classification else _REGRESSION:
        yield gauge(name, getattr(stats, attr))
    if classification:
        yield gauge("tilewatch_window_estimated_accuracy_ratio", perf.estimate)
        yield gauge("tilewatch_window_estimated_accuracy_bound", perf.estimate_bound)
    totals = [("tilewatch_labeled_events_total", perf.labeled_total)]
    if classification:  # a regression label is never "wrong"
        totals.append(("tilewatch_label_errors_total", perf.errors_total))
    for name, values in totals:
        fam = _counter(name, cell_labels)
        for i, v in zip(present, values[present].tolist(), strict=True):
            fam.add_metric(keys[i], v)
        yield fam
    yield from _gaps(perf)
    name = "tilewatch_performance_window_end_timestamp_seconds"
    end = GaugeMetricFamily(name, _help(name), labels=["model"])
    for model, t in sorted(perf.window_end.items()):
        end.add_metric([model], t)
    yield end
    yield from _counters(snap, perf)


def _gaps(perf: PerformanceView) -> Iterator[Metric]:
    fams = {
        metric: GaugeMetricFamily(
            f"tilewatch_window_{metric}_gap_ratio",
            _help(f"tilewatch_window_{metric}_gap_ratio"),
            labels=["model", "dimension"],
        )
        for metric in ("accuracy", "error")
    }
    info = GaugeMetricFamily(
        "tilewatch_window_gap_info",
        _help("tilewatch_window_gap_info"),
        labels=["model", "dimension", "metric", "worst", "best"],
    )
    for gap in perf.gaps:
        fams[gap.metric].add_metric([gap.model, gap.dimension], gap.gap)
        info.add_metric([gap.model, gap.dimension, gap.metric, gap.worst, gap.best], 1.0)
    yield from fams.values()
    yield info


def _counters(snap: Snapshot, perf: PerformanceView) -> Iterator[Metric]:
    c = perf.counters
    ing = snap.ingest
    if "joined" in c:
        yield _counter("tilewatch_labels_joined_total", value=c["joined"])
        expired = _counter("tilewatch_labels_expired_total", ["reason"])
        expired.add_metric(["ttl"], c["expired"])
        expired.add_metric(["budget"], c["evicted"])
        yield expired
        yield _counter("tilewatch_labels_orphaned_total", value=c["orphaned"])
        dup = _counter("tilewatch_labels_duplicates_total", ["side"])
        dup.add_metric(["prediction"], c["duplicate_predictions"])
        dup.add_metric(["label"], c["duplicate_labels"])
        yield dup
        yield _counter("tilewatch_labels_missing_id_total", value=c["missing_id"])
        for name, value in (
            ("tilewatch_labels_pending", c["pending"]),
            ("tilewatch_labels_held", c["held"]),
            ("tilewatch_labels_join_bytes", c["join_bytes"]),
        ):
            yield GaugeMetricFamily(name, _help(name), value=value)
        yield _counter("tilewatch_label_records_total", value=ing.label_records)
        invalid = _counter("tilewatch_invalid_labels_total", ["reason"])
        for reason, n in sorted(ing.invalid_labels.items()):
            invalid.add_metric([reason], n)
        yield invalid
    yield _counter("tilewatch_labels_late_total", value=c["late"])
