"""The demo's multi-class model: its traffic, and exactly its degraded cell red in the
"classes" component (Monitor.process on the demo's config and traffic, without a broker)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
from kafka import TopicPartition

from tilewatch.app import App
from tilewatch.config import parse_config
from tilewatch.demo import DEGRADE_CELL_SHARE, DEMO_MODELS, demo_config
from tilewatch.exporters.terminal import render_heatmap
from tilewatch.streams.dev.traffic import DEFAULT_CLASSES, TrafficGenerator, TrafficSpec

SPEC = TrafficSpec(
    models=DEMO_MODELS,
    class_models=(DEMO_MODELS[1],),
    degrade_after_seconds=60.0,
    degrade_cell_share=DEGRADE_CELL_SHARE * len(DEMO_MODELS),
)


def test_intent_events_carry_class_probabilities() -> None:
    events = TrafficGenerator(SPEC, 1767225600.0).events(400)
    intent = [e for e in events if e["model"] == "intent"]
    churn = [e for e in events if e["model"] == "churn"]
    assert intent and churn and all("probs" not in e for e in churn)
    for e in intent:
        assert list(e["probs"]) == list(DEFAULT_CLASSES)
        assert abs(sum(e["probs"].values()) - 1.0) < 0.01
        assert e["score"] == max(e["probs"].values())
        assert e["prediction"] == max(e["probs"], key=e["probs"].get)
        assert e["label"] is None or e["label"] in DEFAULT_CLASSES
    # The binary model's events are those of the one-model spec's stream: unchanged traffic.
    assert all(isinstance(e["label"], int | None) for e in churn)


def test_the_degraded_intent_cell_is_red_in_the_classes_component() -> None:
    raw = demo_config("127.0.0.1:1", 0, "10s")
    config = parse_config(raw, source="<demo>")
    config = dataclasses.replace(
        config, kafka=dataclasses.replace(config.kafka, dead_letter_topic=None)
    )
    app = App(config)
    app.state.assign(("predictions", 0))
    # Twice the demo's traffic share for the degraded cells: at this test's rate (a fifth of
    # the demo's) the intent one still gets its 30 labelled events per window.
    gen = TrafficGenerator(dataclasses.replace(SPEC, degrade_cell_share=0.1), 1767225600.0)
    offset = 0
    for _second in range(80):  # 80 s of event time, 10 s windows, degraded from 60 s
        values = gen.batch(400)
        records = [
            SimpleNamespace(
                value=v,
                timestamp=None,
                topic="predictions",
                partition=0,
                offset=offset + i,
                key=None,
                headers=[],
            )
            for i, v in enumerate(values)
        ]
        offset += len(values)
        app.monitor.process({TopicPartition("predictions", 0): records})
    snap = app.state.snapshot()
    result = app.health.evaluate(snap)
    red = {
        c.name: {snap.keys[i] for i in np.flatnonzero(snap.is_leaf) if c.status[i] == 2}
        for c in result.components
    }
    assert red["classes"] == {("intent", "smb", "eu-west")}
    assert not any(k[0] == "intent" for k in red["performance"])
    # Its class accuracy against the model's other cells together (healthy).
    m = snap.multiclass
    assert m is not None
    degraded = snap.cell(("intent", "smb", "eu-west"))
    assert (
        m.accuracy[degraded] < 0.6 < 0.8 < m.accuracy[snap.cell(("intent", "consumer", "__all__"))]
    )
    text = render_heatmap(snap, "window_score_mean", "intent", color=False)
    assert text.startswith("intent: window_score_mean") and "smb" in text
