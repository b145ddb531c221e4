"""ReplicaState with a drift profile over two partitions: histograms, violations, detections,
checkpoints and the snapshot's window drift, against numpy on the same events."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from tilewatch.aggregators.cells.settings import ALL, CellSettings
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelColumns,
    build_model_baseline,
)
from tilewatch.aggregators.state.forecasts import CellForecasts
from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.reported import past_window
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.aggregators.stats.divergence import psi

SIZE = 10.0
CELLS = CellSettings(dimensions=("segment",), window_seconds=SIZE, grace_seconds=0.0)
DRIFT = DriftSettings(min_samples=30)
SEGMENTS = ("clean", "shift", "gone")
PARTS = (("t", 0), ("t", 1))


def _baseline() -> Baseline:
    rng = np.random.default_rng(11)
    n = 5000
    cols = ModelColumns(
        scores=list(rng.uniform(0, 1, n)),
        labels=[None] * n,
        predictions=list(rng.choice(["0", "1"], size=n)),
        features=[
            {"x": float(rng.normal()), "plan": str(rng.choice(["a", "b", "c", "d"]))}
            for _ in range(n)
        ],
    )
    mb = build_model_baseline(
        cols, BaselineSettings(score_bins=20, feature_bins=8, top_categories=2), 0.0, 1.0
    )
    return Baseline("t", [], (0.0, 1.0), BaselineSettings(), {"m": mb})


@pytest.fixture(scope="module")
def profile() -> DriftProfile:
    return DriftProfile(DRIFT, (0.0, 1.0), _baseline())


Event = tuple[tuple[str, str], float, float, Any, Any]


#: Windows with events. Not consecutive: the replica then never merges a previous window
#: with histograms, which crashes (see test_snapshot_with_two_consecutive_closed_windows).
WINDOWS = (0, 2)
LAST = WINDOWS[-1]


def _events(seed: int, windows: tuple[int, ...] = WINDOWS) -> list[Event]:
    """300 events per segment and window; ``shift`` moves to [0.8, 1] in the last window."""
    rng = np.random.default_rng(seed)
    out: list[Event] = []
    for w in windows:
        for seg in SEGMENTS:
            for _ in range(300):
                t = float(w * SIZE + rng.uniform(0, SIZE))
                s = float(
                    rng.uniform(0.8, 1.0) if seg == "shift" and w == windows[-1] else rng.uniform()
                )
                # The clean segment looks like the baseline; the others add int predictions
                # (class "1" then holds 2/3) and an unseen plan "e".
                clean = seg == "clean"
                pred = [None, "0", "1", 1][int(rng.integers(0, 3 if clean else 4))]
                plans = ["a", "b", "c", "d"] if clean else ["a", "b", "c", "d", "e"]
                feats: dict[str, Any] = {"plan": str(rng.choice(plans))}
                if seg != "gone":
                    feats["x"] = float(rng.normal())
                out.append((("m", seg), t, s, pred, feats))
    return out


def _apply(
    rs: ReplicaState, profile: DriftProfile, key: tuple[str, int], batch: list[Event], offset: int
) -> Any:
    bins, violations = profile.encode(
        [k[0] for k, *_ in batch],
        np.array([s for _k, _t, s, _p, _f in batch]),
        [p for *_, p, _f in batch],
        [f for *_, f in batch],
    )
    return rs.apply(
        key,
        [k for k, *_ in batch],
        np.array([t for _k, t, *_ in batch]),
        np.array([s for _k, _t, s, _p, _f in batch]),
        offset,
        bins,
        violations,
    )


def _run(
    profile: DriftProfile, seed: int = 0, windows: tuple[int, ...] = WINDOWS
) -> tuple[ReplicaState, list[Event]]:
    """Events split at random over two partitions, each in time order, in uneven batches;
    then one event per partition in the next window closes the others."""
    rng = np.random.default_rng(seed + 100)
    events = _events(seed, windows)
    flush = (windows[-1] + 1.5) * SIZE
    owner = rng.integers(0, 2, len(events))
    rs = ReplicaState(CELLS, profile)
    for p, key in enumerate(PARTS):
        rs.assign(key)
        mine = sorted((e for e, o in zip(events, owner, strict=True) if o == p), key=lambda e: e[1])
        pos = 0
        while pos < len(mine):
            k = int(rng.integers(1, 120))
            res = _apply(rs, profile, key, mine[pos : pos + k], pos + k)
            assert res.late == 0
            pos += k
    for key in PARTS:
        _apply(
            rs, profile, key, [(("m", "clean"), flush, 0.5, "0", {"x": 0.0, "plan": "a"})], 10**6
        )
    return rs, events


def _reference_hist(
    profile: DriftProfile, events: list[Event], w: int, key: tuple[str, str]
) -> dict[str, np.ndarray]:
    """numpy counts of the window's events of a cell (a roll-up key takes every segment)."""
    chosen = [e for e in events if math.floor(e[1] / SIZE) == w and key[1] in (ALL, e[0][1])]
    bins, _ = profile.encode(
        ["m"] * len(chosen),
        np.array([e[2] for e in chosen]),
        [e[3] for e in chosen],
        [e[4] for e in chosen],
    )
    return {
        name: np.bincount(b[b >= 0], minlength=profile.hist_bins[name]) for name, b in bins.items()
    }


