"""The [labeling] section: defaults, every key, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from tilewatch.config import parse_config
from tilewatch.config.base import ConfigError


def parse(**sections: Any) -> Any:
    return parse_config(sections, "t.toml")


def test_without_the_section_there_is_no_queue() -> None:
    assert parse().labeling is None


def test_default_reasons_follow_the_labels() -> None:
    assert parse(labeling={"threshold": 0.5}).labeling.reasons == ("least_confident",)
    inline = parse(labels={"threshold": 0.5}, labeling={})
    assert inline.labeling.reasons == ("least_confident", "confident_wrong")


def test_every_key() -> None:
    cfg = parse(
        labels={"threshold": 0.35},
        labeling={
            "reasons": ["unsure_but_right", "least_confident", "threshold_margin"],
            "topic": "to-label",
            "margin": 0.1,
            "rate": 0.05,
            "max_per_window": 30,
            "cell_share": 0.1,
            "flagged_cell_share": 0.4,
        },
    )
    s = cfg.labeling
    assert s.reasons == ("least_confident", "threshold_margin", "unsure_but_right")
    assert (s.topic, s.threshold, s.margin, s.rate) == ("to-label", None, 0.1, 0.05)
    assert (s.max_per_window, s.cell_share, s.flagged_cell_share) == (30, 0.1, 0.4)
    assert parse(baseline={"path": "b.json"}, labeling={"reasons": ["most_confident"]}).labeling


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"labeling": {}}, "[labeling].threshold: expected a decision threshold"),
        (
            {"labeling": {"threshold": 0.5, "reasons": ["unsure_but_right"]}},
            "[labeling].reasons: expected inline labels",
        ),
        (
            {
                "labels": {"source": "topic", "topic": "o", "threshold": 0.5},
                "labeling": {"reasons": ["confident_wrong"]},
            },
            "[labeling].reasons: expected inline labels",
        ),
        ({"labeling": {"threshold": 0.5, "reasons": ["nope"]}}, "[labeling].reasons: expected"),
        ({"labeling": {"threshold": 0.5, "reasons": []}}, "[labeling].reasons: expected"),
        (
            {"labeling": {"threshold": 0.5, "reasons": ["most_confident"], "rate": 0}},
            "[labeling]: rate must be in (0, 1]",
        ),
        (
            {"labeling": {"threshold": 0.5, "reasons": ["most_confident"], "cell_share": 0.5}},
            "[labeling]: flagged_cell_share must be at least cell_share",
        ),
        ({"labeling": {"threshold": 0.5, "topic": "a b"}}, "[labeling].topic: expected"),
        ({"labeling": {"threshold": 0.5, "max_per_window": 0}}, "[labeling].max_per_window"),
        ({"labeling": {"threshold": 0.5, "soon": 1}}, "[labeling].soon: unknown key"),
    ],
)
def test_errors_name_the_key(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(**sections)
    assert message in str(info.value)


def test_multiclass_needs_a_confidence_for_the_label_reasons() -> None:
    events = {"scores": "probs", "classes": ["a", "b"]}
    with pytest.raises(ConfigError, match=r"\[labeling\].confidence"):
        parse(events=events, labeling={"reasons": ["confident_wrong"]})
    s = parse(events=events, labeling={"reasons": ["confident_wrong"], "confidence": 0.7})
    assert s.labeling.confidence == 0.7
