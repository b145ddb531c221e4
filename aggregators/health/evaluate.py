"""The health hierarchy, evaluated: base metrics -> component scores -> business indicators.

Pure and vectorized over cells: :func:`evaluate` takes per-cell statistic arrays (as a
snapshot exports them) and :class:`~tilewatch.aggregators.health.settings.HierarchySettings`, and
returns every score, status and driver.

- **Base metric verdicts.** A cell has a verdict on a base metric when its value is not NaN
  and its gating count (``count``) is at least ``min_samples``; the verdict is the risk in
  [0, 1] (:func:`~tilewatch.aggregators.health.settings.risk`).
- **Cell components.** ``worst``: the highest member risk; ``weighted``: the weighted mean of
  the member risks with a verdict. Health score = 1 - risk; status red at or over the
  component's ``red`` risk, amber at or over ``amber``. No member verdict: NaN score and no
  status (absence is alerted on by the silence alerts, never shown as green). The driver is
  the member with the highest risk (ties: the first in config order).
- **Model components.** The worst leaf cell of the model (highest risk; ties: the first
  cell). Without any leaf verdict, the model's total cell (every dimension ``__all__``) is
  used when it has one. The driver is that cell and its driving member.
- **Business indicators** (per model, leaf cells only): ``red_traffic_share`` = volume in red
  cells / volume; ``revenue_at_risk`` = sum of ``volume x max(0, error - target) x
  value_per_error`` over cells with an error verdict; ``fairness_gap`` = the largest gap.
  Status red at or over ``red``, amber at or over ``amber``; NaN (no traffic, no verdict):
  no status. Drivers: the red cell with the most volume (no red cell: the cell with the
  highest component risk) and its worst component's driving member; the cell contributing
  the most money (all zero: the highest error); the dimension value with the worst gap.
- **Aging.** :func:`tilewatch.aggregators.health.aging.aging_statistics` adds the cells'
  silence (behind their model's event-time clock), and with ``now`` the model's pipeline lag
  and version age; base metrics use them like any other statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.cells.settings import ALL
from tilewatch.aggregators.health.aging import LAST_EVENT, aging_statistics
from tilewatch.aggregators.health.business import pick_worst, red_traffic_share, revenue_at_risk
from tilewatch.aggregators.health.settings import (
    RED,
    BaseMetric,
    Component,
    HierarchySettings,
    Indicator,
    IndicatorKind,
    risk,
    status_of,
)

__all__ = [
    "ComponentResult",
    "Driver",
    "HierarchyInputs",
    "HierarchyResult",
    "IndicatorResult",
    "ModelGap",
    "evaluate",
]

CellKey = tuple[str, ...]


@dataclass(frozen=True)
class ModelGap:
    """A per-model fairness gap: ``value`` of ``metric`` across the values of ``dimension``,
    the worst of which is ``worst``."""

    metric: str
    model: str
    dimension: str
    value: float
    worst: str = ""


@dataclass(frozen=True)
class HierarchyInputs:
    """What :func:`evaluate` reads: per-cell arrays indexed like ``keys``.

    ``statistics`` maps a statistic's text (``name`` or ``name{label="value"}``) to its value
    per cell, counts included (``tilewatch_window_events``, ...). A statistic a base metric
    needs and that is absent gives no verdict.
    """

    dimensions: tuple[str, ...]
    keys: Sequence[CellKey]
    is_leaf: BoolArray
    model_ids: IntArray
    model_names: Sequence[str]
    statistics: Mapping[str, FloatArray]
    gaps: Sequence[ModelGap] = ()
    version_first_seen: Mapping[str, float] = field(default_factory=dict)
    now: float = math.nan


@dataclass(frozen=True)
class Driver:
    """What drives a status: a base metric (``metric``, its ``statistic``) in a cell.

    ``cell`` is the cell's index (-1 when the cell is not in the table, e.g. a fairness
    gap's dimension value), ``key`` its labels; ``component`` is the component through which
    the metric drives a business indicator ("" otherwise).
    """

    metric: str
    statistic: str
    cell: int
    key: CellKey
    component: str = ""


@dataclass(frozen=True)
class ComponentResult:
    """One component: per cell (``score``, ``risk``, ``status``, ``driver`` = member index or
    -1) and per model (``model_*``; ``model_cells`` = leaf cells with a verdict)."""

    name: str
    members: tuple[str, ...]
    risk: FloatArray
    score: FloatArray
    status: IntArray
    driver: IntArray
    model_score: FloatArray
    model_status: IntArray
    model_cells: IntArray
    model_drivers: list[Driver | None]


@dataclass(frozen=True)
class IndicatorResult:
    """One business indicator per model: value (NaN: undefined), status, driver."""

    name: str
    kind: IndicatorKind
    value: FloatArray
    status: IntArray
    drivers: list[Driver | None]


@dataclass(frozen=True)
class HierarchyResult:
    """Everything :func:`evaluate` computed; ``statistics`` include the aging signals."""

    statistics: dict[str, FloatArray]
    risks: dict[str, FloatArray]
    components: list[ComponentResult]
    indicators: list[IndicatorResult]


def _verdicts(metric: BaseMetric, stats: Mapping[str, FloatArray], n: int) -> FloatArray:
    """Risk per cell of one base metric, NaN where there is no verdict."""
    values = stats.get(metric.statistic)
    if values is None:
        return np.full(n, math.nan)
    out = risk(values, metric)
    if metric.min_samples > 0:
        count = stats.get(metric.count)
        if count is None:
            return np.full(n, math.nan)
        with np.errstate(invalid="ignore"):
            out = np.where(np.asarray(count, dtype=np.float64) >= metric.min_samples, out, math.nan)
    return out


def _aggregate(
    comp: Component, risks: dict[str, FloatArray], n: int
) -> tuple[FloatArray, IntArray]:
    """Component risk per cell and the driving member index (-1: no verdict)."""
    if not comp.members:
        return np.full(n, math.nan), np.full(n, -1, dtype=np.int64)
    r = np.column_stack([risks[m] for m in comp.member_names])
    has = ~np.isnan(r)
    any_verdict = has.any(axis=1)
    filled = np.where(has, r, -1.0)
    driver = np.where(any_verdict, np.argmax(filled, axis=1), -1).astype(np.int64)
    if comp.aggregation == "worst":
        agg = np.where(any_verdict, filled.max(axis=1), math.nan)
    else:
        w = np.array([weight for _m, weight in comp.members])
        wsum = (has * w).sum(axis=1)
        total = (np.where(has, r, 0.0) * w).sum(axis=1)
        agg = np.divide(total, wsum, out=np.full(n, math.nan), where=wsum > 0)
    return agg, driver


def _model_rows(inputs: HierarchyInputs) -> tuple[list[IntArray], list[int]]:
    """Per model: its leaf cell indices, and its total cell index (-1 if absent)."""
    nm = len(inputs.model_names)
    leaf = np.asarray(inputs.is_leaf, dtype=bool)
    mids = np.asarray(inputs.model_ids)
    leaves = [np.flatnonzero(leaf & (mids == m)) for m in range(nm)]
    total_tail = (ALL,) * len(inputs.dimensions)
    totals = [_index_of(inputs.keys, (name, *total_tail)) for name in inputs.model_names]
    return leaves, totals


def _index_of(keys: Sequence[CellKey], key: CellKey) -> int:
    """The index of ``key`` in ``keys``, -1 if absent: a scan at C speed (keys are unique),
    not a dict of every key (a fifth of a scrape's CPU at 100,000 cells)."""
    try:
        return keys.index(key)
    except ValueError:
        return -1


def _component(
    comp: Component,
    risks: dict[str, FloatArray],
    metrics: dict[str, BaseMetric],
    inputs: HierarchyInputs,
    rows: tuple[list[IntArray], list[int]],
) -> ComponentResult:
    n = len(inputs.keys)
    agg, driver = _aggregate(comp, risks, n)
    status = status_of(agg, comp.amber, comp.red)
    leaves, totals = rows
    nm = len(inputs.model_names)
    m_risk = np.full(nm, math.nan)
    m_cells = np.zeros(nm, dtype=np.int64)
    m_drivers: list[Driver | None] = []
    for m in range(nm):
        m_cells[m] = int((~np.isnan(agg[leaves[m]])).sum())
        cell = pick_worst(agg, leaves[m])
        if cell < 0 and totals[m] >= 0 and not math.isnan(agg[totals[m]]):
            cell = totals[m]
        if cell < 0:
            m_drivers.append(None)
            continue
        m_risk[m] = agg[cell]
        member = metrics[comp.member_names[int(driver[cell])]]
        m_drivers.append(Driver(member.name, member.statistic, cell, tuple(inputs.keys[cell])))
    return ComponentResult(
        name=comp.name,
        members=comp.member_names,
        risk=agg,
        score=1.0 - agg,
        status=status,
        driver=driver,
        model_score=1.0 - m_risk,
        model_status=status_of(m_risk, comp.amber, comp.red),
        model_cells=m_cells,
        model_drivers=m_drivers,
    )


def _cell_driver(
    comps: list[ComponentResult], cell: int, metrics: dict[str, BaseMetric], key: CellKey
) -> Driver | None:
    """The driver of a cell through its worst component (highest risk; ties: first)."""
    best: ComponentResult | None = None
    for comp in comps:
        r = comp.risk[cell]
        if not math.isnan(r) and (best is None or r > best.risk[cell]):
            best = comp
    if best is None:
        return None
    member = metrics[best.members[int(best.driver[cell])]]
    return Driver(member.name, member.statistic, cell, key, component=best.name)


def _red_share(
    ind: Indicator,
    comps: list[ComponentResult],
    metrics: dict[str, BaseMetric],
    stats: Mapping[str, FloatArray],
    inputs: HierarchyInputs,
    leaves: list[IntArray],
) -> tuple[FloatArray, list[Driver | None]]:
    n = len(inputs.keys)
    chosen = [c for c in comps if not ind.components or c.name in ind.components]
    red = np.zeros(n, dtype=bool)
    worst = np.full(n, math.nan)
    for comp in chosen:
        red |= comp.status == RED
        worst = np.fmax(worst, comp.risk)
    volume = np.asarray(stats.get(ind.volume, np.zeros(n)), dtype=np.float64)
    values, cells = red_traffic_share(volume, red, worst, leaves)
    drivers = [
        None if c < 0 else _cell_driver(chosen, int(c), metrics, tuple(inputs.keys[c]))
        for c in cells.tolist()
    ]
    return values, drivers


def _revenue(
    ind: Indicator,
    risks: dict[str, FloatArray],
    metrics: dict[str, BaseMetric],
    stats: Mapping[str, FloatArray],
    inputs: HierarchyInputs,
    leaves: list[IntArray],
) -> tuple[FloatArray, list[Driver | None]]:
    n = len(inputs.keys)
    metric = metrics[ind.metric]
    error = np.asarray(stats.get(metric.statistic, np.full(n, math.nan)), dtype=np.float64)
    volume = np.asarray(stats.get(ind.volume, np.zeros(n)), dtype=np.float64)
    verdict = ~np.isnan(risks[metric.name])
    values, cells = revenue_at_risk(volume, error, verdict, ind.target, ind.value_per_error, leaves)
    drivers = [
        None if c < 0 else Driver(metric.name, metric.statistic, c, tuple(inputs.keys[c]))
        for c in cells.tolist()
    ]
    return values, drivers


def _fairness(ind: Indicator, inputs: HierarchyInputs) -> tuple[FloatArray, list[Driver | None]]:
    index = {tuple(key): i for i, key in enumerate(inputs.keys)}
    values = np.full(len(inputs.model_names), math.nan)
    drivers: list[Driver | None] = []
    for m, model in enumerate(inputs.model_names):
        gaps = [
            g
            for g in inputs.gaps
            if g.model == model and g.metric == ind.metric and not math.isnan(g.value)
        ]
        if not gaps:
            drivers.append(None)
            continue
        gap = max(gaps, key=lambda g: g.value)
        values[m] = gap.value
        key = tuple(gap.worst if dim == gap.dimension else ALL for dim in inputs.dimensions)
        cell_key = (model, *key)
        drivers.append(Driver(ind.metric, ind.metric, index.get(cell_key, -1), cell_key))
    return values, drivers


def evaluate(inputs: HierarchyInputs, settings: HierarchySettings) -> HierarchyResult:
    """Evaluate the hierarchy on every cell and model.

    Parameters
    ----------
    inputs
        Per-cell statistics and the cell table (see :class:`HierarchyInputs`).
    settings
        The base metrics, components and indicators.

    Returns
    -------
    HierarchyResult
        Risks per base metric, component results (per cell and per model) and indicator
        results (per model), with drivers.

    Examples
    --------
    >>> from tilewatch.aggregators.health.settings import BaseMetric, Component, Indicator
    >>> settings = HierarchySettings(
    ...     (BaseMetric("mean", "tilewatch_window_score_mean", amber=0.5, red=0.7,
    ...                 min_samples=10),),
    ...     (Component("quality", (("mean", 1.0),)),),
    ...     (Indicator("red_share", "red_traffic_share", amber=0.05, red=0.2),))
    >>> keys = [("m", "a"), ("m", "b"), ("m", "__all__")]
    >>> inputs = HierarchyInputs(("segment",), keys, np.array([True, True, False]),
    ...     np.array([0, 0, 0]), ["m"],
    ...     {"tilewatch_window_score_mean": np.array([0.9, 0.2, 0.6]),
    ...      "tilewatch_window_events": np.array([30.0, 70.0, 100.0])})
    >>> result = evaluate(inputs, settings)
    >>> quality = result.components[0]
    >>> quality.status.tolist(), quality.score.round(2).tolist()
    ([2, 0, 1], [0.0, 0.8, 0.25])
    >>> quality.model_status.tolist(), quality.model_drivers[0].key
    ([2], ('m', 'a'))
    >>> share = result.indicators[0]
    >>> share.value.tolist(), share.status.tolist(), share.drivers[0].metric
    ([0.3], [2], 'mean')
    """
    n = len(inputs.keys)
    stats: dict[str, FloatArray] = dict(inputs.statistics)
    last = stats.get(LAST_EVENT)
    if last is not None:
        aging = aging_statistics(
            last, inputs.model_ids, inputs.model_names, inputs.version_first_seen, inputs.now
        )
        for name, values in aging.items():
            stats.setdefault(name, values)
    metrics = {m.name: m for m in settings.metrics}
    risks = {m.name: _verdicts(m, stats, n) for m in settings.metrics}
    rows = _model_rows(inputs)
    comps = [_component(c, risks, metrics, inputs, rows) for c in settings.components]
    indicators: list[IndicatorResult] = []
    for ind in settings.indicators:
        if ind.kind == "red_traffic_share":
            values, drivers = _red_share(ind, comps, metrics, stats, inputs, rows[0])
        elif ind.kind == "revenue_at_risk":
            values, drivers = _revenue(ind, risks, metrics, stats, inputs, rows[0])
        else:
            values, drivers = _fairness(ind, inputs)
        indicators.append(
            IndicatorResult(
                ind.name, ind.kind, values, status_of(values, ind.amber, ind.red), drivers
            )
        )
    return HierarchyResult(stats, risks, comps, indicators)
