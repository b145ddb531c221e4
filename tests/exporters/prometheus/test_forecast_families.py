"""The forecast families: one sample per cell, horizon and interval end, equal to the
snapshot's forecasts; none for a cell without a forecast; promtool accepts them."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tests.helpers import promtool_check_metrics
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.forecasts import CellForecasts
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.exporters.prometheus.exposition import generate


def _state() -> ReplicaState:
    cells = CellSettings(dimensions=("segment",), window_seconds=10, grace_seconds=0)
    state = ReplicaState(cells)
    state.forecasts = CellForecasts(horizon=3)
    rng = np.random.default_rng(3)
    for w in range(8):
        keys = [("m", "a")] * 5 + ([("m", "b")] if w >= 6 else [])  # b: too few windows
        scores = np.clip(0.1 + 0.05 * w + rng.normal(0, 0.02, len(keys)), 0, 1)
        times = 10.0 * w + np.linspace(0, 9, len(keys))
        state.apply(("t", 0), keys, times, scores, next_offset=w + 1)
        state.refresh()
    return state


def test_the_families_hold_the_snapshot_forecasts() -> None:
    state = _state()
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, ("segment",)))
    snap = state.snapshot()
    assert snap.forecasts is not None and set(snap.forecasts) == {"score_mean"}
    mean, lower, upper = snap.forecasts["score_mean"]
    for key in (("m", "a"), ("m", "__all__")):
        i = snap.cell(key)
        labels = {"model": key[0], "segment": key[1]}
        for h in range(3):
            at = {**labels, "horizon": str(h + 1)}
            assert registry.get_sample_value("tilewatch_forecast_score_mean", at) == mean[h, i]
            assert (
                registry.get_sample_value("tilewatch_forecast_score_mean_lower", at)
                == (lower[h, i])
            )
            assert (
                registry.get_sample_value("tilewatch_forecast_score_mean_upper", at)
                == (upper[h, i])
            )
            assert lower[h, i] < mean[h, i] < upper[h, i]
    assert mean[0, snap.cell(("m", "a"))] > 0.35  # the rising trend carried forward
    b = {"model": "m", "segment": "b", "horizon": "1"}
    assert registry.get_sample_value("tilewatch_window_events", {"model": "m", "segment": "b"})
    assert registry.get_sample_value("tilewatch_forecast_score_mean", b) is None
    assert registry.get_sample_value("tilewatch_forecast_score_psi", b) is None  # no drift


@pytest.mark.prometheus
def test_promtool_lints_a_scrape_with_forecasts(promtool_bin: str) -> None:
    registry = CollectorRegistry()
    registry.register(CellCollector(_state().snapshot, ("segment",)))
    text = generate(registry)
    assert b"tilewatch_forecast_score_mean_upper{" in text
    assert promtool_check_metrics(promtool_bin, text) == (0, "", "")


def test_forecast_texts_are_kept_until_the_forecasts_change() -> None:
    """A scrape reuses the forecast families' text while no window was recorded (they change
    once per window), and formats them again, with the new values, once one is."""
    state = _state()
    collector = CellCollector(state.snapshot, ("segment",))
    registry = CollectorRegistry()
    registry.register(collector)

    def forecast_families() -> dict[str, object]:
        return {f.name: f for f in collector.collect() if f.name.startswith("tilewatch_forecast")}

    first = generate(registry)
    kept = forecast_families()
    assert kept and all(f.kept is not None for f in kept.values())  # type: ignore[attr-defined]
    assert generate(registry) == first
    # One more window with a jump: the forecasts move, their text is formatted again.
    state.apply(("t", 0), [("m", "a")] * 5, 80.0 + np.arange(5), np.full(5, 0.9), next_offset=9)
    state.apply(("t", 0), [("m", "a")], np.array([95.0]), np.array([0.9]), next_offset=10)
    state.refresh()
    fresh = forecast_families()
    assert all(f.kept is None for f in fresh.values())  # type: ignore[attr-defined]
    after = generate(registry)
    line = 'tilewatch_forecast_score_mean{model="m",segment="a",horizon="1"} '
    old = next(x for x in first.decode().splitlines() if x.startswith(line))
    new = next(x for x in after.decode().splitlines() if x.startswith(line))
    assert old != new
    mean = state.snapshot().forecasts["score_mean"][0]  # type: ignore[index]
    assert float(new.split()[-1]) == mean[0, state.snapshot().cell(("m", "a"))]
