"""The overview dashboard: business indicators, component status per model, the status grid.

Every status tile links to the cell detail with the model and the cell in variables: the
business status tiles carry the cell that drives them (``tilewatch_health_driver_info``), the
grid's tiles their own cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tilewatch.aggregators.health.settings import HierarchySettings
from tilewatch.exporters.generator_inputs import GeneratorInputs
from tilewatch.exporters.grafana.frame import (
    ALL,
    OVERVIEW_UID,
    STATUS_TEXT,
    STATUS_THRESHOLDS,
    cell_url,
    dashboard,
    drivers_table,
    event_annotations,
    heatmaps_url,
    matchers,
    model_variable,
)
from tilewatch.exporters.grafana.json_model import (
    GREEN,
    RED,
    STATUS_MAPPINGS,
    Layout,
    link,
    target,
    threshold_steps,
)
from tilewatch.exporters.grafana.panels import (
    Panel,
    row_panel,
    stat_panel,
    status_history_panel,
    table_panel,
    timeseries_panel,
)

__all__ = [
    "overview_dashboard",
]

#: ISO codes that Grafana has a currency unit for (``currencyEUR``); others get a suffix.
_CURRENCIES = frozenset(
    [
        "USD",
        "GBP",
        "EUR",
        "JPY",
        "RUB",
        "UAH",
        "BRL",
        "DKK",
        "ISK",
        "NOK",
        "SEK",
        "CZK",
        "CHF",
        "PLN",
        "BTC",
        "ZAR",
        "INR",
        "KRW",
        "IDR",
        "PHP",
        "VND",
    ]
)


def _indicator_overrides(hierarchy: HierarchySettings) -> list[dict[str, Any]]:
    """Per business indicator: its unit and the hierarchy's amber / red thresholds."""
    units = {"red_traffic_share": "percentunit", "fairness_gap": "percentunit"}
    out = []
    for ind in hierarchy.indicators:
        unit = units.get(ind.kind, "none")
        currency = ind.currency.upper()
        if ind.kind == "revenue_at_risk" and currency:
            unit = f"currency{currency}" if currency in _CURRENCIES else f"suffix: {currency}"
        out.append(
            {
                "matcher": {"id": "byName", "options": ind.name},
                "properties": [
                    {"id": "unit", "value": unit},
                    {"id": "thresholds", "value": threshold_steps(ind.amber, ind.red)},
                ],
            }
        )
    return out


def _business_status_expr(dims: Sequence[str]) -> str:
    """Business statuses with the labels of the cell that drives each (when there is one).

    The newest driver series of each indicator is joined: backfilled history (``tilewatch
    backfill``) has no staleness markers, so a previous driver lingers for the query lookback
    beside the current one; live, there is only one.
    """
    status = 'tilewatch_business_status{model="$model"}'
    on = "on (model, indicator, instance)"
    latest = 'timestamp(tilewatch_health_driver_info{level="business", model="$model"})'
    info = f"(topk by (model, indicator, instance) (1, {latest}) * 0 + 1)"
    joined = f"{status} * {on} group_left ({', '.join(dims)}) {info}" if dims else status
    by = ", ".join(["model", "indicator", *dims])
    return f"max by ({by}) (({joined}) or {on} {status})"


