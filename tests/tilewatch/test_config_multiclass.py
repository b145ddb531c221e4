"""[events] scores, classes and max_classes: multi-class models."""

from __future__ import annotations

from typing import Any

import pytest

from tilewatch.config import ConfigError, parse_config

SOURCE = "tilewatch.toml"


def error_of(events: dict[str, Any], **sections: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"events": events, **sections}, SOURCE)
    return str(info.value)


def test_defaults_have_no_multiclass_model() -> None:
    events = parse_config({}, SOURCE).events
    assert (events.scores, events.classes, events.max_classes) == (None, (), 20)


def test_scores_classes_and_bound() -> None:
    events = parse_config(
        {"events": {"scores": "out.probs", "classes": ["low", "mid", "high"], "max_classes": 5}},
        SOURCE,
    ).events
    assert (events.scores, events.classes, events.max_classes) == (
        "out.probs",
        ("low", "mid", "high"),
        5,
    )


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ({"scores": "a..b"}, "[events].scores: expected a JSON path"),
        ({"scores": "p", "max_classes": 1}, "[events].max_classes: expected an integer >= 2"),
        ({"scores": "p", "max_classes": 51}, "[events].max_classes: expected an integer in 2..50"),
        ({"scores": "p", "classes": "a"}, "[events].classes: expected a list of class names"),
        ({"scores": "p", "classes": ["a", "a"]}, "[events].classes[1]: expected a distinct"),
        ({"scores": "p", "classes": ["__other__"]}, "[events].classes[0]: expected a distinct"),
        ({"scores": "p", "classes": ["a", 1]}, "[events].classes[1]: expected a distinct"),
        (
            {"scores": "p", "classes": ["a", "b", "c"], "max_classes": 2},
            "[events].classes: expected at most max_classes = 2 names, got 3",
        ),
        ({"classes": ["a", "b"]}, "[events].classes: expected no class names without"),
    ],
)
def test_errors_name_the_key(events: dict[str, Any], message: str) -> None:
    assert error_of(events).startswith(f"{SOURCE}: {message}")


def test_checkpoints_do_not_need_configured_classes() -> None:
    """Checkpoints name their classes (docs/multiclass.md): discovered classes are fine."""
    config = parse_config({"events": {"scores": "p"}}, SOURCE)
    assert config.events.classes == () and config.state.checkpoints
