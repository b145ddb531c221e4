"""The vector families: values from the judged window, counters, and a valid exposition."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.helpers import promtool_check_metrics
from tilewatch.aggregators.vectors.settings import VectorSettings
from tilewatch.aggregators.vectors.tracker import VectorTracker
from tilewatch.aggregators.vectors.vector_reference import build_model_vectors
from tilewatch.exporters.prometheus.vector_families import VectorCollector


def _registry() -> tuple[CollectorRegistry, VectorTracker]:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 8)) * np.linspace(2, 1, 8)
    shap = [{"a": float(v), "b": 0.2} for v in rng.random(600)]
    ref = build_model_vectors(
        VectorSettings(components=3), [("eu",)] * 600, ["y", "n"] * 300, x, range(600), shap
    )
    tracker = VectorTracker(VectorSettings(components=3, min_samples=10), {"m": ref}, 60.0)
    live = rng.normal(size=(60, 8)).astype(np.float32) + 1.5
    tracker.apply(
        [("m", "eu")] * 60,
        np.full(60, 5.0),
        ["y"] * 60,
        {"m": (np.arange(60), live)},
        [{"a": 0.1, "b": 0.9}] * 59 + [{"a": "x"}],
    )
    tracker.apply([("z", "eu")], np.array([5.0]), [None], {})
    tracker.count_bad_embeddings({("m", "dimension"): 2})
    tracker.close_before(60.0)
    registry = CollectorRegistry()
    registry.register(VectorCollector(tracker, threading.RLock(), ("region",)))
    return registry, tracker


def test_samples_are_the_judged_windows_statistics() -> None:
    registry, tracker = _registry()
    d = tracker.latest["m"].decisions
    i = d.keys.index((("eu",), "y"))
    labels = {"model": "m", "region": "eu", "class": "y"}
    get = registry.get_sample_value
    assert get("tilewatch_window_embedding_events", labels) == 60
    assert get("tilewatch_window_embedding_distance", labels) == pytest.approx(d.distance[i])
    assert get("tilewatch_window_embedding_psi", {**labels, "component": "2"}) == pytest.approx(
        d.psi[i, 2]
    )
    assert get("tilewatch_window_vector_flag", {**labels, "signal": "embedding_distance"}) == 1
    assert get("tilewatch_window_vector_flag", {**labels, "signal": "attribution_shift"}) == 1
    change = get("tilewatch_window_attribution_share_change", {**labels, "feature": "b"})
    j = tracker.references["m"].features.index("b")
    share = get("tilewatch_window_attribution_share_ratio", {**labels, "feature": "b"})
    assert share == pytest.approx(0.9)
    assert change == pytest.approx(0.9 - d.ref_share[i, j])
    assert get("tilewatch_bad_embeddings_total", {"model": "m", "reason": "dimension"}) == 2
    for reason, n in (("no_reference", 1), ("bad_attributions", 1)):
        assert get("tilewatch_vector_events_skipped_total", {"reason": reason}) == n
    explained = tracker.references["m"].projection.explained  # type: ignore[union-attr]
    assert get(
        "tilewatch_embedding_explained_variance_ratio", {"model": "m", "component": "0"}
    ) == pytest.approx(explained[0])


def test_the_exposition_passes_promtool(promtool_bin: str) -> None:
    registry, _ = _registry()
    assert promtool_check_metrics(promtool_bin, generate_latest(registry)) == (0, "", "")


def test_the_leaf_cells_exported_are_bounded_flagged_first() -> None:
    _, tracker = _registry()
    rng = np.random.default_rng(1)
    clean = (rng.normal(size=(40, 8)) * np.linspace(2, 1, 8)).astype(np.float32)  # busier
    tracker.apply([("m", "us")] * 40, np.full(40, 65.0), ["y"] * 40, {"m": (np.arange(40), clean)})
    shifted = rng.normal(size=(20, 8)).astype(np.float32) + 3.0
    tracker.apply(
        [("m", "eu")] * 20, np.full(20, 66.0), ["y"] * 20, {"m": (np.arange(20), shifted)}
    )
    tracker.close_before(120.0)
    bounded = CollectorRegistry()
    bounded.register(VectorCollector(tracker, threading.RLock(), ("region",), max_leaf_cells=1))
    get = bounded.get_sample_value
    events = "tilewatch_window_embedding_events"
    assert get(events, {"model": "m", "region": "eu", "class": "y"}) == 20  # flagged: kept
    assert get(events, {"model": "m", "region": "us", "class": "y"}) is None
    assert get(events, {"model": "m", "region": "__all__", "class": "y"}) == 60  # roll-up
    assert get("tilewatch_vector_cells_unexported") == 1
