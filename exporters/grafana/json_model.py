"""Grafana basics: the data source, colours, thresholds, layout, targets, variables.

Thresholds, value mappings, transformations and data links are written as plain data (the
dashboards' own vocabulary) and turned into ``grafana-foundation-sdk`` models by the ``sdk_*``
functions; targets and variables are the SDK's builders (Grafana 11.6, ``schemaVersion``
:data:`SCHEMA_VERSION`). :mod:`tilewatch.exporters.grafana.panels` builds panels from them.

Colours: continuous values use the perceptually uniform, colour-blind-safe Viridis and
Cividis schemes; statuses use green / amber / red *with* a text mapping (``OK`` / ``WARN`` /
``CRIT``), so colour is never the only channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.models import dashboard
from grafana_foundation_sdk.models import prometheus as prometheus_m

__all__ = [
    "AMBER",
    "DATASOURCE",
    "DATASOURCE_REF",
    "DATASOURCE_UID",
    "GREEN",
    "PANEL_TYPES",
    "RED",
    "SCHEMA_VERSION",
    "STATUS_MAPPINGS",
    "Layout",
    "Link",
    "Mappings",
    "Overrides",
    "Thresholds",
    "Transformations",
    "custom_variable",
    "data_links",
    "link",
    "query_variable",
    "sdk_mappings",
    "sdk_thresholds",
    "sdk_transformations",
    "target",
    "textbox_variable",
    "threshold_steps",
]

#: A data link, thresholds, value mappings, transformations, field overrides: plain data.
Link = Mapping[str, Any]
Thresholds = Mapping[str, Any]
Mappings = Sequence[Mapping[str, Any]]
Transformations = Sequence[Mapping[str, Any]]
Overrides = Sequence[Mapping[str, Any]]

#: Dashboard JSON schema version written by Grafana 12.
SCHEMA_VERSION = 41
#: Fixed uid of the provisioned Prometheus data source; every panel and variable uses it.
DATASOURCE_UID = "tilewatch-prometheus"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": DATASOURCE_UID}
DATASOURCE_REF = dashboard.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
#: Panel types the generated dashboards use (all built into Grafana).
PANEL_TYPES = frozenset(
    {"heatmap", "row", "stat", "state-timeline", "status-history", "table", "timeseries"}
)
GREEN = "green"
AMBER = "#FF9830"  # Grafana's "orange"
RED = "red"
#: Value mappings of a status (0 green, 1 amber, 2 red), text and colour together.
STATUS_MAPPINGS: list[dict[str, Any]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "OK", "color": GREEN, "index": 0},
            "1": {"text": "WARN", "color": AMBER, "index": 1},
            "2": {"text": "CRIT", "color": RED, "index": 2},
        },
    }
]


def threshold_steps(
    amber: float | None, red: float | None, lower_is_worse: bool = False
) -> dict[str, Any]:
    """Grafana absolute thresholds coloured green / amber / red at the hierarchy's values.

    For higher-is-worse metrics the base step is green; for lower-is-worse ones the base is
    red and the colours rise towards green.

    Examples
    --------
    >>> [s["color"] for s in threshold_steps(0.1, 0.25)["steps"]]
    ['green', '#FF9830', 'red']
    >>> [(s["color"], s["value"]) for s in threshold_steps(0.9, 0.8, True)["steps"]]
    [('red', None), ('#FF9830', 0.8), ('green', 0.9)]
    """
    if lower_is_worse:
        steps: list[dict[str, Any]] = [{"color": RED if red is not None else GREEN, "value": None}]
        if red is not None and amber is not None:
            steps.append({"color": AMBER, "value": red})
            steps.append({"color": GREEN, "value": amber})
        elif red is not None:
            steps.append({"color": GREEN, "value": red})
        return {"mode": "absolute", "steps": steps}
    steps = [{"color": GREEN, "value": None}]
    if amber is not None:
        steps.append({"color": AMBER, "value": amber})
    if red is not None:
        steps.append({"color": RED, "value": red})
    return {"mode": "absolute", "steps": steps}


class Layout:
    """Places panels on Grafana's 24-column grid, left to right, then down; numbers them.

    Examples
    --------
    >>> lay = Layout()
    >>> [lay.place(12, 8)["x"], lay.place(12, 8)["x"], lay.place(24, 1)["y"]]
    [0, 12, 8]
    >>> lay.next_id(), lay.next_id()
    (1, 2)
    """

    def __init__(self) -> None:
        self._x = 0
        self._y = 0
        self._row_height = 0
        self._id = 0

    def next_id(self) -> int:
        """A panel id unique within the dashboard."""
        self._id += 1
        return self._id

    def place(self, width: int, height: int) -> dict[str, int]:
        """The ``gridPos`` of the next panel of this size."""
        if self._x + width > 24:
            self._x = 0
            self._y += self._row_height
            self._row_height = 0
        pos = {"h": height, "w": width, "x": self._x, "y": self._y}
        self._x += width
        self._row_height = max(self._row_height, height)
        return pos

    def new_row(self) -> None:
        """Start the next panel at the left edge, below everything placed so far."""
        if self._x:
            self._x = 0
            self._y += self._row_height
            self._row_height = 0


def target(
    expr: str,
    legend: str = "",
    *,
    ref: str = "A",
    instant: bool = False,
    table: bool = False,
) -> prometheus.Dataquery:
    """A Prometheus query of a panel (range by default; ``instant`` for the latest value)."""
    query = (
        prometheus.Dataquery()
        .datasource(DATASOURCE_REF)
        .editor_mode(prometheus_m.QueryEditorMode.CODE)
        .expr(expr)
        .format(
            prometheus_m.PromQueryFormat.TABLE
            if table
            else prometheus_m.PromQueryFormat.TIME_SERIES
        )
        .legend_format(legend or "__auto")
        .ref_id(ref)
    )
    return query.instant() if instant else query.range()


def link(title: str, url: str) -> dict[str, Any]:
    """A data link (opens in the same tab); ``url`` may use Grafana's ``${...}`` variables."""
    return {"title": title, "url": url, "targetBlank": False}


