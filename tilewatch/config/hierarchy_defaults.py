"""The default health hierarchy: predefined base metrics, components and indicators.

They depend on the rest of the config (the window, ``[drift]`` features and detectors,
``[labels]`` min_samples and task); ``tilewatch.config.hierarchy`` keeps the parts whose
statistics the config produces. Documented in ``docs/hierarchy.md``.
"""

from __future__ import annotations

import re
from typing import Any

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftSettings

__all__ = ["DEFAULT_INDICATORS", "default_components", "default_metrics", "feature_metrics"]

_LABELED = "tilewatch_window_labeled_events"


def default_metrics(
    cells: CellSettings, drift: DriftSettings, min_samples: int, label_min_samples: int
) -> dict[str, dict[str, Any]]:
    """The predefined base metrics, as TOML tables (a ``[hierarchy.metrics.<name>]`` table
    with the same name overrides their keys one by one)."""
    window = cells.window_seconds
    psi_amber = min(0.1, drift.psi_alert / 2)
    out: dict[str, dict[str, Any]] = {
        "missing_flag": {
            "metric": 'tilewatch_window_drift_flag{signal="missing"}',
            "amber": 0.5,
            "red": 1.0,
            "min_samples": min_samples,
        },
        # Drift and performance verdicts are decisions against each cell's own reference:
        # significant after Benjamini-Hochberg AND larger than the effect threshold
        # ([drift] psi_alert / class_alert, [labels] error_alert / calibration_alert). A flag is
        # 0 or 1, so a flagged cell is red and an unflagged one green.
        "score_psi": {
            "metric": 'tilewatch_window_drift_flag{signal="score_psi"}',
            "amber": 0.5,
            "red": 1.0,
            "min_samples": min_samples,
        },
        "feature_psi": {
            "metric": 'tilewatch_window_drift_flag{signal="feature_psi"}',
            "amber": 0.5,
            "red": 1.0,
            "min_samples": min_samples,
        },
        "class_shift": {
            "metric": 'tilewatch_window_drift_flag{signal="class_shift"}',
            "amber": 0.5,
            "red": 1.0,
            "min_samples": min_samples,
        },
        "error_excess": {
            "metric": 'tilewatch_window_performance_flag{signal="error_rate"}',
            "amber": 0.5,
            "red": 1.0,
            "min_samples": label_min_samples,
            "count": _LABELED,
        },
        "calibration": {
            "metric": 'tilewatch_window_performance_flag{signal="calibration"}',
            "amber": 0.5,
            "red": 1.0,
            "min_samples": label_min_samples,
            "count": _LABELED,
        },
        # The significant error excess over the reference (absolute), for revenue_at_risk.
        "error_excess_rate": {
            "metric": "tilewatch_window_error_excess_rate",
            "amber": 0.05,
            "red": 0.1,
            "min_samples": label_min_samples,
            "count": _LABELED,
        },
        # Absolute thresholds, not in any default component (a [hierarchy.components] table
        # may use them): a cell's normal error rate depends on its segment.
        "score_psi_raw": {
            "metric": "tilewatch_window_score_psi",
            "amber": psi_amber,
            "red": drift.psi_alert,
            "min_samples": min_samples,
        },
        "error_ratio": {
            "metric": "tilewatch_window_error_ratio",
            "amber": 0.15,
            "red": 0.25,
            "min_samples": label_min_samples,
            "count": _LABELED,
        },
        "accuracy": {
            "metric": "tilewatch_window_accuracy_ratio",
            "direction": "lower_is_worse",
            "amber": 0.85,
            "red": 0.75,
            "min_samples": label_min_samples,
            "count": _LABELED,
        },
        "calibration_error": {
            "metric": "tilewatch_window_calibration_error",
            "amber": 0.05,
            "red": 0.1,
            "min_samples": label_min_samples,
            "count": _LABELED,
        },
        "latency_p95": {
            "metric": 'tilewatch_window_latency_seconds{percentile="95"}',
            "amber": 0.25,
            "red": 1.0,
            "min_samples": min_samples,
        },
        "silence": {
            "metric": "tilewatch_cell_silence_seconds",
            "amber": 5 * window,
            "red": 30 * window,
            "min_samples": 0,
        },
        # One signal per model (broadcast to its cells): in no default component, so a replica
        # reading behind real time does not paint every tile; alert on it per model.
        "pipeline_lag": {
            "metric": "tilewatch_model_pipeline_lag_seconds",
            "amber": 5 * window,
            "red": 30 * window,
            "min_samples": 0,
        },
        "version_age": {
            "metric": "tilewatch_model_version_age_seconds",
            "amber": 90 * 86400.0,
            "red": 180 * 86400.0,
            "min_samples": 0,
        },
    }
    for detector in drift.detectors:
        out[f"drift_active_{detector}"] = {
            "metric": f'tilewatch_drift_active{{detector="{detector}"}}',
            "amber": 0.5,
            "red": 1.5,
            "min_samples": min_samples,
        }
    for name, feature in zip(feature_metrics(drift), drift.features, strict=True):
        out[name] = {
            "metric": f'tilewatch_window_feature_missing_ratio{{feature="{feature}"}}',
            "amber": drift.missing_alert / 2,
            "red": drift.missing_alert,
            "min_samples": min_samples,
        }
    return out


def feature_metrics(drift: DriftSettings) -> list[str]:
    """Names of the predefined missing-ratio base metric of each ``[drift]`` feature."""
    return [f"missing_{re.sub(r'[^a-z0-9_]', '_', f.lower())}" for f in drift.features]


def default_components(drift: DriftSettings, regression: bool) -> dict[str, dict[str, Any]]:
    """The default components, as TOML tables."""
    out: dict[str, dict[str, Any]] = {
        "data_quality": {"members": feature_metrics(drift) or ["missing_flag"]},
        "drift": {
            "members": [
                "score_psi",
                "feature_psi",
                "class_shift",
                *(f"drift_active_{d}" for d in drift.detectors),
            ]
        },
        "performance": {"members": ["error_excess", "calibration"]},
        "latency": {"members": ["latency_p95"]},
        "aging": {"members": ["silence"]},
    }
    if regression:
        del out["performance"]
    return out


#: The default business indicators, as TOML tables.
DEFAULT_INDICATORS: dict[str, dict[str, Any]] = {
    "red_traffic_share": {"amber": 0.05, "red": 0.2},
    "revenue_at_risk": {
        "metric": "error_excess_rate",
        "target": 0.0,
        "value_per_error": 1.0,
        "amber": 100.0,
        "red": 1000.0,
    },
    "fairness_gap": {"metric": "tilewatch_window_error_gap_ratio", "amber": 0.05, "red": 0.1},
}
