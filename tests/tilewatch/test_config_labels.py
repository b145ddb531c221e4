"""The ``[labels]`` section: defaults, and every error message it can raise."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.config import ConfigError, load_config, parse_config
from tilewatch.config.labels import LABEL_KEYS, parse_labels
from tilewatch.streams.settings import LabelTopic

SOURCE = "tilewatch.toml"
KAFKA = {"bootstrap_servers": "h:9092", "topics": ["predictions"]}


def _parse(labels: dict[str, Any], **sections: Any) -> Any:
    return parse_config(
        {"kafka": sections.pop("kafka", KAFKA), "labels": labels, **sections}, SOURCE
    )


def _error(labels: dict[str, Any], **sections: Any) -> str:
    with pytest.raises(ConfigError) as info:
        _parse(labels, **sections)
    return str(info.value)


# -- defaults ---------------------------------------------------------------------------------


def test_no_section_means_no_performance() -> None:
    config = parse_config({"kafka": KAFKA}, SOURCE)
    assert config.labels is None and config.label_topic is None
    assert parse_labels(
        {}, SOURCE, prediction_topics=("p",), has_baseline=False, score_range=(0.0, 1.0)
    ) == (None, None)


def test_inline_defaults() -> None:
    config = _parse({"threshold": 0.5})
    s = config.labels
    assert isinstance(s, LabelSettings)
    assert config.label_topic is None
    assert (s.source, s.grace_seconds, s.threshold, s.thresholds) == ("inline", 0.0, 0.5, {})
    assert s.error_detector == "hddm_a" and s.classification
    p = s.performance
    assert (p.task, p.calibration_bins, p.min_samples, p.confidence) == (
        "classification",
        10,
        30,
        0.95,
    )


def test_topic_defaults() -> None:
    config = _parse({"source": "topic", "topic": "outcomes", "threshold": 0.3})
    s = config.labels
    assert s is not None and s.source == "topic"
    assert s.grace_seconds == 3600.0
    assert (s.join.ttl_seconds, s.join.orphan_ttl_seconds, s.join.max_pending) == (
        7200.0,
        600.0,
        1_000_000,
    )
    assert config.label_topic == LabelTopic("outcomes", "event_id", "label", "timestamp")


def test_every_key_set(tmp_path: Path) -> None:
    text = """
[kafka]
bootstrap_servers = "h:9092"
topics = ["predictions"]

[labels]
source = "topic"
topic = "outcomes"
event_id = "meta.id"
label = "outcome.value"
timestamp = "outcome.at"
task = "classification"
threshold = 0.4
grace = "10m"
ttl = "3h"
orphan_ttl = "90s"
max_pending = 5000
calibration_bins = 20
min_samples = 50
confidence = 0.9
error_detector = "hddm_w"
fdr_rate = 0.05
error_alert = 0.5
calibration_alert = 0.1

