"""What the generated dashboards share: uids, links, the dashboard frame, variables, annotations.

Links between dashboards carry the model and every dimension in ``var-`` parameters plus
``${__url_time_range}``; the drivers table (which base metric and cell drive each status)
appears on the overview and on the cell detail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dash_m

from tilewatch.exporters.grafana.json_model import (
    AMBER,
    DATASOURCE,
    DATASOURCE_REF,
    GREEN,
    RED,
    SCHEMA_VERSION,
    Layout,
    link,
    query_variable,
    target,
    textbox_variable,
    threshold_steps,
)
from tilewatch.exporters.grafana.panels import Panel, table_panel

__all__ = [
    "ALL",
    "ANNOTATION_EXTRAS",
    "CELL_UID",
    "DRIFT_MAPPINGS",
    "HEATMAPS_UID",
    "OVERVIEW_UID",
    "STATUS_TEXT",
    "STATUS_THRESHOLDS",
    "TILEWATCH_URL",
    "TIME_RANGE",
    "cell_url",
    "cells_api_url",
    "dashboard",
    "dimension_variables",
    "drivers_table",
    "event_annotations",
    "heatmaps_url",
    "matchers",
    "model_variable",
    "tilewatch_url_variable",
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


#: The variable holding the base URL of tilewatch's own HTTP server (``/metrics``, the tile
#: page and its JSON API) as the browser reaches it.
TILEWATCH_URL = "tilewatch_url"
#: Its default: the default ``[exporter] port`` on this machine.
TILEWATCH_URL_DEFAULT = "http://localhost:9464"


def cells_api_url(model: str, dims: dict[str, str]) -> str:
    """Link to tilewatch's JSON drill-down of cells (``/api/cells``), which reads every cell,
    those outside the series budget (``[exporter] max_exported_cells``) too; values are
    percent-encoded by Grafana."""
    params = [f"model={model}", *(f"{d}={v}" for d, v in dims.items())]
    return f"${{{TILEWATCH_URL}}}/api/cells?" + "&".join(params)


def tilewatch_url_variable() -> Any:
    """The ``tilewatch_url`` text variable: where links to tilewatch's JSON API point."""
    return textbox_variable(
        TILEWATCH_URL,
        "tilewatch URL",
        TILEWATCH_URL_DEFAULT,
        description="Base URL of tilewatch's HTTP server as your browser reaches it (same "
        "server, TLS and basic auth as /metrics): the JSON API links use it.",
    )


#: Options of a Prometheus annotation that the SDK's ``AnnotationQuery`` cannot express
#: (Grafana 11.6 keeps them beside ``expr``); :func:`dashboard` adds them to its JSON, as it
#: adds each query variable's ``definition`` (the query text Grafana shows), which the SDK's
#: ``VariableModel`` has no field for.
ANNOTATION_EXTRAS = ("step", "tagKeys", "textFormat", "titleFormat", "useValueForTime")


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: Sequence[Panel],
    variables: Sequence[Any],
    event_annotations: list[dict[str, Any]],
) -> dict[str, Any]:
    """A dashboard built with the SDK: links to the other tilewatch dashboards, annotations,
    variables, ``panels`` (rows and panels in order); returned as its JSON model.

    The built-in annotation and the Prometheus annotations are SDK ``AnnotationQuery``
    builders; the Prometheus options listed in :data:`ANNOTATION_EXTRAS` are added to the JSON
    the SDK writes (``docs/dashboards.md`` lists what the SDK cannot express).
    """
    builder = (
        dash_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .readonly()
        .fiscal_year_start_month(0)
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .link(
            dash_b.DashboardLink("tilewatch")
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .as_dropdown(False)
            .include_vars(False)
            .keep_time(True)
            .tags(["tilewatch"])
            .target_blank(False)
        )
        .refresh("30s")
        .tags(["tilewatch"])
        .time("now-6h", "now")
        .timezone("browser")
        .version(1)
        .annotation(
            dash_b.AnnotationQuery()
            .built_in(1)
            .datasource(dash_m.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .name("Annotations & Alerts")
            .type("dashboard")
        )
        .variables(list(variables))
    )
    for a in event_annotations:
        builder.annotation(
            dash_b.AnnotationQuery()
            .datasource(DATASOURCE_REF)
            .enable(a["enable"])
            .expr(a["expr"])
            .icon_color(a["iconColor"])
            .name(a["name"])
        )
    for panel in panels:
        if isinstance(panel, dash_b.Row):
            builder.with_row(panel)
        else:
            builder.with_panel(panel)
    doc: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    doc["schemaVersion"] = SCHEMA_VERSION
    listed = doc["annotations"]["list"]
    for entry, a in zip(listed[1:], event_annotations, strict=True):
        entry.update({k: a[k] for k in ANNOTATION_EXTRAS})
    for variable in doc["templating"]["list"]:
        if variable["type"] == "query":
            variable["definition"] = variable["query"]["query"]
        elif variable["type"] == "textbox":
            variable["query"] = variable["current"]["value"]
    return doc


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


def model_variable() -> Any:
    """The ``model`` variable: every model with window statistics."""
    return query_variable(
        "model",
        "Model",
        "tilewatch_window_events",
        "model",
        description="The model whose cells are shown.",
    )


def dimension_variables(dims: Sequence[str]) -> list[Any]:
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
) -> Panel:
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
