"""What base metrics can read: every per-cell statistic of a snapshot, as named arrays.

:func:`cell_statistics` turns a :class:`~tilewatch.aggregators.state.replica.Snapshot` into
``{statistic text: float array over cells}`` (the same values the collectors export, plus the aging
signals); :data:`STATISTICS` lists every name it can produce, the extra label each needs and the
part of the configuration that makes it exist, so the config can reject unknown names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from tilewatch.aggregators.arrays import FloatArray
from tilewatch.aggregators.health.aging import (
    PIPELINE_LAG,
    SILENCE,
    VERSION_AGE,
    aging_statistics,
)
from tilewatch.aggregators.health.evaluate import ModelGap
from tilewatch.aggregators.health.settings import statistic_key
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.aggregators.state.versions import current_versions
from tilewatch.aggregators.stats.latency import percentile_label

__all__ = [
    "GAP_STATISTICS",
    "STATISTICS",
    "Needs",
    "StatisticInfo",
    "cell_statistics",
    "model_gaps",
    "version_first_seen",
]


#: What makes a statistic exist: ``"always"``, ``"drift"`` (the drift stage is on),
#: ``"baseline"`` (drift with a baseline) or ``"labels"`` (a ``[labels]`` section).
Needs = Literal["always", "drift", "baseline", "labels", "multiclass"]


class StatisticInfo(NamedTuple):
    """A statistic base metrics may use: its extra label (or None) and what produces it."""

    label: str | None
    needs: Needs


#: Every per-cell statistic by exported name. ``labels`` ones are produced from
#: ``Snapshot.performance`` (see the marked place in :func:`cell_statistics`).
STATISTICS: dict[str, StatisticInfo] = {
    **{
        name: StatisticInfo(None, "always")
        for name in (
            "tilewatch_events_total",
            "tilewatch_window_events",
            "tilewatch_window_score_mean",
            "tilewatch_window_score_variance",
            "tilewatch_window_score_summed",
            "tilewatch_window_score_m2",
            "tilewatch_rolling_events",
            "tilewatch_rolling_score_mean",
            "tilewatch_rolling_score_variance",
            "tilewatch_last_event_timestamp_seconds",
            SILENCE,
            PIPELINE_LAG,
            VERSION_AGE,
        )
    },
    "tilewatch_window_latency_seconds": StatisticInfo("percentile", "always"),
    **{
        name: StatisticInfo(None, "drift")
        for name in (
            "tilewatch_window_score_mean_lower",
            "tilewatch_window_score_mean_upper",
            "tilewatch_window_score_mean_change",
        )
    },
    **{
        name: StatisticInfo("feature", "drift")
        for name in (
            "tilewatch_window_feature_missing_ratio",
            "tilewatch_window_feature_missing_ratio_lower",
            "tilewatch_window_feature_missing_ratio_upper",
        )
    },
    "tilewatch_window_drift_flag": StatisticInfo("signal", "drift"),
    "tilewatch_drift_active": StatisticInfo("detector", "drift"),
    "tilewatch_drift_last_timestamp_seconds": StatisticInfo("detector", "drift"),
    **{
        name: StatisticInfo(None, "baseline")
        for name in (
            "tilewatch_window_score_psi",
            "tilewatch_window_score_js_distance",
            "tilewatch_window_score_mean_zscore",
            "tilewatch_window_class_shift_pvalue",
            "tilewatch_window_class_shift_significant",
        )
    },
    "tilewatch_window_feature_psi": StatisticInfo("feature", "baseline"),
    "tilewatch_window_performance_flag": StatisticInfo("signal", "labels"),
    "tilewatch_window_performance_pvalue": StatisticInfo("signal", "labels"),
    **{
        name: StatisticInfo(None, "labels")
        for name in (
            "tilewatch_window_labeled_events",
            "tilewatch_window_accuracy_ratio",
            "tilewatch_window_accuracy_ratio_lower",
            "tilewatch_window_accuracy_ratio_upper",
            "tilewatch_window_error_ratio",
            "tilewatch_window_error_ratio_lower",
            "tilewatch_window_error_ratio_upper",
            "tilewatch_window_precision_ratio",
            "tilewatch_window_recall_ratio",
            "tilewatch_window_f1",
            "tilewatch_window_brier_score",
            "tilewatch_window_log_loss",
            "tilewatch_window_calibration_error",
            "tilewatch_window_estimated_accuracy_ratio",
            "tilewatch_window_estimate_gap_ratio",
            "tilewatch_window_estimate_gap_bound",
            "tilewatch_window_estimated_accuracy_bound",
            "tilewatch_window_mae",
            "tilewatch_window_rmse",
            "tilewatch_window_mean_error",
            "tilewatch_window_reference_error_ratio",
            "tilewatch_window_error_excess_ratio",
            "tilewatch_window_error_excess_rate",
            "tilewatch_window_calibration_error_debiased",
            "tilewatch_labeled_events_total",
            "tilewatch_label_errors_total",
        )
    },
    # Multi-class models ([events] scores); the error and drift flags need drift on.
    **{
        name: StatisticInfo(None, "multiclass")
        for name in (
            "tilewatch_window_class_labeled_events",
            "tilewatch_window_class_accuracy_ratio",
            "tilewatch_window_class_expected_accuracy_ratio",
            "tilewatch_window_class_brier_score",
            "tilewatch_window_class_log_loss",
            "tilewatch_window_class_calibration_error",
            "tilewatch_window_macro_f1_ratio",
            "tilewatch_window_weighted_f1_ratio",
            "tilewatch_window_class_error_increase",
            "tilewatch_window_class_error_flag",
        )
    },
    "tilewatch_window_class_drift_flag": StatisticInfo("signal", "multiclass"),
}

#: Per-model gap statistics a ``fairness_gap`` indicator may use (``needs`` = labels).
GAP_STATISTICS: dict[str, str] = {
    "tilewatch_window_accuracy_gap_ratio": "accuracy",
    "tilewatch_window_error_gap_ratio": "error",
}


#: Drift signals whose flag is a verdict only where the cell was tested (else NaN: no
#: reference, too few events). The missing flag also decides on the share alone.
_TESTED_ONLY = frozenset({"score_psi", "feature_psi", "class_shift"})


def _verdict(mask: Any, pvalue: Any) -> FloatArray:
    """A flag as 0/1, NaN where its test did not run (``pvalue`` NaN), so that an untested
    cell has no verdict rather than a green one. The exported flag is 0 there."""
    values = np.asarray(mask, dtype=np.float64)
    if pvalue is None:
        return values
    return np.where(np.isnan(np.asarray(pvalue, dtype=np.float64)), math.nan, values)


def cell_statistics(
    snapshot: Snapshot, now: float, detectors: Sequence[str] = ()
) -> dict[str, FloatArray]:
    """Every per-cell statistic of a snapshot, by statistic text (see :data:`STATISTICS`).

    Parameters
    ----------
    snapshot
        A replica snapshot.
    now
        Wall-clock time for the aging signals (epoch seconds).
    detectors
        Detectors that run, so cells without a detection read ``tilewatch_drift_active`` 0
        (rather than no verdict).

    Returns
    -------
    dict
        ``name`` or ``name{label="value"}`` -> float array over ``snapshot.keys``.
    """
    n = len(snapshot.keys)
    counts = snapshot.window_count.astype(np.float64)
    out: dict[str, FloatArray] = {
        "tilewatch_events_total": snapshot.events_total.astype(np.float64),
        "tilewatch_window_events": counts,
        "tilewatch_window_score_mean": snapshot.window_mean,
        "tilewatch_window_score_variance": snapshot.window_variance,
        "tilewatch_window_score_summed": np.where(
            counts > 0, np.nan_to_num(snapshot.window_mean) * counts, 0.0
        ),
        "tilewatch_window_score_m2": np.where(
            counts > 1, np.nan_to_num(snapshot.window_variance) * (counts - 1), 0.0
        ),
        "tilewatch_rolling_events": snapshot.rolling_count.astype(np.float64),
        "tilewatch_rolling_score_mean": snapshot.rolling_mean,
        "tilewatch_rolling_score_variance": snapshot.rolling_variance,
        "tilewatch_last_event_timestamp_seconds": snapshot.last_event_time,
    }
    out.update(
        aging_statistics(
            snapshot.last_event_time,
            snapshot.model_ids,
            snapshot.model_names,
            version_first_seen(snapshot),
            now,
        )
    )
    for q, values in sorted(getattr(snapshot, "window_latency", {}).items()):
        out[
            statistic_key("tilewatch_window_latency_seconds", ("percentile", percentile_label(q)))
        ] = values
    drift = snapshot.drift
    if drift is not None:
        out["tilewatch_window_score_psi"] = drift.score_psi
        out["tilewatch_window_score_js_distance"] = drift.score_js_distance
        out["tilewatch_window_score_mean_zscore"] = drift.mean_zscore
        out["tilewatch_window_score_mean_lower"] = drift.mean_lower
        out["tilewatch_window_score_mean_upper"] = drift.mean_upper
        out["tilewatch_window_score_mean_change"] = drift.mean_change
        out["tilewatch_window_class_shift_pvalue"] = drift.class_pvalue
        out["tilewatch_window_class_shift_significant"] = drift.class_significant.astype(float)
        for j, feature in enumerate(drift.features):
            for name, table in (
                ("tilewatch_window_feature_psi", drift.feature_psi),
                ("tilewatch_window_feature_missing_ratio", drift.missing_ratio),
                ("tilewatch_window_feature_missing_ratio_lower", drift.missing_lower),
                ("tilewatch_window_feature_missing_ratio_upper", drift.missing_upper),
            ):
                out[statistic_key(name, ("feature", feature))] = table[:, j]
        for signal, mask in drift.flags.items():
            out[statistic_key("tilewatch_window_drift_flag", ("signal", signal))] = _verdict(
                mask, drift.pvalue.get(signal) if signal in _TESTED_ONLY else None
            )
    active: dict[str, FloatArray] = {}
    last: dict[str, FloatArray] = {}
    running = set(detectors)
    for detector in sorted(running | {d for _c, d in snapshot.detections}):
        active[detector] = np.zeros(n)
        last[detector] = np.full(n, math.nan)
    for (cell, detector), (_count, when, on) in snapshot.detections.items():
        active[detector][cell] = float(on)
        last[detector][cell] = when
    for detector in active:
        out[statistic_key("tilewatch_drift_active", ("detector", detector))] = active[detector]
        out[statistic_key("tilewatch_drift_last_timestamp_seconds", ("detector", detector))] = last[
            detector
        ]
    out.update(_performance_statistics(snapshot))
    out.update(_multiclass_statistics(snapshot))
    return out


def _multiclass_statistics(snapshot: Snapshot) -> dict[str, FloatArray]:
    """The multi-class statistics of a snapshot (none without a multi-class model)."""
    out: dict[str, FloatArray] = {}
    m = getattr(snapshot, "multiclass", None)
    if m is not None:
        out["tilewatch_window_class_labeled_events"] = m.labeled.astype(float)
        out["tilewatch_window_class_accuracy_ratio"] = m.accuracy
        out["tilewatch_window_class_expected_accuracy_ratio"] = m.expected_accuracy
        out["tilewatch_window_class_brier_score"] = m.brier
        out["tilewatch_window_class_log_loss"] = m.log_loss
        out["tilewatch_window_class_calibration_error"] = m.calibration_error
        out["tilewatch_window_macro_f1_ratio"] = m.macro_f1
        out["tilewatch_window_weighted_f1_ratio"] = m.weighted_f1
    errors = getattr(snapshot, "class_errors", None)
    if errors is not None:
        out["tilewatch_window_class_error_increase"] = errors.increase
        out["tilewatch_window_class_error_flag"] = errors.flag.astype(float)
    drift = getattr(snapshot, "class_drift", None)
    if drift is not None:
        for signal, flag in drift.flag.items():
            key = statistic_key("tilewatch_window_class_drift_flag", ("signal", signal))
            out[key] = flag.astype(float)
    return out


# --- performance: the part the label stage fills ---------------------------------------------
# Snapshot.performance (tilewatch.aggregators.labels.view.PerformanceView) is being added with the
# label join. Its field names are read with getattr so this module works with and without it; the
# owner of the performance stage keeps this mapping in line with the collector's names.
_PERFORMANCE_FIELDS: tuple[tuple[str, str], ...] = (
    ("tilewatch_window_labeled_events", "labeled"),
    ("tilewatch_window_accuracy_ratio", "accuracy"),
    ("tilewatch_window_accuracy_ratio_lower", "accuracy_lower"),
    ("tilewatch_window_accuracy_ratio_upper", "accuracy_upper"),
    ("tilewatch_window_error_ratio", "error"),
    ("tilewatch_window_error_ratio_lower", "error_lower"),
    ("tilewatch_window_error_ratio_upper", "error_upper"),
    ("tilewatch_window_precision_ratio", "precision"),
    ("tilewatch_window_recall_ratio", "recall"),
    ("tilewatch_window_f1", "f1"),
    ("tilewatch_window_brier_score", "brier"),
    ("tilewatch_window_log_loss", "log_loss"),
    ("tilewatch_window_calibration_error", "calibration_error"),
    ("tilewatch_window_estimate_gap_ratio", "estimate_gap"),
    ("tilewatch_window_estimate_gap_bound", "estimate_bound"),
    ("tilewatch_window_mae", "mae"),
    ("tilewatch_window_rmse", "rmse"),
    ("tilewatch_window_mean_error", "mean_error"),
)


def _performance_statistics(snapshot: Snapshot) -> dict[str, FloatArray]:
    perf: Any = getattr(snapshot, "performance", None)
    if perf is None:
        return {}
    out: dict[str, FloatArray] = {}
    stats = getattr(perf, "stats", None)
    for name, attr in _PERFORMANCE_FIELDS:
        values = getattr(stats, attr, None)
        if values is not None:
            out[name] = np.asarray(values, dtype=np.float64)
    for name, attr in (
        ("tilewatch_window_estimated_accuracy_ratio", "estimate"),
        ("tilewatch_window_estimated_accuracy_bound", "estimate_bound"),
        ("tilewatch_labeled_events_total", "labeled_total"),
        ("tilewatch_label_errors_total", "errors_total"),
    ):
        values = getattr(perf, attr, None)
        if values is not None:
            out[name] = np.asarray(values, dtype=np.float64)
    decisions: Any = getattr(perf, "decisions", None)
    if decisions is not None:
        for name, attr in (
            ("tilewatch_window_reference_error_ratio", "reference_error"),
            ("tilewatch_window_error_excess_ratio", "excess"),
            ("tilewatch_window_error_excess_rate", "excess_rate"),
            ("tilewatch_window_calibration_error_debiased", "calibration_effect"),
        ):
            out[name] = np.asarray(getattr(decisions, attr), dtype=np.float64)
        for signal, mask in decisions.flags.items():
            key = statistic_key("tilewatch_window_performance_flag", ("signal", signal))
            out[key] = _verdict(mask, decisions.pvalue.get(signal))
        for signal, values in decisions.pvalue.items():
            key = statistic_key("tilewatch_window_performance_pvalue", ("signal", signal))
            out[key] = np.asarray(values, dtype=np.float64)
    return out


def model_gaps(snapshot: Snapshot) -> list[ModelGap]:
    """The per-model fairness gaps of a snapshot (empty without performance)."""
    perf: Any = getattr(snapshot, "performance", None)
    out: list[ModelGap] = []
    names = {v: k for k, v in GAP_STATISTICS.items()}
    for gap in getattr(perf, "gaps", None) or ():
        metric = names.get(getattr(gap, "metric", ""))
        if metric is not None:
            out.append(ModelGap(metric, gap.model, gap.dimension, float(gap.gap), gap.worst))
    return out


# --- end of the performance part -------------------------------------------------------------


def version_first_seen(snapshot: Snapshot) -> dict[str, float]:
    """Model -> first event time of its current version (empty when versions are unknown).

    The current version is the one seen last
    (``tilewatch.aggregators.state.versions.current_versions``).
    """
    table = getattr(snapshot, "model_versions", None)
    if not table:
        return {}
    return {model: first for model, (_version, first) in current_versions(table).items()}
