"""The records alerting is written with: an alert with its test probe, and a recording rule.

The alerting rules themselves are in :mod:`tilewatch.exporters.alerting.definitions` and the
recording rules in :mod:`tilewatch.exporters.alerting.recording_rules`;
:mod:`tilewatch.exporters.alerting.rule_file` writes both as one Prometheus rule file,
:mod:`tilewatch.exporters.alerting.rule_tests` its promtool unit tests,
:mod:`tilewatch.exporters.alerting.alertmanager` routes the alerts and
:mod:`tilewatch.exporters.alerting.runbooks` documents them.

Every :class:`Alert` carries a :class:`Probe`: the input series that make its condition false
(``good``) and true (``bad``), so a unit test per alert (fires, does not fire on a blip shorter
than ``for``, resolves) is generated for each one; an alert without a probe cannot be written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tilewatch.exporters.generator_inputs import Severity

__all__ = ["Alert", "Probe", "ProbeSeries", "RecordingRule"]


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
    severity: Severity
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
