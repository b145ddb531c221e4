"""The one table of dashboard statistics: metric, merge, unit, fixed scale, colours, thresholds.

Every panel that shows a statistic takes its scale, scheme, unit and thresholds from the
:class:`Statistic` built here, so the same statistic looks the same everywhere. Which
statistics exist follows the config (drift needs ``[drift]``/a baseline, performance needs
``[labels]``); thresholds come from the metrics hierarchy (``inputs.hierarchy``) when it has a
base metric on the statistic, else from the ``[drift]`` alert levels.

Across replicas a cell's series are merged in recording rules (:func:`merge_expr`): window
ratios are weighted by their sample counts (exact), the score mean from the window sums
(exact), and statistics that do not merge (PSI, latency quantiles, detector flags) take the
worst replica (exact with one replica, or with producers keyed by cell for leaf cells).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, get_args

from tilewatch.exporters.generator_inputs import GeneratorInputs, Task

__all__ = [
    "COUNT_METRICS",
    "Direction",
    "Merge",
    "Statistic",
    "count_scale",
    "dashboard_statistics",
    "merge_expr",
]

#: Sample-count metrics shown beside statistics, by the recorded series they are summed into.
COUNT_METRICS: dict[str, str] = {
    "tilewatch_window_events": "tilewatch_cell:window_events:sum",
    "tilewatch_window_labeled_events": "tilewatch_cell:window_labeled_events:sum",
}


class Direction(StrEnum):
    """Which end of a statistic's scale is worse (the hierarchy's two, and ``neutral``)."""

    HIGHER_IS_WORSE = "higher_is_worse"
    LOWER_IS_WORSE = "lower_is_worse"
    NEUTRAL = "neutral"


#: How a cell's statistic is merged across replicas: weighted by its sample count, the score
#: mean from the window sums, or the worst replica.
Merge = Literal["weighted", "mean", "max"]


@dataclass(frozen=True, slots=True)
class Statistic:
    """One statistic as the dashboards show it.

    Parameters
    ----------
    key, title
        Identifier (the ``statistic`` label of the recorded series) and display name.
    metric, selector
        The exported per-cell metric and an optional extra matcher (``percentile="95"``).
    reduce
        A label aggregated away with ``max`` before merging (``feature``, ``detector``).
    merge
        ``"weighted"`` (by ``count``), ``"mean"`` (window sums / events) or ``"max"``
        (:data:`Merge`).
    count
        The sample-count metric shown beside it.
    unit
        Grafana unit id.
    floor
        The smallest value the statistic can take (cells at or above it are drawn).
    low, high
        The fixed colour scale.
    direction
        Which end is worse (:class:`Direction`).
    amber, red
        Hierarchy thresholds (None when there is none).
    scheme
        Colour scheme (perceptually uniform, colour-blind safe).
    meaning
        What the value is, for panel descriptions.
    """

    key: str
    title: str
    metric: str
    selector: str
    reduce: str
    merge: Merge
    count: str
    unit: str
    floor: float
    low: float
    high: float
    direction: Direction
    amber: float | None
    red: float | None
    scheme: str
    meaning: str

    def __post_init__(self) -> None:
        if not self.high > self.low or self.floor > self.low:
            raise ValueError(f"{self.key}: expected floor <= low < high")
        Direction(self.direction)  # raises ValueError on a direction outside the vocabulary
        if self.merge not in get_args(Merge):
            raise ValueError(f"{self.key}: unknown merge {self.merge!r}")

    @property
    def reverse(self) -> bool:
        """Whether the palette is reversed, so the worse end has the same colour everywhere."""
        return self.direction == Direction.LOWER_IS_WORSE

    @property
    def source(self) -> str:
        """The exported metric with its selector, as the hierarchy names it."""
        return f"{self.metric}{{{self.selector}}}" if self.selector else self.metric

    def describe(self, rows: str, merged: bool = True) -> str:
        """A panel description: what the value is, the colour scale, how it was normalized."""
        worse = {
            Direction.HIGHER_IS_WORSE: "higher is worse",
            Direction.LOWER_IS_WORSE: "lower is worse (palette reversed so the worse end has the "
            "same colour as on every other statistic)",
            Direction.NEUTRAL: "neither end is worse by itself",
        }[self.direction]
        parts = [
            f"{self.meaning} Rows: {rows}.",
            f"Colour: {self.scheme} on a fixed scale {_num(self.low)} .. {_num(self.high)} "
            f"(unit {self.unit}), shared by every panel showing {self.title}; values outside are "
            f"drawn at the nearest end; {worse}. Empty tile = no value (below min_samples, or "
            "no events in the window); zero is drawn.",
        ]
        if self.amber is not None or self.red is not None:
            parts.append(f"Hierarchy thresholds: amber {_num(self.amber)}, red {_num(self.red)}.")
        if merged:
            parts.append(
                {
                    "weighted": f"Across replicas: weighted by {self.count} (exact).",
                    "mean": "Across replicas: sum of window scores / window events (exact).",
                    "max": "Across replicas: the worst replica (exact with one replica or "
                    "keyed producers for leaf cells).",
                }[self.merge]
            )
        return " ".join(parts)


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def merge_expr(stat: Statistic, cell_labels: Iterable[str]) -> str:
    """PromQL merging ``stat`` across replicas into one series per cell.

    Examples
    --------
    >>> s = _make("score_psi", metric="tilewatch_window_score_psi", merge="max")
    >>> merge_expr(s, ["model", "segment"])
    'max by (model, segment) (tilewatch_window_score_psi)'
    """
    by = ", ".join(cell_labels)
    base = stat.metric + (f"{{{stat.selector}}}" if stat.selector else "")
    extra = [label for label in (stat.reduce, _selector_label(stat.selector)) if label]
    if extra:
        base = f"max without ({', '.join(extra)}) ({base})"
    if stat.merge == "max":
        return f"max by ({by}) ({base})"
    if stat.merge == "mean":
        sums = f"sum by ({by}) (tilewatch_window_score_summed)"
        return f"{sums} / sum by ({by}) (tilewatch_window_events)"
    valid = f"({base} >= -Inf)"  # drops NaN (below min_samples) before weighting
    return f"sum by ({by}) ({valid} * {stat.count}) / sum by ({by}) ({stat.count} and {valid})"


def _selector_label(selector: str) -> str:
    return selector.split("=", 1)[0].strip() if selector else ""


def count_scale(inputs: GeneratorInputs, count: str) -> float:
    """Top of the fixed colour scale of a sample count: 10 x the min_samples that gates it."""
    if count == "tilewatch_window_labeled_events":
        return 10.0 * float(inputs.labels.min_samples if inputs.labels is not None else 30)
    return 10.0 * float(inputs.min_samples)


#: A statistic's direction, amber and red thresholds.
_Thresholds = tuple[Direction, float | None, float | None]


def _thresholds(inputs: GeneratorInputs) -> dict[str, _Thresholds]:
    """``metric{selector}`` -> (direction, amber, red) from the hierarchy's base metrics."""
    out: dict[str, _Thresholds] = {}
    for metric in inputs.hierarchy.metrics:
        name = metric.statistic.replace(" ", "")
        if name not in out:
            out[name] = (Direction(metric.direction), metric.amber, metric.red)
    return out


