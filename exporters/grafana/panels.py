"""Grafana panels built with ``grafana-foundation-sdk``: heatmap, state timeline, status
history, stat, table, time series, row.

Each builder takes the dashboard's :class:`~tilewatch.exporters.grafana.json_model.Layout`
(which places the panel and numbers it) and returns the SDK's panel builder with the provisioned
data source; :func:`tilewatch.exporters.grafana.frame.dashboard` adds them to the SDK's dashboard
builder, so every panel follows Grafana's schema (11.6, ``schemaVersion`` 41) by construction.
The plain-data pieces the dashboards pass in (thresholds, value mappings, transformations,
overrides, data links) are turned into the SDK's models here (:mod:`tilewatch.exporters.grafana.
json_model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from grafana_foundation_sdk.builders import (
    common as common_b,
)
from grafana_foundation_sdk.builders import (
    dashboard as dash_b,
)
from grafana_foundation_sdk.builders import (
    heatmap,
    stat,
    statetimeline,
    statushistory,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models import heatmap as heatmap_m

from tilewatch.exporters.grafana.json_model import (
    DATASOURCE_REF,
    Layout,
    Link,
    Mappings,
    Overrides,
    Thresholds,
    Transformations,
    data_links,
    sdk_mappings,
    sdk_thresholds,
    sdk_transformations,
)

__all__ = [
    "Panel",
    "heatmap_panel",
    "row_panel",
    "stat_panel",
    "state_timeline_panel",
    "status_history_panel",
    "table_panel",
    "timeseries_panel",
]

#: A panel builder of the SDK (or a row).
Panel = cogbuilder.Builder[Any]


def _grid_pos(pos: dict[str, int]) -> dashboard.GridPos:
    return dashboard.GridPos(h=pos["h"], w=pos["w"], x=pos["x"], y=pos["y"])


def _common(
    panel: Any,
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[Any],
    *,
    links: Sequence[Link] = (),
    transformations: Transformations = (),
    overrides: Overrides = (),
) -> Any:
    pos = _grid_pos(layout.place(*size))
    panel.id(layout.next_id()).title(title).description(description)
    panel.datasource(DATASOURCE_REF).grid_pos(pos).targets(list(targets))
    if links:
        panel.data_links(data_links(links))
    if transformations:
        panel.transformations(sdk_transformations(transformations))
    for override in overrides:
        matcher = override["matcher"]
        panel.with_override(
            dashboard.MatcherConfig(id_val=matcher["id"], options=matcher["options"]),
            [dashboard.DynamicConfigValue(p["id"], p["value"]) for p in override["properties"]],
        )
    return panel


def row_panel(layout: Layout, title: str) -> Panel:
    """An expanded row header spanning the grid."""
    layout.new_row()
    pos = _grid_pos(layout.place(24, 1))
    return dash_b.Row(title).id(layout.next_id()).collapsed(False).grid_pos(pos)


def heatmap_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[Any],
    *,
    unit: str,
    scheme: str,
    color_min: float,
    color_max: float,
    hide_at_or_below: float,
    reverse: bool = False,
    links: Sequence[Link] = (),
) -> Panel:
    """A heatmap of pre-bucketed rows: one Prometheus series per row, time on x.

    ``calculate`` is off (each series is a row, named by its legend), the colour scale is
    fixed to ``[color_min, color_max]`` with ``scheme``, and only values at or below
    ``hide_at_or_below`` are hidden (Grafana's default hides values <= 1e-9, i.e. zeros).
    """
    color = (
        heatmap.HeatmapColorOptions()
        .mode(heatmap_m.HeatmapColorMode.SCHEME)
        .scheme(scheme)
        .fill("dark-orange")
        .scale(heatmap_m.HeatmapColorScale.LINEAR)
        .exponent(0.5)
        .steps(64)
        .reverse(reverse)
        .min(color_min)
        .max(color_max)
    )
    panel = (
        heatmap.Panel()
        .calculate(False)
        .cell_gap(1)
        .cell_values(heatmap.CellValues().unit(unit))
        .color(color)
        .exemplars_color("rgba(255,0,255,0.7)")
        .filter_values(heatmap.FilterValueRange().le(hide_at_or_below))
        .show_legend()
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.AUTO))
        .show_value(common.VisibilityMode.NEVER)
        .mode(common.TooltipDisplayMode.SINGLE)
        .hide_y_histogram()
        .y_axis(heatmap.YAxisConfig().axis_placement(common.AxisPlacement.LEFT).reverse(False))
        .scale_distribution(
            common_b.ScaleDistributionConfig().type(common.ScaleDistribution.LINEAR)
        )
        .hide_from(common_b.HideSeriesConfig().legend(False).tooltip(False).viz(False))
        .unit(unit)
    )
    return cast(Panel, _common(panel, layout, size, title, description, targets, links=links))


def _legend() -> common_b.VizLegendOptions:
    return (
        common_b.VizLegendOptions()
        .calcs([])
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def _tooltip(mode: common.TooltipDisplayMode, sort: common.SortOrder) -> Any:
    return common_b.VizTooltipOptions().mode(mode).sort(sort)


def _hidden() -> common_b.HideSeriesConfig:
    return common_b.HideSeriesConfig().legend(False).tooltip(False).viz(False)


def state_timeline_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[Any],
    *,
    mappings: Mappings,
    thresholds: Thresholds,
    unit: str = "none",
    links: Sequence[Link] = (),
) -> Panel:
    """A state timeline: one row per series, value mappings give each state text and colour."""
    panel = (
        statetimeline.Panel()
        .color_scheme(dash_b.FieldColor().mode(dashboard.FieldColorModeId.THRESHOLDS))
        .fill_opacity(80)
        .hide_from(_hidden())
        .line_width(0)
        .mappings(sdk_mappings(mappings))
        .thresholds(sdk_thresholds(thresholds))
        .unit(unit)
        .align_value(common.TimelineValueAlignment.LEFT)
        .legend(_legend())
        .merge_values(True)
        .row_height(0.9)
        .show_value(common.VisibilityMode.AUTO)
        .tooltip(_tooltip(common.TooltipDisplayMode.SINGLE, common.SortOrder.NONE))
    )
    return cast(Panel, _common(panel, layout, size, title, description, targets, links=links))


def status_history_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[Any],
    *,
    mappings: Mappings,
    thresholds: Thresholds,
    unit: str = "none",
    links: Sequence[Link] = (),
) -> Panel:
    """A status history: a grid of time buckets x series coloured by mappings/thresholds."""
    panel = (
        statushistory.Panel()
        .color_scheme(dash_b.FieldColor().mode(dashboard.FieldColorModeId.THRESHOLDS))
        .fill_opacity(80)
        .hide_from(_hidden())
        .line_width(1)
        .mappings(sdk_mappings(mappings))
        .thresholds(sdk_thresholds(thresholds))
        .unit(unit)
        .col_width(0.9)
        .legend(_legend())
        .row_height(0.9)
        .show_value(common.VisibilityMode.AUTO)
        .tooltip(_tooltip(common.TooltipDisplayMode.SINGLE, common.SortOrder.NONE))
    )
    return cast(Panel, _common(panel, layout, size, title, description, targets, links=links))


def stat_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[Any],
    *,
    unit: str,
    thresholds: Thresholds,
    mappings: Mappings | None = None,
    color_mode: str = "background",
    overrides: Overrides = (),
    links: Sequence[Link] = (),
    value_min: float | None = None,
    value_max: float | None = None,
) -> Panel:
    """A stat panel showing each series' last value, coloured by thresholds or mappings."""
    panel = (
        stat.Panel()
        .color_scheme(dash_b.FieldColor().mode(dashboard.FieldColorModeId.THRESHOLDS))
        .mappings(sdk_mappings(mappings or []))
        .thresholds(sdk_thresholds(thresholds))
        .unit(unit)
        .color_mode(common.BigValueColorMode(color_mode))
        .graph_mode(common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .reduce_options(
            common_b.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)
        )
        .show_percent_change(False)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .wide_layout(True)
    )
    if value_min is not None:
        panel.min(value_min)
    if value_max is not None:
        panel.max(value_max)
    return cast(
        Panel,
        _common(panel, layout, size, title, description, targets, overrides=overrides, links=links),
    )


def table_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[Any],
    *,
    unit: str,
    thresholds: Thresholds,
    mappings: Mappings | None = None,
    cell_type: str = "auto",
    transformations: Transformations = (),
    overrides: Overrides = (),
    links: Sequence[Link] = (),
) -> Panel:
    """A table; ``cell_type="color-background"`` colours cells by thresholds/mappings."""
    cell: Any = (
        common.TableColoredBackgroundCellOptions()
        if cell_type == "color-background"
        else common.TableAutoCellOptions()
    )
    panel = (
        table.Panel()
        .color_scheme(dash_b.FieldColor().mode(dashboard.FieldColorModeId.THRESHOLDS))
        .align(common.FieldTextAlignment.CENTER)
        .cell_options(cell)
        .filterable(False)
        .inspect(False)
        .mappings(sdk_mappings(mappings or []))
        .thresholds(sdk_thresholds(thresholds))
        .unit(unit)
        .cell_height(common.TableCellHeight.SM)
        .footer(
            # Grafana writes "" for "every field"; the SDK types the field as a list.
            common_b.TableFooterOptions()
            .count_rows(False)
            .fields(cast(Any, ""))
            .reducer(["sum"])
            .show(False)
        )
        .show_header(True)
    )
    return cast(
        Panel,
        _common(
            panel,
            layout,
            size,
            title,
            description,
            targets,
            links=links,
            transformations=transformations,
            overrides=overrides,
        ),
    )


