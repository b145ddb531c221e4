"""The ``[hierarchy]`` section: base metrics, components, business indicators and alerts.

::

    [hierarchy]                              enabled = true
    [hierarchy.metrics.<name>]               a base metric (defaults exist, see below)
    [hierarchy.components.<name>]            replaces the default components when any is given
    [hierarchy.indicators.<name>]            replaces the default indicators when any is given
    [hierarchy.alerts]                       for: per severity, receivers, rate window, ...

Base metrics name statistics from :data:`tilewatch.aggregators.health.inputs.STATISTICS`; an unknown
statistic, a missing or wrong extra label, or an unknown reference is a :class:`ConfigError`. Base
metrics whose statistic this config does not produce (drift statistics without a baseline,
performance without ``[labels]``) are left out of their components, and components and indicators
left without input are dropped, each with a note that ``tilewatch check-config`` prints. The
reference (keys, defaults, formulas) is ``docs/hierarchy.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftSettings
from tilewatch.aggregators.health.inputs import GAP_STATISTICS, STATISTICS
from tilewatch.aggregators.health.settings import (
    DIRECTIONS,
    INDICATOR_KINDS,
    BaseMetric,
    Component,
    HierarchySettings,
    Indicator,
    parse_statistic,
)
from tilewatch.config.alerts import ALERT_KEYS, parse_alerts
from tilewatch.config.base import ConfigError, Table, show
from tilewatch.config.hierarchy_defaults import (
    DEFAULT_INDICATORS,
    default_components,
    default_metrics,
)
from tilewatch.exporters.generator_inputs import AlertSettings

__all__ = [
    "ALERT_KEYS",
    "COMPONENT_KEYS",
    "HIERARCHY_KEYS",
    "INDICATOR_KEYS",
    "METRIC_KEYS",
    "parse_hierarchy",
]

HIERARCHY_KEYS = ("alerts", "components", "enabled", "indicators", "metrics")
METRIC_KEYS = ("amber", "best", "count", "direction", "metric", "min_samples", "red")
COMPONENT_KEYS = ("aggregation", "amber", "members", "red")
INDICATOR_KEYS = (
    "amber",
    "components",
    "currency",
    "kind",
    "metric",
    "red",
    "target",
    "value_per_error",
    "volume",
)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _table(source: str, name: str, value: Any, keys: tuple[str, ...]) -> Table:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [{name}]: expected a table, got {show(value)}")
    return Table(source, name, value, keys)


def _names(source: str, where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{source}: [{where}]: expected a table of named tables, got {show(value)}"
        )
    for name in value:
        if _NAME.fullmatch(name) is None:
            raise ConfigError(
                f"{source}: [{where}.{name}]: expected a name matching ^[a-z_][a-z0-9_]*$, "
                f"got {show(name)}"
            )
    return value


class _Parser:
    """State of one ``[hierarchy]`` parse: the source, what is produced, the notes."""

    def __init__(
        self, source: str, produced: set[str], defaults: dict[str, dict[str, Any]]
    ) -> None:
        self.source = source
        self.produced = produced
        self.defaults = defaults
        self.notes: list[str] = []

    def available(self, statistic: str) -> bool:
        name, _selector = parse_statistic(statistic)
        return STATISTICS[name].needs in self.produced

    def metric(self, name: str, user: Mapping[str, Any] | None) -> BaseMetric:
        where = f"hierarchy.metrics.{name}"
        merged = {**self.defaults.get(name, {}), **(user or {})}
        table = Table(self.source, where, merged, METRIC_KEYS)
        for key in ("metric", "amber", "red"):
            if key not in merged:
                raise ConfigError(f"{table.where(key)}: expected a value, got no key")
        text = merged["metric"]
        try:
            metric, selector = parse_statistic(text)
        except ValueError:
            raise table.error("metric", 'a statistic name or name{label="value"}', text) from None
        info = STATISTICS.get(metric)
        if info is None:
            raise table.error(
                "metric", "a per-cell statistic tilewatch exports (docs/hierarchy.md)", text
            )
        if info.label is None and selector is not None:
            raise table.error("metric", f"{metric} without a label selector", text)
        if info.label is not None and (selector is None or selector[0] != info.label):
            raise table.error("metric", f'{metric}{{{info.label}="..."}}', text)
        count = merged.get("count", "tilewatch_window_events")
        if not isinstance(count, str) or count not in STATISTICS or STATISTICS[count].label:
            raise table.error("count", "a per-cell count statistic without labels", count)
        direction = merged.get("direction", "higher_is_worse")
        if direction not in DIRECTIONS:
            raise table.error("direction", '"higher_is_worse" or "lower_is_worse"', direction)
        best = table.number("best", 0.0) if "best" in merged else None
        try:
            return BaseMetric(
                name=name,
                metric=metric,
                selector=selector,
                amber=table.number("amber", 0.0),
                red=table.number("red", 0.0),
                direction=direction,
                best=best,
                min_samples=table.integer("min_samples", 0, 0),
                count=count,
            )
        except ValueError as exc:
            raise ConfigError(f"{self.source}: [{where}]: {exc}") from None


def parse_hierarchy(
    data: Mapping[str, Any],
    source: str,
    *,
    cells: CellSettings,
    drift: DriftSettings,
    drift_enabled: bool,
    has_baseline: bool,
    labels_enabled: bool = False,
    label_min_samples: int = 30,
    regression: bool = False,
    multiclass: bool = False,
) -> tuple[HierarchySettings, AlertSettings]:
    """Validate ``[hierarchy]`` into the hierarchy and the alert settings.

    Parameters
    ----------
    data
        The ``[hierarchy]`` table (empty: the default hierarchy).
    source
        The config file, named in errors.
    cells, drift
        ``[cells]`` (window, min_samples via ``drift.min_samples``) and ``[drift]`` settings.
    drift_enabled, has_baseline, labels_enabled
        Which statistics this config produces.
    label_min_samples, regression
        ``[labels]`` min_samples and whether the task is regression.
    multiclass
        Whether ``[events] scores`` is set (the multi-class statistics are produced).

    Examples
    --------
    >>> h, a = parse_hierarchy({}, "t.toml", cells=CellSettings(), drift=DriftSettings(),
    ...                        drift_enabled=False, has_baseline=False)
    >>> [c.name for c in h.components], [i.name for i in h.indicators]
    (['latency', 'aging'], ['red_traffic_share'])
    >>> a.for_critical, a.for_warning
    (300.0, 600.0)
    """
    top = Table(source, "hierarchy", data, HIERARCHY_KEYS)
    alerts = parse_alerts(source, data.get("alerts", {}))
    if not top.boolean("enabled", True):
        return HierarchySettings(
            notes=("hierarchy: disabled ([hierarchy] enabled = false)",)
        ), alerts
    produced = {"always"}
    if drift_enabled:
        produced.add("drift")
        if has_baseline:
            produced.add("baseline")
    if labels_enabled:
        produced.add("labels")
    if multiclass:
        produced.add("multiclass")
    defaults = default_metrics(cells, drift, drift.min_samples, label_min_samples)
    parser = _Parser(source, produced, defaults)
    user_metrics = _names(source, "hierarchy.metrics", data.get("metrics", {}))
    for name, table in user_metrics.items():
        _table(source, f"hierarchy.metrics.{name}", table, METRIC_KEYS)
    metrics = {
        name: parser.metric(name, user_metrics.get(name))
        for name in [*defaults, *(n for n in user_metrics if n not in defaults)]
    }
    comps_data = (
        _names(source, "hierarchy.components", data["components"])
        if "components" in data
        else default_components(drift, regression)
    )
    components: list[Component] = []
    for name, value in comps_data.items():
        comp = _component(parser, name, value, metrics)
        if comp is not None:
            components.append(comp)
    inds_data = (
        _names(source, "hierarchy.indicators", data["indicators"])
        if "indicators" in data
        else dict(DEFAULT_INDICATORS)
    )
    kept = {c.name for c in components}
    declared = set(comps_data)
    indicators: list[Indicator] = []
    for name, value in inds_data.items():
        ind = _indicator(parser, name, value, metrics, kept, declared, labels_enabled)
        if ind is not None:
            indicators.append(ind)
    used = {m for c in components for m in c.member_names}
    used |= {i.metric for i in indicators if i.kind == "revenue_at_risk"}
    settings = HierarchySettings(
        metrics=tuple(m for name, m in metrics.items() if name in used),
        components=tuple(components),
        indicators=tuple(indicators),
        notes=tuple(parser.notes),
    )
    return settings, alerts


def _component(
    parser: _Parser, name: str, value: Any, metrics: dict[str, BaseMetric]
) -> Component | None:
    where = f"hierarchy.components.{name}"
    table = _table(parser.source, where, value, COMPONENT_KEYS)
    raw = table.data.get("members")
    members: list[tuple[str, float]] = []
    if isinstance(raw, list) and raw and all(isinstance(m, str) for m in raw):
        members = [(m, 1.0) for m in raw]
    elif isinstance(raw, Mapping) and raw:
        weights = Table(parser.source, f"{where}.members", raw, list(raw))
        members = [(m, weights.number(m, 1.0)) for m in raw]
    else:
        raise table.error(
            "members", "a non-empty list of base metric names or a table of name = weight", raw
        )
    for member, _weight in members:
        if member not in metrics:
            raise table.error("members", f"names of base metrics ({', '.join(metrics)})", member)
    present = [(m, w) for m, w in members if parser.available(metrics[m].statistic)]
    present = [(m, w) for m, w in present if parser.available(metrics[m].count)]
    missing = [metrics[m].statistic for m, _w in members if (m, _w) not in present]
    if not present:
        parser.notes.append(
            f"component {name}: left out, this config does not produce {', '.join(missing)}"
        )
        return None
    for statistic in missing:
        parser.notes.append(
            f"component {name}: {statistic} left out, this config does not produce it"
        )
    aggregation = table.data.get("aggregation", "worst")
    if aggregation not in ("worst", "weighted"):
        raise table.error("aggregation", '"worst" or "weighted"', aggregation)
    try:
        return Component(
            name=name,
            members=tuple(present),
            aggregation=aggregation,
            amber=table.number("amber", 0.5),
            red=table.number("red", 1.0),
        )
    except ValueError as exc:
        raise ConfigError(f"{parser.source}: [{where}]: {exc}") from None


def _indicator(
    parser: _Parser,
    name: str,
    value: Any,
    metrics: dict[str, BaseMetric],
    kept: set[str],
    declared: set[str],
    labels_enabled: bool,
) -> Indicator | None:
    where = f"hierarchy.indicators.{name}"
    defaults = DEFAULT_INDICATORS.get(name, {})
    table = _table(parser.source, where, {**defaults, **value}, INDICATOR_KEYS)
    kinds = ", ".join(f'"{k}"' for k in INDICATOR_KINDS)
    if "kind" not in table.data and name not in INDICATOR_KINDS:
        raise ConfigError(f"{table.where('kind')}: expected {kinds}, got no key")
    kind = table.data.get("kind", name)
    if kind not in INDICATOR_KINDS:
        raise table.error("kind", kinds, kind)
    for key in ("amber", "red"):
        if key not in table.data:
            raise ConfigError(f"{table.where(key)}: expected a number, got no key")
    fields: dict[str, Any] = {"amber": table.number("amber", 0.0), "red": table.number("red", 0.0)}
    if kind == "red_traffic_share":
        raw = table.data.get("components", [])
        if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
            raise table.error("components", "a list of component names", raw)
        for comp in raw:
            if comp not in declared:
                raise table.error(
                    "components", f"names of components ({', '.join(declared)})", comp
                )
        chosen = [c for c in raw if c in kept]
        if (raw and not chosen) or not kept:
            parser.notes.append(f"indicator {name}: left out, none of its components is kept")
            return None
        fields["components"] = tuple(chosen)
        fields["volume"] = _volume(table)
    elif kind == "revenue_at_risk":
        metric = table.data.get("metric")
        if metric not in metrics:
            raise table.error("metric", f"a base metric name ({', '.join(metrics)})", metric)
        if not metrics[metric].higher_is_worse:
            raise table.error("metric", "a higher_is_worse base metric (an error rate)", metric)
        if not (
            parser.available(metrics[metric].statistic) and parser.available(metrics[metric].count)
        ):
            parser.notes.append(
                f"indicator {name}: left out, this config does not produce "
                f"{metrics[metric].statistic}"
            )
            return None
        fields.update(
            metric=metric,
            volume=_volume(table),
            target=table.number("target", 0.0),
            value_per_error=table.number("value_per_error", 1.0),
            currency=table.data.get("currency", ""),
        )
        if fields["target"] < 0 or fields["value_per_error"] <= 0:
            raise table.error(
                "value_per_error" if fields["target"] >= 0 else "target",
                "target >= 0 and value_per_error > 0",
                table.data.get("value_per_error" if fields["target"] >= 0 else "target"),
            )
        if not isinstance(fields["currency"], str):
            raise table.error("currency", "a string", fields["currency"])
    else:
        metric = table.data.get("metric", "tilewatch_window_error_gap_ratio")
        if metric not in GAP_STATISTICS:
            raise table.error("metric", " or ".join(GAP_STATISTICS), metric)
        if not labels_enabled:
            parser.notes.append(f"indicator {name}: left out, fairness gaps need [labels]")
            return None
        fields["metric"] = metric
    try:
        return Indicator(name=name, kind=kind, **fields)
    except ValueError as exc:
        raise ConfigError(f"{parser.source}: [{where}]: {exc}") from None


def _volume(table: Table) -> str:
    volume = table.data.get("volume", "tilewatch_window_events")
    if not isinstance(volume, str) or volume not in STATISTICS or STATISTICS[volume].label:
        raise table.error("volume", "a per-cell count statistic without labels", volume)
    return volume