def _merged_hist(rs: ReplicaState, w: int, name: str) -> np.ndarray:
    n = len(rs.registry)
    b = rs.profile.hist_bins[name]  # type: ignore[union-attr]
    return sum(  # type: ignore[return-value]
        (p.closed[w].hist_sized(name, n, b) for p in rs.partitions.values() if w in p.closed),
        np.zeros((n, b), dtype=np.int64),
    )


def test_window_histograms_merge_exactly(profile: DriftProfile) -> None:
    rs, events = _run(profile)
    snap = rs.snapshot()
    assert snap.window_end == {"m": (LAST + 1) * SIZE}
    for w in WINDOWS:
        for key in [("m", s) for s in SEGMENTS] + [("m", ALL)]:
            ref = _reference_hist(profile, events, w, key)
            i = snap.cell(key)
            for name, counts in ref.items():
                np.testing.assert_array_equal(_merged_hist(rs, w, name)[i], counts, err_msg=name)
    # The snapshot's statistics come from exactly those merged histograms.
    spec = profile.spec("m")
    assert spec.score_ref is not None and snap.drift is not None
    for key in [("m", s) for s in SEGMENTS] + [("m", ALL)]:
        i = snap.cell(key)
        ref = _reference_hist(profile, events, LAST, key)
        assert snap.drift.score_psi[i] == pytest.approx(float(psi(spec.score_ref, ref["score"])))
        n_events = int(ref["score"].sum())
        assert snap.window_count[i] == n_events
        j = profile.features.index("x")
        assert snap.drift.missing_ratio[i, j] == pytest.approx(ref["f:x"][-1] / n_events)


def test_violations_merge(profile: DriftProfile) -> None:
    rs, events = _run(profile)
    _, expected = profile.encode(
        ["m"] * len(events),
        np.array([e[2] for e in events]),
        [e[3] for e in events],
        [e[4] for e in events],
    )
    snap = rs.snapshot()
    assert snap.violations == expected
    per_part = [rs.partitions[k].violations for k in PARTS]
    assert all(per_part)
    assert {
        v: sum(p.get(v, 0) for p in per_part) for v in set().union(*per_part)
    } == snap.violations
    assert snap.violations[("m", "x", "absent")] == 600  # the gone segment, both windows
    assert snap.violations[("m", "plan", "unseen_category")] > 0


