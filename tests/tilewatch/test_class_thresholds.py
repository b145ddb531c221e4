"""Per-class thresholds: chosen by `tilewatch baseline` on labelled multi-class reference rows,
carried by [events] class_thresholds, and "did not clear the threshold yet was right" counted
per class, exact against numpy."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from tests import multiclass_scenario as sc
from tests.streams.test_multiclass_flags import FIELDS
from tests.streams.test_multiclass_outcomes import LABELS, split
from tilewatch.aggregators.cells.classes import ClassVocabulary
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.stats.multiclass import class_thresholds
from tilewatch.app import build_classes, build_profile
from tilewatch.cli import main
from tilewatch.config import load_config
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.reference_file import load_baseline
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import KafkaSettings, LabelTopic


def brute(
    predicted: list[str], probs: list[float], labels: list[str], target: float, min_rows: int
) -> dict[str, float]:
    """Every candidate threshold of every class, tried one by one."""
    out = {}
    for c in set(predicted):
        mine = [(p, y == c) for x, p, y in zip(predicted, probs, labels, strict=True) if x == c]
        if len(mine) < min_rows:
            continue
        ok = [t for t, _ in mine if np.mean([r for p, r in mine if p >= t]) >= target]
        if ok:
            out[c] = min(ok)
    return out


@pytest.mark.parametrize("k", [3, 10, 50])
def test_class_thresholds_against_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 40 * k
    names = [f"c{j}" for j in range(k)]
    predicted = [names[j] for j in rng.integers(0, k, n)]
    probs = rng.uniform(0.2, 1.0, n).round(2)  # ties included
    right = rng.uniform(size=n) < probs
    labels = [
        c if r else names[int(rng.integers(0, k))] for c, r in zip(predicted, right, strict=True)
    ]
    for target, min_rows in ((0.9, 30), (0.7, 10)):
        got = class_thresholds(predicted, probs.tolist(), labels, target, min_rows)
        assert got == brute(predicted, probs.tolist(), labels, target, min_rows)
    assert class_thresholds(predicted, probs.tolist(), labels, 0.7, 10)  # some classes get one


CONFIG = """
[events]
scores = "probs"
classes = ["buy", "sell", "hold"]
[baseline]
path = "{path}"
"""


def test_the_baseline_chooses_per_class_thresholds(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    classes = ["buy", "sell", "hold"]
    truth = rng.integers(0, 3, 3000)
    logits = rng.normal(0.0, 1.0, (3000, 3))
    logits[np.arange(3000), truth] += 1.5
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).round(6)
    rows = [
        {
            "model": "intent",
            "segment": "a",
            "region": "r",
            "timestamp": 1767225600 + i,
            "probs": p,
            "label": classes[truth[i]],
        }
        for i, p in enumerate(probs.tolist())
    ]
    (tmp_path / "ref.jsonl").write_text("\n".join(orjson.dumps(r).decode() for r in rows))
    config = tmp_path / "tilewatch.toml"
    config.write_text(CONFIG.format(path=tmp_path / "baseline.json"))
    args = ["baseline", "--config", str(config), "--input", str(tmp_path / "ref.jsonl")]
    assert main([*args, "--output", str(tmp_path / "baseline.json")]) == 0
    model = json.loads((tmp_path / "baseline.json").read_text())["models"]["intent"]
    norm = probs / probs.sum(axis=1, keepdims=True)
    top = [classes[j] for j in norm.argmax(axis=1)]
    want = brute(top, norm.max(axis=1).tolist(), [classes[t] for t in truth], 0.9, 30)
    assert model["class_thresholds"] == pytest.approx(want) and len(want) == 3
    loaded = load_baseline(tmp_path / "baseline.json").models["intent"].class_thresholds
    assert loaded == pytest.approx(want)
    # The monitor's class table takes them (the config's [events] class_thresholds first).
    cfg = load_config(config)
    vocab = build_classes(cfg, build_profile(cfg))
    assert vocab is not None and vocab.threshold_row("intent")[:3] == pytest.approx(
        [want["buy"], want["sell"], want["hold"]]
    )


THRESHOLDS = {"buy": 0.7, "sell": 0.6}  # "hold" has none


def vocab() -> ClassVocabulary:
    return ClassVocabulary(3, sc.CLASSES, THRESHOLDS)


def records(topic: str, values: list[dict]) -> list[Any]:
    return [
        SimpleNamespace(
            value=orjson.dumps(v),
            timestamp=None,
            topic=topic,
            partition=0,
            offset=i,
            key=None,
            headers=[],
        )
        for i, v in enumerate(values)
    ]


def offline(stream: list[dict], segment: str | None, region: str | None) -> dict[str, tuple]:
    """Per class: the share below its threshold, and the right ones among the labeled below."""
    events = sc.changed_window(stream, segment, region)
    probs = np.array([e["probs"] for e in events])
    probs = probs / probs.sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    labels = np.array([sc.CLASSES.index(e["label"]) for e in events])
    out = {}
    for j, c in enumerate(sc.CLASSES):
        if c not in THRESHOLDS:
            continue
        mine = pred == j
        below = mine & (probs[:, j] < THRESHOLDS[c])
        right = below & (labels == j)
        out[c] = (below.sum() / mine.sum(), float(right.sum()), right.sum() / below.sum())
    return out


@pytest.mark.parametrize("source", ["inline", "topic"])
def test_below_threshold_yet_right_per_class(source: str) -> None:
    stream = sc.events()
    cells = CellSettings(window_seconds=sc.WINDOW, grace_seconds=0)
    profile = DriftProfile(DriftSettings(reference="trailing", detectors=()), (0.0, 1.0))  # type: ignore[arg-type]
    kafka = KafkaSettings(topics=("p",), dead_letter_topic=None)
    if source == "inline":
        state = ReplicaState(cells, profile, classes=vocab())
        monitor = Monitor(kafka, FIELDS, state)
        state.assign(("p", 0))
        monitor.process({TopicPartition("p", 0): records("p", stream)})
    else:
        state = ReplicaState(cells, profile, LABELS, classes=vocab())
        monitor = Monitor(kafka, FIELDS, state, label_topic=LabelTopic("o"))
        state.assign(("p", 0))
        predictions, labels = split(stream)
        monitor.process({TopicPartition("p", 0): records("p", predictions)})
        monitor.process({TopicPartition("o", 0): records("o", labels)})
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, ("segment", "region")))
    get = registry.get_sample_value
    for segment, region in (("s1", "r2"), ("s2", "r1"), (None, None)):
        cell = {"model": "intent", "segment": segment or "__all__", "region": region or "__all__"}
        for c, (share, right, right_share) in offline(stream, segment, region).items():
            labels = {**cell, "class": c}
            assert get("tilewatch_window_class_below_threshold_ratio", labels) == pytest.approx(
                share
            )
            assert get("tilewatch_window_class_below_threshold_right_events", labels) == right
            assert get(
                "tilewatch_window_class_below_threshold_right_ratio", labels
            ) == pytest.approx(right_share)
        # A class with no threshold has no such series.
        hold = {**cell, "class": "hold"}
        assert get("tilewatch_window_class_below_threshold_ratio", hold) is None
        assert get("tilewatch_window_class_share_ratio", hold) is not None
