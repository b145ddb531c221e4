"""CellForecasts on a replica: one observation per reported window, also when a backlog closes
several windows between two refreshes; other models and empty cells untouched."""

from __future__ import annotations

import numpy as np
import pytest

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.forecasts import CellForecasts
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.stats.forecast import DampedTrend


@pytest.mark.parametrize("refresh_every", [1, 4])
def test_every_window_is_one_observation_even_after_a_backlog(refresh_every: int) -> None:
    state = ReplicaState(CellSettings(dimensions=("segment",), window_seconds=10, grace_seconds=0))
    state.forecasts = CellForecasts(horizon=3)
    rng = np.random.default_rng(2)
    means: list[float] = []
    for w in range(12):
        scores = 0.2 + 0.02 * w + rng.normal(0, 0.01, 4)
        keys = [("m", "a")] * 4 + ([("n", "b")] if w == 0 else [])
        times = 10.0 * w + np.arange(len(keys), dtype=float)
        state.apply(("t", 0), keys, times, np.append(scores, 0.5)[: len(keys)], next_offset=w)
        means.append(float(scores.mean()))
        if w % refresh_every == refresh_every - 1:
            state.refresh()
    state.refresh()
    snap = state.snapshot()
    reported = round(snap.window_end["m"] / 10)  # windows 0 .. reported-1 are closed
    reference = DampedTrend(1)
    for m in means[:reported]:
        reference.update(np.array([m]))
    assert snap.forecasts is not None
    mean, _lower, upper = snap.forecasts["score_mean"]
    i = snap.cell(("m", "a"))
    np.testing.assert_allclose(mean[:, i], reference.forecast(3)[0][:, 0], rtol=1e-9)
    np.testing.assert_allclose(upper[:, i], reference.forecast(3)[2][:, 0], rtol=1e-9)
    b = snap.cell(("n", "b"))  # one window only: no forecast
    assert np.isnan(mean[:, b]).all()
