"""The alerting rules of tilewatch, each with its documentation and its test probe.

Business indicators and components alert on their statuses (worst replica); the monitor's own health
(scrapes, Kafka), silent models and dead letters alert on absent or stale data, which is a symptom
rather than a green tile. Every :class:`~tilewatch.exporters.alerting.model.Alert` carries a
:class:`~tilewatch.exporters.alerting.model.Probe` from which
:mod:`tilewatch.exporters.alerting.rule_tests` generates its unit tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from tilewatch.aggregators.cells.settings import ALL
from tilewatch.aggregators.health.settings import HierarchySettings
from tilewatch.aggregators.state.forecasts import FORECAST_STATISTICS
from tilewatch.exporters.alerting.forecast_alerts import forecast_alerts
from tilewatch.exporters.alerting.model import Alert, Probe, ProbeSeries
from tilewatch.exporters.alerting.monitor_alerts import process_alerts
from tilewatch.exporters.alerting.promql import (
    WORST_OVER_REPLICAS,
    driver_annotation,
    job_selector,
    prom_duration,
)
from tilewatch.exporters.generator_inputs import AlertSettings, Severity

__all__ = ["alert_rules"]


def _example_cell(dimensions: tuple[str, ...]) -> dict[str, str]:
    return {d: f"{d}-1" for d in dimensions}


def _info(job: str, labels: Mapping[str, str]) -> str:
    body = ",".join(
        f'{k}="{v}"' for k, v in {"job": job, "instance": "tw-0:9464", **labels}.items()
    )
    return f"tilewatch_health_driver_info{{{body}}}"


def _series(name: str, job: str, labels: Mapping[str, str]) -> str:
    body = ",".join(
        f'{k}="{v}"' for k, v in {"job": job, "instance": "tw-0:9464", **labels}.items()
    )
    return f"{name}{{{body}}}"


def alert_rules(
    dimensions: tuple[str, ...],
    hierarchy: HierarchySettings,
    alerts: AlertSettings,
    forecasts: tuple[str, ...] = FORECAST_STATISTICS,
    horizon: int = 5,
) -> list[Alert]:
    """Every alerting rule, from the cell dimensions, the hierarchy and the alert settings
    (``forecasts``, ``horizon``: ``[forecast]``, for the forecast alert).

    Examples
    --------
    >>> rules = alert_rules(("segment", "region"), HierarchySettings(), AlertSettings())
    >>> [(a.name, a.severity) for a in rules][:3]  # doctest: +NORMALIZE_WHITESPACE
    [('TilewatchBusinessIndicatorRed', 'critical'), ('TilewatchBusinessIndicatorAmber', 'warning'),
     ('TilewatchComponentRed', 'warning')]
    """
    job = alerts.job
    w = prom_duration(alerts.rate_window)
    leaf = [f'{d}!="{ALL}"' for d in dimensions]
    cell = _example_cell(dimensions)
    component = hierarchy.components[0].name if hierarchy.components else "data_quality"
    indicator = hierarchy.indicators[0].name if hierarchy.indicators else "red_traffic_share"
    dims_doc = ", ".join(dimensions)
    cell_match = ",".join(f'{d}="..."' for d in dimensions)
    cell_tmpl = " ".join(f"{d}={{{{ $labels.{d} }}}}" for d in dimensions)
    out: list[Alert] = []

    business: tuple[tuple[Severity, int, str], ...] = (
        ("critical", 2, "red"),
        ("warning", 1, "amber"),
    )
    for sev, status, word in business:
        driver = {
            "level": "business",
            "indicator": indicator,
            "model": "m1",
            "component": component,
            **cell,
            "driver": "base_metric",
            "statistic": "tilewatch_window_score_mean",
        }
        out.append(
            Alert(
                name=f"TilewatchBusinessIndicator{word.capitalize()}",
                severity=sev,
                expr=f"{WORST_OVER_REPLICAS} (tilewatch_business_status{job_selector(job)})"
                f" == {status}",
                summary=f"{{{{ $labels.model }}}}: business indicator {{{{ $labels.indicator }}}} "
                f"is {word}",
                description=f"The business indicator {{{{ $labels.indicator }}}} of model "
                f"{{{{ $labels.model }}}} is {word} (at or over its {word} threshold). Its "
                f'driving cell and base metric: tilewatch_health_driver_info{{level="business",'
                f'indicator="{{{{ $labels.indicator }}}}",model="{{{{ $labels.model }}}}"}}.',
                meaning=f"A business indicator of a model (share of traffic in red cells, revenue "
                f"at risk or fairness gap) crossed its {word} threshold in "
                "`[hierarchy.indicators]`. The page names the cell and the base metric that "
                "drive it.",
                actions=(
                    "Open the driving cell's tile (query 2) and check which base metric is out "
                    "of range, and since when (the heatmap's time axis).",
                    "Check whether the cell's traffic changed (new segment, new region, a "
                    "campaign), the model version changed, or an upstream feature broke.",
                    "Mitigate for the affected traffic (fallback model, rule, or rollback), "
                    "then open a ticket for the root cause.",
                ),
                queries=(
                    (
                        "Which indicators are out of range",
                        "model:tilewatch_business_status:max >= 1",
                    ),
                    (
                        "The base metric and cell that drive it",
                        'tilewatch_health_driver_info{level="business",indicator="<indicator>",'
                        'model="<model>"}',
                    ),
                ),
                probe=Probe(
                    series=(
                        ProbeSeries(
                            _series(
                                "tilewatch_business_status",
                                job,
                                {"indicator": indicator, "model": "m1"},
                            ),
                            0.0,
                            float(status),
                        ),
                        ProbeSeries(_info(job, driver), 1.0, 1.0),
                    ),
                    labels={"job": job, "indicator": indicator, "model": "m1"},
                    driver=driver,
                ),
                labels=("indicator", "model"),
                driver=driver_annotation("business", ("indicator", "model"), dimensions),
            )
        )

    components: tuple[tuple[Severity, int, str], ...] = (
        ("warning", 2, "red"),
        ("info", 1, "amber"),
    )
    for sev, status, word in components:
        driver = {
            "level": "cell",
            "component": component,
            "model": "m1",
            **cell,
            "driver": "base_metric",
            "statistic": "tilewatch_window_score_mean",
        }
        keys = ("component", "model", *dimensions)
        out.append(
            Alert(
                name=f"TilewatchComponent{word.capitalize()}",
                severity=sev,
                expr=f"{WORST_OVER_REPLICAS} "
                f"(tilewatch_component_status{job_selector(job, *leaf)}) == {status}",
                summary=f"{{{{ $labels.model }}}} {cell_tmpl}: component "
                f"{{{{ $labels.component }}}} is {word}",
                description=f"The {{{{ $labels.component }}}} health of model "
                f"{{{{ $labels.model }}}} in cell {cell_tmpl} is {word}. Its driving base "
                f'metric: tilewatch_health_driver_info{{level="cell",component='
                f'"{{{{ $labels.component }}}}",model="{{{{ $labels.model }}}}",...}}.',
                meaning=f"A component (`[hierarchy.components]`) of one leaf cell ({dims_doc}) "
                f"is {word}: its aggregated base-metric risk reached the component's {word} "
                "cut point. Roll-up cells (`__all__`) do not alert: the business indicators "
                "cover whole models.",
                actions=(
                    "Read the driving base metric of the cell (query 2) and its value over "
                    "time on the heatmap.",
                    "Compare with the neighbouring cells of the same segment and region: one "
                    "cell points at its traffic, a whole row or column at an upstream change.",
                    "Fix the input (data pipeline, feature), retrain or recalibrate, or adjust "
                    "the thresholds in the config if the new level is the normal one.",
                ),
                queries=(
                    (
                        f"Which cells are {word}",
                        f"cell:tilewatch_component_status:max{{{','.join(leaf)}}} == {status}",
                    ),
                    (
                        "The base metric that drives the cell",
                        f'tilewatch_health_driver_info{{level="cell",component="<component>",'
                        f'model="<model>",{cell_match}}}',
                    ),
                ),
                probe=Probe(
                    series=(
                        ProbeSeries(
                            _series(
                                "tilewatch_component_status",
                                job,
                                {"component": component, "model": "m1", **cell},
                            ),
                            0.0,
                            float(status),
                        ),
                        ProbeSeries(_info(job, driver), 1.0, 1.0),
                    ),
                    labels={"job": job, "component": component, "model": "m1", **cell},
                    driver=driver,
                ),
                labels=keys,
                driver=driver_annotation("cell", keys, dimensions),
            )
        )

    out.append(
        Alert(
            name="TilewatchComponentNoVerdict",
            severity="info",
            expr=f"{WORST_OVER_REPLICAS} (tilewatch_model_component_cells{job_selector(job)}) == 0",
            summary="{{ $labels.model }}: component {{ $labels.component }} has no verdict",
            description="No leaf cell of model {{ $labels.model }} has enough samples for a "
            "verdict on component {{ $labels.component }}: its tiles are empty, not green.",
            meaning="The component's base metrics are NaN or below their `min_samples` in every "
            "leaf cell of the model (too little traffic or too few labels per window, or the "
            "statistic is not produced).",
            actions=(
                "Check the model's traffic and, for performance, the labels joined per window "
                "(tilewatch_window_labeled_events).",
                "Lower min_samples or lengthen [cells].window if the traffic is normal but small.",
            ),
            queries=(
                ("Blind components", "tilewatch_model_component_cells == 0"),
                ("Sample counts of the model's cells", 'tilewatch_window_events{model="<model>"}'),
            ),
            probe=Probe(
                series=(
                    ProbeSeries(
                        _series(
                            "tilewatch_model_component_cells",
                            job,
                            {"component": component, "model": "m1"},
                        ),
                        12.0,
                        0.0,
                    ),
                ),
                labels={"job": job, "component": component, "model": "m1"},
            ),
            labels=("component", "model"),
        )
    )

    up = _series("up", job, {})
    out.append(
        Alert(
            name="TilewatchMonitorDown",
            severity="critical",
            expr=f"up{job_selector(job)} == 0",
            summary="tilewatch replica {{ $labels.instance }} is down",
            description="Prometheus cannot scrape the tilewatch replica {{ $labels.instance }}: "
            "every tile it serves is stale. Absent data is a symptom, not a green tile.",
            meaning="A replica of the monitor does not answer scrapes (crashed, stopped, "
            "unreachable): the health of the models it watches is unknown.",
            actions=(
                "Check the process or pod (logs: `tilewatch run` prints the reason it stopped).",
                "Restart it; checkpoints restore its state, so nothing is counted twice.",
            ),
            queries=(
                ("Which replicas are down", f'up{{job="{job}"}} == 0'),
                (
                    "When each last answered",
                    f'timestamp(tilewatch_read_events_total{{job="{job}"}})',
                ),
            ),
            probe=Probe(
                series=(ProbeSeries(up, 1.0, 0.0),),
                labels={"job": job, "instance": "tw-0:9464"},
            ),
            labels=("instance",),
        )
    )
    out.append(
        Alert(
            name="TilewatchMonitorAbsent",
            severity="critical",
            expr=f"absent(up{job_selector(job)})",
            summary=f"no tilewatch target in job {job}",
            description=f"Prometheus has no target of job {job} at all: the monitor is not "
            "deployed or service discovery lost it. Every model health is unknown.",
            meaning="Not one tilewatch replica is known to Prometheus.",
            actions=("Check the deployment and Prometheus' service discovery (Status > Targets).",),
            queries=(
                ("Known targets of the job", f'up{{job="{job}"}}'),
                ("Prometheus' own view", "prometheus_sd_discovered_targets"),
            ),
            probe=Probe(series=(ProbeSeries(up, 1.0, None),), labels={"job": job}),
        )
    )
    out.append(
        Alert(
            name="TilewatchKafkaDown",
            severity="critical",
            expr=f"tilewatch_kafka_up{job_selector(job)} == 0",
            summary="tilewatch replica {{ $labels.instance }} cannot reach Kafka",
            description="The replica {{ $labels.instance }} lost its Kafka brokers: no "
            "prediction is read, so every tile of its partitions stops updating.",
            meaning="The consumer's group heartbeats stopped or no broker answers.",
            actions=(
                "Check the brokers and the network between them and the monitor.",
                "Check the consumer group (kafka-consumer-groups --describe).",
            ),
            queries=(
                ("Replicas without Kafka", f'tilewatch_kafka_up{{job="{job}"}} == 0'),
                ("Their lag", f'tilewatch_consumer_lag_events{{job="{job}"}}'),
            ),
            probe=Probe(
                series=(ProbeSeries(_series("tilewatch_kafka_up", job, {}), 1.0, 0.0),),
                labels={"job": job, "instance": "tw-0:9464"},
            ),
            labels=("instance",),
        )
    )
    rate = f"model:tilewatch_events:rate{w}"
    lookback = prom_duration(alerts.silent_lookback)
    total = {d: ALL for d in dimensions}
    out.append(
        Alert(
            name="TilewatchModelSilent",
            severity="warning",
            expr=f"{rate} == 0 and max_over_time({rate}[{lookback}]) > 0",
            summary="model {{ $labels.model }} stopped sending predictions",
            description=f"No event of model {{{{ $labels.model }}}} arrived in the last {w}, "
            f"though it had traffic in the last {lookback}: its tiles are stale, not green.",
            meaning="A model's event rate dropped to zero while the monitor is up.",
            actions=(
                "Check the model's serving and the producer that publishes its predictions.",
                "If the model was retired on purpose, silence the alert; it stops after "
                f"{lookback} of silence.",
            ),
            queries=(
                ("Event rate per model", rate),
                (
                    "Last event time of the model's cells",
                    'tilewatch_last_event_timestamp_seconds{model="<model>"}',
                ),
            ),
            probe=Probe(
                series=(
                    ProbeSeries(
                        _series("tilewatch_events_total", job, {"model": "m1", **total}),
                        60.0,
                        0.0,
                        counter=True,
                    ),
                ),
                labels={"job": job, "model": "m1"},
                lag_on=alerts.rate_window,
                lag_off=0.0,
            ),
            labels=("model",),
        )
    )
    lag = alerts.pipeline_lag
    lag_series = _series("tilewatch_model_pipeline_lag_seconds", job, {"model": "m1"})
    out.append(
        Alert(
            name="TilewatchPipelineLag",
            severity="warning",
            expr=f"{WORST_OVER_REPLICAS} (tilewatch_model_pipeline_lag_seconds"
            f"{job_selector(job)}) > {lag:g}",
            summary="model {{ $labels.model }}: its data is behind real time",
            description="The latest event of model {{ $labels.model }} that the monitor has "
            f"read is more than {prom_duration(lag)} behind the wall clock: its tiles show the "
            "past. The cells are not silent (each is compared with its model's own event-time "
            "clock), so this is one alert per model, not one per tile.",
            meaning="The model's event-time clock (its latest event time read) is behind the "
            "wall clock: the consumer lags, a replica is catching up after a restart or a "
            "replay, or the producer stamps events late.",
            actions=(
                "Check the consumer lag (tilewatch_consumer_lag_events) and the replicas' CPU: "
                "if the lag grows, scale out or reduce the cells' cost.",
                "If a replica is replaying or catching up, wait: the lag falls as it reads.",
                "If the lag is flat and no record waits, check the producer's timestamps.",
            ),
            queries=(
                ("Lag per model", "tilewatch_model_pipeline_lag_seconds"),
                ("Consumer lag in records", "tilewatch_consumer_lag_events"),
            ),
            probe=Probe(
                series=(ProbeSeries(lag_series, lag / 10, lag * 2),),
                labels={"job": job, "model": "m1"},
            ),
            labels=("model",),
        )
    )
    out.append(
        Alert(
            name="TilewatchDeadLetterRateHigh",
            severity="warning",
            expr=f"sum without(instance, pod, reason) (rate(tilewatch_invalid_events_total"
            f"{job_selector(job)}[{w}])) / sum without(instance, pod) (rate("
            f"tilewatch_read_events_total{job_selector(job)}[{w}])) > {alerts.dead_letter_ratio:g}",
            summary=f"more than {100 * alerts.dead_letter_ratio:g}% of records are rejected",
            description=f"Over the last {w}, more than {alerts.dead_letter_ratio:g} of the "
            "records read were rejected and dead-lettered: producers send malformed events.",
            meaning="The share of invalid records (not JSON, missing fields, scores out of "
            "range, ...) is high; those predictions are not in any tile.",
            actions=(
                "Read the dead-letter topic: each record carries tilewatch.reason and "
                "tilewatch.detail headers.",
                "Fix the producer or the [events] mapping in the config.",
            ),
            queries=(
                ("Rejections by reason", f"rate(tilewatch_invalid_events_total[{w}])"),
                (
                    "Share rejected",
                    f"job:tilewatch_invalid_events:rate{w} / job:tilewatch_read_events:rate{w}",
                ),
            ),
            probe=Probe(
                series=(
                    ProbeSeries(
                        _series("tilewatch_invalid_events_total", job, {"reason": "not_json"}),
                        0.0,
                        1000.0,
                        counter=True,
                    ),
                    ProbeSeries(
                        _series("tilewatch_read_events_total", job, {}), 1000.0, 1000.0, True
                    ),
                ),
                labels={"job": job},
                lag_on=alerts.rate_window,
                lag_off=alerts.rate_window,
            ),
        )
    )
    out.extend(process_alerts(alerts))
    out.extend(forecast_alerts(dimensions, hierarchy, alerts, forecasts, horizon))
    return [dataclasses.replace(a, for_seconds=alerts.for_(a.severity)) for a in out]
