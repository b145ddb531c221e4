"""Settings of the label side (the ``[labels]`` section): where labels come from, how the
performance of each cell is measured, and the closed vocabularies of both.

:class:`LabelSettings` holds the whole section; its ``performance`` part
(:class:`PerformanceSettings`) is what the performance sums and metrics need, and its ``join``
part (:class:`~tilewatch.aggregators.labels.join.JoinSettings`) what the label join needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

from scipy import special

from tilewatch.aggregators.labels.error_detectors import ERROR_DETECTORS, ErrorDetector
from tilewatch.aggregators.labels.join import JoinSettings

__all__ = [
    "LABEL_SOURCES",
    "PERFORMANCE_TASKS",
    "LabelSettings",
    "LabelSource",
    "PerformanceSettings",
    "Task",
]

#: What the models predict: binary classification (score = probability of the positive
#: class) or regression (score = predicted value).
Task = Literal["classification", "regression"]
#: Values of :attr:`PerformanceSettings.task`.
PERFORMANCE_TASKS: tuple[Task, ...] = get_args(Task)
#: Where labels come from: the prediction event's label field, or an outcomes topic.
LabelSource = Literal["inline", "topic"]
#: Values of :attr:`LabelSettings.source`.
LABEL_SOURCES: tuple[LabelSource, ...] = get_args(LabelSource)


@dataclass(frozen=True, slots=True)
class PerformanceSettings:
    """How model performance is measured (the pure part of the ``[performance]`` section).

    Parameters
    ----------
    task
        ``"classification"`` (binary: score = probability of the positive class) or
        ``"regression"`` (score = predicted value).
    calibration_bins
        Equal-width score bins on ``[0, 1]`` for the expected calibration error.
    min_samples
        Labeled events a cell needs in a window before its metrics are reported (else NaN).
    confidence
        Coverage of the Wilson intervals and of the label-free estimate's bound.
    fdr_rate
        Benjamini-Hochberg false discovery rate of the performance flags, over every tested
        cell and signal of a window (:mod:`tilewatch.aggregators.labels.performance_flags`).
    error_alert
        Relative excess of a cell's error rate over its reference error rate above which a
        significant excess is flagged (0.2: 20 % more errors).
    calibration_alert
        Debiased expected calibration error above which a significant miscalibration is
        flagged.

    Examples
    --------
    >>> PerformanceSettings(task="regression").calibration_bins
    10
    >>> PerformanceSettings(task="ranking")
    Traceback (most recent call last):
    ValueError: task must be one of ('classification', 'regression'), got 'ranking'
    """

    task: Task = "classification"
    calibration_bins: int = 10
    min_samples: int = 30
    confidence: float = 0.95
    fdr_rate: float = 0.01
    error_alert: float = 0.2
    calibration_alert: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.fdr_rate < 1.0:
            raise ValueError(f"fdr_rate must be in (0, 1), got {self.fdr_rate!r}")
        for name in ("error_alert", "calibration_alert"):
            value = getattr(self, name)
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.task not in PERFORMANCE_TASKS:
            raise ValueError(f"task must be one of {PERFORMANCE_TASKS}, got {self.task!r}")
        bins = self.calibration_bins
        if type(bins) is not int or not 1 <= bins <= 1000:
            raise ValueError(f"calibration_bins must be an integer in 1..1000, got {bins!r}")
        if type(self.min_samples) is not int or self.min_samples < 1:
            raise ValueError(f"min_samples must be an integer >= 1, got {self.min_samples!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence!r}")

    @property
    def z(self) -> float:
        """The two-sided normal quantile of :attr:`confidence` (1.96 for 0.95)."""
        return float(special.ndtri((1.0 + self.confidence) / 2.0))


@dataclass(frozen=True, slots=True)
class LabelSettings:
    """How labels arrive and how performance is measured (the ``[labels]`` section).

    Parameters
    ----------
    source
        ``"inline"`` (the prediction event's label field) or ``"topic"`` (an outcomes topic
        joined on ``event_id``).
    grace_seconds
        How long after a window's end (in event time, past the watermark) labels are still
        credited to it.
    threshold, thresholds
        The decision threshold of every model, and per-model overrides. A model's threshold is
        its override, else its baseline's chosen threshold, else ``threshold``.
    error_detector
        River binary detector run on each leaf cell's 0/1 error stream (None: off). Default
        HDDM_A (drift confidence 1e-4): 0 to 0.03 false alarms per 10,000 labels on stable
        streams in ``tests/bench/bench_detectors.py``, where DDM raises 0.14 to 1.56.
    """

    source: LabelSource = "inline"
    grace_seconds: float = 0.0
    threshold: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    error_detector: ErrorDetector | None = "hddm_a"
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
    join: JoinSettings = field(default_factory=JoinSettings)

    def __post_init__(self) -> None:
        if self.source not in LABEL_SOURCES:
            raise ValueError(f"source must be 'inline' or 'topic', got {self.source!r}")
        if self.error_detector is not None and self.error_detector not in ERROR_DETECTORS:
            raise ValueError(f"unknown error detector {self.error_detector!r}")

    @property
    def classification(self) -> bool:
        """Whether the models are binary classifiers (else regressors)."""
        return self.performance.task == "classification"
