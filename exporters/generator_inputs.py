"""What the generated files are made from: the parts of the config the generators read.

``tilewatch/generate.py`` builds one :class:`GeneratorInputs` from the config and passes it to
every generator (the Grafana dashboards, the rule files, the Alertmanager config, the
runbooks), so a generator reads only what is declared here, with its type: a misspelt field is
an error, not a silent default. :class:`AlertSettings` is the ``[hierarchy.alerts]`` section,
which only the generators read.

May import: ``tilewatch.aggregators`` (settings types only).

Examples
--------
>>> inputs = GeneratorInputs(("segment",), labels=LabelInputs(Task("regression"), 30, False))
>>> inputs.labels.task, inputs.drift is None, inputs.alerts.for_("critical")
(<Task.REGRESSION: 'regression'>, True, 300.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from tilewatch.aggregators.health.settings import HierarchySettings

__all__ = [
    "RUNBOOK_BASE_URL",
    "AlertSettings",
    "DriftInputs",
    "GeneratorInputs",
    "LabelInputs",
    "Severity",
    "Task",
]

#: Alert severities: critical pages, warning opens a ticket, info is low priority.
Severity = Literal["critical", "warning", "info"]


class Task(StrEnum):
    """What the labels judge: a classifier's decisions or a regressor's values."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


#: Where the runbooks are published: the repository's ``docs/runbooks/`` as an absolute URL, so
#: that every alert carries a link a person can click from a notification.
RUNBOOK_BASE_URL = "https://github.com/tilewatch/tilewatch/blob/main/docs/runbooks/"


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The ``[hierarchy.alerts]`` section: timings, thresholds and receivers of the alerts.

    Durations are seconds. ``for_*`` is the ``for:`` hysteresis per severity; ``rate_window``
    the range of every ``rate()``; ``silent_lookback`` how long ago a model must have had
    traffic for its silence to alert; ``pipeline_lag`` how far a model's event-time clock may
    fall behind the wall clock before it alerts; ``*_url`` the webhook of each receiver (empty: a
    receiver without integration); ``group_*``/``repeat_interval`` Alertmanager's timings;
    ``memory_high_bytes`` the resident memory of a replica that alerts.
    """

    job: str = "tilewatch"
    for_critical: float = 300.0
    for_warning: float = 600.0
    for_info: float = 1800.0
    rate_window: float = 300.0
    silent_lookback: float = 86400.0
    pipeline_lag: float = 900.0
    dead_letter_ratio: float = 0.01
    runbook_base_url: str = RUNBOOK_BASE_URL
    memory_high_bytes: int = 2 << 30
    pager_url: str = ""
    ticket_url: str = ""
    info_url: str = ""
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 14400.0

    def for_(self, severity: Severity) -> float:
        """The ``for:`` of a severity."""
        return {
            "critical": self.for_critical,
            "warning": self.for_warning,
            "info": self.for_info,
        }[severity]

    def url(self, severity: Severity) -> str:
        """The webhook of a severity's receiver (empty: none)."""
        return {"critical": self.pager_url, "warning": self.ticket_url, "info": self.info_url}[
            severity
        ]


@dataclass(frozen=True, slots=True)
class DriftInputs:
    """What the generators read of ``[drift]`` and ``[baseline]``, when drift is on."""

    #: ``[drift] psi_alert``: the PSI at which a window is flagged.
    psi_alert: float = 0.25
    #: ``[drift] missing_alert``: the missing share at which a window is flagged.
    missing_alert: float = 0.5
    #: Features are monitored (``[drift] features`` or the baseline's).
    has_features: bool = False
    #: A baseline is set: scores are compared with it (score PSI).
    has_baseline: bool = False
    #: River detectors run on the scores (``[drift] detectors``).
    has_detectors: bool = False


@dataclass(frozen=True, slots=True)
class LabelInputs:
    """What the generators read of ``[labels]``, when labels are joined."""

    task: Task = Task.CLASSIFICATION
    #: ``[labels] min_samples``: the labeled events a window metric needs.
    min_samples: int = 30
    #: ``[labels] error_detector`` is set (an error-stream drift detector).
    has_error_detector: bool = False


@dataclass(frozen=True, slots=True)
class GeneratorInputs:
    """Everything the generated files depend on.

    Parameters
    ----------
    dimensions
        The cell dimensions (label names besides ``model``).
    score_range
        ``[events] score_min`` and ``score_max``.
    min_samples
        ``[cells] min_samples``: the events a window statistic needs.
    hierarchy
        The health hierarchy (base metrics and their thresholds, components, indicators).
    alerts
        ``[hierarchy.alerts]``.
    drift
        ``None`` when drift is off.
    labels
        ``None`` without a ``[labels]`` section.
    multiclass
        ``[events] scores`` is set: the cell dashboard gets a row of class statistics.
    labeling
        A ``[labeling]`` section is set: the overview gets the labeling queue's panel.
    embeddings, attributions
        ``[events] embedding`` / ``attributions`` is set: the cell dashboard gets an
        embeddings / explanations row (``docs/embeddings.md``).
    source
        The config file (``""`` when the config did not come from a file).
    forecasts, forecast_horizon
        ``[forecast] statistics`` and ``horizon`` (``docs/forecast.md``).
    """

    dimensions: tuple[str, ...] = ()
    score_range: tuple[float, float] = (0.0, 1.0)
    min_samples: int = 30
    hierarchy: HierarchySettings = field(default_factory=HierarchySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    drift: DriftInputs | None = None
    labels: LabelInputs | None = None
    multiclass: bool = False
    labeling: bool = False
    embeddings: bool = False
    attributions: bool = False
    source: str = ""
    #: ``[forecast]``: the forecast statistics (none: no forecast panels or alert) and horizon.
    forecasts: tuple[str, ...] = ("accuracy", "score_mean", "score_psi")
    forecast_horizon: int = 5
