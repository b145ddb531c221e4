"""Settings of the health hierarchy, and how a base metric becomes a risk and a status.

The hierarchy has three levels, all configured in ``[hierarchy]``:

- **base metrics** (:class:`BaseMetric`): one exported per-cell statistic (optionally narrowed
  by one label, e.g. ``tilewatch_window_feature_missing_ratio{feature="plan"}``), a direction,
  amber and red thresholds, and the sample count that gates a verdict;
- **components** (:class:`Component`): an aggregation (``worst`` or ``weighted``) of the risks
  of some base metrics, per cell and per model;
- **business indicators** (:class:`Indicator`): one number per model (share of traffic in red
  cells, money at risk, worst fairness gap) with amber and red thresholds.

Normalization (:func:`risk`) maps a base metric's value to a risk in [0, 1], piecewise
linearly: ``best`` -> 0, ``amber`` -> 0.5, ``red`` -> 1, clipped outside; for a
``lower_is_worse`` metric the same on the mirrored axis. A component's health score is
``1 - risk``; statuses are :data:`GREEN`, :data:`AMBER`, :data:`RED` (``0, 1, 2``) and
:data:`NO_STATUS` (``-1``) where there is no verdict.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import FloatArray, IntArray

__all__ = [
    "AGGREGATIONS",
    "AMBER",
    "DIRECTIONS",
    "GREEN",
    "HIGHER_IS_WORSE",
    "INDICATOR_KINDS",
    "LOWER_IS_WORSE",
    "NO_STATUS",
    "RED",
    "STATUS_NAMES",
    "Aggregation",
    "BaseMetric",
    "Component",
    "Direction",
    "HierarchySettings",
    "Indicator",
    "IndicatorKind",
    "parse_statistic",
    "risk",
    "statistic_key",
    "status_of",
]


#: Which way a base metric gets worse.
Direction = Literal["higher_is_worse", "lower_is_worse"]
HIGHER_IS_WORSE: Direction = "higher_is_worse"
LOWER_IS_WORSE: Direction = "lower_is_worse"
#: Values of :data:`Direction`.
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)
#: How a component aggregates its members: ``worst``, the highest member risk; ``weighted``,
#: the weighted mean of the member risks.
Aggregation = Literal["worst", "weighted"]
#: Values of :data:`Aggregation`.
AGGREGATIONS: tuple[Aggregation, ...] = get_args(Aggregation)
#: What a business indicator measures (see :class:`Indicator`).
IndicatorKind = Literal["red_traffic_share", "revenue_at_risk", "fairness_gap"]
#: Values of :data:`IndicatorKind`.
INDICATOR_KINDS: tuple[IndicatorKind, ...] = get_args(IndicatorKind)
GREEN, AMBER, RED = 0, 1, 2
#: Status where there is no verdict (too few samples, NaN): exported as no series at all.
NO_STATUS = -1
STATUS_NAMES = ("green", "amber", "red")

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_STATISTIC = re.compile(rf'({_NAME})(?:\{{([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\{{}}]*)"\}})?')


def parse_statistic(text: str) -> tuple[str, tuple[str, str] | None]:
    """Split ``name`` or ``name{label="value"}`` into the name and the optional selector.

    Parameters
    ----------
    text
        A metric name as exported, with at most one label selector written as in PromQL.

    Returns
    -------
    tuple
        ``(name, (label, value))``, or ``(name, None)`` without a selector.

    Raises
    ------
    ValueError
        If ``text`` is not of that form.

    Examples
    --------
    >>> parse_statistic('tilewatch_window_latency_seconds{percentile="95"}')
    ('tilewatch_window_latency_seconds', ('percentile', '95'))
    >>> parse_statistic("tilewatch_window_score_mean")
    ('tilewatch_window_score_mean', None)
    """
    match = _STATISTIC.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f'expected a metric name or name{{label="value"}}, got {text!r}')
    name, label, value = match.groups()
    return name, None if label is None else (label, value)


def statistic_key(metric: str, selector: tuple[str, str] | None) -> str:
    """The canonical text of a statistic: ``name`` or ``name{label="value"}``.

    Examples
    --------
    >>> statistic_key("tilewatch_window_feature_psi", ("feature", "plan"))
    'tilewatch_window_feature_psi{feature="plan"}'
    """
    return metric if selector is None else f'{metric}{{{selector[0]}="{selector[1]}"}}'


@dataclass(frozen=True, slots=True)
class BaseMetric:
    """One exported per-cell statistic judged against amber and red thresholds.

    Parameters
    ----------
    name
        Identifier used by components and in the ``driver`` label (e.g. ``"missing_plan"``).
    metric
        The statistic's exported name.
    amber, red
        Thresholds: amber at or beyond ``amber``, red at or beyond ``red`` (in the bad
        direction).
    direction
        :data:`HIGHER_IS_WORSE` or :data:`LOWER_IS_WORSE`.
    best
        The value of risk 0. Default: 0 for a higher-is-worse metric with ``amber > 0``,
        otherwise ``amber`` moved away from ``red`` by ``|red - amber|``.
    selector
        One ``(label, value)`` narrowing a statistic that has an extra label.
    min_samples
        A cell has a verdict only when the ``count`` statistic is at least this (0: always).
    count
        The statistic that gates the verdict (e.g. ``tilewatch_window_labeled_events`` for
        performance metrics).

    Examples
    --------
    >>> m = BaseMetric("p95", "tilewatch_window_latency_seconds", amber=0.25, red=1.0,
    ...                selector=("percentile", "95"))
    >>> m.statistic, m.anchor
    ('tilewatch_window_latency_seconds{percentile="95"}', 0.0)
    >>> BaseMetric("acc", "tilewatch_window_accuracy_ratio", amber=0.9, red=0.8,
    ...            direction=LOWER_IS_WORSE).anchor
    1.0
    """

    name: str
    metric: str
    amber: float
    red: float
    direction: Direction = HIGHER_IS_WORSE
    best: float | None = None
    selector: tuple[str, str] | None = None
    min_samples: int = 0
    count: str = "tilewatch_window_events"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction: expected one of {DIRECTIONS}, got {self.direction!r}")
        values = (self.amber, self.red, self.anchor)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("best, amber and red must be finite")
        best, amber, red = self.anchor, self.amber, self.red
        ordered = best < amber < red if self.higher_is_worse else best > amber > red
        if not ordered:
            relation = "best < amber < red" if self.higher_is_worse else "best > amber > red"
            raise ValueError(
                f"expected {relation} for a {self.direction} metric, "
                f"got best={best!r}, amber={amber!r}, red={red!r}"
            )
        if self.min_samples < 0:
            raise ValueError(f"min_samples: expected >= 0, got {self.min_samples!r}")

    @property
    def higher_is_worse(self) -> bool:
        """Whether larger values are worse."""
        return self.direction == HIGHER_IS_WORSE

    @property
    def statistic(self) -> str:
        """The statistic as text, with its selector: the key of the statistics dict."""
        return statistic_key(self.metric, self.selector)

    @property
    def anchor(self) -> float:
        """The value of risk 0 (``best``, or its default)."""
        if self.best is not None:
            return float(self.best)
        if self.higher_is_worse:
            return 0.0 if self.amber > 0 else self.amber - abs(self.red - self.amber)
        return self.amber + abs(self.amber - self.red)


def risk(values: npt.ArrayLike, metric: BaseMetric) -> FloatArray:
    """Normalize values of a base metric to risks in [0, 1] (NaN stays NaN).

    Piecewise linear: ``best`` -> 0, ``amber`` -> 0.5, ``red`` -> 1, clipped; a
    lower-is-worse metric is mirrored (its values, best, amber and red are negated).

    Parameters
    ----------
    values
        The metric's values, any shape.
    metric
        Its thresholds and direction.

    Returns
    -------
    numpy.ndarray
        Risks, same shape, float64.

    Examples
    --------
    >>> m = BaseMetric("psi", "tilewatch_window_score_psi", amber=0.1, red=0.25)
    >>> risk([0.0, 0.05, 0.1, 0.175, 0.25, 3.0, float("nan")], m).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, nan]
    >>> acc = BaseMetric("acc", "tilewatch_window_accuracy_ratio", amber=0.9, red=0.8,
    ...                  direction=LOWER_IS_WORSE)
    >>> risk([1.0, 0.95, 0.9, 0.85, 0.5], acc).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    x = np.asarray(values, dtype=np.float64)
    sign = 1.0 if metric.higher_is_worse else -1.0
    best, amber, red = (sign * v for v in (metric.anchor, metric.amber, metric.red))
    x = sign * x
    low = 0.5 * (x - best) / (amber - best)
    high = 0.5 + 0.5 * (x - amber) / (red - amber)
    out = np.where(x <= amber, low, high)
    out = np.clip(out, 0.0, 1.0)
    return np.where(np.isnan(x), np.nan, out)


