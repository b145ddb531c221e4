"""Forecast tiles on the dashboards: the next windows of a statistic, beside its history.

A forecast grid is a table, not a heatmap, so it cannot be mistaken for observed tiles: rows are
a dimension's values (or the statistic, on the cell dashboard), columns ``+1`` .. ``+H``
windows ahead, each cell coloured by the statistic's amber and red thresholds, titled
"Forecast ▸" and described as a forecast (``tilewatch_forecast_<statistic>``, docs/forecast.md).
"""

from __future__ import annotations

from typing import Any

from tilewatch.aggregators.state.forecasts import FORECAST_STATISTICS
from tilewatch.exporters.grafana.dashboard_statistics import Direction, Statistic
from tilewatch.exporters.grafana.frame import matchers
from tilewatch.exporters.grafana.json_model import Layout, target, threshold_steps
from tilewatch.exporters.grafana.panels import Panel, table_panel

__all__ = ["forecast_grid", "forecastable"]

_DESCRIPTION = (
    "FORECAST, not observed: the damped-trend forecast of the statistic for the next windows "
    "(columns: windows ahead), updated once per closed window (tilewatch_forecast_{key}; the "
    "90% interval is in _lower/_upper, see docs/forecast.md). {rows} Colour: the statistic's "
    "amber and red thresholds. Empty: no forecast yet (fewer than 3 windows with a value)."
)


def forecastable(stat: Statistic, forecasts: tuple[str, ...] = FORECAST_STATISTICS) -> bool:
    """Whether the statistic has forecasts (``tilewatch_forecast_<key>``) among ``forecasts``
    (``[forecast] statistics``)."""
    return stat.key in FORECAST_STATISTICS and stat.key in forecasts


def forecast_grid(
    lay: Layout,
    size: tuple[int, int],
    stat: Statistic,
    label: str,
    match: dict[str, str],
    rows_text: str,
) -> Panel:
    """A table of ``stat``'s forecasts: a row per value of ``label``, a column per horizon."""
    expr = f"max by ({label}, horizon) (tilewatch_forecast_{stat.key}{matchers(**match)})"
    transformations: list[dict[str, Any]] = [
        {
            "id": "groupingToMatrix",
            "options": {
                "columnField": "horizon",
                "emptyValue": "null",
                "rowField": label,
                "valueField": "Value",
            },
        }
    ]
    return table_panel(
        lay,
        size,
        f"Forecast ▸ {stat.title} by {label}, next windows",
        _DESCRIPTION.format(key=stat.key, rows=rows_text),
        [target(expr, "", instant=True, table=True)],
        unit=stat.unit,
        thresholds=threshold_steps(
            stat.amber, stat.red, stat.direction == Direction.LOWER_IS_WORSE
        ),
        cell_type="color-background",
        transformations=transformations,
    )
