"""derive_window_drift on crafted grids: every output against a direct per-cell computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelColumns,
    build_model_baseline,
)
from tilewatch.aggregators.drift.window import FLAG_SIGNALS, derive_window_drift
from tilewatch.aggregators.stats.divergence import psi

SCORE_RANGE = (0.0, 1.0)


def _baseline() -> Baseline:
    rng = np.random.default_rng(42)
    n = 2000
    cols = ModelColumns(
        scores=list(rng.beta(2, 5, n)),
        labels=[None] * n,
        predictions=list(rng.choice(["0", "1", "2"], size=n, p=[0.5, 0.3, 0.2])),
        features=[
            {"x": float(rng.normal()), "plan": str(rng.choice(["a", "b", "c", "d"]))}
            for _ in range(n)
        ],
    )
    mb = build_model_baseline(
        cols, BaselineSettings(score_bins=20, feature_bins=6, top_categories=2), *SCORE_RANGE
    )
    return Baseline("t", [], SCORE_RANGE, BaselineSettings(), {"m": mb})


SETTINGS = DriftSettings(min_samples=30, psi_alert=0.25, missing_alert=0.5, fdr_rate=0.05)


@pytest.fixture(scope="module")
def profile() -> DriftProfile:
    # Three classes in the baseline: keep the class histogram width consistent by hand here
    # (the profile's own hist_bins["class"] is 3; see test_profile for that bug).
    return DriftProfile(SETTINGS, SCORE_RANGE, _baseline())


def _grid(profile: DriftProfile, seed: int) -> dict[str, object]:
    """Cells of model ``m`` (with baseline) and ``u`` (without), leaves and roll-ups."""
    rng = np.random.default_rng(seed)
    model_names = ["m", "u"]
    model_ids = np.array([0] * 8 + [1] * 4, dtype=np.int64)
    is_leaf = np.array([True] * 6 + [False] * 2 + [True] * 3 + [False], dtype=bool)
    n = len(model_ids)
    count = rng.integers(0, 200, n).astype(np.int64)
    count[[1, 9]] = [10, 29]  # below min_samples
    count[[2, 10]] = [30, 30]  # exactly min_samples
    count[3] = 0
    count[[0, 8]] = [150, 150]  # mostly missing features
    spec = profile.spec("m")
    mb_classes = len(spec.classes) + 1
    widths = dict(profile.hist_bins)
    widths["class"] = max(widths["class"], mb_classes)
    hists: dict[str, np.ndarray] = {}
    for name, width in widths.items():
        h = np.zeros((n, width), dtype=np.int64)
        for i in range(n):
            if name == "score":
                shares = rng.dirichlet(np.ones(width) * (0.5 if i % 3 else 20.0))
                h[i] = rng.multinomial(count[i], shares)
            elif name == "class":
                k = mb_classes - 1 if model_ids[i] == 0 else 2
                shares = np.r_[
                    rng.dirichlet(np.ones(k) * (2.0 if i % 2 else 50.0)), np.zeros(width - k)
                ]
                if i == 4:
                    shares = np.r_[np.full(k, 0.9 / k), 0.1, np.zeros(width - k - 1)]
                observed = int(count[i] * 0.9)  # some events without a prediction
                h[i] = rng.multinomial(observed, shares / shares.sum())
            else:
                miss_share = 0.8 if i in (0, 8) else 0.05
                present = rng.binomial(count[i], 1 - miss_share)
                values = rng.multinomial(present, rng.dirichlet(np.ones(width - 1)))
                h[i] = np.r_[values, count[i] - present]
        hists[name] = h
    mean = rng.uniform(0.1, 0.6, n)
    variance = rng.uniform(0.001, 0.05, n)
    prev_count = rng.integers(0, 100, n).astype(np.int64)
    prev_count[5] = 29
    prev_mean = rng.uniform(0.1, 0.6, n)
    return dict(
        model_names=model_names,
        model_ids=model_ids,
        is_leaf=is_leaf,
        count=count,
        mean=mean,
        variance=variance,
        hists=hists,
        prev_mean=prev_mean,
        prev_count=prev_count,
    )


def _nan_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_statistic_equals_a_direct_computation(profile: DriftProfile, seed: int) -> None:
    g = _grid(profile, seed)
    d = derive_window_drift(profile, **g)  # type: ignore[arg-type]
    k = SETTINGS.min_samples
    spec = profile.spec("m")
    count = g["count"]
    n = len(count)  # type: ignore[arg-type]
    hists: dict[str, np.ndarray] = g["hists"]  # type: ignore[assignment]
    model_ids: np.ndarray = g["model_ids"]  # type: ignore[assignment]
    mean, var = g["mean"], g["variance"]
    e = dict(
        score_psi=np.full(n, np.nan),
        score_js=np.full(n, np.nan),
        z=np.full(n, np.nan),
        lo=np.full(n, np.nan),
        hi=np.full(n, np.nan),
        change=np.full(n, np.nan),
        p=np.full(n, np.nan),
    )
    fpsi = np.full((n, 2), np.nan)
    miss = np.full((n, 2), np.nan)
    mlo = np.full((n, 2), np.nan)
    mhi = np.full((n, 2), np.nan)
    z = float(stats.norm.ppf(0.975))
    for i in range(n):
        c = int(count[i])  # type: ignore[index]
        has = model_ids[i] == 0
        if c >= k:
            if c >= 2:
                lo, hi = stats.t.interval(
                    0.95,
                    c - 1,
                    loc=mean[i],
                    scale=math.sqrt(var[i] / c),  # type: ignore[index]
                )
                e["lo"][i], e["hi"][i] = lo, hi
            if g["prev_count"][i] >= k:  # type: ignore[index]
                e["change"][i] = mean[i] - g["prev_mean"][i]  # type: ignore[index]
            for j, name in enumerate(profile.features):
                h = hists[f"f:{name}"][i]
                m_, t_ = h[-1], c
                p_ = m_ / t_
                centre = (p_ + z * z / (2 * t_)) / (1 + z * z / t_)
                half = z * math.sqrt(p_ * (1 - p_) / t_ + z * z / (4 * t_ * t_)) / (1 + z * z / t_)
                miss[i, j] = p_
                mlo[i, j] = 0.0 if m_ == 0 else max(centre - half, 0.0)
                mhi[i, j] = 1.0 if m_ == t_ else min(centre + half, 1.0)
        if has and c >= k:
            ref = np.zeros(hists["score"].shape[1])
            assert spec.score_ref is not None
            ref[: len(spec.score_ref)] = spec.score_ref
            e["score_psi"][i] = psi(ref, hists["score"][i])
            e["score_js"][i] = jensenshannon(ref, hists["score"][i] / c, base=2)
            assert spec.score_mean is not None and spec.score_std is not None
            e["z"][i] = (mean[i] - spec.score_mean) / (spec.score_std / math.sqrt(c))  # type: ignore[index]
            for j, _name in enumerate(profile.features):
                fs = spec.features[j]
                h = hists[f"f:{fs.name}"][i][:-1]
                if h.sum() >= k:
                    r = np.zeros(len(h))
                    assert fs.ref_shares is not None
                    r[: len(fs.ref_shares)] = fs.ref_shares
                    fpsi[i, j] = psi(r, h)
        hc = hists["class"][i]
        if has and hc.sum() >= k:
            assert spec.class_ref is not None
            ref = spec.class_ref
            support = ref > 0
            if hc[len(ref) :].sum() or hc[: len(ref)][~support].sum():
                e["p"][i] = 0.0
            else:
                e["p"][i] = stats.chisquare(
                    hc[: len(ref)][support], f_exp=ref[support] * hc.sum()
                ).pvalue
    _nan_equal(d.score_psi, e["score_psi"])
    _nan_equal(d.score_js_distance, e["score_js"])
    _nan_equal(d.mean_zscore, e["z"])
    _nan_equal(d.mean_lower, e["lo"])
    _nan_equal(d.mean_upper, e["hi"])
    _nan_equal(d.mean_change, e["change"])
    _nan_equal(d.class_pvalue, e["p"])
    _nan_equal(d.feature_psi, fpsi)
    _nan_equal(d.missing_ratio, miss)
    _nan_equal(d.missing_lower, mlo)
    _nan_equal(d.missing_upper, mhi)
    assert d.features == profile.features == ["plan", "x"]

    # Benjamini-Hochberg over the leaf cells with a p-value only.
    leaf = g["is_leaf"] & ~np.isnan(e["p"])  # type: ignore[operator]
    sig = np.zeros(n, dtype=bool)
    if leaf.any():
        sig[leaf] = stats.false_discovery_control(e["p"][leaf], method="bh") <= SETTINGS.fdr_rate
    np.testing.assert_array_equal(d.class_significant, sig)

    # Flags.
    assert sorted(d.flags) == sorted(FLAG_SIGNALS)
    np.testing.assert_array_equal(d.flags["score_psi"], np.nan_to_num(e["score_psi"]) > 0.25)
    np.testing.assert_array_equal(d.flags["feature_psi"], (np.nan_to_num(fpsi) > 0.25).any(axis=1))
    np.testing.assert_array_equal(d.flags["missing"], (np.nan_to_num(miss) > 0.5).any(axis=1))
    np.testing.assert_array_equal(d.flags["class_shift"], sig)


def test_gating_and_no_baseline(profile: DriftProfile) -> None:
    g = _grid(profile, 7)
    d = derive_window_drift(profile, **g)  # type: ignore[arg-type]
    count: np.ndarray = g["count"]  # type: ignore[assignment]
    low = count < SETTINGS.min_samples
    assert low[[1, 3, 9]].all() and not low[[2, 10]].any()
    for arr in (
        d.score_psi,
        d.score_js_distance,
        d.mean_zscore,
        d.mean_lower,
        d.mean_upper,
        d.mean_change,
    ):
        assert np.isnan(arr[low]).all()
    for arr in (d.feature_psi, d.missing_ratio, d.missing_lower, d.missing_upper):
        assert np.isnan(arr[low]).all()
    assert not any(flags[low].any() for flags in d.flags.values())
    # Model u has no baseline: every statistic against a reference is NaN, the rest is not.
    u = (g["model_ids"] == 1) & ~low  # type: ignore[operator]
    for arr in (d.score_psi, d.score_js_distance, d.mean_zscore, d.class_pvalue, d.feature_psi):
        assert np.isnan(arr[u]).all()
    assert not d.class_significant[u].any()
    assert not np.isnan(d.mean_lower[u]).any() and not np.isnan(d.missing_ratio[u]).any()
    assert d.flags["missing"][8] and not d.flags["score_psi"][u].any()


def test_bh_only_over_leaf_cells(profile: DriftProfile) -> None:
    """A roll-up's tiny p-value neither is flagged nor changes the leaf family's size."""
    g = _grid(profile, 0)
    base = derive_window_drift(profile, **g)  # type: ignore[arg-type]
    hists: dict[str, np.ndarray] = g["hists"]  # type: ignore[assignment]
    h = hists["class"].copy()
    h[6] = [0, 0, 500, 0]  # a roll-up: all in class "2" (share 0.2) -> p ~ 0
    g2 = dict(g, hists=dict(hists, **{"class": h}))
    count = g["count"].copy()  # type: ignore[union-attr]
    count[6] = 600
    g2["count"] = count
    d = derive_window_drift(profile, **g2)  # type: ignore[arg-type]
    assert d.class_pvalue[6] < 1e-50
    assert not d.class_significant[6] and not d.flags["class_shift"][6]
    leaves = g["is_leaf"]
    np.testing.assert_array_equal(d.class_significant[leaves], base.class_significant[leaves])  # type: ignore[index]


def test_mean_change_uses_previous_window(profile: DriftProfile) -> None:
    g = _grid(profile, 1)
    count = np.full(12, 100, dtype=np.int64)
    prev_count = np.array([100, 29, 30, 0] * 3, dtype=np.int64)
    mean = np.linspace(0.2, 0.5, 12)
    prev_mean = np.where(prev_count > 0, np.linspace(0.5, 0.1, 12), np.nan)
    g.update(count=count, prev_count=prev_count, mean=mean, prev_mean=prev_mean)
    d = derive_window_drift(profile, **g)  # type: ignore[arg-type]
    expected = np.where(prev_count >= 30, mean - prev_mean, np.nan)
    _nan_equal(d.mean_change, expected)


def test_shifted_cells_flagged_clean_not(profile: DriftProfile) -> None:
    """One cell drawn from the baseline's shares, one shifted; counts well above min_samples."""
    spec = profile.spec("m")
    assert spec.score_ref is not None and spec.class_ref is not None
    rng = np.random.default_rng(5)
    n_events = 2000
    widths = dict(profile.hist_bins, **{"class": len(spec.class_ref)})
    hists: dict[str, np.ndarray] = {}
    score_ref = spec.score_ref / spec.score_ref.sum()
    hists["score"] = np.stack(
        [rng.multinomial(n_events, score_ref), rng.multinomial(n_events, score_ref[::-1])]
    )
    hists["class"] = np.stack(
        [rng.multinomial(n_events, spec.class_ref), rng.multinomial(n_events, [0.1, 0.1, 0.8, 0.0])]
    )
    for j, name in enumerate(profile.features):
        fs = spec.features[j]
        assert fs.ref_shares is not None
        ref = np.zeros(widths[f"f:{name}"] - 1)
        ref[: len(fs.ref_shares)] = fs.ref_shares
        clean = np.r_[rng.multinomial(n_events, ref / ref.sum()), 0]
        shifted = np.r_[np.zeros(len(ref), dtype=np.int64), n_events]
        shifted[0] = 0
        hists[f"f:{name}"] = np.stack([clean, shifted])
    d = derive_window_drift(
        profile,
        ["m"],
        np.array([0, 0]),
        np.array([True, True]),
        np.array([n_events, n_events]),
        np.array([spec.score_mean, 0.8]),
        np.array([0.01, 0.01]),
        hists,
        np.array([np.nan, np.nan]),
        np.array([0, 0]),
    )
    assert d.score_psi[0] < 0.05 < SETTINGS.psi_alert < d.score_psi[1]
    assert {s: bool(f[0]) for s, f in d.flags.items()} == dict.fromkeys(FLAG_SIGNALS, False)
    assert {s: bool(f[1]) for s, f in d.flags.items()} == {
        "score_psi": True,
        "feature_psi": False,  # every value missing: no values to compare (NaN PSI)
        "class_shift": True,
        "missing": True,
    }
    np.testing.assert_array_equal(d.missing_ratio[1], [1.0, 1.0])
    assert np.isnan(d.feature_psi[1]).all()
