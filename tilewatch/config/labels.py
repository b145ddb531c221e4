"""The ``[labels]`` section: where labels come from and how performance is measured.

Without the section, performance is not measured. With it::

    [labels]
    source = "topic"          # or "inline": the prediction event's [events] label field
    topic = "outcomes"        # source = "topic": co-partitioned with the predictions topic
    task = "classification"   # or "regression"
    threshold = 0.5           # decision threshold; per model: [labels.thresholds]
    grace = "1h"              # labels still credited to their window this long after it
    error_alert = 0.2         # flag a cell's error rate 20 % above its reference's ...
    fdr_rate = 0.01           # ... when significant (Benjamini-Hochberg over the window)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilewatch.aggregators.labels.error_detectors import ERROR_DETECTORS
from tilewatch.aggregators.labels.join import JoinSettings
from tilewatch.aggregators.labels.settings import LabelSettings, PerformanceSettings
from tilewatch.config.base import ConfigError, Table, show
from tilewatch.streams.settings import LabelTopic

__all__ = ["LABEL_KEYS", "parse_labels"]

#: Every key of ``[labels]``.
LABEL_KEYS = (
    "calibration_alert",
    "calibration_bins",
    "confidence",
    "error_alert",
    "error_detector",
    "event_id",
    "fdr_rate",
    "grace",
    "label",
    "max_pending",
    "min_samples",
    "orphan_ttl",
    "source",
    "task",
    "threshold",
    "thresholds",
    "timestamp",
    "topic",
    "ttl",
)
_TASKS = ("classification", "regression")
_SOURCES = ("inline", "topic")


def parse_labels(
    data: Mapping[str, Any],
    source: str,
    *,
    prediction_topics: tuple[str, ...],
    has_baseline: bool,
    score_range: tuple[float, float],
) -> tuple[LabelSettings | None, LabelTopic | None]:
    """Validate ``[labels]``; ``(None, None)`` when the section is absent or empty.

    Examples
    --------
    >>> s, t = parse_labels({"threshold": 0.4}, "t.toml", prediction_topics=("p",),
    ...                     has_baseline=False, score_range=(0.0, 1.0))
    >>> s.source, s.threshold, s.grace_seconds, t
    ('inline', 0.4, 0.0, None)
    >>> try:
    ...     parse_labels({"source": "topic"}, "t.toml", prediction_topics=("p",),
    ...                  has_baseline=True, score_range=(0.0, 1.0))
    ... except ConfigError as exc:
    ...     print(exc)
    t.toml: [labels].topic: expected the outcomes topic name since source is "topic", got no key
    """
    if not data:
        return None, None
    table = Table(source, "labels", data, LABEL_KEYS)
    src = table.data.get("source", "inline")
    if src not in _SOURCES:
        raise table.error("source", '"inline" or "topic"', src)
    task = table.data.get("task", "classification")
    if task not in _TASKS:
        raise table.error("task", '"classification" or "regression"', task)
    classification = task == "classification"
    lo, hi = score_range
    if classification and (lo < 0 or hi > 1):
        raise ConfigError(
            f"{table.where('task')}: classification needs scores that are probabilities, but "
            f"[events] score_min/score_max allow [{lo}, {hi}]; set them within [0, 1] or use "
            'task = "regression"'
        )

    def threshold_value(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise table.error(key, f"a number in [{lo}, {hi}] (the score range)", value)
        return float(value)

    threshold = None
    if "threshold" in table.data:
        threshold = threshold_value("threshold", table.data["threshold"])
    thresholds: dict[str, float] = {}
    raw = table.data.get("thresholds", {})
    if not isinstance(raw, Mapping):
        raise table.error("thresholds", "a table of model = threshold", raw)
    for model, value in raw.items():
        thresholds[str(model)] = threshold_value(f"thresholds.{model}", value)
    if classification and threshold is None and not has_baseline and not thresholds:
        raise ConfigError(
            f"{table.where('threshold')}: expected a decision threshold (or a [baseline] path, "
            'whose chosen thresholds are used) since task is "classification", got no key'
        )
    detector = table.data.get("error_detector", "hddm_a")
    if detector not in (*ERROR_DETECTORS, "none"):
        choices = ", ".join(f'"{d}"' for d in (*ERROR_DETECTORS, "none"))
        raise table.error("error_detector", choices, detector)
    confidence = table.number("confidence", 0.95)
    if not 0.5 <= confidence < 1:
        raise table.error("confidence", "a number in [0.5, 1)", table.data["confidence"])
    fdr_rate = table.number("fdr_rate", 0.01)
    if not 0 < fdr_rate < 1:
        raise table.error("fdr_rate", "a number in (0, 1)", table.data["fdr_rate"])
    alerts: dict[str, float] = {}
    for key, default in (("error_alert", 0.2), ("calibration_alert", 0.05)):
        alerts[key] = table.number(key, default)
        if alerts[key] < 0:
            raise table.error(key, "a number >= 0", table.data[key])
    topic: LabelTopic | None = None
    if src == "topic":
        if "topic" not in table.data:
            raise ConfigError(
                f"{table.where('topic')}: expected the outcomes topic name since source is "
                '"topic", got no key'
            )
        name = table.string("topic", "")
        if name in prediction_topics:
            raise table.error("topic", "a topic other than the predictions topic", name)
        if len(prediction_topics) != 1:
            raise ConfigError(
                f"{table.where('topic')}: expected exactly one [kafka].topics entry to join "
                f"labels with, got {show(list(prediction_topics))}"
            )
        topic = LabelTopic(
            topic=name,
            event_id=table.path("event_id", "event_id"),
            label=table.path("label", "label"),
            timestamp=table.path("timestamp", "timestamp"),
        )
    else:
        for key in ("topic", "event_id", "label", "timestamp", "ttl", "orphan_ttl", "max_pending"):
            if key in table.data:
                raise ConfigError(
                    f'{table.where(key)}: only used with source = "topic" '
                    "(inline labels are read from [events].label)"
                )
    default_grace = 3600.0 if src == "topic" else 0.0
    settings = LabelSettings(
        source=src,
        grace_seconds=table.duration("grace", default_grace, positive=False),
        threshold=threshold,
        thresholds=thresholds,
        error_detector=None if detector == "none" else detector,
        performance=PerformanceSettings(
            task=task,
            calibration_bins=table.integer("calibration_bins", 10, 2),
            min_samples=table.integer("min_samples", 30, 1),
            confidence=confidence,
            fdr_rate=fdr_rate,
            **alerts,
        ),
        join=JoinSettings(
            ttl_seconds=table.duration("ttl", 7200.0, positive=True),
            max_pending=table.integer("max_pending", 1_000_000, 1),
            orphan_ttl_seconds=table.duration("orphan_ttl", 600.0, positive=True),
        ),
    )
    return settings, topic
