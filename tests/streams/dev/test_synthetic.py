"""Tests of the synthetic traffic generator (pure: no broker, no clock)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import orjson
import pytest

from tilewatch.streams.dev.columns import INVALID_KINDS
from tilewatch.streams.dev.traffic import (
    DEFAULT_REGIONS,
    DEFAULT_SEGMENTS,
    TrafficGenerator,
    TrafficSpec,
)

START = 1_767_225_600.0
FIELDS = {
    "event_id": str,
    "timestamp": float,
    "model": str,
    "model_version": str,
    "segment": str,
    "region": str,
    "score": float,
    "prediction": int,
    "latency_ms": float,
    "features": dict,
}


def _cell_scores(events: list[dict], cell: tuple[str, str]) -> np.ndarray:
    return np.array([e["score"] for e in events if (e["segment"], e["region"]) == cell])


def test_same_seed_same_bytes() -> None:
    spec = TrafficSpec(invalid_share=0.1)
    a = TrafficGenerator(spec, START)
    b = TrafficGenerator(spec, START)
    for _ in range(3):
        assert a.keyed_batch(500) == b.keyed_batch(500)


def test_different_seed_differs() -> None:
    a = TrafficGenerator(TrafficSpec(seed=1), START).batch(100)
    b = TrafficGenerator(TrafficSpec(seed=2), START).batch(100)
    assert a != b


def test_batch_encodes_events() -> None:
    spec = TrafficSpec(seed=3)
    events = TrafficGenerator(spec, START).events(300, spread_seconds=2.0)
    records = TrafficGenerator(spec, START).batch(300, spread_seconds=2.0)
    assert [orjson.loads(r) for r in records] == events


def test_invalid_share_does_not_change_valid_records() -> None:
    clean = TrafficGenerator(TrafficSpec(), START).batch(2000)
    dirty = TrafficGenerator(TrafficSpec(invalid_share=0.2), START).batch(2000)
    same = sum(c == d for c, d in zip(clean, dirty, strict=True))
    assert 1400 < same < 1800


def test_schema() -> None:
    spec = TrafficSpec()
    gen = TrafficGenerator(spec, START)
    keys, values = gen.keyed_batch(2000)
    events = [orjson.loads(v) for v in values]
    assert len(events) == len(keys) == 2000
    for key, event in zip(keys, events, strict=True):
        for name, kind in FIELDS.items():
            assert isinstance(event[name], kind), (name, event[name])
        assert not isinstance(event["prediction"], bool)
        assert event["label"] in (None, 0, 1)
        assert 0.0 <= event["score"] <= 1.0
        assert event["prediction"] == int(event["score"] >= spec.threshold)
        assert event["latency_ms"] > 0
        assert event["model"] in spec.models
        assert event["segment"] in spec.segments
        assert event["region"] in spec.regions
        assert event["model_version"] == spec.model_version
        assert set(event["features"]) == set(spec.features)
        f = event["features"]
        assert isinstance(f["tenure_months"], float)
        assert isinstance(f["monthly_spend"], float)
        assert isinstance(f["tickets_30d"], int)
        assert isinstance(f["plan"], str)
        assert isinstance(f["channel"], str)
        assert key == gen.key_for(event)
        assert key == f"{event['model']}|{event['segment']}|{event['region']}".encode()
    assert len({e["event_id"] for e in events}) == len(events)


def test_defaults() -> None:
    spec = TrafficSpec()
    assert spec.models == ("churn",)
    assert spec.segments == DEFAULT_SEGMENTS and len(DEFAULT_SEGMENTS) == 8
    assert spec.regions == DEFAULT_REGIONS and len(DEFAULT_REGIONS) == 6
    assert spec.degrade_cell == ("smb", "eu-west")
    assert spec.label_share == 0.3


def test_timestamps_within_spread_and_clock_advances() -> None:
    gen = TrafficGenerator(TrafficSpec(), START)
    first = gen.events(1000, spread_seconds=0.5)
    assert all(START <= e["timestamp"] < START + 0.5 for e in first)
    assert gen.time == START + 0.5
    second = gen.events(1000, spread_seconds=0.5)
    assert all(START + 0.5 <= e["timestamp"] < START + 1.0 for e in second)
    pinned = gen.events(10, event_time=START + 100.0, spread_seconds=1.0)
    assert all(START + 100.0 <= e["timestamp"] < START + 101.0 for e in pinned)
    stamps = [e["timestamp"] for e in first + second]
    assert stamps == sorted(stamps)


def test_multiple_models() -> None:
    gen = TrafficGenerator(TrafficSpec(models=("churn", "fraud")), START)
    counts = Counter(e["model"] for e in gen.events(5000))
    assert set(counts) == {"churn", "fraud"}


def test_cell_weights_vary() -> None:
    gen = TrafficGenerator(TrafficSpec(), START)
    weights = gen.cell_weights
    assert len(weights) == 8 * 6
    assert math.isclose(sum(weights.values()), 1.0)
    assert max(weights.values()) > 4 * min(weights.values())
    counts = Counter((e["segment"], e["region"]) for e in gen.events(100_000))
    assert len(counts) == 48
    busiest, quietest = max(counts.values()), min(counts.values())
    assert busiest > 4 * quietest
    for (_, seg, reg), w in weights.items():
        assert counts[(seg, reg)] == pytest.approx(w * 100_000, rel=0.25, abs=60)


def test_degrade_cell_shifts_and_healthy_cell_does_not() -> None:
    spec = TrafficSpec(degrade_after_seconds=60.0)
    gen = TrafficGenerator(spec, START)
    before = gen.events(200_000, spread_seconds=60.0)
    after = gen.events(200_000, spread_seconds=60.0)
    bad = ("smb", "eu-west")
    shift = _cell_scores(after, bad).mean() - _cell_scores(before, bad).mean()
    assert shift > 0.15
    healthy = ("consumer", "us-east")
    assert len(_cell_scores(before, healthy)) > 500
    assert abs(_cell_scores(after, healthy).mean() - _cell_scores(before, healthy).mean()) < 0.05

    def cell_events(events: list[dict], cell: tuple[str, str]) -> list[dict]:
        return [e for e in events if (e["segment"], e["region"]) == cell]

    def accuracy(events: list[dict]) -> float:
        labelled = [e for e in events if e["label"] is not None]
        return float(np.mean([e["label"] == e["prediction"] for e in labelled]))

    def mean_of(events: list[dict], get) -> float:
        return float(np.mean([get(e) for e in events]))

    b, a = cell_events(before, bad), cell_events(after, bad)
    assert accuracy(a) < accuracy(b) - 0.1
    assert mean_of(a, lambda e: e["latency_ms"]) > 2 * mean_of(b, lambda e: e["latency_ms"])
    spend = lambda e: e["features"]["monthly_spend"]  # noqa: E731
    assert mean_of(a, spend) > 1.4 * mean_of(b, spend)


def test_no_degrade_cell() -> None:
    gen = TrafficGenerator(TrafficSpec(degrade_cell=None, degrade_after_seconds=0.0), START)
    events = gen.events(100_000, spread_seconds=10.0)
    ref = TrafficGenerator(TrafficSpec(degrade_cell=None), START).events(100_000)
    bad = ("smb", "eu-west")
    assert abs(_cell_scores(events, bad).mean() - _cell_scores(ref, bad).mean()) < 0.05


def test_labels_calibrated_for_healthy_cells() -> None:
    spec = TrafficSpec(degrade_cell=None)
    events = TrafficGenerator(spec, START).events(200_000)
    labelled = [e for e in events if e["label"] is not None]
    assert len(labelled) / len(events) == pytest.approx(spec.label_share, abs=0.01)
    by_cell: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for e in labelled:
        by_cell[(e["segment"], e["region"])].append(e)
    checked = 0
    for cell_events in by_cell.values():
        if len(cell_events) < 2000:
            continue
        labels = np.array([e["label"] for e in cell_events], dtype=float)
        scores = np.array([e["score"] for e in cell_events])
        # 4 standard errors of a Bernoulli mean.
        tolerance = 4 * math.sqrt(0.25 / len(cell_events))
        assert abs(labels.mean() - scores.mean()) < tolerance
        checked += 1
    assert checked >= 5
    # Within a cell, high scores carry more positive labels (calibration, not just the base rate).
    scores = np.array([e["score"] for e in labelled])
    labels = np.array([e["label"] for e in labelled], dtype=float)
    for lo, hi in ((0.0, 0.2), (0.4, 0.6), (0.7, 1.0)):
        sel = (scores >= lo) & (scores < hi)
        assert labels[sel].mean() == pytest.approx(scores[sel].mean(), abs=0.03)


def _why_invalid(record: bytes) -> str | None:
    """The reason a record is not a valid event, or ``None`` if it is one."""
    try:
        obj = orjson.loads(record)
    except orjson.JSONDecodeError:
        return "not_json"
    if not isinstance(obj, dict):
        return "json_array"
    if "model" not in obj:
        return "missing_model"
    score = obj.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool):
        return "score_nan_string"
    if not 0.0 <= score <= 1.0:
        return "score_out_of_range"
    return None


def test_invalid_share() -> None:
    n = 20_000
    spec = TrafficSpec(invalid_share=0.05)
    keys, values = TrafficGenerator(spec, START).keyed_batch(n)
    reasons = Counter(_why_invalid(v) for v in values)
    invalid = n - reasons[None]
    assert invalid / n == pytest.approx(0.05, abs=0.008)
    assert set(reasons) - {None} == set(INVALID_KINDS)
    assert all(k.count(b"|") == 2 for k in keys)


def test_no_invalid_by_default() -> None:
    values = TrafficGenerator(TrafficSpec(), START).batch(5000)
    assert all(_why_invalid(v) is None for v in values)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"label_share": 1.5},
        {"invalid_share": -0.1},
        {"degrade_cell": ("nope", "eu-west")},
        {"segments": ()},
    ],
)
def test_spec_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TrafficSpec(**kwargs)


def test_argument_validation() -> None:
    gen = TrafficGenerator(TrafficSpec(), START)
    with pytest.raises(ValueError):
        gen.batch(-1)
    with pytest.raises(ValueError):
        gen.batch(10, spread_seconds=0.0)
    assert gen.batch(0) == []
