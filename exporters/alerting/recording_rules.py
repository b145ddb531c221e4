"""The recording rules of the alerts' rule file: roll-ups across replicas and rates.

``instance``/``pod`` are summed or maxed away, so alerts, runbook queries and people read one
series per cell or model whatever the number of replicas. They are the ``tilewatch.recording``
group of ``deploy/prometheus/rules/tilewatch.rules.yml``. (The per-cell statistics the
dashboards read are recorded separately, by :mod:`tilewatch.exporters.grafana.dashboard_rules`.)
"""

from __future__ import annotations

from tilewatch.aggregators.cells.settings import ALL
from tilewatch.exporters.alerting.model import RecordingRule
from tilewatch.exporters.alerting.promql import WORST_OVER_REPLICAS, job_selector, prom_duration
from tilewatch.exporters.generator_inputs import AlertSettings

__all__ = ["recording_rules"]


def recording_rules(dimensions: tuple[str, ...], alerts: AlertSettings) -> list[RecordingRule]:
    """Roll-ups across replicas (``instance``/``pod`` summed or maxed away) and rates.

    Examples
    --------
    >>> [r.record for r in recording_rules(("segment",), AlertSettings())][:2]
    ['cell:tilewatch_events:rate5m', 'model:tilewatch_events:rate5m']
    """
    w = prom_duration(alerts.rate_window)
    job = alerts.job
    total = job_selector(job, *(f'{d}="{ALL}"' for d in dimensions))
    return [
        RecordingRule(
            f"cell:tilewatch_events:rate{w}",
            f"sum without(instance, pod) (rate(tilewatch_events_total{job_selector(job)}[{w}]))",
            "Events per second of every cell, summed over replicas.",
        ),
        RecordingRule(
            f"model:tilewatch_events:rate{w}",
            f"sum by (job, model) (rate(tilewatch_events_total{total}[{w}]))",
            "Events per second of every model (its total cell), summed over replicas.",
        ),
        RecordingRule(
            "cell:tilewatch_window_events:sum",
            f"sum without(instance, pod) (tilewatch_window_events{job_selector(job)})",
            "Events of every cell in its model's last closed window, summed over replicas.",
        ),
        RecordingRule(
            f"job:tilewatch_read_events:rate{w}",
            "sum without(instance, pod) "
            f"(rate(tilewatch_read_events_total{job_selector(job)}[{w}]))",
            "Records read per second, summed over replicas.",
        ),
        RecordingRule(
            f"job:tilewatch_invalid_events:rate{w}",
            "sum without(instance, pod, reason) "
            f"(rate(tilewatch_invalid_events_total{job_selector(job)}[{w}]))",
            "Records rejected (dead-lettered) per second, summed over replicas and reasons.",
        ),
        RecordingRule(
            "cell:tilewatch_component_status:max",
            f"{WORST_OVER_REPLICAS} (tilewatch_component_status{job_selector(job)})",
            "Worst status of every cell component over replicas.",
        ),
        RecordingRule(
            "cell:tilewatch_component_score:min",
            f"min without(instance, pod) (tilewatch_component_score{job_selector(job)})",
            "Lowest health score of every cell component over replicas.",
        ),
        RecordingRule(
            "model:tilewatch_model_component_status:max",
            f"{WORST_OVER_REPLICAS} (tilewatch_model_component_status{job_selector(job)})",
            "Worst status of every model component over replicas.",
        ),
        RecordingRule(
            "model:tilewatch_business_status:max",
            f"{WORST_OVER_REPLICAS} (tilewatch_business_status{job_selector(job)})",
            "Worst status of every business indicator over replicas.",
        ),
        RecordingRule(
            "model:tilewatch_business_indicator:max",
            f"{WORST_OVER_REPLICAS} (tilewatch_business_indicator{job_selector(job)})",
            "Largest value of every business indicator over replicas.",
        ),
        RecordingRule(
            "model:tilewatch_business_indicator:sum",
            f"sum without(instance, pod) (tilewatch_business_indicator{job_selector(job)})",
            "Business indicators summed over replicas (meaningful for revenue_at_risk with "
            "traffic keyed by cell).",
        ),
    ]
