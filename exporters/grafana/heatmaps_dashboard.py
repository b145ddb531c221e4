"""The heatmaps dashboard: per key statistic, time on x and each dimension's values on y.

Rows are roll-up cells: the heatmap of a dimension shows its values with every other
dimension at its variable's value (default ``__all__``, the total). Each statistic heatmap has
its sample count beside it, on the same rows, and the forecastable ones a forecast grid of the
next windows under it; drift flags are state timelines; the top row
shows the statistic chosen in the ``statistic`` variable as its position on its own scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tilewatch.exporters.generator_inputs import GeneratorInputs
from tilewatch.exporters.grafana.dashboard_rules import (
    DRIFT_FLAG_RECORD,
    SCALED_RECORD,
    STATISTIC_RECORD,
)
from tilewatch.exporters.grafana.dashboard_statistics import COUNT_METRICS, Statistic, count_scale
from tilewatch.exporters.grafana.forecast_panels import forecast_grid, forecastable
from tilewatch.exporters.grafana.frame import (
    ALL,
    DRIFT_MAPPINGS,
    HEATMAPS_UID,
    cell_url,
    dashboard,
    dimension_variables,
    event_annotations,
    matchers,
    model_variable,
)
from tilewatch.exporters.grafana.json_model import (
    Layout,
    custom_variable,
    link,
    target,
    threshold_steps,
)
from tilewatch.exporters.grafana.panels import (
    Panel,
    heatmap_panel,
    row_panel,
    state_timeline_panel,
)

__all__ = [
    "heatmaps_dashboard",
]


def _split(dims: Sequence[str]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Panel sizes of a statistic heatmap and its count beside it."""
    return ((18, 8), (6, 8)) if len(dims) <= 1 else ((9, 8), (3, 8))


def _rows_of(dims: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """Per heatmap: the label on y and the matchers of the other dimensions (variables)."""
    if not dims:
        return [("model", {})]
    return [(d, {o: f"${o}" for o in dims if o != d} | {d: f"!{ALL}"}) for d in dims]


def _row_text(label: str, fixed: dict[str, str]) -> str:
    others = [f"{d} = ${d}" for d in fixed if d != label]
    return f"the values of {label}" + (f" at {', '.join(others)}" if others else "")


def heatmaps_dashboard(inputs: GeneratorInputs, statistics: Sequence[Statistic]) -> dict[str, Any]:
    """A heatmap per key statistic and dimension, with sample counts and drift flags."""
    dims = inputs.dimensions
    lay = Layout()
    panels: list[Panel] = []
    heat, count = _split(dims)
    cell_link = link(
        "Cell detail ($model, " + ", ".join(f"${d}" for d in dims) + ")",
        cell_url("$model", {d: f"${d}" for d in dims}),
    )
    model = {"model": "$model"} if dims else {}

    panels.append(row_panel(lay, "Selected statistic: ${statistic:text}"))
    for label, fixed in _rows_of(dims):
        panels.append(
            heatmap_panel(
                lay,
                (24 // max(len(dims), 1), 8),
                f"${{statistic:text}} by {label} (position on its scale)",
                "The statistic chosen in the 'statistic' variable, normalized to its position "
                "on the statistic's own fixed colour scale: 0 = the good end, 1 = the worse "
                "end (clamped), so the colour of a tile is the same as in that statistic's "
                f"own row below. Colour: Viridis 0 .. 1. Rows: {_row_text(label, fixed)}. "
                "Empty tile = no value (below min_samples or no events).",
                [
                    target(
                        SCALED_RECORD + matchers(statistic="$statistic", **model, **fixed),
                        f"{{{{{label}}}}}",
                    )
                ],
                unit="percentunit",
                scheme="Viridis",
                color_min=0.0,
                color_max=1.0,
                hide_at_or_below=-1e-9,
                links=[cell_link],
            )
        )
    for stat in statistics:
        panels.append(row_panel(lay, stat.title))
        count_metric = COUNT_METRICS[stat.count]
        top = count_scale(inputs, stat.count)
        for label, fixed in _rows_of(dims):
            rows = _row_text(label, fixed)
            panels.append(
                heatmap_panel(
                    lay,
                    heat,
                    f"{stat.title} by {label}",
                    stat.describe(rows),
                    [
                        target(
                            STATISTIC_RECORD + matchers(statistic=stat.key, **model, **fixed),
                            f"{{{{{label}}}}}",
                        )
                    ],
                    unit=stat.unit,
                    scheme=stat.scheme,
                    color_min=stat.low,
                    color_max=stat.high,
                    hide_at_or_below=stat.floor - 1e-9,
                    reverse=stat.reverse,
                    links=[cell_link],
                )
            )
            panels.append(
                heatmap_panel(
                    lay,
                    count,
                    f"Samples ({label})",
                    f"The sample count behind the {stat.title} tiles beside it: {stat.count} "
                    f"summed over replicas. Rows: {rows}. Colour: Cividis on a fixed scale "
                    f"0 .. {top:g} (10 x min_samples; more saturates). Statistics of tiles "
                    "below min_samples are not shown.",
                    [target(count_metric + matchers(**model, **fixed), f"{{{{{label}}}}}")],
                    unit="short",
                    scheme="Cividis",
                    color_min=0.0,
                    color_max=top,
                    hide_at_or_below=-1e-9,
                )
            )
        if forecastable(
            stat, inputs.forecasts
        ):  # the next windows, beside the history (docs/forecast.md)
            for label, fixed in _rows_of(dims):
                size = (24 // max(len(dims), 1), 6)
                rows = f"Rows: {_row_text(label, fixed)}."
                panels.append(forecast_grid(lay, size, stat, label, {**model, **fixed}, rows))
    if inputs.drift is not None:
        panels.append(row_panel(lay, "Drift flags"))
        for label, fixed in _rows_of(dims):
            panels.append(
                state_timeline_panel(
                    lay,
                    (24 // max(len(dims), 1), 8),
                    f"Drift flags by {label}",
                    "DRIFT (red) while any drift flag of the window is set (score PSI, "
                    "feature PSI, missing share over [drift] missing_alert, or a significant "
                    "class shift after Benjamini-Hochberg), else clear (green); text and "
                    f"colour together. Rows: {_row_text(label, fixed)}. Across replicas: the "
                    "worst replica.",
                    [
                        target(
                            f"max by ({label}) ({DRIFT_FLAG_RECORD}"
                            + matchers(**model, **fixed)
                            + ")",
                            f"{{{{{label}}}}}",
                        )
                    ],
                    mappings=DRIFT_MAPPINGS,
                    thresholds=threshold_steps(None, 1.0),
                    links=[cell_link],
                )
            )
    variables = [model_variable()]
    variables.append(
        custom_variable(
            "statistic",
            "Statistic",
            [(s.title, s.key) for s in statistics],
            default=statistics[0].key,
            description="The statistic of the top row (normalized to its scale).",
        )
    )
    variables += dimension_variables(dims)
    return dashboard(
        HEATMAPS_UID,
        "tilewatch: heatmaps",
        "Per key statistic, heatmaps with time on x and each dimension's values on y.",
        panels,
        variables,
        event_annotations(dims),
    )