def _strictest(
    thresholds: dict[str, _Thresholds], metric: str, reduce: str | None
) -> _Thresholds | None:
    """For a statistic that is the worst over a label (``feature``, ``detector``): the
    strictest thresholds of the hierarchy's base metrics on that label, if any."""
    if not reduce:
        return None
    found = [v for k, v in thresholds.items() if k.startswith(f"{metric}{{{reduce}=")]
    directions = {d for d, _a, _r in found}
    if len(directions) != 1:
        return None
    (direction,) = directions
    pick = min if direction == Direction.HIGHER_IS_WORSE else max
    ambers = [a for _d, a, _r in found if a is not None]
    reds = [r for _d, _a, r in found if r is not None]
    return (
        direction,
        pick(ambers) if ambers else None,
        pick(reds) if reds else None,
    )


def _make(key: str, **fields: Any) -> Statistic:
    base: dict[str, Any] = {
        "title": key,
        "metric": "",
        "selector": "",
        "reduce": "",
        "merge": "max",
        "count": "tilewatch_window_events",
        "unit": "none",
        "floor": 0.0,
        "low": 0.0,
        "high": 1.0,
        "direction": Direction.HIGHER_IS_WORSE,
        "amber": None,
        "red": None,
        "scheme": "Viridis",
        "meaning": "",
    }
    base.update(fields)
    return Statistic(key=key, **base)


def _scaled(
    default: tuple[float, float],
    direction: Direction,
    red: float | None,
    domain: tuple[float, float],
) -> tuple[float, float]:
    """The fixed scale: the default, or one that puts the red threshold in its middle."""
    low, high = default
    if red is None or not math.isfinite(red):
        return low, high
    if direction == Direction.HIGHER_IS_WORSE and red > low:
        return low, min(domain[1], round(2.0 * red - low, 9))
    if direction == Direction.LOWER_IS_WORSE and red < high:
        return max(domain[0], round(2.0 * red - high, 9)), high
    return low, high


