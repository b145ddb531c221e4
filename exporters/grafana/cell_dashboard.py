"""The cell detail dashboard: one cell's statuses, drivers, statistics and drift flags.

Each statistic is drawn for the cell and for the model total, on the statistic's fixed range,
with the hierarchy's amber and red thresholds as dashed lines over green / amber / red areas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tilewatch.exporters.generator_inputs import GeneratorInputs
from tilewatch.exporters.grafana.dashboard_rules import DRIFT_FLAG_RECORD, STATISTIC_RECORD
from tilewatch.exporters.grafana.dashboard_statistics import COUNT_METRICS, Direction, Statistic
from tilewatch.exporters.grafana.forecast_panels import forecast_grid, forecastable
from tilewatch.exporters.grafana.frame import (
    ALL,
    CELL_UID,
    DRIFT_MAPPINGS,
    STATUS_TEXT,
    STATUS_THRESHOLDS,
    cells_api_url,
    dashboard,
    dimension_variables,
    drivers_table,
    event_annotations,
    heatmaps_url,
    matchers,
    model_variable,
    tilewatch_url_variable,
)
from tilewatch.exporters.grafana.json_model import (
    STATUS_MAPPINGS,
    Layout,
    link,
    target,
    threshold_steps,
)
from tilewatch.exporters.grafana.panels import (
    Panel,
    row_panel,
    state_timeline_panel,
    status_history_panel,
    timeseries_panel,
)
from tilewatch.exporters.grafana.vector_panels import embedding_panels, explanation_panels

__all__ = [
    "cell_dashboard",
]


def cell_dashboard(inputs: GeneratorInputs, statistics: Sequence[Statistic]) -> dict[str, Any]:
    """One cell: statuses, drivers, every statistic against its thresholds, drift flags."""
    dims = inputs.dimensions
    lay = Layout()
    cell = {d: f"${d}" for d in dims}
    total = {d: ALL for d in dims}
    name = " ".join(f"{{{{{d}}}}}" for d in dims) or "{{model}}"
    heatmaps = link("Heatmaps ($model)", heatmaps_url("$model", cell))
    # Cells outside the series budget have no series here: tilewatch's JSON API has them all.
    api_cell = {d: f"${{{d}:percentencode}}" for d in dims}
    cells_api = link(
        "Cells in tilewatch's JSON API (every cell, beyond the series budget too)",
        cells_api_url("${model:percentencode}", api_cell),
    )
    panels: list[Panel] = [row_panel(lay, "Health of the cell")]
    panels.append(
        status_history_panel(
            lay,
            (12, 8),
            "Component status",
            "Status of each component of this cell over time. "
            + STATUS_TEXT
            + " Across replicas: the worst replica.",
            [
                target(
                    "max by (component) (tilewatch_component_status"
                    + matchers(model="$model", **cell)
                    + ")",
                    "{{component}}",
                )
            ],
            mappings=STATUS_MAPPINGS,
            thresholds=STATUS_THRESHOLDS,
            links=[heatmaps, cells_api],
        )
    )
    panels.append(
        timeseries_panel(
            lay,
            (12, 8),
            "Component health score",
            "Health of each component of this cell: 1 - the aggregated risk of its base "
            "metrics, where each base metric is normalized to a risk in [0, 1] (best -> 0, "
            "amber -> 0.5, red -> 1). Across replicas: the worst (lowest) replica.",
            [
                target(
                    "min by (component) (tilewatch_component_score"
                    + matchers(model="$model", **cell)
                    + ")",
                    "{{component}}",
                )
            ],
            unit="percentunit",
            value_min=0.0,
            value_max=1.0,
        )
    )
    panels.append(drivers_table(lay, dims, cell, (24, 6)))
    panels.append(row_panel(lay, "Statistics"))
    for stat in statistics:
        lower = stat.direction == Direction.LOWER_IS_WORSE
        thresholds = (
            threshold_steps(stat.amber, stat.red, lower)
            if stat.amber is not None or stat.red is not None
            else None
        )
        panels.append(
            timeseries_panel(
                lay,
                (8, 7),
                stat.title,
                stat.describe(
                    f"this cell, and the model total (every dimension at {ALL}) for comparison"
                )
                + " Thresholds drawn as dashed lines with green / amber / red areas.",
                [
                    target(
                        STATISTIC_RECORD + matchers(statistic=stat.key, model="$model", **cell),
                        f"{name}",
                    ),
                    target(
                        STATISTIC_RECORD + matchers(statistic=stat.key, model="$model", **total),
                        "{{model}} total",
                        ref="B",
                    ),
                ],
                unit=stat.unit,
                thresholds=thresholds,
                value_min=stat.low,
                value_max=stat.high,
                links=[heatmaps],
            )
        )
    counts = ["tilewatch_window_events"]
    if inputs.labels is not None:
        counts.append("tilewatch_window_labeled_events")
    panels.append(
        timeseries_panel(
            lay,
            (8, 7),
            "Samples",
            "Events (and labeled events) of this cell in the latest window, summed over "
            "replicas; statistics below min_samples are not shown.",
            [
                target(
                    COUNT_METRICS[metric] + matchers(model="$model", **cell),
                    metric.removeprefix("tilewatch_window_"),
                    ref="AB"[i],
                )
                for i, metric in enumerate(counts)
            ],
            unit="short",
            value_min=0.0,
            links=[cells_api],
        )
    )
    ahead = [stat for stat in statistics if forecastable(stat, inputs.forecasts)]
    if ahead:  # forecast tiles, apart from the observed statistics (docs/forecast.md)
        panels.append(row_panel(lay, "Forecast ▸ the next windows of this cell"))
        for stat in ahead:
            match = {"model": "$model", **cell}
            panels.append(forecast_grid(lay, (8, 4), stat, "model", match, "Row: this cell."))
    if inputs.drift is not None:
        panels.append(row_panel(lay, "Drift flags"))
        panels.append(
            state_timeline_panel(
                lay,
                (24, 6),
                "Drift flags by signal",
                "DRIFT (red) while the signal's flag is set for this cell's window, else "
                "clear (green): score_psi and feature_psi over [drift] psi_alert, missing over "
                "missing_alert, class_shift significant after Benjamini-Hochberg. Across "
                "replicas: the worst replica.",
                [target(DRIFT_FLAG_RECORD + matchers(model="$model", **cell), "{{signal}}")],
                mappings=DRIFT_MAPPINGS,
                thresholds=threshold_steps(None, 1.0),
            )
        )
    if inputs.multiclass:
        panels.extend(_class_panels(lay, cell))
    if inputs.embeddings:
        panels.extend(embedding_panels(lay, cell))
    if inputs.attributions:
        panels.extend(explanation_panels(lay, cell))
    return dashboard(
        CELL_UID,
        "tilewatch: cell detail",
        "One cell: statuses, drivers and every statistic against its thresholds.",
        panels,
        [model_variable(), *dimension_variables(dims), tilewatch_url_variable()],
        event_annotations(dims),
    )


def _class_panels(lay: Layout, cell: dict[str, str]) -> list[Panel]:
    """The row of a multi-class model's statistics (docs/multiclass.md). Each cell's window
    is exported by the replica owning it; across replicas the maximum is shown (exact when
    producers key by cell)."""
    sel = matchers(model="$model", **cell)
    by_class = "{{class}}"
    return [
        row_panel(lay, "Classes"),
        timeseries_panel(
            lay,
            (8, 7),
            "Predicted-class shares",
            "Share of this cell's window predictions per class (the argmax where the event "
            "names none); NaN below [cells] min_samples events.",
            [target(f"max by (class) (tilewatch_window_class_share_ratio{sel})", by_class)],
            unit="percentunit",
            value_min=0.0,
            value_max=1.0,
        ),
        timeseries_panel(
            lay,
            (8, 7),
            "F1 per class",
            "One-vs-rest F1 of each class over the window's labeled events; NaN below "
            "[cells] min_samples labeled events.",
            [target(f"max by (class) (tilewatch_window_class_f1_ratio{sel})", by_class)],
            unit="percentunit",
            value_min=0.0,
            value_max=1.0,
        ),
        timeseries_panel(
            lay,
            (8, 7),
            "Accuracy and macro F1",
            "Share of labeled predictions that were right, and the mean F1 over the classes "
            "predicted or labeled in the window.",
            [
                target(f"max(tilewatch_window_class_accuracy_ratio{sel})", "accuracy"),
                target(f"max(tilewatch_window_macro_f1_ratio{sel})", "macro F1", ref="B"),
            ],
            unit="percentunit",
            value_min=0.0,
            value_max=1.0,
        ),
        state_timeline_panel(
            lay,
            (24, 5),
            "Class flags",
            "DRIFT (red) while the flag is set for this cell's window (with drift on, against "
            "the cell's trailing windows): error, a significant rise of the error rate above "
            "0.05; confidence and margin, their histograms moved (debiased PSI over [drift] "
            "psi_alert).",
            [
                target(f"max(tilewatch_window_class_error_flag{sel})", "error"),
                target(
                    f"max by (signal) (tilewatch_window_class_drift_flag{sel})",
                    "{{signal}}",
                    ref="B",
                ),
            ],
            mappings=DRIFT_MAPPINGS,
            thresholds=threshold_steps(None, 1.0),
        ),
    ]
