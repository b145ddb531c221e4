"""What the generated dashboards share: uids, links, the dashboard frame, variables, annotations.

Links between dashboards carry the model and every dimension in ``var-`` parameters plus
``${__url_time_range}``; the drivers table (which base metric and cell drive each status)
appears on the overview and on the cell detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tilewatch.exporters.grafana.json_model import (
    AMBER,
    DATASOURCE,
    GREEN,
    RED,
    SCHEMA_VERSION,
    Layout,
    link,
    query_variable,
    target,
    threshold_steps,
)
from tilewatch.exporters.grafana.panels import table_panel

__all__ = [
    "ALL",
    "CELL_UID",
    "DRIFT_MAPPINGS",
    "HEATMAPS_UID",
    "OVERVIEW_UID",
    "STATUS_TEXT",
    "STATUS_THRESHOLDS",
    "TIME_RANGE",
    "cell_url",
    "dashboard",
    "dimension_variables",
    "drivers_table",
    "event_annotations",
    "heatmaps_url",
    "matchers",
    "model_variable",
]

OVERVIEW_UID = "tilewatch-overview"
HEATMAPS_UID = "tilewatch-heatmaps"
CELL_UID = "tilewatch-cell"
ALL = "__all__"
TIME_RANGE = "${__url_time_range}"
DRIFT_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "clear", "color": GREEN, "index": 0},
            "1": {"text": "DRIFT", "color": RED, "index": 1},
        },
    }
]
STATUS_THRESHOLDS = {
    "mode": "absolute",
    "steps": [
        {"color": GREEN, "value": None},
        {"color": AMBER, "value": 1},
        {"color": RED, "value": 2},
    ],
}
STATUS_TEXT = (
    "Status 0 = OK (green), 1 = WARN (amber), 2 = CRIT (red), as computed by the metrics "
    "hierarchy ([hierarchy] thresholds); the text is shown with the colour, so the colour is "
    "never the only cue. No tile = no verdict (too few samples)."
)


def matchers(**labels: str) -> str:
    """PromQL matchers; a value starting with ``!`` is a negative match."""
    out = []
    for name, value in labels.items():
        op = "!=" if value.startswith("!") else "="
        out.append(f'{name}{op}"{value.removeprefix("!")}"')
    return "{" + ", ".join(out) + "}"


def cell_url(model: str, dims: dict[str, str]) -> str:
    """Link to the cell detail dashboard with the model and every dimension in variables."""
    params = [f"var-model={model}", *(f"var-{d}={v}" for d, v in dims.items()), TIME_RANGE]
    return f"/d/{CELL_UID}/tilewatch-cell?" + "&".join(params)


def heatmaps_url(model: str, dims: dict[str, str]) -> str:
    """Link to the heatmaps dashboard with the model and every dimension in variables."""
    params = [f"var-model={model}", *(f"var-{d}={v}" for d, v in dims.items()), TIME_RANGE]
    return f"/d/{HEATMAPS_UID}/tilewatch-heatmaps?" + "&".join(params)


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    event_annotations: list[dict[str, Any]],
) -> dict[str, Any]:
    """A dashboard frame: links to the other tilewatch dashboards, annotations, variables."""
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "annotations": {"list": [builtin, *event_annotations]},
        "description": description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "tags": ["tilewatch"],
                "targetBlank": False,
                "title": "tilewatch",
                "type": "dashboards",
            }
        ],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["tilewatch"],
        "templating": {"list": variables},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
    }


def event_annotations(dims: Sequence[str]) -> list[dict[str, Any]]:
    """Model version changes and drift detections, each at its event time."""
    cell = ", ".join(["model", *dims])
    where = " ".join(f"{{{{{d}}}}}" for d in dims)
    return [
        {
            "datasource": dict(DATASOURCE),
            "enable": True,
            "expr": "max by (model, version) "
            '(tilewatch_model_version_first_seen_timestamp_seconds{model=~"$model"}) * 1000',
            "iconColor": "#8AB8FF",
            "name": "Model version changes",
            "step": "1m",
            "tagKeys": "model,version",
            "textFormat": "first event of {{model}} version {{version}}",
            "titleFormat": "{{model}} version {{version}}",
            "useValueForTime": True,
        },
        {
            "datasource": dict(DATASOURCE),
            "enable": True,
            "expr": f"max by ({cell}, detector) "
            '(tilewatch_drift_last_timestamp_seconds{model=~"$model"} > 0) * 1000',
            "iconColor": "#B877D9",
            "name": "Drift detections",
            "step": "1m",
            "tagKeys": ",".join(["model", *dims, "detector"]),
            "textFormat": f"{{{{model}}}} {where}".strip(),
            "titleFormat": "drift detected by {{detector}}",
            "useValueForTime": True,
        },
    ]


def model_variable() -> dict[str, Any]:
    """The ``model`` variable: every model with window statistics."""
    return query_variable(
        "model",
        "Model",
        "tilewatch_window_events",
        "model",
        description="The model whose cells are shown.",
    )


def dimension_variables(dims: Sequence[str]) -> list[dict[str, Any]]:
    """One variable per dimension, defaulting to the ``__all__`` roll-up."""
    return [
        query_variable(
            d,
            d.replace("_", " ").capitalize(),
            "tilewatch_window_events",
            d,
            {"model": "$model"},
            default=ALL,
            description=f"A {d} value, or {ALL} for the roll-up over every {d}.",
        )
        for d in dims
    ]


def drivers_table(
    lay: Layout, dims: Sequence[str], cell: dict[str, str], size: tuple[int, int]
) -> dict[str, Any]:
    """Which base metric and which cell drive each status (``tilewatch_health_driver_info``)."""
    expr = "tilewatch_health_driver_info" + matchers(model="$model", **cell)
    url = cell_url("$model", {d: f"${{__data.fields.{d}}}" for d in dims})
    return table_panel(
        lay,
        size,
        "Drivers",
        "For every component and business status, the base metric and the cell that drive "
        "it (the member with the highest risk). Click a row for that cell's detail, where the "
        "base metric's panel shows the value against its thresholds.",
        [target(expr, "", instant=True, table=True)],
        unit="none",
        thresholds=threshold_steps(None, None),
        transformations=[
            {
                "id": "organize",
                "options": {
                    "excludeByName": {
                        "Time": True,
                        "Value": True,
                        "__name__": True,
                        "instance": True,
                        "job": True,
                    }
                },
            }
        ],
        links=[link("Cell detail", url)],
    )
