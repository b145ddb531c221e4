"""Grafana JSON-model basics: the data source, colours, thresholds, layout, targets, variables.

Pure functions returning plain dicts (the Grafana dashboard JSON model, ``schemaVersion``
:data:`SCHEMA_VERSION`, Grafana 12); :mod:`tilewatch.exporters.grafana.panels` builds panels from
them.

Colours: continuous values use the perceptually uniform, colour-blind-safe Viridis and
Cividis schemes; statuses use green / amber / red *with* a text mapping (``OK`` / ``WARN`` /
``CRIT``), so colour is never the only channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AMBER",
    "DATASOURCE",
    "DATASOURCE_UID",
    "GREEN",
    "PANEL_TYPES",
    "RED",
    "SCHEMA_VERSION",
    "STATUS_MAPPINGS",
    "Layout",
    "custom_variable",
    "link",
    "query_variable",
    "target",
    "threshold_steps",
]

#: Dashboard JSON schema version written by Grafana 12.
SCHEMA_VERSION = 41
#: Fixed uid of the provisioned Prometheus data source; every panel and variable uses it.
DATASOURCE_UID = "tilewatch-prometheus"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": DATASOURCE_UID}
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
) -> dict[str, Any]:
    """A Prometheus query of a panel (range by default; ``instant`` for the latest value)."""
    return {
        "datasource": dict(DATASOURCE),
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }


def link(title: str, url: str) -> dict[str, Any]:
    """A data link (opens in the same tab); ``url`` may use Grafana's ``${...}`` variables."""
    return {"title": title, "url": url, "targetBlank": False}


def query_variable(
    name: str,
    label: str,
    metric: str,
    label_name: str,
    filters: dict[str, str] | None = None,
    *,
    default: str | None = None,
    description: str = "",
) -> dict[str, Any]:
    """A Prometheus ``label_values(metric{filters}, label_name)`` variable.

    Written both as the query text and as the structured fields of Grafana's variable
    editor (``qryType`` 1 = label values, ``metric``, ``labelFilters``, ``label``), so either
    path builds the same query; refreshed when the time range changes.

    Examples
    --------
    >>> v = query_variable("segment", "Segment", "m", "segment", {"model": "$model"})
    >>> v["definition"], v["query"]["labelFilters"]
    ('label_values(m{model="$model"}, segment)', [{'label': 'model', 'op': '=', 'value': '$model'}])
    """
    filters = filters or {}
    selector = ", ".join(f'{k}="{v}"' for k, v in filters.items())
    query = (
        f"label_values({metric}{{{selector}}}, {label_name})"
        if filters
        else (f"label_values({metric}, {label_name})")
    )
    current: dict[str, Any] = {}
    if default is not None:
        current = {"selected": True, "text": default, "value": default}
    return {
        "current": current,
        "datasource": dict(DATASOURCE),
        "definition": query,
        "description": description,
        "hide": 0,
        "includeAll": False,
        "label": label,
        "multi": False,
        "name": name,
        "options": [],
        "query": {
            "label": label_name,
            "labelFilters": [{"label": k, "op": "=", "value": v} for k, v in filters.items()],
            "metric": metric,
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def custom_variable(
    name: str,
    label: str,
    choices: Sequence[tuple[str, str]],
    *,
    default: str,
    description: str = "",
) -> dict[str, Any]:
    """A custom variable of ``(text, value)`` choices (``text : value`` in Grafana's syntax)."""
    options = [
        {"selected": value == default, "text": text, "value": value} for text, value in choices
    ]
    text = next(t for t, v in choices if v == default)
    return {
        "current": {"selected": True, "text": text, "value": default},
        "description": description,
        "hide": 0,
        "includeAll": False,
        "label": label,
        "multi": False,
        "name": name,
        "options": options,
        "query": ",".join(f"{t} : {v}" for t, v in choices),
        "skipUrlSync": False,
        "type": "custom",
    }
