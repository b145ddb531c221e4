"""The metric catalog: every metric tilewatch exports, with its type, labels and help, once.

The collectors take each family's name, type, label names and help text from here (through
:func:`tilewatch.exporters.prometheus.families.family`), the tables of docs/metrics.md are
generated from the four tables below (``scripts/gen_docs.py``) and the tests look metrics up in
:data:`CATALOG`. A metric missing here cannot be exported. In ``labels``, ``cell`` stands for
``model`` followed by the configured dimensions.

Plain data: imports nothing from prometheus-client, and from tilewatch only the record type
(``metric_doc``) and the vector metrics' table (``vector_catalog``).

Examples
--------
>>> CATALOG["tilewatch_events_total"].family, CATALOG["tilewatch_events_total"].kind
('tilewatch_events', 'counter')
>>> CATALOG["tilewatch_window_feature_psi"].label_names(("model", "segment"))
['model', 'segment', 'feature']
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tilewatch.exporters.prometheus.metric_doc import COUNTER, GAUGE, MetricDoc, MetricKind
from tilewatch.exporters.prometheus.vector_catalog import VECTOR_METRICS

__all__ = [
    "CATALOG",
    "COUNTER",
    "DRIFT_METRICS",
    "FORECAST_METRICS",
    "GAUGE",
    "HEALTH_METRICS",
    "LABELING_METRICS",
    "METRICS",
    "MULTICLASS_METRICS",
    "PERFORMANCE_METRICS",
    "VECTOR_METRICS",
    "MetricDoc",
    "MetricKind",
]

# fmt: off
# One entry per metric, name, type and labels on the first line, so the catalog reads as a
# table: ruff's one-argument-per-line layout would make this module 570 lines long.
#: Cells, windows, rolling windows, ingest, checkpoints, latency and model versions: always
#: exported.
METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("tilewatch_events_total", COUNTER, "cell",
              "Valid events applied to the cell since the replica started."),
    MetricDoc("tilewatch_invalid_events_total", COUNTER, "reason",
              "Records rejected (sent to the dead-letter topic), by reason."),
    MetricDoc("tilewatch_late_events_total", COUNTER, "model",
              "Events that arrived after their window had closed (later than the grace)."),
    MetricDoc("tilewatch_read_events_total", COUNTER, "",
              "Records read from Kafka: valid + late + invalid."),
    MetricDoc("tilewatch_window_events", GAUGE, "cell",
              "Events of the cell in its model's last closed window."),
    MetricDoc("tilewatch_window_score_mean", GAUGE, "cell",
              "Mean score of the cell in the last closed window (NaN without events)."),
    MetricDoc("tilewatch_window_score_variance", GAUGE, "cell",
              "Sample variance (ddof=1) of the score in the last closed window (NaN below 2 "
              "events)."),
    MetricDoc("tilewatch_window_score_summed", GAUGE, "cell",
              "Sum of the scores in the last closed window: with tilewatch_window_events, merges "
              "exactly across replicas (sum of sums / sum of events)."),
    MetricDoc("tilewatch_window_score_m2", GAUGE, "cell",
              "Sum of squared deviations from the window mean (M2): with the sums and counts, "
              "merges the variance exactly across replicas."),
    MetricDoc("tilewatch_rolling_events", GAUGE, "cell",
              "Events in the cell's rolling window (at most [cells].rolling_events per "
              "partition)."),
    MetricDoc("tilewatch_rolling_score_mean", GAUGE, "cell",
              "Mean score over the cell's rolling window (its last tilewatch_rolling_events "
              "events)."),
    MetricDoc("tilewatch_rolling_score_variance", GAUGE, "cell",
              "Sample variance (ddof=1) of the score over the cell's rolling window."),
    MetricDoc("tilewatch_window_end_timestamp_seconds", GAUGE, "model",
              "End (epoch seconds) of the model's last closed window."),
    MetricDoc("tilewatch_last_event_timestamp_seconds", GAUGE, "cell",
              "Largest event time (epoch seconds) seen in the cell."),
    MetricDoc("tilewatch_consumer_lag_events", GAUGE, "topic, partition",
              "Records between the consumer's position and the partition's high watermark."),
    MetricDoc("tilewatch_cells", GAUGE, "kind",
              "Cells in the table: kind=leaf (model x dimension values) or kind=rollup."),
    MetricDoc("tilewatch_cells_unexported", GAUGE, "",
              "Leaf cells with events left out of this scrape by [exporter].max_exported_cells "
              "(read them in the JSON API, /api/cells)."),
    MetricDoc("tilewatch_cells_overflow_total", COUNTER, "model",
              "Events sent to the model's __other__ cell because [cells].max_cells was reached."),
    MetricDoc("tilewatch_dead_letter_events_total", COUNTER, "",
              "Rejected records written to the dead-letter topic."),
    MetricDoc("tilewatch_dead_letter_failures_total", COUNTER, "reason",
              "Rejected records that could not be written to the dead-letter topic."),
    MetricDoc("tilewatch_kafka_up", GAUGE, "",
              "1 while the consumer is connected to a broker, else 0."),
    MetricDoc("tilewatch_checkpoints_total", COUNTER, "",
              "Partition checkpoints written to the changelog topic."),
    MetricDoc("tilewatch_checkpoint_restores_total", COUNTER, "result",
              "Partition assignments by restore result: restored (from a checkpoint) or empty."),
    MetricDoc("tilewatch_checkpoint_errors_total", COUNTER, "reason",
              "Checkpoint slots refused (incomplete, corrupt, foreign, invalid_state) and failed "
              "checkpoint writes (write_failed)."),
    MetricDoc("tilewatch_checkpoint_last_bytes", GAUGE, "",
              "Bytes written by the last checkpoint round."),
    MetricDoc("tilewatch_checkpoint_last_timestamp_seconds", GAUGE, "",
              "When the last checkpoint round was written (epoch seconds; 0 before the first)."),
    MetricDoc("tilewatch_partitions_assigned", GAUGE, "",
              "Input partitions this replica owns."),
    MetricDoc("tilewatch_window_latency_seconds", GAUGE, "cell, percentile",
              "Latency percentile (50, 95, 99) of the cell's events in the last closed window, "
              "from the event's latency_ms field (log-spaced histogram: within about 13%; NaN "
              "without latencies)."),
    MetricDoc("tilewatch_model_version_info", GAUGE, "model, version",
              "1 for each model's current version: the one with the latest event time."),
    MetricDoc("tilewatch_model_version_first_seen_timestamp_seconds", GAUGE, "model, version",
              "Event time (epoch seconds) each version of each model was first seen."),
    MetricDoc("tilewatch_invalid_values_total", COUNTER, "field",
              "Valid events with an unusable optional field (latency, model_version, label): the "
              "field is ignored, the event kept."),
    MetricDoc("tilewatch_malformed_class_scores_total", COUNTER, "reason",
              "Multi-class events whose class probabilities ([events] scores) were dropped, by "
              "reason (see docs/multiclass.md); the event is kept."),
    MetricDoc("tilewatch_pooled_class_events_total", COUNTER, "",
              "Multi-class events naming a class past [events] max_classes (pooled into the "
              "__other__ class)."),
)

#: Drift and data-quality metrics, exported when drift is on (a baseline or features are set).
#: Window statistics are NaN below ``[cells] min_samples``.
DRIFT_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("tilewatch_window_score_psi", GAUGE, "cell",
              "Population stability index of the window's score histogram against the cell's "
              "reference (raw: its chance part grows as the window shrinks; see the effect)."),
    MetricDoc("tilewatch_window_score_js_distance", GAUGE, "cell",
              "Jensen-Shannon distance (base 2, 0..1) of the window's score histogram against the"
              " cell's reference."),
    MetricDoc("tilewatch_window_score_mean_zscore", GAUGE, "cell",
              "(window mean - reference mean) / (reference std / sqrt(window events)), against "
              "the cell's reference."),
    MetricDoc("tilewatch_window_score_mean_lower", GAUGE, "cell",
              "Lower bound of the 95% Student-t interval of the window's mean score."),
    MetricDoc("tilewatch_window_score_mean_upper", GAUGE, "cell",
              "Upper bound of the 95% Student-t interval of the window's mean score."),
    MetricDoc("tilewatch_window_score_mean_change", GAUGE, "cell",
              "Window mean score minus the previous window's (NaN if either is below "
              "min_samples)."),
    MetricDoc("tilewatch_window_class_shift_pvalue", GAUGE, "cell",
              "P-value of the window's predicted-class counts under no change from the cell's "
              "reference (pooled two-sample test at both sample sizes)."),
    MetricDoc("tilewatch_window_class_shift_significant", GAUGE, "cell",
              "1 when the window is flagged for class_shift (significant after Benjamini-Hochberg "
              "over the window's tests and class effect above [drift].class_alert), else 0."),
    MetricDoc("tilewatch_window_feature_psi", GAUGE, "cell, feature",
              "PSI of the feature in the window against the cell's reference (numeric on "
              "reference quantile bins; categorical with other and unseen bins); raw."),
    MetricDoc("tilewatch_window_feature_psi_effect", GAUGE, "cell, feature",
              "The feature's PSI with its small-sample bias removed (clipped at 0): the effect "
              "size compared with [drift].psi_alert."),
    MetricDoc("tilewatch_window_feature_missing_ratio", GAUGE, "cell, feature",
              "Share of the window's events where the feature is absent or null."),
    MetricDoc("tilewatch_window_feature_missing_ratio_lower", GAUGE, "cell, feature",
              "Lower bound of the 95% Wilson interval of the missing ratio."),
    MetricDoc("tilewatch_window_feature_missing_ratio_upper", GAUGE, "cell, feature",
              "Upper bound of the 95% Wilson interval of the missing ratio."),
    MetricDoc("tilewatch_window_drift_flag", GAUGE, "cell, signal",
              "1 when the window is flagged for the signal (score_psi, feature_psi, class_shift, "
              "missing): significant after Benjamini-Hochberg over all of the window's tests and "
              "larger than the signal's effect threshold; else 0."),
    MetricDoc("tilewatch_window_drift_pvalue", GAUGE, "cell, signal",
              "P-value of the signal under no change from the cell's reference, at the window's "
              "and the reference's sample sizes (per-feature signals: the smallest over "
              "features)."),
    MetricDoc("tilewatch_window_drift_effect", GAUGE, "cell, signal",
              "Effect size behind the signal's flag: debiased PSI for score_psi, feature_psi "
              "(largest over features) and class_shift; the largest missing share for "
              "missing."),
    MetricDoc("tilewatch_schema_violations_total", COUNTER, "model, feature, kind",
              "Events whose feature broke the baseline's schema, by kind (absent, wrong_type, "
              "out_of_range, unseen_category)."),
    MetricDoc("tilewatch_drift_detections_total", COUNTER, "cell, detector",
              "Drift detections by river detector (adwin on scores, page_hinkley on window means;"
              " ddm, hddm_a or hddm_w on the 0/1 error stream of labeled predictions)."),
    MetricDoc("tilewatch_drift_active", GAUGE, "cell, detector",
              "1 while the detector's last detection is within one window of event time."),
    MetricDoc("tilewatch_drift_last_timestamp_seconds", GAUGE, "cell, detector",
              "Event time (epoch seconds) of the detector's last detection in the cell."),
)

#: Performance metrics, exported with a ``[labels]`` section. Window metrics are those of each
#: model's latest *final* window (no label can change it any more); the label-free estimate is
#: that of the latest closed window. Metrics below ``[labels] min_samples`` labeled events are NaN.
PERFORMANCE_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("tilewatch_window_labeled_events", GAUGE, "cell",
              "Labeled predictions of the cell in its model's performance window (latest final "
              "one)."),
    MetricDoc("tilewatch_window_accuracy_ratio", GAUGE, "cell",
              "Share of labeled predictions that were right."),
    MetricDoc("tilewatch_window_accuracy_ratio_lower", GAUGE, "cell",
              "Lower 95% Wilson bound of the accuracy."),
    MetricDoc("tilewatch_window_accuracy_ratio_upper", GAUGE, "cell",
              "Upper 95% Wilson bound of the accuracy."),
    MetricDoc("tilewatch_window_error_ratio", GAUGE, "cell",
              "Share of labeled predictions that were wrong (1 - accuracy)."),
    MetricDoc("tilewatch_window_error_ratio_lower", GAUGE, "cell",
              "Lower 95% Wilson bound of the error rate."),
    MetricDoc("tilewatch_window_error_ratio_upper", GAUGE, "cell",
              "Upper 95% Wilson bound of the error rate."),
    MetricDoc("tilewatch_window_precision_ratio", GAUGE, "cell",
              "TP / (TP + FP) at the model's threshold (NaN without positive predictions)."),
    MetricDoc("tilewatch_window_recall_ratio", GAUGE, "cell",
              "TP / (TP + FN) at the model's threshold (NaN without positive labels)."),
    MetricDoc("tilewatch_window_f1", GAUGE, "cell",
              "F1 score at the model's threshold: 2TP / (2TP + FP + FN)."),
    MetricDoc("tilewatch_window_brier_score", GAUGE, "cell",
              "Mean squared difference between score and label."),
    MetricDoc("tilewatch_window_log_loss", GAUGE, "cell",
              "Mean binary cross-entropy of the scores (clipped to [1e-15, 1 - 1e-15])."),
    MetricDoc("tilewatch_window_calibration_error", GAUGE, "cell",
              "Expected calibration error: mean |positive share - mean score| over [labels] "
              "calibration_bins equal-width score bins, weighted by events."),
    MetricDoc("tilewatch_window_reference_error_ratio", GAUGE, "cell",
              "The cell's reference error rate: its baseline rows (shrunk toward its parent), or "
              "with [drift] reference = \"trailing\" its own previous final windows."),
    MetricDoc("tilewatch_window_error_excess_ratio", GAUGE, "cell",
              "Relative excess of the window's error rate over the cell's reference error rate "
              "(error / reference - 1; 0.2: 20% more errors); compared with [labels].error_alert."),
    MetricDoc("tilewatch_window_error_excess_rate", GAUGE, "cell",
              "max(0, error rate - reference error rate) where the excess is significant after "
              "Benjamini-Hochberg, 0 where it is not (what revenue_at_risk counts)."),
    MetricDoc("tilewatch_window_calibration_error_debiased", GAUGE, "cell",
              "The calibration error minus its expectation for calibrated scores at the bins' "
              "counts (clipped at 0); compared with [labels].calibration_alert."),
    MetricDoc("tilewatch_window_performance_flag", GAUGE, "cell, signal",
              "1 when the window is flagged for the signal (error_rate: excess over the "
              "reference; calibration): significant after Benjamini-Hochberg over the window's "
              "performance tests at [labels].fdr and larger than the signal's effect threshold."),
    MetricDoc("tilewatch_window_performance_pvalue", GAUGE, "cell, signal",
              "P-value of the signal under no change (error_rate: one-sided exact test against "
              "the reference error rate; calibration: test of calibrated scores), floored at "
              "1e-300."),
    MetricDoc("tilewatch_window_estimate_gap_ratio", GAUGE, "cell",
              "Realized accuracy minus the label-free estimate on the same labeled events."),
    MetricDoc("tilewatch_window_estimate_gap_bound", GAUGE, "cell",
              "Half-width of the 95% range the gap stays in when scores are calibrated; a larger "
              "|gap| means they are not."),
    MetricDoc("tilewatch_window_mae", GAUGE, "cell",
              "Mean absolute error of the predictions (regression)."),
    MetricDoc("tilewatch_window_rmse", GAUGE, "cell",
              "Root mean squared error of the predictions (regression)."),
    MetricDoc("tilewatch_window_mean_error", GAUGE, "cell",
              "Mean signed error, prediction - target (regression)."),
    MetricDoc("tilewatch_window_estimated_accuracy_ratio", GAUGE, "cell",
              "Label-free expected accuracy: mean probability of being right given the "
              "(calibrated) scores, over every prediction of the latest closed window."),
    MetricDoc("tilewatch_window_estimated_accuracy_bound", GAUGE, "cell",
              "Half-width of the 95% range the realized accuracy should fall in around the "
              "estimate if scores are calibrated."),
    MetricDoc("tilewatch_labeled_events_total", COUNTER, "cell",
              "Labels credited to the cell since the replica started (late ones included)."),
    MetricDoc("tilewatch_label_errors_total", COUNTER, "cell",
              "Labeled predictions that were wrong at the model's threshold (classification)."),
    MetricDoc("tilewatch_window_accuracy_gap_ratio", GAUGE, "model, dimension",
              "Largest accuracy difference between values of the dimension (roll-up cells above "
              "min_samples) in the performance window."),
    MetricDoc("tilewatch_window_error_gap_ratio", GAUGE, "model, dimension",
              "Largest error-rate difference between values of the dimension in the performance "
              "window."),
    MetricDoc("tilewatch_window_gap_info", GAUGE, "model, dimension, metric, worst, best",
              "1 for each gap: the worst and the best label value of the dimension (metric "
              "accuracy or error)."),
    MetricDoc("tilewatch_performance_window_end_timestamp_seconds", GAUGE, "model",
              "End (epoch seconds) of the model's performance window: its latest window past the "
              "label grace."),
    MetricDoc("tilewatch_labels_joined_total", COUNTER, "",
              "Labels joined to their prediction."),
    MetricDoc("tilewatch_labels_expired_total", COUNTER, "reason",
              "Predictions that got no label: reason ttl ([labels] ttl passed) or budget (evicted"
              " by [labels] max_pending)."),
    MetricDoc("tilewatch_labels_orphaned_total", COUNTER, "",
              "Labels whose prediction never arrived within [labels] orphan_ttl."),
    MetricDoc("tilewatch_labels_duplicates_total", COUNTER, "side",
              "Repeated event ids: side prediction (first kept) or label (first joined kept)."),
    MetricDoc("tilewatch_labels_missing_id_total", COUNTER, "",
              "Predictions without an event id (they cannot be joined)."),
    MetricDoc("tilewatch_labels_late_total", COUNTER, "",
              "Labels that arrived after their window's grace: counted in the cumulative counters"
              " only."),
    MetricDoc("tilewatch_labels_pending", GAUGE, "",
              "Predictions waiting for their label."),
    MetricDoc("tilewatch_labels_held", GAUGE, "",
              "Labels waiting for their prediction to arrive."),
    MetricDoc("tilewatch_labels_join_bytes", GAUGE, "",
              "Estimated memory held by the label join (pending predictions and held labels)."),
    MetricDoc("tilewatch_label_records_total", COUNTER, "",
              "Records read from the outcomes topic."),
    MetricDoc("tilewatch_invalid_labels_total", COUNTER, "reason",
              "Outcome records rejected (dead-lettered), by reason."),
)

#: The health hierarchy (:class:`~tilewatch.exporters.prometheus.health_collector.HealthCollector`):
#: component scores and statuses, business indicators, their drivers and the aging signals.
HEALTH_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("tilewatch_component_score", GAUGE, "component, cell",
              "Health of the component in the cell, 1 - aggregated risk of its base metrics, in "
              "[0, 1] (1 healthy); NaN when no member base metric has a verdict."),
    MetricDoc("tilewatch_component_status", GAUGE, "component, cell",
              "Status of the component in the cell: 0 green, 1 amber, 2 red; no series without a "
              "verdict."),
    MetricDoc("tilewatch_model_component_score", GAUGE, "component, model",
              "Health of the component for the model: its worst leaf cell (the model's total cell"
              " when no leaf cell has a verdict); NaN without a verdict."),
    MetricDoc("tilewatch_model_component_status", GAUGE, "component, model",
              "Status of the model's component (0 green, 1 amber, 2 red); no series without a "
              "verdict."),
    MetricDoc("tilewatch_model_component_cells", GAUGE, "component, model",
              "Leaf cells of the model with a verdict on the component (0: the component is "
              "blind)."),
    MetricDoc("tilewatch_business_indicator", GAUGE, "indicator, model",
              "Business indicator of the model (red_traffic_share: ratio of window volume in red "
              "cells; revenue_at_risk: money; fairness_gap: worst gap); NaN when undefined."),
    MetricDoc("tilewatch_business_status", GAUGE, "indicator, model",
              "Status of the business indicator (0 green, 1 amber, 2 red); no series when "
              "undefined."),
    MetricDoc("tilewatch_health_driver_info", GAUGE,
              "level, component, indicator, cell, driver, statistic",
              "1 for what drives each status: level (cell, model or business), the component or "
              "indicator, the driving cell's labels, the base metric (driver) and its statistic."),
    MetricDoc("tilewatch_cell_silence_seconds", GAUGE, "cell",
              "Seconds the cell's last event is behind its model's event-time clock (the latest "
              "event time of any of the model's cells): how long the cell has been silent while "
              "its model goes on. A replica reading behind real time silences nothing."),
    MetricDoc("tilewatch_model_pipeline_lag_seconds", GAUGE, "model",
              "Seconds between the scrape (wall clock) and the model's event-time clock: how far "
              "behind real time the model's data is (consumer lag, replay, a stalled producer)."),
    MetricDoc("tilewatch_model_version_age_seconds", GAUGE, "model",
              "Seconds since the model's current version was first seen (event time)."),
)

#: Multi-class metrics, exported with ``[events] scores``, for the cells of multi-class models:
#: each cell's latest reported window (like the score statistics). Class shares are NaN below
#: ``[cells] min_samples`` events, performance below that many labeled events; ``class`` is a
#: class name of the model or ``__other__`` (at most ``[events] max_classes`` + 1 values).
MULTICLASS_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("tilewatch_window_class_share_ratio", GAUGE, "cell, class",
              "Share of the window's predictions that are the class (the event's prediction, "
              "else the argmax of its probabilities)."),
    MetricDoc("tilewatch_window_class_labeled_events", GAUGE, "cell",
              "Labeled predictions of a multi-class model in the window (inline labels)."),
    MetricDoc("tilewatch_window_class_accuracy_ratio", GAUGE, "cell",
              "Share of labeled multi-class predictions whose class is the label."),
    MetricDoc("tilewatch_window_class_precision_ratio", GAUGE, "cell, class",
              "One-vs-rest precision of the class: right predictions of it / its predictions "
              "(labeled ones)."),
    MetricDoc("tilewatch_window_class_recall_ratio", GAUGE, "cell, class",
              "One-vs-rest recall of the class: right predictions of it / its labels."),
    MetricDoc("tilewatch_window_class_f1_ratio", GAUGE, "cell, class",
              "One-vs-rest F1 of the class, 2 TP / (predicted + labeled); NaN when neither."),
    MetricDoc("tilewatch_window_class_below_threshold_ratio", GAUGE, "cell, class",
              "Share of the window's predictions of the class whose probability of it did not "
              "clear the class's threshold (classes with a per-class threshold)."),
    MetricDoc("tilewatch_window_class_below_threshold_right_events", GAUGE, "cell, class",
              "Labeled predictions of the class that did not clear its threshold yet were "
              "right (the label is the class)."),
    MetricDoc("tilewatch_window_class_below_threshold_right_ratio", GAUGE, "cell, class",
              "Of the labeled predictions of the class that did not clear its threshold, the "
              "share that were right."),
    MetricDoc("tilewatch_window_macro_f1_ratio", GAUGE, "cell",
              "Mean F1 over the classes predicted or labeled in the window."),
    MetricDoc("tilewatch_window_weighted_f1_ratio", GAUGE, "cell",
              "F1 of the classes weighted by their labeled events."),
    MetricDoc("tilewatch_window_topk_accuracy_ratio", GAUGE, "cell, k",
              "Share of labeled events whose label is among the k most probable classes "
              "(k = 1..5; ties count as hits)."),
    MetricDoc("tilewatch_window_class_expected_accuracy_ratio", GAUGE, "cell",
              "Mean top-class probability of the window's events with a valid vector: the "
              "accuracy a calibrated model expects, without labels."),
    MetricDoc("tilewatch_window_class_brier_score", GAUGE, "cell",
              "Multi-class Brier score, mean of sum over classes of (p - [class = label])^2 "
              "(0..2), over labeled events with a valid vector."),
    MetricDoc("tilewatch_window_class_log_loss", GAUGE, "cell",
              "Mean -log p(label) (p clipped at 1e-15) over labeled events with a valid vector."),
    MetricDoc("tilewatch_window_class_calibration_error", GAUGE, "cell",
              "Expected calibration error of the top-class probability (10 equal-width bins)."),
    MetricDoc("tilewatch_window_class_error_increase", GAUGE, "cell",
              "Rise of the share of wrong labeled predictions over the cell's trailing windows "
              "(with drift on; NaN below [cells] min_samples labeled events)."),
    MetricDoc("tilewatch_window_class_error_pvalue", GAUGE, "cell",
              "One-sided exact p-value of \"the error rate did not rise\" against the trailing "
              "windows."),
    MetricDoc("tilewatch_window_class_error_flag", GAUGE, "cell",
              "1 when the error rise is significant after Benjamini-Hochberg over the window's "
              "cells ([drift] fdr_rate) and above 0.05, else 0."),
    MetricDoc("tilewatch_window_class_accuracy_gap_ratio", GAUGE, "model, dimension",
              "Best minus worst multi-class accuracy across the values of one dimension (the "
              "one-dimensional roll-ups with at least [cells] min_samples labeled events)."),
    MetricDoc("tilewatch_window_class_gap_info", GAUGE, "model, dimension, worst, best",
              "1 for each accuracy gap, naming its worst and best value."),
    MetricDoc("tilewatch_window_class_drift_psi", GAUGE, "cell, signal",
              "Debiased PSI of the window's histogram of the top-class probability "
              "(signal=confidence) or of the margin top1 - top2 (signal=margin) against the "
              "cell's trailing windows."),
    MetricDoc("tilewatch_window_class_drift_flag", GAUGE, "cell, signal",
              "1 when that histogram differs significantly (Benjamini-Hochberg over both "
              "signals and the window's cells) and its debiased PSI is above [drift] "
              "psi_alert, else 0."),
)

#: Forecasts of window statistics (docs/forecast.md), per cell with a forecast.
FORECAST_METRICS: tuple[MetricDoc, ...] = tuple(
    MetricDoc(f"tilewatch_forecast_{s}{end}", GAUGE, "cell, horizon", f"Forecast of the cell's "
              f"window {s} `horizon` windows after its model's last one{note} (docs/forecast.md).")
    for s in ("accuracy", "score_mean", "score_psi")
    for end, note in (("", ""), ("_lower", ": 90% interval, lower end"), ("_upper", ": upper end"))
)

#: The labeling queue: exported with a ``[labeling]`` section.
LABELING_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("tilewatch_labeling_selected_total", COUNTER, "cell, reason",
              "Events selected for labeling, by reason, per leaf cell and its roll-ups."),
    MetricDoc("tilewatch_labeling_failures_total", COUNTER, "",
              "Selected records the producer could not deliver to the queue topic."),
    MetricDoc("tilewatch_labeling_no_threshold_total", COUNTER, "",
              "Valid events not judged for the queue: their model has no decision threshold."),
)
# fmt: on

#: Every metric by name.
CATALOG: Mapping[str, MetricDoc] = MappingProxyType(
    {
        m.name: m
        for m in (
            *METRICS,
            *DRIFT_METRICS,
            *PERFORMANCE_METRICS,
            *HEALTH_METRICS,
            *MULTICLASS_METRICS,
            *FORECAST_METRICS,
            *LABELING_METRICS,
            *VECTOR_METRICS,
        )
    }
)