def test_late_events_not_counted_in_hists(profile: DriftProfile) -> None:
    rs, _ = _run(profile)
    before = {name: _merged_hist(rs, 0, name).copy() for name in profile.hist_bins}
    snap_before = rs.snapshot()
    late = [(("m", "shift"), 5.0, 0.99, "1", {"plan": 7})] * 40
    res = _apply(rs, profile, PARTS[0], late, 10_000)
    assert (res.valid, res.late) == (0, 40)
    for name in profile.hist_bins:
        np.testing.assert_array_equal(_merged_hist(rs, 0, name), before[name])
    snap = rs.snapshot()
    assert snap.drift is not None and snap_before.drift is not None
    np.testing.assert_array_equal(snap.drift.score_psi, snap_before.drift.score_psi)
    np.testing.assert_array_equal(snap.window_count, snap_before.window_count)
    i = snap.cell(("m", "shift"))
    assert snap.late_total[i] == 40


def test_shifted_cell_flagged_clean_cell_not(profile: DriftProfile) -> None:
    rs, _ = _run(profile)
    snap = rs.snapshot()
    d = snap.drift
    assert d is not None
    clean, shift = snap.cell(("m", "clean")), snap.cell(("m", "shift"))
    assert d.score_psi[clean] < DRIFT.psi_alert < d.score_psi[shift]
    assert d.flags["score_psi"][shift] and not d.flags["score_psi"][clean]
    assert not any(flags[clean] for flags in d.flags.values())
    assert np.isnan(d.mean_change[shift])  # the window before the last one is empty
    assert d.mean_zscore[shift] > 10


def test_missing_feature_only_in_its_cell_and_rollup(profile: DriftProfile) -> None:
    rs, events = _run(profile)
    snap = rs.snapshot()
    d = snap.drift
    assert d is not None
    j = profile.features.index("x")
    k = profile.features.index("plan")
    gone = snap.cell(("m", "gone"))
    assert d.missing_ratio[gone, j] == 1.0 and d.missing_upper[gone, j] == 1.0
    assert d.flags["missing"][gone]
    assert np.isnan(d.feature_psi[gone, j])
    for seg in ("clean", "shift"):
        i = snap.cell(("m", seg))
        assert d.missing_ratio[i, j] == 0.0 and d.missing_lower[i, j] == 0.0
        assert not d.flags["missing"][i]
    assert (d.missing_ratio[:, k] == 0.0).all()
    total = snap.cell(("m", ALL))
    in_w1 = [e for e in events if LAST * SIZE <= e[1] < (LAST + 1) * SIZE]
    n_gone = sum(e[0][1] == "gone" for e in in_w1)
    assert d.missing_ratio[total, j] == pytest.approx(n_gone / len(in_w1))
    assert not d.flags["missing"][total]  # about one third, below missing_alert


def test_detections_merge(profile: DriftProfile) -> None:
    rs, _ = _run(profile)
    snap = rs.snapshot()
    expected: dict[tuple[int, str], tuple[int, float, bool]] = {}
    for key in PARTS:
        part = rs.partitions[key]
        det = part.detectors
        assert det is not None
        horizon = part.max_event_time - SIZE
        for dkey, n in det.detections.items():
            pn, pl, pa = expected.get(dkey, (0, -math.inf, False))
            last = det.last[dkey]
            expected[dkey] = (pn + n, max(pl, last), pa or last >= horizon)
    assert snap.detections == expected
    shift = snap.cell(("m", "shift"))
    n, _last, _active = snap.detections[(shift, "adwin")]
    # The step in the shift cell is found in both partitions.
    assert n >= 2
    assert all(rs.partitions[k].detectors.detections.get((shift, "adwin")) for k in PARTS)  # type: ignore[union-attr]


def _restore(rs: ReplicaState, profile: DriftProfile) -> ReplicaState:
    fresh = ReplicaState(CELLS, profile)
    for key in PARTS:
        data = json.loads(json.dumps(rs.partitions[key].to_dict()))
        fresh.assign(key, PartitionState.from_dict(fresh.registry, data))
    return fresh


def _by_key(snap: Snapshot, arr: np.ndarray) -> dict[tuple[str, ...], Any]:
    return {k: arr[i].tolist() for i, k in enumerate(snap.keys)}


