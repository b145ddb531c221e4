"""The vocabulary of tilewatch's alerting: settings, alert and probe records, recording rules.

Everything is derived from the config (cell dimensions, ``[hierarchy]`` and ``[hierarchy.alerts]``),
so the rules follow when a metric, a dimension or a threshold changes. The alerting rules themselves
are in :mod:`tilewatch.exporters.alerting.alerts`; :mod:`tilewatch.exporters.alerting.rule_files`
writes both as Prometheus rule files (and the promtool unit tests),
:mod:`tilewatch.exporters.alerting.alertmanager` routes them and
:mod:`tilewatch.exporters.alerting.runbooks` documents them.

Every :class:`Alert` carries a :class:`Probe`: the input series that make its condition false
(``good``) and true (``bad``), so a unit test per alert (fires, does not fire on a blip shorter
than ``for``, resolves) is generated for each one; an alert without a probe cannot be written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tilewatch.aggregators.cells.settings import ALL

__all__ = [
    "SEVERITIES",
    "WORST_OVER_REPLICAS",
    "Alert",
    "AlertSettings",
    "Probe",
    "ProbeSeries",
    "RecordingRule",
    "driver_annotation",
    "job_selector",
    "prom_duration",
    "recording_rules",
    "render_driver",
]

#: Alert severities, most urgent first: critical pages, warning opens a ticket, info is low.
SEVERITIES = ("critical", "warning", "info")
#: The worst value over replicas (``instance``/``pod`` maxed away).
WORST_OVER_REPLICAS = "max without(instance, pod)"


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The ``[hierarchy.alerts]`` section: timings, thresholds and receivers of the alerts.

    Durations are seconds. ``for_*`` is the ``for:`` hysteresis per severity; ``rate_window``
    the range of every ``rate()``; ``silent_lookback`` how long ago a model must have had
    traffic for its silence to alert; ``*_url`` the webhook of each receiver (empty: a
    receiver without integration); ``group_*``/``repeat_interval`` Alertmanager's timings.
    """

    job: str = "tilewatch"
    for_critical: float = 300.0
    for_warning: float = 600.0
    for_info: float = 1800.0
    rate_window: float = 300.0
    silent_lookback: float = 86400.0
    dead_letter_ratio: float = 0.01
    runbook_base_url: str = "docs/runbooks/"
    pager_url: str = ""
    ticket_url: str = ""
    info_url: str = ""
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 14400.0

    def for_(self, severity: str) -> float:
        """The ``for:`` of a severity."""
        return {
            "critical": self.for_critical,
            "warning": self.for_warning,
            "info": self.for_info,
        }[severity]


@dataclass(frozen=True)
class RecordingRule:
    """``record: expr`` with its meaning (for the rule file's comments and the docs)."""

    record: str
    expr: str
    help: str


@dataclass(frozen=True)
class ProbeSeries:
    """One input series of a probe: its value while the condition should be false (``good``)
    and true (``bad``); ``None`` means the series is gone (a staleness marker, then no
    samples). With ``counter``, the values are increments per step of a counter."""

    selector: str
    good: float | None
    bad: float | None
    counter: bool = False


@dataclass(frozen=True)
class Probe:
    """How to test an alert: input series, the expected alert labels (besides ``alertname``
    and ``severity``) and the lags, in seconds, between the input turning bad (good) and the
    condition turning true (false), e.g. a ``rate()`` window."""

    series: tuple[ProbeSeries, ...]
    labels: Mapping[str, str]
    lag_on: float = 0.0
    lag_off: float = 0.0
    #: Driver info labels the ``driver`` annotation is rendered from (see driver_annotation).
    driver: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """One alerting rule, its documentation and its test probe.

    ``summary`` and ``description`` may use ``{{ $labels.NAME }}``; ``driver`` (when not
    empty) is an annotation template that names the driving base metric and cell.
    ``queries`` are the two queries of the runbook: from the alert to the tile that drives it.
    """

    name: str
    severity: str
    expr: str
    summary: str
    description: str
    meaning: str
    actions: tuple[str, ...]
    queries: tuple[tuple[str, str], ...]
    probe: Probe
    labels: tuple[str, ...] = ()
    driver: str = ""
    for_seconds: float = 0.0


def prom_duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds`` (``"5m"``, ``"90s"``, ``"1500ms"``, ``"1d"``).

    Examples
    --------
    >>> [prom_duration(s) for s in (300, 90, 1.5, 86400, 7200, 0)]
    ['5m', '90s', '1500ms', '1d', '2h', '0s']
    """
    ms = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0 and ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms else "0s"


def job_selector(job: str, *matchers: str) -> str:
    """A label selector ``{job="JOB",...}`` with extra matchers."""
    return "{" + ",".join((f'job="{job}"', *matchers)) + "}"


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


def driver_annotation(level: str, keys: tuple[str, ...], dimensions: tuple[str, ...]) -> str:
    """An annotation template naming the driver of a status, read from
    ``tilewatch_health_driver_info`` when the alert is evaluated.

    ``keys`` are the alert labels that select the info series (e.g. ``indicator``, ``model``).
    """
    matchers = ",".join([f'level=\\"{level}\\"', *(f'{k}=\\"%s\\"' for k in keys)])
    args = " ".join(f"$labels.{k}" for k in keys)
    cell = " ".join(f"{d}={{{{ .Labels.{d} }}}}" for d in dimensions)
    return (
        f'{{{{ with printf "tilewatch_health_driver_info{{{matchers}}}" {args} | query }}}}'
        "{{ with first . }}"
        "base metric {{ .Labels.driver }} ({{ .Labels.statistic }})"
        "{{ if .Labels.component }} via component {{ .Labels.component }}{{ end }}"
        f" in cell model={{{{ .Labels.model }}}} {cell}"
        "{{ end }}{{ end }}"
    )


def render_driver(driver: Mapping[str, str], dimensions: tuple[str, ...]) -> str:
    """What :func:`driver_annotation` renders to for one info series' labels."""
    if not driver:
        return ""
    via = f" via component {driver['component']}" if driver.get("component") else ""
    cell = " ".join(f"{d}={driver.get(d, '')}" for d in dimensions)
    return (
        f"base metric {driver['driver']} ({driver['statistic']}){via} "
        f"in cell model={driver['model']} {cell}"
    )