def timeseries_panel(
    layout: Layout,
    size: tuple[int, int],
    title: str,
    description: str,
    targets: Sequence[Any],
    *,
    unit: str,
    thresholds: Thresholds | None = None,
    value_min: float | None = None,
    value_max: float | None = None,
    links: Sequence[Link] = (),
) -> Panel:
    """Lines over time; with ``thresholds`` they are drawn as dashed lines and areas."""
    style = (
        common.GraphThresholdsStyleMode.DASHED_AND_AREA
        if thresholds
        else common.GraphThresholdsStyleMode.OFF
    )
    panel = (
        timeseries.Panel()
        .color_scheme(dash_b.FieldColor().mode(dashboard.FieldColorModeId.PALETTE_CLASSIC))
        .axis_placement(common.AxisPlacement.AUTO)
        .draw_style(common.GraphDrawStyle.LINE)
        .fill_opacity(0)
        .hide_from(_hidden())
        .line_width(1)
        .point_size(4)
        .show_points(common.VisibilityMode.AUTO)
        .span_nulls(False)
        .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(style))
        .thresholds(
            sdk_thresholds(
                thresholds or {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
            )
        )
        .unit(unit)
        .legend(_legend())
        .tooltip(_tooltip(common.TooltipDisplayMode.MULTI, common.SortOrder.DESCENDING))
    )
    if value_min is not None:
        panel.min(value_min)
    if value_max is not None:
        panel.max(value_max)
    return cast(Panel, _common(panel, layout, size, title, description, targets, links=links))
