"""The forecast alert: a leaf cell whose forecast crosses a base metric's red threshold within
the forecast horizon (``tilewatch_forecast_<statistic>``, docs/forecast.md).

One rule covers every base metric of the hierarchy that reads a forecast statistic
(``tilewatch_window_score_mean``, ``tilewatch_window_score_psi``,
``tilewatch_window_accuracy_ratio``, without a selector); the ``metric`` label names the base
metric. The point forecast of any horizon at or beyond red fires it (a warning: the tile is not
red yet). With no such base metric in the hierarchy there is no rule.
"""

from __future__ import annotations

from tilewatch.aggregators.cells.settings import ALL
from tilewatch.aggregators.health.settings import LOWER_IS_WORSE, BaseMetric, HierarchySettings
from tilewatch.exporters.alerting.model import Alert, Probe, ProbeSeries
from tilewatch.exporters.alerting.promql import job_selector
from tilewatch.exporters.generator_inputs import AlertSettings

__all__ = ["FORECAST_OF", "forecast_alerts"]

#: The forecast statistic of each base metric that has one.
FORECAST_OF = {
    "tilewatch_window_score_mean": "score_mean",
    "tilewatch_window_score_psi": "score_psi",
    "tilewatch_window_accuracy_ratio": "accuracy",
}


def _condition(m: BaseMetric, job: str, by: str, leaf: list[str]) -> str:
    series = f"tilewatch_forecast_{FORECAST_OF[m.metric]}{job_selector(job, *leaf)}"
    if m.direction == LOWER_IS_WORSE:
        return f"min by ({by}) ({series}) <= {m.red!r}"
    return f"max by ({by}) ({series}) >= {m.red!r}"


def forecast_alerts(
    dimensions: tuple[str, ...],
    hierarchy: HierarchySettings,
    alerts: AlertSettings,
    forecasts: tuple[str, ...] = tuple(FORECAST_OF.values()),
    horizon: int = 5,
) -> list[Alert]:
    """The forecast alert of a hierarchy (none when no base metric reads a forecast that
    ``[forecast] statistics`` keeps)."""
    metrics = [
        m for m in hierarchy.metrics if FORECAST_OF.get(m.metric) in forecasts and not m.selector
    ]
    if not metrics:
        return []
    job = alerts.job
    leaf = [f'{d}!="{ALL}"' for d in dimensions]
    by = ", ".join(["job", "model", *dimensions])
    expr = " or ".join(
        f'label_replace({_condition(m, job, by, leaf)}, "metric", "{m.name}", "", "")'
        for m in metrics
    )
    first = metrics[0]
    cell = {d: f"{d}-1" for d in dimensions}
    step = max(abs(first.red) * 0.5, 0.1)
    sign = -1.0 if first.direction == LOWER_IS_WORSE else 1.0
    labels = {"job": job, "instance": "tw-0:9464", "model": "m1", **cell, "horizon": "3"}
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    cell_tmpl = " ".join(f"{d}={{{{ $labels.{d} }}}}" for d in dimensions)
    stat = FORECAST_OF[first.metric]
    return [
        Alert(
            name="TilewatchCellForecastRed",
            severity="warning",
            expr=expr,
            summary=f"{{{{ $labels.model }}}} {cell_tmpl}: {{{{ $labels.metric }}}} is forecast "
            "to reach red",
            description="The forecast of base metric {{ $labels.metric }} for cell "
            f"{cell_tmpl} of model {{{{ $labels.model }}}} reaches its red threshold within "
            f"the forecast horizon (tilewatch_forecast_*, up to {horizon} windows ahead).",
            meaning="A leaf cell's damped-trend forecast of a base metric (score mean, score "
            "PSI or accuracy) crosses the metric's red threshold in `[hierarchy.metrics]` "
            "within the next windows: the tile is heading for red but is not red yet.",
            actions=(
                "Open the cell's dashboard: the forecast tiles beside the observed ones show "
                "how fast it moves and how wide the interval is.",
                "Check what changes in the cell's traffic (segment mix, a campaign, a new model "
                "version, an upstream feature) before it turns red.",
            ),
            queries=(
                ("The forecasts of the cell", f'tilewatch_forecast_{stat}{{model="<model>"}}'),
                ("Its observed values", f'{first.metric}{{model="<model>"}}'),
            ),
            probe=Probe(
                series=(
                    ProbeSeries(
                        f"tilewatch_forecast_{stat}{{{selector}}}",
                        first.red - sign * step,
                        first.red + sign * step,
                    ),
                ),
                labels={"job": job, "model": "m1", **cell, "metric": first.name},
            ),
            labels=("model", *dimensions, "metric"),
        )
    ]
