"""A snapshot reflects one state: counts and rolling statistics of the same batches, with or
without a refresh in between (the scrape taken just after a batch used to show new counts
with stale rolling statistics)."""

from __future__ import annotations

import numpy as np

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState


def test_rolling_statistics_cover_the_batches_the_counts_cover() -> None:
    state = ReplicaState(
        CellSettings(dimensions=("segment",), window_seconds=60, rolling_events=1000)
    )
    rng = np.random.default_rng(4)
    history: dict[tuple[str, str], list[float]] = {}
    for b in range(6):
        keys = [("m", f"s{i}") for i in rng.integers(0, 30, 500)]
        scores = rng.random(500)
        state.apply(("t", b % 2), keys, np.full(500, 1.0 + b), scores, next_offset=500 * b)
        for k, v in zip(keys, scores.tolist(), strict=True):
            history.setdefault(k, []).append(v)
        if b == 2:
            state.refresh()
        snap = state.snapshot()  # no refresh since this batch
        for i, key in enumerate(snap.keys):
            if key in history:
                assert snap.rolling_count[i] == snap.events_total[i] == len(history[key])
                assert np.isclose(snap.rolling_mean[i], np.mean(history[key]), rtol=1e-12)