def overview_dashboard(inputs: GeneratorInputs) -> dict[str, Any]:
    """Business indicators, component status per model, the latest status grid, drivers."""
    dims = inputs.dimensions
    lay = Layout()
    panels: list[Panel] = []
    all_dims = {d: ALL for d in dims}
    model_link = link(
        "Heatmaps of ${__field.labels.model}", heatmaps_url("${__field.labels.model}", all_dims)
    )

    panels.append(row_panel(lay, "Business indicators: $model"))
    panels.append(
        stat_panel(
            lay,
            (8, 6),
            "Business status",
            "Status of each business indicator of the model. "
            + STATUS_TEXT
            + " Each tile carries the cell that drives it (tilewatch_health_driver_info, "
            "level business): click it for that cell's detail, where the driving base metric "
            "is shown against its thresholds. Across replicas: the worst replica.",
            [target(_business_status_expr(dims), "{{indicator}}")],
            unit="none",
            thresholds=STATUS_THRESHOLDS,
            mappings=STATUS_MAPPINGS,
            links=[
                link(
                    "Driving cell of ${__field.labels.indicator}",
                    cell_url(
                        "${__field.labels.model}", {d: f"${{__field.labels.{d}}}" for d in dims}
                    ),
                )
            ],
        )
    )
    panels.append(
        stat_panel(
            lay,
            (16, 6),
            "Business indicators",
            "Value of each business indicator of the model (share of traffic in red cells, "
            "money at risk, worst fairness gap), coloured green / amber / red at the "
            "indicator's [hierarchy] thresholds. Across replicas: the largest replica value "
            "(exact with one replica).",
            [
                target(
                    'max by (model, indicator) (tilewatch_business_indicator{model="$model"})',
                    "{{indicator}}",
                )
            ],
            unit="none",
            thresholds=threshold_steps(None, None),
            overrides=_indicator_overrides(inputs.hierarchy),
            links=[model_link],
        )
    )

    panels.append(row_panel(lay, "Components per model"))
    panels.append(
        status_history_panel(
            lay,
            (24, 8),
            "Component status per model",
            "Each model's component status over time (the worst leaf cell of the model). "
            + STATUS_TEXT
            + " Across replicas: the worst replica. The link opens that model's heatmaps.",
            [
                target(
                    "max by (model, component) (tilewatch_model_component_status)",
                    "{{model}} · {{component}}",
                )
            ],
            mappings=STATUS_MAPPINGS,
            thresholds=STATUS_THRESHOLDS,
            links=[model_link],
        )
    )

    panels.append(row_panel(lay, "Cells, latest window: $model"))
    panels.append(_status_grid(lay, dims))
    panels.append(drivers_table(lay, dims, {}, (24, 8)))

    panels.append(row_panel(lay, "Monitor"))
    panels.append(
        stat_panel(
            lay,
            (6, 6),
            "Kafka connection",
            "1 = UP (green) while the replica's consumer is connected to a broker, 0 = DOWN "
            "(red). One value per replica (instance).",
            [target("tilewatch_kafka_up", "{{instance}}")],
            unit="none",
            thresholds=threshold_steps(None, None),
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "DOWN", "color": RED, "index": 0},
                        "1": {"text": "UP", "color": GREEN, "index": 1},
                    },
                }
            ],
        )
    )
    panels.append(
        timeseries_panel(
            lay,
            (6, 6),
            "Events per second by model",
            "Valid events per second per model (rate of the model total cell's events "
            "counter, summed over replicas).",
            [
                target(
                    "sum by (model) (rate(tilewatch_events_total"
                    + matchers(**{d: ALL for d in dims})
                    + "[$__rate_interval]))",
                    "{{model}}",
                )
            ],
            unit="cps",
        )
    )
    panels.append(
        timeseries_panel(
            lay,
            (6, 6),
            "Consumer lag",
            "Records between the consumer position and the high watermark, per topic (summed "
            "over partitions and replicas).",
            [target("sum by (topic) (tilewatch_consumer_lag_events)", "{{topic}}")],
            unit="short",
        )
    )
    panels.append(
        timeseries_panel(
            lay,
            (6, 6),
            "Invalid records per second",
            "Records rejected to the dead-letter topic per second, by reason (summed over "
            "replicas).",
            [
                target(
                    "sum by (reason) (rate(tilewatch_invalid_events_total[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            unit="cps",
        )
    )
    if inputs.labeling:
        panels.append(labeling_panel(lay, dims))
    return dashboard(
        OVERVIEW_UID,
        "tilewatch: overview",
        "Business indicators, component status per model and the latest status grid.",
        panels,
        [model_variable()],
        event_annotations(dims),
    )


def _status_grid(lay: Layout, dims: Sequence[str]) -> Panel:
    """The latest window's worst component status per cell, as a grid with links."""
    description = (
        "Worst component status of each cell in the latest window. "
        + STATUS_TEXT
        + f" Rows and columns include the {ALL} roll-ups (totals). Click a tile for the "
        "cell's detail. Across replicas: the worst replica."
    )
    if not dims:
        return stat_panel(
            lay,
            (24, 10),
            "Model status, latest window",
            description,
            [
                target(
                    'max by (model) (tilewatch_component_status{model="$model"})',
                    "{{model}}",
                    instant=True,
                )
            ],
            unit="none",
            thresholds=STATUS_THRESHOLDS,
            mappings=STATUS_MAPPINGS,
            links=[link("Cell detail", cell_url("$model", {}))],
        )
    rows, *rest = dims
    fixed = {d: ALL for d in dims[2:]}
    if not rest:
        expr = f'max by ({rows}) (tilewatch_component_status{{model="$model"}})'
        url = cell_url("$model", {rows: f"${{__data.fields.{rows}}}"})
        transformations: list[dict[str, Any]] = [
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "status"}},
            }
        ]
        overrides: list[dict[str, Any]] = []
    else:
        cols = rest[0]
        expr = (
            f"max by ({rows}, {cols}) (tilewatch_component_status"
            + matchers(model="$model", **fixed)
            + ")"
        )
        url = cell_url(
            "$model",
            {rows: "${__data.fields[0]}", cols: "${__field.name}", **fixed},
        )
        transformations = [
            {
                "id": "groupingToMatrix",
                "options": {
                    "columnField": cols,
                    "emptyValue": "null",
                    "rowField": rows,
                    "valueField": "Value",
                },
            }
        ]
        overrides = [
            {
                "matcher": {"id": "byName", "options": f"{rows}\\{cols}"},
                "properties": [
                    {"id": "links", "value": []},
                    {"id": "custom.cellOptions", "value": {"type": "auto"}},
                ],
            }
        ]
    return table_panel(
        lay,
        (24, 10),
        "Status grid, latest window",
        description,
        [target(expr, "", instant=True, table=True)],
        unit="none",
        thresholds=STATUS_THRESHOLDS,
        mappings=STATUS_MAPPINGS,
        cell_type="color-background",
        transformations=transformations,
        overrides=overrides,
        links=[link("Cell detail", url)],
    )


def labeling_panel(lay: Layout, dims: Sequence[str]) -> Panel:
    """The labeling queue's rate and mix: records selected per second, by reason."""
    return timeseries_panel(
        lay,
        (12, 6),
        "Labeling queue: rate and mix",
        "Events selected for labeling per second, by reason (the model total cells of "
        "tilewatch_labeling_selected_total, summed over models and replicas); see "
        "docs/labeling.md.",
        [
            target(
                "sum by (reason) (rate(tilewatch_labeling_selected_total"
                + matchers(**{d: ALL for d in dims})
                + "[$__rate_interval]))",
                "{{reason}}",
            )
        ],
        unit="cps",
    )