def dashboard_statistics(inputs: GeneratorInputs) -> tuple[Statistic, ...]:
    """The key statistics that ``inputs`` make tilewatch export, in display order.

    Score mean and latency always; score PSI with drift and a baseline; missing share with
    drift; accuracy and error rate (or MAE for regression) with ``[labels]``; drift active
    with drift detectors or a label error detector.
    """
    thresholds = _thresholds(inputs)
    drift, labels = inputs.drift, inputs.labels
    out: list[Statistic] = []

    def add(
        key: str,
        default: tuple[float, float],
        domain: tuple[float, float],
        *,
        title: str,
        metric: str,
        meaning: str,
        selector: str = "",
        reduce: str = "",
        merge: Merge = "max",
        count: str = "tilewatch_window_events",
        unit: str = "none",
        direction: Direction = Direction.HIGHER_IS_WORSE,
        amber: float | None = None,
        red: float | None = None,
    ) -> None:
        source = metric + (f"{{{selector}}}" if selector else "")
        found = thresholds.get(source) or _strictest(thresholds, metric, reduce)
        if found is not None:
            direction, amber, red = (
                Direction.NEUTRAL if direction == Direction.NEUTRAL else found[0],
                found[1],
                found[2],
            )
        low, high = _scaled(default, direction, red, domain)
        out.append(
            Statistic(
                key=key,
                title=title,
                metric=metric,
                selector=selector,
                reduce=reduce,
                merge=merge,
                count=count,
                unit=unit,
                floor=domain[0],
                low=low,
                high=high,
                direction=direction,
                amber=amber,
                red=red,
                scheme="Viridis",
                meaning=meaning,
            )
        )

    score_range = inputs.score_range
    add(
        "score_mean",
        score_range,
        score_range,
        title="Score mean",
        metric="tilewatch_window_score_mean",
        merge="mean",
        direction=Direction.NEUTRAL,
        meaning="Mean prediction score of the cell's last closed window.",
    )
    if drift is not None and drift.has_baseline:
        add(
            "score_psi",
            (0.0, max(0.5, 2.0 * drift.psi_alert)),
            (0.0, math.inf),
            title="Score PSI",
            metric="tilewatch_window_score_psi",
            amber=min(0.1, drift.psi_alert),
            red=drift.psi_alert,
            meaning="Population stability index of the window's score histogram against the "
            "model's baseline (0 = same distribution).",
        )
    if labels is not None and labels.task == Task.CLASSIFICATION:
        add(
            "accuracy",
            (0.5, 1.0),
            (0.0, 1.0),
            title="Accuracy",
            metric="tilewatch_window_accuracy_ratio",
            merge="weighted",
            count="tilewatch_window_labeled_events",
            unit="percentunit",
            direction=Direction.LOWER_IS_WORSE,
            meaning="Share of the window's labeled predictions that were right.",
        )
        add(
            "error_rate",
            (0.0, 0.5),
            (0.0, 1.0),
            title="Error rate",
            metric="tilewatch_window_error_ratio",
            merge="weighted",
            count="tilewatch_window_labeled_events",
            unit="percentunit",
            meaning="Share of the window's labeled predictions that were wrong.",
        )
    elif labels is not None:
        span = score_range[1] - score_range[0]
        add(
            "mae",
            (0.0, span / 2.0),
            (0.0, math.inf),
            title="MAE",
            metric="tilewatch_window_mae",
            merge="weighted",
            count="tilewatch_window_labeled_events",
            meaning="Mean absolute error of the window's labeled predictions.",
        )
    if drift is not None and (drift.has_features or drift.has_baseline):
        add(
            "missing_share",
            (0.0, 1.0),
            (0.0, 1.0),
            title="Missing share",
            metric="tilewatch_window_feature_missing_ratio",
            reduce="feature",
            merge="weighted",
            unit="percentunit",
            amber=drift.missing_alert / 2.0,
            red=drift.missing_alert,
            meaning="Share of the window's events missing a monitored feature (the worst "
            "feature of the cell).",
        )
    add(
        "latency_p95",
        (0.0, 1.0),
        (0.0, math.inf),
        title="Latency p95",
        metric="tilewatch_window_latency_seconds",
        selector='percentile="95"',
        unit="s",
        meaning="95th percentile of the serving latency of the window's predictions.",
    )
    detectors = drift is not None and drift.has_detectors
    if detectors or (labels is not None and labels.has_error_detector):
        add(
            "drift_active",
            (0.0, 1.0),
            (0.0, 1.0),
            title="Drift active",
            metric="tilewatch_drift_active",
            reduce="detector",
            unit="bool",
            red=1.0,
            meaning="1 while any drift detector of the cell (score or error stream) detected "
            "a drift within the last window of event time, else 0.",
        )
    return tuple(out)
