"""``/api/embeddings``: the reference and live samples of one cell and class, and bad queries."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tilewatch.aggregators.vectors.settings import VectorSettings
from tilewatch.aggregators.vectors.tracker import VectorTracker
from tilewatch.aggregators.vectors.vector_reference import build_model_vectors
from tilewatch.exporters.web.api import ENDPOINTS
from tilewatch.exporters.web.embeddings_api import embedding_points
from tilewatch.exporters.web.query import QueryError, parse_query


def _tracker() -> tuple[VectorTracker, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8)) * np.linspace(2, 1, 8)
    cells = [("eu",)] * 300 + [("us",)] * 300
    ref = build_model_vectors(
        VectorSettings(components=3), cells, ["a", "b"] * 300, x, range(600), None
    )
    tracker = VectorTracker(VectorSettings(components=3, min_samples=10), {"m": ref}, 60.0)
    live = rng.normal(size=(40, 8)).astype(np.float32) + 1.0
    tracker.apply([("m", "eu")] * 40, np.full(40, 5.0), ["a"] * 40, {"m": (np.arange(40), live)})
    tracker.close_before(60.0)
    return tracker, live


def test_the_answer_holds_both_samples_on_the_first_two_components() -> None:
    tracker, live = _tracker()
    out = embedding_points(
        tracker, threading.RLock(), ("region",), parse_query("model=m&region=eu&class=a")
    )
    ref = tracker.references["m"]
    assert ref.projection is not None
    assert out["window_end"] == 60.0 and out["events"] == 40 and out["key"] == ["eu"]
    assert len(out["live"]) == 40 and len(out["reference"]) == 100 and out["reference_rows"] == 150
    offline = ref.projection.project(live)[:, :2]
    got = np.array([[p["x"], p["y"]] for p in out["live"]])
    np.testing.assert_allclose(np.sort(got, axis=0), np.sort(offline, axis=0), atol=1e-9)
    assert out["flags"]["embedding_distance"] is True
    everyone = embedding_points(tracker, threading.RLock(), ("region",), parse_query("model=m"))
    assert everyone["key"] == ["__all__"] and everyone["class"] == "__all__"
    assert "embeddings" in ENDPOINTS


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("model=x", "no embedding reference"),
        ("model=m&end=5", "no kept window"),
        ("model=m&end=soon", "expected a window end"),
        ("model=m&colour=red", "colour"),
    ],
)
def test_bad_queries_name_the_parameter(query: str, message: str) -> None:
    tracker, _ = _tracker()
    with pytest.raises(QueryError, match=message):
        embedding_points(tracker, threading.RLock(), ("region",), parse_query(query))
    with pytest.raises(QueryError, match="no \\[events\\] embedding"):
        embedding_points(None, threading.RLock(), ("region",), parse_query("model=m"))
