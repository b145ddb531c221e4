"""Each cell's error rate against its own reference, through ReplicaState: without a baseline
the reference is the cell's own previous final windows, which partitions keep and checkpoint."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tilewatch.aggregators import CellSettings, ReplicaState
from tilewatch.aggregators.labels.label_state import RETAIN_FINAL
from tilewatch.aggregators.labels.settings import LabelSettings, PerformanceSettings
from tilewatch.aggregators.state.reported import past_window

SIZE = 10.0
CELLS = CellSettings(dimensions=("segment",), window_seconds=SIZE, grace_seconds=0.0)
LABELS = LabelSettings(
    source="inline", threshold=0.5, error_detector=None, performance=PerformanceSettings()
)
# Segment "easy" errs on 5 % of its events, "hard" on 35 %: both normal for them.
RATES = {"easy": 0.05, "hard": 0.35}


def _window(rs: ReplicaState, w: int, rates: dict[str, float], rng: np.random.Generator) -> None:
    """400 labelled predictions per segment in window ``w``; a wrong one has label 0 for a
    score of 0.8 (the prediction is positive)."""
    keys, times, labels = [], [], []
    for segment, rate in rates.items():
        keys += [("m", segment)] * 400
        times += list(w * SIZE + np.sort(rng.uniform(0, SIZE - 0.01, 400)))
        labels += [0.0 if wrong else 1.0 for wrong in rng.random(400) < rate]
    order = np.argsort(times, kind="stable")
    part = rs.partitions[("t", 0)]
    rs.apply(
        ("t", 0),
        [keys[i] for i in order],
        np.array(times)[order],
        np.full(len(keys), 0.8),
        next_offset=(part.offset or 0) + len(keys),
        labels=[labels[i] for i in order],
    )


def _state() -> ReplicaState:
    rs = ReplicaState(CELLS, labels=LABELS)
    rs.assign(("t", 0))
    return rs


def _row(rs: ReplicaState, segment: str) -> tuple[float, float, bool]:
    snap = rs.snapshot()
    perf = snap.performance
    assert perf is not None and perf.decisions is not None
    i = snap.cell(("m", segment))
    d = perf.decisions
    return float(d.reference_error[i]), float(d.excess[i]), bool(d.flags["error_rate"][i])


def test_each_cell_is_judged_against_its_own_past_and_the_reference_survives_a_checkpoint() -> None:
    rng = np.random.default_rng(4)
    rs = _state()
    part = rs.partitions[("t", 0)]
    assert part.labels is not None and part.labels.retain_final == 10 + 1 + 2 > RETAIN_FINAL
    for w in range(14):
        _window(rs, w, RATES, rng)
    # Both segments at their normal rate: tested against their own past, nothing flagged,
    # though "hard" is far above any absolute threshold an "easy" segment would need.
    ref, excess, flagged = _row(rs, "hard")
    assert ref == pytest.approx(0.35, abs=0.03) and not flagged
    assert abs(excess) < 0.2
    assert not _row(rs, "easy")[2]
    # "easy" doubles its errors (still far below "hard"): flagged against its own reference.
    _window(rs, 14, {"easy": 0.12, "hard": 0.35}, rng)
    _window(rs, 15, RATES, rng)  # closes window 14
    ref, excess, flagged = _row(rs, "easy")
    assert ref == pytest.approx(0.05, abs=0.015) and excess > 0.5 and flagged
    assert not _row(rs, "hard")[2]

    data = json.loads(json.dumps(rs.partitions[("t", 0)].to_dict()))
    restored = ReplicaState(CELLS, labels=LABELS)
    restored.assign(("t", 0), restored.restore_partition(data))
    assert restored.partitions[("t", 0)].labels.retain_final == 13  # type: ignore[union-attr]
    got, want = _row(restored, "easy"), _row(rs, "easy")
    assert got[0] == pytest.approx(want[0]) and got[1] == pytest.approx(want[1])
    assert got[2] == want[2] is True


def test_without_enough_past_there_is_no_reference_and_no_flag() -> None:
    rs = _state()
    _window(rs, 0, RATES, np.random.default_rng(1))
    _window(rs, 1, {"easy": 0.5, "hard": 0.5}, np.random.default_rng(2))
    _window(rs, 2, RATES, np.random.default_rng(3))
    ref, excess, flagged = _row(rs, "easy")
    assert math.isnan(ref) and math.isnan(excess) and not flagged


def test_decisions_are_reused_until_their_inputs_change() -> None:
    rng = np.random.default_rng(5)
    rs = _state()
    for w in range(13):
        _window(rs, w, RATES, rng)
    first = rs.snapshot().performance
    again = rs.snapshot().performance
    assert first is not None and again is not None
    assert again.decisions is first.decisions  # nothing changed: the cached decisions
    _window(rs, 13, RATES, rng)  # closes window 12: a new performance window
    later = rs.snapshot().performance
    assert later is not None and later.decisions is not first.decisions
    assert later.window_end != first.window_end


def test_a_past_windows_accuracy_is_the_full_snapshots() -> None:
    """The forecasts' catch-up reads a past window's performance from :func:`past_window`:
    the same accuracy and performance window as the full snapshot up to that window."""
    rng = np.random.default_rng(6)
    rs = _state()
    for w in range(8):
        _window(rs, w, RATES if w % 2 else {"easy": 0.2, "hard": 0.6}, rng)
    seen = set()
    for w in range(1, 7):
        full, light = rs.snapshot(upto=w).performance, past_window(rs, w).performance
        assert full is not None and light is not None
        assert light.window_end == full.window_end
        np.testing.assert_array_equal(light.stats.accuracy, full.stats.accuracy)
        seen.add(tuple(np.round(full.stats.accuracy[np.isfinite(full.stats.accuracy)], 6)))
    assert len(seen) > 1  # the windows differ: each past window read its own