def test_checkpoint_round_trip_violations_and_detections(profile: DriftProfile) -> None:
    rs, _ = _run(profile)
    snap = rs.snapshot()
    restored = _restore(rs, profile)
    snap2 = restored.snapshot()
    assert snap2.violations == snap.violations
    for key in PARTS:
        assert restored.partitions[key].violations == rs.partitions[key].violations

    def named(s: Snapshot) -> dict[tuple[tuple[str, ...], str], tuple[int, float, bool]]:
        return {(s.keys[c], name): v for (c, name), v in s.detections.items()}

    assert named(snap2) == named(snap)
    assert snap.detections  # not vacuous
    np.testing.assert_array_equal(
        [snap2.window_count[snap2.cell(k)] for k in snap.keys], snap.window_count
    )


def test_checkpoint_round_trip_preserves_hists_and_drift(profile: DriftProfile) -> None:
    rs, _ = _run(profile)
    snap = rs.snapshot()
    restored = _restore(rs, profile)
    snap2 = restored.snapshot()
    for w in WINDOWS:
        for name in profile.hist_bins:
            a, b = _merged_hist(rs, w, name), _merged_hist(restored, w, name)
            for i, key in enumerate(snap.keys):
                np.testing.assert_array_equal(b[snap2.cell(key)], a[i])
    d, d2 = snap.drift, snap2.drift
    assert d is not None and d2 is not None
    for field in (
        "score_psi",
        "score_js_distance",
        "mean_zscore",
        "class_pvalue",
        "feature_psi",
        "missing_ratio",
        "missing_lower",
        "missing_upper",
    ):
        got, want = _by_key(snap2, getattr(d2, field)), _by_key(snap, getattr(d, field))
        assert got.keys() == want.keys(), field
        for key in want:
            np.testing.assert_allclose(
                np.asarray(got[key], dtype=float),
                np.asarray(want[key], dtype=float),
                rtol=1e-12,
                equal_nan=True,
                err_msg=f"{field} {key}",
            )


def test_missing_ratio_for_model_without_baseline(profile: DriftProfile) -> None:
    rs = ReplicaState(CELLS, profile)
    rs.assign(PARTS[0])
    batch: list[Event] = [(("other", "a"), 1.0 + i / 100, 0.5, None, {}) for i in range(50)]
    _apply(rs, profile, PARTS[0], batch, 50)
    _apply(rs, profile, PARTS[0], [(("other", "a"), 25.0, 0.5, None, {})], 51)
    snap = rs.snapshot()
    assert snap.drift is not None
    i = snap.cell(("other", "a"))
    assert snap.drift.missing_ratio[i].tolist() == [1.0, 1.0]


def test_snapshot_with_two_consecutive_closed_windows(profile: DriftProfile) -> None:
    rs, _ = _run(profile, windows=(0, 1))
    snap = rs.snapshot()
    assert snap.drift is not None
    shift = snap.cell(("m", "shift"))
    assert snap.drift.mean_change[shift] == pytest.approx(0.4, abs=0.05)  # 0.9 now, 0.5 before


def test_a_past_window_has_the_full_snapshots_score_statistics(profile: DriftProfile) -> None:
    """What the forecasts' catch-up reads of a past window (:func:`past_window`) equals the
    full snapshot's: models, window ends, means and score PSI (no drift decisions); the
    cache untouched."""
    rs, _events = _run(profile, seed=3)
    current = rs.snapshot()
    forecasts = CellForecasts(("score_psi",), horizon=2)
    for w in WINDOWS:
        full = rs.snapshot(upto=w)
        light = past_window(rs, w)
        assert forecasts.record(light) and "score_psi" in forecasts.active
        assert full.drift is not None and light.score_psi is not None
        assert light.window_end == full.window_end
        assert light.model_names == full.model_names
        np.testing.assert_array_equal(light.model_ids, full.model_ids)
        np.testing.assert_array_equal(light.window_mean, full.window_mean)
        np.testing.assert_array_equal(light.score_psi, full.drift.score_psi)
        assert np.isfinite(full.drift.score_psi).any()
    again = rs.snapshot()  # the reported windows' view is still the cached one
    assert again.drift is current.drift