def status_of(values: npt.ArrayLike, amber: float, red: float) -> IntArray:
    """Status of values where higher is worse: red at or over ``red``, amber at or over
    ``amber``, else green; :data:`NO_STATUS` for NaN.

    Examples
    --------
    >>> status_of([0.1, 0.5, 0.99, 1.0, float("nan")], 0.5, 1.0).tolist()
    [0, 1, 1, 2, -1]
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.where(x >= red, RED, np.where(x >= amber, AMBER, GREEN)).astype(np.int64)
    out[np.isnan(x)] = NO_STATUS
    return out


@dataclass(frozen=True, slots=True)
class Component:
    """An aggregation of base metric risks into one health score per cell and per model.

    Parameters
    ----------
    name
        The ``component`` label (``data_quality``, ``drift``, ``performance``, ...).
    members
        ``(base metric name, weight)`` pairs, in order (the order breaks driver ties).
    aggregation
        ``"worst"``: the highest member risk; ``"weighted"``: the weighted mean of the member
        risks that have a verdict (weights renormalized over them).
    amber, red
        Risk at which the component turns amber / red (defaults 0.5 and 1.0: with ``worst``
        the component takes the status of its worst member).
    """

    name: str
    members: tuple[tuple[str, float], ...]
    aggregation: Aggregation = "worst"
    amber: float = 0.5
    red: float = 1.0

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation: expected one of {AGGREGATIONS}, got {self.aggregation!r}"
            )
        if not self.members:
            raise ValueError(f"component {self.name!r} has no members")
        if any(not (w > 0 and math.isfinite(w)) for _m, w in self.members):
            raise ValueError(f"component {self.name!r}: weights must be finite and > 0")
        if not 0.0 < self.amber < self.red <= 1.0:
            raise ValueError(f"component {self.name!r}: expected 0 < amber < red <= 1")

    @property
    def member_names(self) -> tuple[str, ...]:
        """The base metric names, in order."""
        return tuple(m for m, _w in self.members)


@dataclass(frozen=True, slots=True)
class Indicator:
    """A business indicator: one value per model, higher is worse, with amber and red.

    Parameters
    ----------
    name
        The ``indicator`` label.
    kind
        ``"red_traffic_share"``: share of the model's window volume in leaf cells where a
        component (of ``components``, default all) is red. ``"revenue_at_risk"``: sum over
        leaf cells of ``volume x max(0, error - target) x value_per_error``, with ``metric``
        the base metric holding the error rate. ``"fairness_gap"``: the largest of the
        model's per-dimension gaps of the gap statistic ``metric``.
    amber, red
        Thresholds on the value.
    components
        ``red_traffic_share``: the components that make a cell red (empty: all).
    metric
        ``revenue_at_risk``: a base metric name; ``fairness_gap``: a gap statistic.
    volume
        The per-cell statistic counting traffic (``red_traffic_share``, ``revenue_at_risk``).
    target
        ``revenue_at_risk``: the acceptable error rate.
    value_per_error
        ``revenue_at_risk``: money lost per error above ``target``.
    currency
        ``revenue_at_risk``: the currency of the value, for the documentation only.
    """

    name: str
    kind: IndicatorKind
    amber: float
    red: float
    components: tuple[str, ...] = ()
    metric: str = ""
    volume: str = "tilewatch_window_events"
    target: float = 0.0
    value_per_error: float = 1.0
    currency: str = ""

    def __post_init__(self) -> None:
        if self.kind not in INDICATOR_KINDS:
            raise ValueError(f"kind: expected one of {INDICATOR_KINDS}, got {self.kind!r}")
        if not 0.0 <= self.amber < self.red:
            raise ValueError(f"indicator {self.name!r}: expected 0 <= amber < red")
        if self.kind != "red_traffic_share" and not self.metric:
            raise ValueError(f"indicator {self.name!r} ({self.kind}) needs a metric")


@dataclass(frozen=True, slots=True)
class HierarchySettings:
    """The whole hierarchy: base metrics, components, indicators (checked for consistency).

    ``notes`` says what was left out of the configured hierarchy and why (e.g. metrics the
    config does not produce); ``tilewatch check-config`` prints them.

    Examples
    --------
    >>> m = BaseMetric("mean", "tilewatch_window_score_mean", amber=0.5, red=0.7)
    >>> h = HierarchySettings((m,), (Component("quality", (("mean", 1.0),)),),
    ...                       (Indicator("red_share", "red_traffic_share", 0.05, 0.2),))
    >>> h.metric("mean").red, [c.name for c in h.components]
    (0.7, ['quality'])
    """

    metrics: tuple[BaseMetric, ...] = ()
    components: tuple[Component, ...] = ()
    indicators: tuple[Indicator, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("base metric names must be unique")
        known = set(names)
        comps = [c.name for c in self.components]
        if len(set(comps)) != len(comps):
            raise ValueError("component names must be unique")
        for comp in self.components:
            missing = [m for m in comp.member_names if m not in known]
            if missing:
                raise ValueError(f"component {comp.name!r}: unknown base metrics {missing}")
        inds = [i.name for i in self.indicators]
        if len(set(inds)) != len(inds):
            raise ValueError("indicator names must be unique")
        for ind in self.indicators:
            unknown = [c for c in ind.components if c not in comps]
            if unknown:
                raise ValueError(f"indicator {ind.name!r}: unknown components {unknown}")
            if ind.kind == "revenue_at_risk" and ind.metric not in known:
                raise ValueError(f"indicator {ind.name!r}: unknown base metric {ind.metric!r}")

    def metric(self, name: str) -> BaseMetric:
        """The base metric called ``name``; KeyError if there is none."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def empty(self) -> bool:
        """Whether there is nothing to evaluate (no component and no indicator)."""
        return not self.components and not self.indicators
