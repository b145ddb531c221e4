"""TrafficGenerator.outcome_batch: the demo traffic with its labels sent to an outcomes topic."""

from __future__ import annotations

import orjson
import pytest

from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec

START = 1_767_225_600.0


def test_outcomes_are_the_inline_labels_sent_apart() -> None:
    spec = TrafficSpec(seed=3, label_share=0.4, invalid_share=0.05)
    keys, values = TrafficGenerator(spec, START).keyed_batch(3000, spread_seconds=30.0)
    okeys, ovalues, outcomes = TrafficGenerator(spec, START).outcome_batch(
        3000, spread_seconds=30.0, label_delay_seconds=12.5
    )
    assert okeys == keys
    inline: dict[str, tuple[bytes, dict]] = {}
    n_invalid = 0
    for key, value, other in zip(keys, values, ovalues, strict=True):
        if not value.startswith(b'{"'):  # not JSON, or a JSON array: the same bytes
            assert other == value
            n_invalid += 1
            continue
        event = orjson.loads(value)
        assert orjson.loads(other) == {**event, "label": None}  # the label taken out
        score = event.get("score")
        if "model" not in event or not isinstance(score, float) or not 0 <= score <= 1:
            n_invalid += 1  # deliberately invalid: its label is not sent
        elif event["label"] is not None:
            inline[event["event_id"]] = (key, event)
    assert n_invalid > 50
    assert len(inline) == len(outcomes) > 1000
    for key, value in outcomes:
        outcome = orjson.loads(value)
        pkey, event = inline[outcome["event_id"]]
        assert key == pkey  # keyed like the prediction: the co-partitioned partition
        assert outcome == {
            "event_id": event["event_id"],
            "label": event["label"],
            "timestamp": event["timestamp"] + 12.5,
        }


def test_outcomes_of_a_degraded_cell_show_the_accuracy_drop() -> None:
    spec = TrafficSpec(
        segments=("smb", "consumer"),
        regions=("eu-west", "us-east"),
        seed=5,
        label_share=1.0,
        degrade_after_seconds=30.0,
    )
    gen = TrafficGenerator(spec, START)
    _keys, values, outcomes = gen.outcome_batch(60_000, spread_seconds=60.0)
    events = {e["event_id"]: e for e in map(orjson.loads, values)}

    def accuracy(before: bool) -> float:
        right = total = 0
        for _key, value in outcomes:
            o = orjson.loads(value)
            e = events[o["event_id"]]
            if (e["segment"], e["region"]) != spec.degrade_cell:
                continue
            if (e["timestamp"] < START + 30.0) != before:
                continue
            total += 1
            right += int(e["prediction"] == o["label"])
        assert total > 100
        return right / total

    assert accuracy(before=False) < accuracy(before=True) - 0.1


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="label_delay_seconds"):
        TrafficGenerator(TrafficSpec(), START).outcome_batch(1, label_delay_seconds=-1.0)