def data_links(links: Sequence[Link]) -> list[dash_b.DashboardLink]:
    """Data links as the SDK's link builders."""
    return [
        dash_b.DashboardLink(str(li["title"]))
        .type(dashboard.DashboardLinkType.LINK)
        .url(str(li["url"]))
        .target_blank(bool(li.get("targetBlank", False)))
        for li in links
    ]


def sdk_thresholds(thresholds: Thresholds) -> dash_b.ThresholdsConfig:
    """:func:`threshold_steps` data as the SDK's thresholds builder."""
    return (
        dash_b.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode(thresholds["mode"]))
        .steps(
            [
                dashboard.Threshold(value=st["value"], color=st["color"])
                for st in thresholds["steps"]
            ]
        )
    )


def sdk_mappings(mappings: Mappings) -> list[dashboard.ValueMapping]:
    """Value mappings (``{"type": "value", "options": {...}}``) as the SDK's value maps."""
    out: list[dashboard.ValueMapping] = []
    for mapping in mappings:
        if mapping["type"] != "value":
            raise ValueError(f"unsupported value mapping type {mapping['type']!r}")
        out.append(
            dashboard.ValueMap(
                options={
                    key: dashboard.ValueMappingResult(
                        text=opt.get("text"), color=opt.get("color"), index=opt.get("index")
                    )
                    for key, opt in mapping["options"].items()
                }
            )
        )
    return out


def sdk_transformations(transformations: Transformations) -> list[dashboard.DataTransformerConfig]:
    """Transformations (``{"id": ..., "options": {...}}``) as the SDK's models."""
    return [
        dashboard.DataTransformerConfig(id_val=t["id"], options=t["options"])
        for t in transformations
    ]


def query_variable(
    name: str,
    label: str,
    metric: str,
    label_name: str,
    filters: dict[str, str] | None = None,
    *,
    default: str | None = None,
    description: str = "",
) -> dash_b.QueryVariable:
    """A Prometheus ``label_values(metric{filters}, label_name)`` variable.

    Written both as the query text and as the structured fields of Grafana's variable
    editor (``qryType`` 1 = label values, ``metric``, ``labelFilters``, ``label``), so either
    path builds the same query; refreshed when the time range changes.

    Examples
    --------
    >>> v = query_variable("segment", "Segment", "m", "segment", {"model": "$model"}).build()
    >>> v.query["query"], v.query["labelFilters"]
    ('label_values(m{model="$model"}, segment)', [{'label': 'model', 'op': '=', 'value': '$model'}])
    """
    filters = filters or {}
    selector = ", ".join(f'{k}="{v}"' for k, v in filters.items())
    query = (
        f"label_values({metric}{{{selector}}}, {label_name})"
        if filters
        else (f"label_values({metric}, {label_name})")
    )
    variable = (
        dash_b.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE_REF)
        .query(
            {
                "label": label_name,
                "labelFilters": [{"label": k, "op": "=", "value": v} for k, v in filters.items()],
                "metric": metric,
                "qryType": 1,
                "query": query,
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
            }
        )
        .hide(dashboard.VariableHide.DONT_HIDE)
        .include_all(False)
        .multi(False)
        .options([])
        .refresh(dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .regex("")
        .sort(dashboard.VariableSort.ALPHABETICAL_ASC)
    )
    if default is not None:
        variable.current(dashboard.VariableOption(selected=True, text=default, value=default))
    return variable


def textbox_variable(
    name: str, label: str, default: str, *, description: str = ""
) -> dash_b.TextBoxVariable:
    """A free-text variable (Grafana's ``textbox``) with a default value (``dashboard`` in
    ``frame`` writes it as the ``query`` string Grafana reads, which the SDK cannot)."""
    return (
        dash_b.TextBoxVariable(name)
        .label(label)
        .description(description)
        .hide(dashboard.VariableHide.DONT_HIDE)
        .current(dashboard.VariableOption(selected=True, text=default, value=default))
        .options([dashboard.VariableOption(selected=True, text=default, value=default)])
    )


def custom_variable(
    name: str,
    label: str,
    choices: Sequence[tuple[str, str]],
    *,
    default: str,
    description: str = "",
) -> dash_b.CustomVariable:
    """A custom variable of ``(text, value)`` choices (``text : value`` in Grafana's syntax)."""
    options = [
        dashboard.VariableOption(selected=value == default, text=text, value=value)
        for text, value in choices
    ]
    text = next(t for t, v in choices if v == default)
    return (
        dash_b.CustomVariable(name)
        .label(label)
        .description(description)
        .hide(dashboard.VariableHide.DONT_HIDE)
        .include_all(False)
        .multi(False)
        .options(options)
        .current(dashboard.VariableOption(selected=True, text=text, value=default))
        .values(",".join(f"{t} : {v}" for t, v in choices))
    )
