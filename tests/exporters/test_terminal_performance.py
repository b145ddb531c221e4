"""The demo heatmap of performance statistics (accuracy, label-free estimate)."""

from __future__ import annotations

import re

import numpy as np

from tilewatch.aggregators import CellSettings, ReplicaState
from tilewatch.aggregators.labels.settings import LabelSettings, PerformanceSettings
from tilewatch.exporters.terminal import STATISTICS, render_heatmap

CELLS = CellSettings(dimensions=("segment", "region"), window_seconds=10, grace_seconds=0)


def _state(labels: LabelSettings | None) -> ReplicaState:
    rs = ReplicaState(CELLS, labels=labels)
    keys = [("m", "a", "x")] * 4 + [("m", "b", "x")] * 4
    rs.apply(
        ("t", 0),
        keys,
        np.arange(8.0),
        np.array([0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.1, 0.1]),
        8,
        labels=[1, 1, 1, 1, 0, 0, 0, 0],
    )
    rs.apply(("t", 0), [("m", "a", "x")], np.array([25.0]), np.array([0.5]), 9)
    return rs


def test_accuracy_heatmap() -> None:
    labels = LabelSettings(threshold=0.5, performance=PerformanceSettings(min_samples=2))
    snap = _state(labels).snapshot()
    text = render_heatmap(snap, "window_accuracy", color=False)
    lines = text.splitlines()
    assert lines[0] == "m: window_accuracy   (performance window ends 1970-01-01 00:00:10 UTC)"
    row_a = next(line for line in lines if line.startswith("a "))
    row_b = next(line for line in lines if line.startswith("b "))
    assert re.findall(r"\d\.\d{3}", row_a) == ["0.750", "0.750"]  # a/x and a/__all__
    assert re.findall(r"\d\.\d{3}", row_b) == ["0.500", "0.500"]
    assert "n=4" in text
    est = render_heatmap(snap, "window_estimated_accuracy", color=False)
    assert est.splitlines()[0] == (
        "m: window_estimated_accuracy   (last closed window ends 1970-01-01 00:00:10 UTC)"
    )
    assert set(STATISTICS) >= {"window_accuracy", "window_estimated_accuracy"}


def test_without_labels_the_tiles_are_empty() -> None:
    text = render_heatmap(_state(None).snapshot(), "window_accuracy", color=False)
    assert "performance window" not in text.splitlines()[0]
    assert not re.search(r"\d\.\d{3}", text) and " -" in text


def test_accuracy_below_the_labelled_minimum_is_a_dash() -> None:
    labels = LabelSettings(threshold=0.5, performance=PerformanceSettings(min_samples=2))
    snap = _state(labels).snapshot()
    text = render_heatmap(snap, "window_accuracy", color=False, min_samples={"labelled events": 5})
    rows = [line for line in text.splitlines() if line.startswith(("a ", "b "))]
    assert len(rows) == 2 and not any(re.search(r"\d\.\d{3}", row) for row in rows)
    assert "0.625" in text  # the roll-up has its 8 labelled events
    assert text.splitlines()[-1].endswith("'-' = fewer than 5 labelled events (min_samples)")
