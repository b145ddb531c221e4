"""Grafana panels: heatmap, state timeline, status history, stat, table, time series, row.

Each builder takes the dashboard's :class:`~tilewatch.exporters.grafana.json_model.Layout`
(which places the panel and numbers it) and returns the panel's JSON model with the provisioned
data source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tilewatch.exporters.grafana.json_model import DATASOURCE, GREEN, Layout

__all__ = [
    "heatmap_panel",
    "row_panel",
    "stat_panel",
    "state_timeline_panel",
    "status_history_panel",
    "table_panel",
    "timeseries_panel",
]


def _panel(
    kind: str,
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    defaults: dict[str, Any],
    options: dict[str, Any],
    *,
    overrides: Sequence[dict[str, Any]] = (),
    links: Sequence[dict[str, Any]] = (),
    transformations: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "datasource": dict(DATASOURCE),
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "gridPos": layout.place(*size),
        "id": layout.next_id(),
        "options": options,
        "targets": list(targets),
        "title": title,
        "type": kind,
    }
    if links:
        panel["fieldConfig"]["defaults"]["links"] = list(links)
    if transformations:
        panel["transformations"] = list(transformations)
    return panel


def row_panel(layout: Layout, title: str) -> dict[str, Any]:
    """An expanded row header spanning the grid."""
    layout.new_row()
    return {
        "collapsed": False,
        "gridPos": layout.place(24, 1),
        "id": layout.next_id(),
        "panels": [],
        "title": title,
        "type": "row",
    }


def heatmap_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    *,
    unit: str,
    scheme: str,
    color_min: float,
    color_max: float,
    hide_at_or_below: float,
    reverse: bool = False,
    links: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A heatmap of pre-bucketed rows: one Prometheus series per row, time on x.

    ``calculate`` is off (each series is a row, named by its legend), the colour scale is
    fixed to ``[color_min, color_max]`` with ``scheme``, and only values at or below
    ``hide_at_or_below`` are hidden (Grafana's default hides values <= 1e-9, i.e. zeros).
    """
    options = {
        "calculate": False,
        "cellGap": 1,
        "cellValues": {"unit": unit},
        "color": {
            "exponent": 0.5,
            "fill": "dark-orange",
            "max": color_max,
            "min": color_min,
            "mode": "scheme",
            "reverse": reverse,
            "scale": "linear",
            "scheme": scheme,
            "steps": 64,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": hide_at_or_below},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "showValue": "never",
        "tooltip": {"mode": "single", "show": True, "yHistogram": False},
        "yAxis": {"axisPlacement": "left", "reverse": False},
    }
    defaults = {
        "custom": {
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "scaleDistribution": {"type": "linear"},
        },
        "unit": unit,
    }
    return _panel(
        "heatmap", layout, size, title, description, targets, defaults, options, links=links
    )


def _legend(show: bool = True) -> dict[str, Any]:
    return {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": show}


def state_timeline_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    *,
    mappings: list[dict[str, Any]],
    thresholds: dict[str, Any],
    unit: str = "none",
    links: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A state timeline: one row per series, value mappings give each state text and colour."""
    defaults = {
        "color": {"mode": "thresholds"},
        "custom": {
            "fillOpacity": 80,
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "lineWidth": 0,
        },
        "mappings": mappings,
        "thresholds": thresholds,
        "unit": unit,
    }
    options = {
        "alignValue": "left",
        "legend": _legend(),
        "mergeValues": True,
        "rowHeight": 0.9,
        "showValue": "auto",
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return _panel(
        "state-timeline", layout, size, title, description, targets, defaults, options, links=links
    )


def status_history_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    *,
    mappings: list[dict[str, Any]],
    thresholds: dict[str, Any],
    unit: str = "none",
    links: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A status history: a grid of time buckets x series coloured by mappings/thresholds."""
    defaults = {
        "color": {"mode": "thresholds"},
        "custom": {
            "fillOpacity": 80,
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "lineWidth": 1,
        },
        "mappings": mappings,
        "thresholds": thresholds,
        "unit": unit,
    }
    options = {
        "colWidth": 0.9,
        "legend": _legend(),
        "rowHeight": 0.9,
        "showValue": "auto",
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return _panel(
        "status-history", layout, size, title, description, targets, defaults, options, links=links
    )


def stat_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    *,
    unit: str,
    thresholds: dict[str, Any],
    mappings: list[dict[str, Any]] | None = None,
    color_mode: str = "background",
    overrides: Sequence[dict[str, Any]] = (),
    links: Sequence[dict[str, Any]] = (),
    value_min: float | None = None,
    value_max: float | None = None,
) -> dict[str, Any]:
    """A stat panel showing each series' last value, coloured by thresholds or mappings."""
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds"},
        "mappings": mappings or [],
        "thresholds": thresholds,
        "unit": unit,
    }
    if value_min is not None:
        defaults["min"] = value_min
    if value_max is not None:
        defaults["max"] = value_max
    options = {
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showPercentChange": False,
        "textMode": "value_and_name",
        "wideLayout": True,
    }
    return _panel(
        "stat",
        layout,
        size,
        title,
        description,
        targets,
        defaults,
        options,
        overrides=overrides,
        links=links,
    )


def table_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    *,
    unit: str,
    thresholds: dict[str, Any],
    mappings: list[dict[str, Any]] | None = None,
    cell_type: str = "auto",
    transformations: Sequence[dict[str, Any]] = (),
    overrides: Sequence[dict[str, Any]] = (),
    links: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A table; ``cell_type="color-background"`` colours cells by thresholds/mappings."""
    defaults = {
        "color": {"mode": "thresholds"},
        "custom": {
            "align": "center",
            "cellOptions": {"type": cell_type},
            "filterable": False,
            "inspect": False,
        },
        "mappings": mappings or [],
        "thresholds": thresholds,
        "unit": unit,
    }
    options = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
        "showHeader": True,
    }
    return _panel(
        "table",
        layout,
        size,
        title,
        description,
        targets,
        defaults,
        options,
        overrides=overrides,
        links=links,
        transformations=transformations,
    )


def timeseries_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    *,
    unit: str,
    thresholds: dict[str, Any] | None = None,
    value_min: float | None = None,
    value_max: float | None = None,
    links: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Lines over time; with ``thresholds`` they are drawn as dashed lines and areas."""
    defaults: dict[str, Any] = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "axisPlacement": "auto",
            "drawStyle": "line",
            "fillOpacity": 0,
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "lineWidth": 1,
            "pointSize": 4,
            "showPoints": "auto",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "dashed+area" if thresholds else "off"},
        },
        "thresholds": thresholds
        or {"mode": "absolute", "steps": [{"color": GREEN, "value": None}]},
        "unit": unit,
    }
    if value_min is not None:
        defaults["min"] = value_min
    if value_max is not None:
        defaults["max"] = value_max
    options = {"legend": _legend(), "tooltip": {"mode": "multi", "sort": "desc"}}
    return _panel(
        "timeseries", layout, size, title, description, targets, defaults, options, links=links
    )
