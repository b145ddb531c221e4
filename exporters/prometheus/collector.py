"""The Prometheus collector: every cell of a replica, read from one snapshot per scrape.

:class:`CellCollector` follows prometheus-client's custom collector protocol. Each scrape takes one
consistent :class:`~tilewatch.aggregators.state.replica.Snapshot` (copied under the state's lock)
and yields fresh metric families outside the lock; nothing is computed per event for Prometheus and
scraping never changes state. Label values are the cell keys themselves (tuples of strings built
once when the cell was created), so a scrape builds no label objects per cell.

The metric names are a public contract; :data:`METRICS` documents each of them and the README
table is generated from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tilewatch.aggregators.state.replica import Snapshot
from tilewatch.aggregators.state.versions import current_versions
from tilewatch.aggregators.stats.latency import LATENCY_QUANTILES, percentile_label
from tilewatch.exporters.prometheus.catalog import MetricDoc
from tilewatch.exporters.prometheus.performance import PERFORMANCE_METRICS, performance_families

__all__ = ["DRIFT_METRICS", "METRICS", "CellCollector", "MetricDoc"]


METRICS: tuple[MetricDoc, ...] = (
    MetricDoc(
        "tilewatch_events_total",
        "counter",
        "cell",
        "Valid events applied to the cell since the replica started.",
    ),
    MetricDoc(
        "tilewatch_invalid_events_total",
        "counter",
        "reason",
        "Records rejected (sent to the dead-letter topic), by reason.",
    ),
    MetricDoc(
        "tilewatch_late_events_total",
        "counter",
        "model",
        "Events that arrived after their window had closed (later than the grace).",
    ),
    MetricDoc(
        "tilewatch_read_events_total",
        "counter",
        "",
        "Records read from Kafka: valid + late + invalid.",
    ),
    MetricDoc(
        "tilewatch_window_events",
        "gauge",
        "cell",
        "Events of the cell in its model's last closed window.",
    ),
    MetricDoc(
        "tilewatch_window_score_mean",
        "gauge",
        "cell",
        "Mean score of the cell in the last closed window (NaN without events).",
    ),
    MetricDoc(
        "tilewatch_window_score_variance",
        "gauge",
        "cell",
        "Sample variance (ddof=1) of the score in the last closed window (NaN below 2 events).",
    ),
    MetricDoc(
        "tilewatch_window_score_summed",
        "gauge",
        "cell",
        "Sum of the scores in the last closed window: with tilewatch_window_events, merges "
        "exactly across replicas (sum of sums / sum of events).",
    ),
    MetricDoc(
        "tilewatch_window_score_m2",
        "gauge",
        "cell",
        "Sum of squared deviations from the window mean (M2): with the sums and counts, merges "
        "the variance exactly across replicas.",
    ),
    MetricDoc(
        "tilewatch_rolling_events",
        "gauge",
        "cell",
        "Events in the cell's rolling window (at most [cells].rolling_events per partition).",
    ),
    MetricDoc(
        "tilewatch_rolling_score_mean",
        "gauge",
        "cell",
        "Mean score over the cell's last [cells].rolling_events events.",
    ),
    MetricDoc(
        "tilewatch_rolling_score_variance",
        "gauge",
        "cell",
        "Sample variance (ddof=1) of the score over the last [cells].rolling_events events.",
    ),
    MetricDoc(
        "tilewatch_window_end_timestamp_seconds",
        "gauge",
        "model",
        "End (epoch seconds) of the model's last closed window.",
    ),
    MetricDoc(
        "tilewatch_last_event_timestamp_seconds",
        "gauge",
        "cell",
        "Largest event time (epoch seconds) seen in the cell.",
    ),
    MetricDoc(
        "tilewatch_consumer_lag_events",
        "gauge",
        "topic, partition",
        "Records between the consumer's position and the partition's high watermark.",
    ),
    MetricDoc(
        "tilewatch_cells",
        "gauge",
        "kind",
        "Cells in the table: kind=leaf (model x dimension values) or kind=rollup.",
    ),
    MetricDoc(
        "tilewatch_cells_overflow_total",
        "counter",
        "model",
        "Events sent to the model's __other__ cell because [cells].max_cells was reached.",
    ),
    MetricDoc(
        "tilewatch_dead_letter_events_total",
        "counter",
        "",
        "Rejected records written to the dead-letter topic.",
    ),
    MetricDoc(
        "tilewatch_dead_letter_failures_total",
        "counter",
        "reason",
        "Rejected records that could not be written to the dead-letter topic.",
    ),
    MetricDoc(
        "tilewatch_kafka_up", "gauge", "", "1 while the consumer is connected to a broker, else 0."
    ),
    MetricDoc(
        "tilewatch_checkpoints_total",
        "counter",
        "",
        "Partition checkpoints written to the changelog topic.",
    ),
    MetricDoc(
        "tilewatch_checkpoint_restores_total",
        "counter",
        "result",
        "Partition assignments by restore result: restored (from a checkpoint) or empty.",
    ),
    MetricDoc(
        "tilewatch_checkpoint_errors_total",
        "counter",
        "reason",
        "Checkpoint slots refused (incomplete, corrupt, foreign, invalid_state) and failed "
        "checkpoint writes (write_failed).",
    ),
    MetricDoc(
        "tilewatch_checkpoint_last_bytes",
        "gauge",
        "",
        "Bytes written by the last checkpoint round.",
    ),
    MetricDoc(
        "tilewatch_checkpoint_last_timestamp_seconds",
        "gauge",
        "",
        "When the last checkpoint round was written (epoch seconds; 0 before the first).",
    ),
    MetricDoc("tilewatch_partitions_assigned", "gauge", "", "Input partitions this replica owns."),
    MetricDoc(
        "tilewatch_window_latency_seconds",
        "gauge",
        "cell, percentile",
        "Latency percentile (50, 95, 99) of the cell's events in the last closed window, "
        "from the event's latency_ms field (log-spaced histogram: within about 13%; NaN "
        "without latencies).",
    ),
    MetricDoc(
        "tilewatch_model_version_info",
        "gauge",
        "model, version",
        "1 for each model's current version: the one with the latest event time.",
    ),
    MetricDoc(
        "tilewatch_model_version_first_seen_timestamp_seconds",
        "gauge",
        "model, version",
        "Event time (epoch seconds) each version of each model was first seen.",
    ),
    MetricDoc(
        "tilewatch_invalid_values_total",
        "counter",
        "field",
        "Valid events with an unusable optional field (latency, model_version, label): the "
        "field is ignored, the event kept.",
    ),
)


#: Drift and data-quality metrics, exported when drift is on (a baseline or features are set).
#: ``cell`` = model + dimensions; window statistics are NaN below ``[cells] min_samples``.
DRIFT_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc(
        "tilewatch_window_score_psi",
        "gauge",
        "cell",
        "Population stability index of the window's score histogram against the baseline.",
    ),
    MetricDoc(
        "tilewatch_window_score_js_distance",
        "gauge",
        "cell",
        "Jensen-Shannon distance (base 2, 0..1) of the window's score histogram against "
        "the baseline.",
    ),
    MetricDoc(
        "tilewatch_window_score_mean_zscore",
        "gauge",
        "cell",
        "(window mean - baseline mean) / (baseline std / sqrt(window events)).",
    ),
    MetricDoc(
        "tilewatch_window_score_mean_lower",
        "gauge",
        "cell",
        "Lower bound of the 95% Student-t interval of the window's mean score.",
    ),
    MetricDoc(
        "tilewatch_window_score_mean_upper",
        "gauge",
        "cell",
        "Upper bound of the 95% Student-t interval of the window's mean score.",
    ),
    MetricDoc(
        "tilewatch_window_score_mean_change",
        "gauge",
        "cell",
        "Window mean score minus the previous window's (NaN if either is below min_samples).",
    ),
    MetricDoc(
        "tilewatch_window_class_shift_pvalue",
        "gauge",
        "cell",
        "Chi-square p-value of the window's predicted-class counts against the baseline shares.",
    ),
    MetricDoc(
        "tilewatch_window_class_shift_significant",
        "gauge",
        "cell",
        "1 when the class-shift p-value is significant after Benjamini-Hochberg across "
        "all leaf cells at [drift].fdr_rate, else 0.",
    ),
    MetricDoc(
        "tilewatch_window_feature_psi",
        "gauge",
        "cell, feature",
        "PSI of the feature in the window against the baseline (numeric on reference "
        "quantile bins; categorical with other and unseen bins).",
    ),
    MetricDoc(
        "tilewatch_window_feature_missing_ratio",
        "gauge",
        "cell, feature",
        "Share of the window's events where the feature is absent or null.",
    ),
    MetricDoc(
        "tilewatch_window_feature_missing_ratio_lower",
        "gauge",
        "cell, feature",
        "Lower bound of the 95% Wilson interval of the missing ratio.",
    ),
    MetricDoc(
        "tilewatch_window_feature_missing_ratio_upper",
        "gauge",
        "cell, feature",
        "Upper bound of the 95% Wilson interval of the missing ratio.",
    ),
    MetricDoc(
        "tilewatch_window_drift_flag",
        "gauge",
        "cell, signal",
        "1 when the window is flagged for the signal (score_psi, feature_psi, "
        "class_shift, missing), else 0.",
    ),
    MetricDoc(
        "tilewatch_schema_violations_total",
        "counter",
        "model, feature, kind",
        "Events whose feature broke the baseline's schema, by kind (absent, wrong_type, "
        "out_of_range, unseen_category).",
    ),
    MetricDoc(
        "tilewatch_drift_detections_total",
        "counter",
        "cell, detector",
        "Drift detections by river detector (adwin on scores, page_hinkley on window means; "
        "ddm, hddm_a or hddm_w on the 0/1 error stream of labeled predictions).",
    ),
    MetricDoc(
        "tilewatch_drift_active",
        "gauge",
        "cell, detector",
        "1 while the detector's last detection is within one window of event time.",
    ),
    MetricDoc(
        "tilewatch_drift_last_timestamp_seconds",
        "gauge",
        "cell, detector",
        "Event time (epoch seconds) of the detector's last detection in the cell.",
    ),
)

_DOCS = {m.name: m for m in (*METRICS, *DRIFT_METRICS, *PERFORMANCE_METRICS)}


def _help(name: str) -> str:
    return _DOCS[name].help


def _base(name: str) -> str:
    return name.removesuffix("_total") if _DOCS[name].kind == "counter" else name


class CellCollector(Collector):
    """Yields the tilewatch metric families from a snapshot taken at scrape time.

    Parameters
    ----------
    snapshot
        Returns a fresh consistent snapshot (``ReplicaState.snapshot``).
    """

    def __init__(self, snapshot: Callable[[], Snapshot], dimensions: tuple[str, ...]) -> None:
        self._snapshot = snapshot
        self._cell_labels = ["model", *dimensions]

    def describe(self) -> Iterator[Metric]:
        """Names and types only, so registering does not take a snapshot."""
        for doc in (*METRICS, *DRIFT_METRICS, *PERFORMANCE_METRICS):
            if doc.kind == "counter":
                yield CounterMetricFamily(_base(doc.name), doc.help, labels=[])
            else:
                yield GaugeMetricFamily(doc.name, doc.help, labels=[])

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from self._cells(snap)
        yield from self._models(snap)
        yield from self._ingest(snap)
        if snap.drift is not None:
            yield from self._drift(snap)
        elif snap.performance is not None:
            yield from self._detections(snap)  # the error-stream detectors
        yield from self._latency_and_versions(snap)
        yield from performance_families(snap, self._cell_labels)

    def _latency_and_versions(self, snap: Snapshot) -> Iterator[Metric]:
        keys = snap.keys
        name = "tilewatch_window_latency_seconds"
        lat = GaugeMetricFamily(name, _help(name), labels=[*self._cell_labels, "percentile"])
        has = snap.window_count > 0
        for q in LATENCY_QUANTILES:
            values = snap.window_latency.get(q)
            if values is None:
                continue
            label = percentile_label(q)
            cells = np.flatnonzero(has & ~np.isnan(values)).tolist()
            for i, v in zip(cells, values[cells].tolist(), strict=True):
                lat.add_metric([*keys[i], label], v)
        yield lat
        name = "tilewatch_model_version_info"
        info = GaugeMetricFamily(name, _help(name), labels=["model", "version"])
        for model, (version, _first) in current_versions(snap.model_versions).items():
            info.add_metric([model, version], 1.0)
        yield info
        name = "tilewatch_model_version_first_seen_timestamp_seconds"
        first = GaugeMetricFamily(name, _help(name), labels=["model", "version"])
        for (model, version), (t0, _t1, _n) in sorted(snap.model_versions.items()):
            first.add_metric([model, version], t0)
        yield first
        name = "tilewatch_invalid_values_total"
        bad = CounterMetricFamily(_base(name), _help(name), labels=["field"])
        table = dict(snap.ingest.invalid_values)
        if snap.performance is not None:
            for n in snap.performance.invalid.values():
                table["label"] = table.get("label", 0) + n
        for field_name, n in sorted(table.items()):
            bad.add_metric([field_name], n)
        yield bad

    def _drift(self, snap: Snapshot) -> Iterator[Metric]:
        drift = snap.drift
        assert drift is not None
        labels = self._cell_labels
        keys = snap.keys
        present = np.flatnonzero(snap.events_total > 0).tolist()

        def gauge(name: str, values: np.ndarray) -> Metric:
            fam = GaugeMetricFamily(name, _help(name), labels=labels)
            for i, v in zip(present, values[present].tolist(), strict=True):
                fam.add_metric(keys[i], v)
            return fam

        yield gauge("tilewatch_window_score_psi", drift.score_psi)
        yield gauge("tilewatch_window_score_js_distance", drift.score_js_distance)
        yield gauge("tilewatch_window_score_mean_zscore", drift.mean_zscore)
        yield gauge("tilewatch_window_score_mean_lower", drift.mean_lower)
        yield gauge("tilewatch_window_score_mean_upper", drift.mean_upper)
        yield gauge("tilewatch_window_score_mean_change", drift.mean_change)
        yield gauge("tilewatch_window_class_shift_pvalue", drift.class_pvalue)
        yield gauge(
            "tilewatch_window_class_shift_significant", drift.class_significant.astype(float)
        )
        for name, table in (
            ("tilewatch_window_feature_psi", drift.feature_psi),
            ("tilewatch_window_feature_missing_ratio", drift.missing_ratio),
            ("tilewatch_window_feature_missing_ratio_lower", drift.missing_lower),
            ("tilewatch_window_feature_missing_ratio_upper", drift.missing_upper),
        ):
            fam = GaugeMetricFamily(name, _help(name), labels=[*labels, "feature"])
            for j, feature in enumerate(drift.features):
                column = table[:, j]
                for i, v in zip(present, column[present].tolist(), strict=True):
                    fam.add_metric([*keys[i], feature], v)
            yield fam
        name = "tilewatch_window_drift_flag"
        flag = GaugeMetricFamily(name, _help(name), labels=[*labels, "signal"])
        for signal, mask in sorted(drift.flags.items()):
            for i, v in zip(present, mask[present].tolist(), strict=True):
                flag.add_metric([*keys[i], signal], float(v))
        yield flag
        name = "tilewatch_schema_violations_total"
        viol = CounterMetricFamily(_base(name), _help(name), labels=["model", "feature", "kind"])
        for (model, feature, kind), n in sorted(snap.violations.items()):
            viol.add_metric([model, feature, kind], n)
        yield viol
        yield from self._detections(snap)

    def _detections(self, snap: Snapshot) -> Iterator[Metric]:
        """Detector families: drift detectors on scores, error-stream detectors on labels."""
        keys = snap.keys
        det_labels = [*self._cell_labels, "detector"]
        name = "tilewatch_drift_detections_total"
        total = CounterMetricFamily(_base(name), _help(name), labels=det_labels)
        active = GaugeMetricFamily(
            "tilewatch_drift_active", _help("tilewatch_drift_active"), labels=det_labels
        )
        last = GaugeMetricFamily(
            "tilewatch_drift_last_timestamp_seconds",
            _help("tilewatch_drift_last_timestamp_seconds"),
            labels=det_labels,
        )
        for (cell, detector), (n, when, on) in sorted(snap.detections.items()):
            cell_labels = [*keys[cell], detector]
            total.add_metric(cell_labels, n)
            active.add_metric(cell_labels, float(on))
            last.add_metric(cell_labels, when)
        yield total
        yield active
        yield last

    def _cells(self, snap: Snapshot) -> Iterator[Metric]:
        labels = self._cell_labels
        keys = snap.keys
        present = np.flatnonzero(snap.events_total > 0).tolist()

        def family(name: str, values: list[float], counter: bool = False) -> Metric:
            fam: Metric
            if counter:
                fam = CounterMetricFamily(_base(name), _help(name), labels=labels)
            else:
                fam = GaugeMetricFamily(name, _help(name), labels=labels)
            add = fam.add_metric
            for i, v in zip(present, values, strict=True):
                add(keys[i], v)
            return fam

        def pick(arr: np.ndarray) -> list[float]:
            return arr[present].tolist()  # type: ignore[no-any-return]

        yield family("tilewatch_events_total", pick(snap.events_total), counter=True)
        yield family("tilewatch_window_events", pick(snap.window_count))
        yield family("tilewatch_window_score_mean", pick(snap.window_mean))
        yield family("tilewatch_window_score_variance", pick(snap.window_variance))
        counts = snap.window_count
        sums = np.where(counts > 0, np.nan_to_num(snap.window_mean) * counts, 0.0)
        m2 = np.where(counts > 1, np.nan_to_num(snap.window_variance) * (counts - 1), 0.0)
        yield family("tilewatch_window_score_summed", pick(sums))
        yield family("tilewatch_window_score_m2", pick(m2))
        yield family("tilewatch_rolling_events", pick(snap.rolling_count))
        yield family("tilewatch_rolling_score_mean", pick(snap.rolling_mean))
        yield family("tilewatch_rolling_score_variance", pick(snap.rolling_variance))
        yield family("tilewatch_last_event_timestamp_seconds", pick(snap.last_event_time))
        cells = GaugeMetricFamily("tilewatch_cells", _help("tilewatch_cells"), labels=["kind"])
        leaves = int(snap.is_leaf.sum())
        cells.add_metric(["leaf"], leaves)
        cells.add_metric(["rollup"], len(keys) - leaves)
        yield cells

    def _models(self, snap: Snapshot) -> Iterator[Metric]:
        name = "tilewatch_late_events_total"
        late = CounterMetricFamily(_base(name), _help(name), labels=["model"])
        for model, n in sorted(snap.late_by_model().items()):
            late.add_metric([model], n)
        yield late
        name = "tilewatch_window_end_timestamp_seconds"
        end = GaugeMetricFamily(name, _help(name), labels=["model"])
        for model, t in sorted(snap.window_end.items()):
            end.add_metric([model], t)
        yield end
        name = "tilewatch_cells_overflow_total"
        over = CounterMetricFamily(_base(name), _help(name), labels=["model"])
        for model, n in sorted(snap.overflow.items()):
            over.add_metric([model], n)
        yield over

    def _ingest(self, snap: Snapshot) -> Iterator[Metric]:
        ing = snap.ingest
        name = "tilewatch_invalid_events_total"
        invalid = CounterMetricFamily(_base(name), _help(name), labels=["reason"])
        for reason, n in sorted(ing.invalid.items()):
            invalid.add_metric([reason], n)
        yield invalid
        name = "tilewatch_dead_letter_failures_total"
        failed = CounterMetricFamily(_base(name), _help(name), labels=["reason"])
        for reason, n in sorted(ing.dead_letter_failures.items()):
            failed.add_metric([reason], n)
        yield failed
        for name, value in (
            ("tilewatch_read_events_total", ing.read),
            ("tilewatch_dead_letter_events_total", ing.dead_lettered),
        ):
            yield CounterMetricFamily(_base(name), _help(name), value=value)
        for name, labelname, table in (
            ("tilewatch_checkpoint_restores_total", "result", ing.checkpoint_restores),
            ("tilewatch_checkpoint_errors_total", "reason", ing.checkpoint_errors),
        ):
            fam = CounterMetricFamily(_base(name), _help(name), labels=[labelname])
            for label, n in sorted(table.items()):
                fam.add_metric([label], n)
            yield fam
        yield CounterMetricFamily(
            _base("tilewatch_checkpoints_total"),
            _help("tilewatch_checkpoints_total"),
            value=ing.checkpoints_written,
        )
        for name, gauge in (
            ("tilewatch_checkpoint_last_bytes", ing.checkpoint_last_bytes),
            ("tilewatch_checkpoint_last_timestamp_seconds", ing.checkpoint_last_time),
        ):
            yield GaugeMetricFamily(name, _help(name), value=gauge)
        name = "tilewatch_consumer_lag_events"
        lag = GaugeMetricFamily(name, _help(name), labels=["topic", "partition"])
        for (topic, part), n in sorted(ing.lag.items()):
            lag.add_metric([topic, str(part)], n)
        yield lag
        yield GaugeMetricFamily(
            "tilewatch_kafka_up", _help("tilewatch_kafka_up"), value=ing.kafka_up
        )
        yield GaugeMetricFamily(
            "tilewatch_partitions_assigned",
            _help("tilewatch_partitions_assigned"),
            value=len(snap.partitions),
        )