[labels.thresholds]
churn = 0.35
"fraud.v2" = 0.8
"""
    path = tmp_path / "t.toml"
    path.write_text(text)
    assert set(tomllib.loads(text)["labels"]) == set(LABEL_KEYS)
    config = load_config(path)
    s = config.labels
    assert s is not None
    assert s.thresholds == {"churn": 0.35, "fraud.v2": 0.8}
    assert (s.threshold, s.grace_seconds, s.error_detector) == (0.4, 600.0, "hddm_w")
    perf = s.performance
    assert (perf.fdr_rate, perf.error_alert, perf.calibration_alert) == (0.05, 0.5, 0.1)
    assert (s.join.ttl_seconds, s.join.orphan_ttl_seconds, s.join.max_pending) == (
        10800.0,
        90.0,
        5000,
    )
    p = s.performance
    assert (p.calibration_bins, p.min_samples, p.confidence) == (20, 50, 0.9)
    assert config.label_topic == LabelTopic("outcomes", "meta.id", "outcome.value", "outcome.at")


def test_regression_needs_no_threshold() -> None:
    s = _parse({"task": "regression"}, events={"score_min": -100, "score_max": 1e6}).labels
    assert s is not None and not s.classification and s.threshold is None


def test_a_baseline_or_per_model_thresholds_replace_the_threshold() -> None:
    assert _parse({}, baseline={"path": "b.json"}).labels is None  # empty: no section
    s = _parse({"grace": "1m"}, baseline={"path": "b.json"}).labels
    assert s is not None and s.threshold is None
    s = _parse({"thresholds": {"m": 0.7}}).labels
    assert s is not None and s.thresholds == {"m": 0.7} and s.threshold is None


def test_error_detector_none_switches_it_off() -> None:
    s = _parse({"threshold": 0.5, "error_detector": "none"}).labels
    assert s is not None and s.error_detector is None


def test_zero_grace_is_allowed() -> None:
    s = _parse({"source": "topic", "topic": "o", "threshold": 0.5, "grace": "0s"}).labels
    assert s is not None and s.grace_seconds == 0.0


# -- errors -----------------------------------------------------------------------------------

W = f"{SOURCE}: [labels]"
TOPIC = {"source": "topic", "topic": "outcomes", "threshold": 0.5}

ERRORS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    (
        {"threshold": 0.5, "treshold": 0.5},
        {},
        f"{W}.treshold: unknown key, expected one of " + ", ".join(sorted(LABEL_KEYS)),
    ),
    ({"source": "kafka"}, {}, f'{W}.source: expected "inline" or "topic", got "kafka"'),
    (
        {"task": "ranking"},
        {},
        f'{W}.task: expected "classification" or "regression", got "ranking"',
    ),
    (
        {"threshold": 0.5},
        {"events": {"score_max": 10}},
        f"{W}.task: classification needs scores that are probabilities, but [events] "
        "score_min/score_max allow [0.0, 10.0]; set them within [0, 1] or use "
        'task = "regression"',
    ),
    (
        {"threshold": "0.5"},
        {},
        f'{W}.threshold: expected a number in [0.0, 1.0] (the score range), got "0.5"',
    ),
    (
        {"threshold": True},
        {},
        f"{W}.threshold: expected a number in [0.0, 1.0] (the score range), got true",
    ),
    (
        {"threshold": 1.5},
        {},
        f"{W}.threshold: expected a number in [0.0, 1.0] (the score range), got 1.5",
    ),
    (
        {"threshold": 0.5, "thresholds": 0.3},
        {},
        f"{W}.thresholds: expected a table of model = threshold, got 0.3",
    ),
    (
        {"thresholds": {"churn": -0.1}},
        {},
        f"{W}.thresholds.churn: expected a number in [0.0, 1.0] (the score range), got -0.1",
    ),
    (
        {"grace": "1h"},
        {},
        f"{W}.threshold: expected a decision threshold (or a [baseline] path, whose chosen "
        'thresholds are used) since task is "classification", got no key',
    ),
    (
        {"threshold": 0.5, "error_detector": "adwin"},
        {},
        f'{W}.error_detector: expected "ddm", "hddm_a", "hddm_w", "none", got "adwin"',
    ),
    (
        {"threshold": 0.5, "confidence": "high"},
        {},
        f'{W}.confidence: expected a finite number, got "high"',
    ),
    (
        {"threshold": 0.5, "confidence": 0.4},
        {},
        f"{W}.confidence: expected a number in [0.5, 1), got 0.4",
    ),
    (
        {"threshold": 0.5, "confidence": 1},
        {},
        f"{W}.confidence: expected a number in [0.5, 1), got 1",
    ),
    (
        {"source": "topic", "threshold": 0.5},
        {},
        f'{W}.topic: expected the outcomes topic name since source is "topic", got no key',
    ),
    ({**TOPIC, "topic": " "}, {}, f'{W}.topic: expected a non-empty string, got " "'),
    (
        {**TOPIC, "topic": "predictions"},
        {},
        f'{W}.topic: expected a topic other than the predictions topic, got "predictions"',
    ),
    (
        TOPIC,
        {"kafka": {**KAFKA, "topics": ["a", "b"]}},
        f'{W}.topic: expected exactly one [kafka].topics entry to join labels with, got ["a", "b"]',
    ),
    (
        {**TOPIC, "event_id": "a..b"},
        {},
        f'{W}.event_id: expected a JSON path of dot-separated non-empty parts like "meta.region", '
        'got "a..b"',
    ),
    (
        {**TOPIC, "label": 1},
        {},
        f'{W}.label: expected a JSON path of dot-separated non-empty parts like "meta.region", '
        "got 1",
    ),
    (
        {**TOPIC, "timestamp": ""},
        {},
        f'{W}.timestamp: expected a JSON path of dot-separated non-empty parts like "meta.region", '
        'got ""',
    ),
    ({**TOPIC, "grace": "soon"}, {}, f'{W}.grace: expected a duration like "1m", got "soon"'),
    ({**TOPIC, "ttl": "0s"}, {}, f'{W}.ttl: expected a duration > 0, got "0s"'),
    ({**TOPIC, "orphan_ttl": -5}, {}, f"{W}.orphan_ttl: expected a finite duration >= 0, got -5"),
    ({**TOPIC, "max_pending": 0}, {}, f"{W}.max_pending: expected an integer >= 1, got 0"),
    ({**TOPIC, "max_pending": 2.5}, {}, f"{W}.max_pending: expected an integer >= 1, got 2.5"),
    (
        {**TOPIC, "calibration_bins": 1},
        {},
        f"{W}.calibration_bins: expected an integer >= 2, got 1",
    ),
    ({**TOPIC, "min_samples": 0}, {}, f"{W}.min_samples: expected an integer >= 1, got 0"),
]
INLINE_ONLY_TOPIC_KEYS = [
    ("topic", "outcomes"),
    ("event_id", "id"),
    ("label", "y"),
    ("timestamp", "t"),
    ("ttl", "1h"),
    ("orphan_ttl", "1h"),
    ("max_pending", 10),
]
ERRORS += [
    ({"threshold": 0.5, "fdr_rate": 1}, {}, f"{W}.fdr_rate: expected a number in (0, 1), got 1"),
    (
        {"threshold": 0.5, "error_alert": -0.1},
        {},
        f"{W}.error_alert: expected a number >= 0, got -0.1",
    ),
    (
        {"threshold": 0.5, "calibration_alert": "high"},
        {},
        f'{W}.calibration_alert: expected a finite number, got "high"',
    ),
]
ERRORS += [
    (
        {"threshold": 0.5, key: value},
        {},
        f'{W}.{key}: only used with source = "topic" (inline labels are read from [events].label)',
    )
    for key, value in INLINE_ONLY_TOPIC_KEYS
]


@pytest.mark.parametrize(("labels", "sections", "message"), ERRORS)
def test_error_messages(labels: dict[str, Any], sections: dict[str, Any], message: str) -> None:
    assert _error(labels, **sections) == message


def test_not_a_table() -> None:
    message = _error("inline")  # type: ignore[arg-type]
    assert message.startswith(f"{SOURCE}: [labels]") and "table" in message
