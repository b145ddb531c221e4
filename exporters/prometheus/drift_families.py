"""The drift and data-quality families (names, types and help in
:data:`~tilewatch.exporters.prometheus.catalog.DRIFT_METRICS`).

Window statistics come from the snapshot's cached drift view (computed in the consumer thread
when a reported window changes); detections from the river detectors on scores and, with
``[labels]``, on the 0/1 error stream. Nothing here changes state.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.families import CellRows, family, table_family

__all__ = ["detection_families", "drift_families"]


def drift_families(snap: Snapshot, rows: CellRows) -> Iterator[Metric]:
    """Every drift family: window statistics, flags, schema violations, then detections."""
    drift = snap.drift
    if drift is None:
        return
    yield rows.family("tilewatch_window_score_psi", drift.score_psi, window=True)
    yield rows.family("tilewatch_window_score_js_distance", drift.score_js_distance, window=True)
    yield rows.family("tilewatch_window_score_mean_zscore", drift.mean_zscore, window=True)
    yield rows.family("tilewatch_window_score_mean_lower", drift.mean_lower, window=True)
    yield rows.family("tilewatch_window_score_mean_upper", drift.mean_upper, window=True)
    yield rows.family("tilewatch_window_score_mean_change", drift.mean_change, window=True)
    yield rows.family("tilewatch_window_class_shift_pvalue", drift.class_pvalue, window=True)
    significant = drift.class_significant.astype(float)
    yield rows.family("tilewatch_window_class_shift_significant", significant, window=True)
    for name, table in (  # cells x features
        ("tilewatch_window_feature_psi", drift.feature_psi),
        ("tilewatch_window_feature_psi_effect", drift.feature_effect),
        ("tilewatch_window_feature_missing_ratio", drift.missing_ratio),
        ("tilewatch_window_feature_missing_ratio_lower", drift.missing_lower),
        ("tilewatch_window_feature_missing_ratio_upper", drift.missing_upper),
    ):
        fam = family(name, rows.labels)
        for j, feature in enumerate(drift.features):
            rows.add(fam, table[:, j], feature)
        yield rows.window(fam)
    flag = family("tilewatch_window_drift_flag", rows.labels)
    for signal, mask in sorted(drift.flags.items()):
        rows.add(flag, mask.astype(float), signal)
    yield rows.window(flag)
    for name, values in (
        ("tilewatch_window_drift_pvalue", drift.pvalue),
        ("tilewatch_window_drift_effect", drift.effect),
    ):
        fam = family(name, rows.labels)
        for signal, column in sorted(values.items()):
            rows.add(fam, column, signal)
        yield rows.window(fam)
    yield table_family("tilewatch_schema_violations_total", snap.violations)
    yield from detection_families(snap, rows)


def detection_families(snap: Snapshot, rows: CellRows) -> Iterator[Metric]:
    """Detections, active flags and last detection times per cell and detector."""
    total = family("tilewatch_drift_detections_total", rows.labels)
    active = family("tilewatch_drift_active", rows.labels)
    last = family("tilewatch_drift_last_timestamp_seconds", rows.labels)
    keys = snap.keys
    exported = rows.mask
    for (cell, detector), (n, when, on) in sorted(snap.detections.items()):
        if cell >= len(exported) or not exported[cell]:
            continue
        labels = [*keys[cell], detector]
        total.add_metric(labels, n)
        active.add_metric(labels, float(on))
        last.add_metric(labels, when)
    yield total
    yield active
    yield last
