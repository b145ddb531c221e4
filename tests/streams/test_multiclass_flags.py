"""The planted changes of tests/multiclass_scenario.py through Monitor.process: exactly the
changed cells are flagged, and per-class metrics equal the offline values."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from tests import multiclass_scenario as sc
from tests.helpers import promtool_check_metrics
from tilewatch.aggregators.cells.classes import ClassVocabulary
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.aggregators.stats.multiclass import MulticlassSums, multiclass_metrics
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings

FIELDS = EventFields(
    scores="probs",
    classes=sc.CLASSES,
    max_classes=3,
    dimensions={"segment": "segment", "region": "region"},
)


def multiclass_state(reference: str = "trailing") -> ReplicaState:
    """Trailing references: each cell against its own previous windows."""
    settings = DriftSettings(reference=reference, detectors=())  # type: ignore[arg-type]
    profile = DriftProfile(settings, (0.0, 1.0), classes=sc.CLASSES)
    cells = CellSettings(window_seconds=sc.WINDOW, grace_seconds=0)
    return ReplicaState(cells, profile, classes=ClassVocabulary(3, sc.CLASSES))


def flagged(snap: Snapshot) -> tuple[set[Any], set[Any], dict[str, set[Any]]]:
    """Leaf cells flagged for a class shift, for an error rise, and per confidence and margin
    signal."""
    assert snap.drift is not None and snap.class_errors is not None
    assert snap.class_drift is not None
    leaves = np.flatnonzero(snap.is_leaf)
    shift = {snap.keys[i] for i in leaves if snap.drift.flags["class_shift"][i]}
    errors = {snap.keys[i] for i in leaves if snap.class_errors.flag[i]}
    drift = {
        signal: {snap.keys[i] for i in leaves if flags[i]}
        for signal, flags in snap.class_drift.flag.items()
    }
    return shift, errors, drift


def offline(stream: list[dict], segment: str | None, region: str | None) -> Any:
    """The multi-class metrics of the changed window of a cell, computed from the events."""
    events = sc.changed_window(stream, segment, region)
    probs = np.array([e["probs"] for e in events])
    probs = probs / probs.sum(axis=1, keepdims=True)
    labels = np.array([sc.CLASSES.index(e["label"]) for e in events])
    sums = MulticlassSums(1, 4)  # three classes and the pooled column
    sums.update(
        np.zeros(len(events), dtype=np.int64), np.pad(probs, ((0, 0), (0, 1))), labels=labels
    )
    return multiclass_metrics(sums)


def check_per_class_metrics(registry: CollectorRegistry, stream: list[dict]) -> None:
    get = registry.get_sample_value
    for segment, region in (("s1", "r2"), ("s2", "r1"), (None, "r2"), (None, None)):
        m = offline(stream, segment, region)
        cell = {"model": "intent", "segment": segment or "__all__", "region": region or "__all__"}
        assert get("tilewatch_window_class_accuracy_ratio", cell) == pytest.approx(m.accuracy[0])
        assert get("tilewatch_window_macro_f1_ratio", cell) == pytest.approx(m.macro_f1[0])
        for metric, want in (
            ("expected_accuracy_ratio", m.expected_accuracy),
            ("brier_score", m.brier),
            ("log_loss", m.log_loss),
            ("calibration_error", m.calibration_error),
        ):  # sums kept in micro-units: within 1e-6
            got = get(f"tilewatch_window_class_{metric}", cell)
            assert got == pytest.approx(want[0], rel=0, abs=1e-6), metric
        for j, name in enumerate(sc.CLASSES):
            labels = {**cell, "class": name}
            for metric, values in (
                ("share", m.class_share),
                ("precision", m.precision),
                ("recall", m.recall),
                ("f1", m.f1),
            ):
                got = get(f"tilewatch_window_class_{metric}_ratio", labels)
                assert got == pytest.approx(values[0, j], nan_ok=True), (metric, labels)


def test_exactly_the_changed_cells_are_flagged() -> None:
    stream = sc.events()
    state = multiclass_state()
    monitor = Monitor(KafkaSettings(topics=("p",), dead_letter_topic=None), FIELDS, state)
    state.assign(("p", 0))
    records = [
        SimpleNamespace(
            value=json.dumps(e).encode(),
            timestamp=None,
            topic="p",
            partition=0,
            offset=i,
            key=None,
            headers=[],
        )
        for i, e in enumerate(stream)
    ]
    # Up to the first event of the changed window, which closes the last clean one: no flag.
    first = next(i for i, e in enumerate(stream) if e["timestamp"] >= sc.T0 + sc.CHANGED * 60)
    for start in range(0, first + 1, 500):
        monitor.process({TopicPartition("p", 0): records[start : min(start + 500, first + 1)]})
    snap = state.snapshot()
    assert snap.window_end["intent"] == sc.T0 + sc.CHANGED * sc.WINDOW
    assert flagged(snap) == (set(), set(), {"confidence": set(), "margin": set()})
    for start in range(first + 1, len(records), 500):
        monitor.process({TopicPartition("p", 0): records[start : start + 500]})
    snap = state.snapshot()
    assert snap.window_end["intent"] == sc.T0 + (sc.CHANGED + 1) * sc.WINDOW
    shift, errors, drift = flagged(snap)
    assert shift == sc.CLASS_SHIFT_CELLS
    assert errors == sc.ERROR_CELLS
    assert drift == {"confidence": sc.UNSURE_CELLS, "margin": sc.UNSURE_CELLS}
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, ("segment", "region")))
    check_per_class_metrics(registry, stream)
    # The accuracy gap across regions: r2's confused labels make it the worst.
    gap = {"model": "intent", "dimension": "region"}
    r1, r2 = offline(stream, None, "r1").accuracy[0], offline(stream, None, "r2").accuracy[0]
    got = registry.get_sample_value("tilewatch_window_class_accuracy_gap_ratio", gap)
    assert got == pytest.approx(r1 - r2) and r1 - r2 > 0.2
    info = {**gap, "worst": "r2", "best": "r1"}
    assert registry.get_sample_value("tilewatch_window_class_gap_info", info) == 1.0


def test_a_snapshot_before_the_first_event() -> None:
    """The loop refreshes on idle polls, before any event: the empty grid must not raise."""
    state = multiclass_state()
    state.refresh()
    snap = state.snapshot()
    assert snap.multiclass is not None and snap.multiclass.accuracy.shape == (0,)
    assert snap.class_errors is not None and snap.class_errors.flag.shape == (0,)


HIERARCHY = {
    "metrics": {
        "class_errors": {
            "metric": "tilewatch_window_class_error_flag",
            "count": "tilewatch_window_class_labeled_events",
            "min_samples": 30,
            "amber": 0.5,
            "red": 1.0,
        },
        "unsure": {
            "metric": 'tilewatch_window_class_drift_flag{signal="margin"}',
            "amber": 0.5,
            "red": 1.0,
        },
    },
    "components": {"classes": {"members": ["class_errors", "unsure"]}},
}


def test_health_components_read_the_multiclass_statistics() -> None:
    """A component of multi-class base metrics is red exactly where the changes are."""
    from tilewatch.aggregators.health.evaluate import HierarchyInputs, evaluate
    from tilewatch.aggregators.health.inputs import cell_statistics
    from tilewatch.config import parse_config

    config = parse_config(
        {
            "events": {"scores": "probs", "classes": list(sc.CLASSES), "max_classes": 3},
            "drift": {"reference": "trailing"},
            "hierarchy": HIERARCHY,
        }
    )
    assert [c.name for c in config.hierarchy.components] == ["classes"]
    state = multiclass_state()
    monitor = Monitor(KafkaSettings(topics=("p",), dead_letter_topic=None), FIELDS, state)
    state.assign(("p", 0))
    stream = sc.events()
    records = [
        SimpleNamespace(
            value=json.dumps(e).encode(),
            timestamp=None,
            topic="p",
            partition=0,
            offset=i,
            key=None,
            headers=[],
        )
        for i, e in enumerate(stream)
    ]
    monitor.process({TopicPartition("p", 0): records})
    snap = state.snapshot()
    inputs = HierarchyInputs(
        snap.dimensions,
        snap.keys,
        snap.is_leaf,
        snap.model_ids,
        snap.model_names,
        cell_statistics(snap, now=sc.T0),
    )
    component = evaluate(inputs, config.hierarchy).components[0]
    red = {snap.keys[i] for i in np.flatnonzero(snap.is_leaf) if component.status[i] == 2}
    assert red == sc.ERROR_CELLS | sc.UNSURE_CELLS
    # Without [events] scores the statistics are not produced: the component is left out.
    plain = parse_config({"drift": {"reference": "trailing"}, "hierarchy": HIERARCHY})
    assert plain.hierarchy.components == () or all(
        c.name != "classes" for c in plain.hierarchy.components
    )


def test_baseline_references_still_test_errors_and_margins_on_trailing_windows() -> None:
    """The baseline has no confusion counts or margin histograms: with baseline references
    (here none loaded, so no class-shift test) the class error and confidence/margin signals
    use the cell's trailing windows and flag the same cells."""
    state = multiclass_state("baseline")
    monitor = Monitor(KafkaSettings(topics=("p",), dead_letter_topic=None), FIELDS, state)
    state.assign(("p", 0))
    records = [
        SimpleNamespace(
            value=json.dumps(e).encode(),
            timestamp=None,
            topic="p",
            partition=0,
            offset=i,
            key=None,
            headers=[],
        )
        for i, e in enumerate(sc.events())
    ]
    monitor.process({TopicPartition("p", 0): records})
    shift, errors, drift = flagged(state.snapshot())
    assert shift == set()
    assert errors == sc.ERROR_CELLS
    assert drift == {"confidence": sc.UNSURE_CELLS, "margin": sc.UNSURE_CELLS}


@pytest.mark.prometheus
def test_promtool_lints_a_multiclass_scrape(promtool_bin: str) -> None:
    """`promtool check metrics` passes on a real scrape with every multi-class family."""

    from prometheus_client import generate_latest

    state = multiclass_state()
    monitor = Monitor(KafkaSettings(topics=("p",), dead_letter_topic=None), FIELDS, state)
    state.assign(("p", 0))
    records = [
        SimpleNamespace(
            value=json.dumps(e).encode(),
            timestamp=None,
            topic="p",
            partition=0,
            offset=i,
            key=None,
            headers=[],
        )
        for i, e in enumerate(sc.events())
    ]
    monitor.process({TopicPartition("p", 0): records})
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, ("segment", "region")))
    text = generate_latest(registry).decode()
    for name in ("class_share_ratio", "class_drift_flag", "class_error_flag", "class_gap_info"):
        assert f"tilewatch_window_{name}{{" in text, name
    assert promtool_check_metrics(promtool_bin, text) == (0, "", "")
