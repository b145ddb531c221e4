"""derive_window_drift on crafted grids: every output against a direct per-cell computation.

Each cell has its own reference (random pseudo-counts per histogram, as per-cell baselines and
trailing windows give), so the statistics are checked row by row against that row's reference,
and the flags against Benjamini-Hochberg over the whole window's family and the effect
thresholds.
"""

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
from tilewatch.aggregators.drift.window import FLAG_SIGNALS, Reference, derive_window_drift
from tilewatch.aggregators.stats.divergence import psi
from tilewatch.aggregators.stats.homogeneity import homogeneity_pvalue, proportion_pvalue
from tilewatch.aggregators.stats.psi_bias import psi_effect

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
    return DriftProfile(SETTINGS, SCORE_RANGE, _baseline())


N = 12


def _grid(profile: DriftProfile, seed: int) -> dict[str, object]:
    """Twelve cells with random windows and random per-cell references (cell 11: none)."""
    rng = np.random.default_rng(seed)
    count = rng.integers(0, 400, N).astype(np.int64)
    count[[1, 9]] = [10, 29]  # below min_samples
    count[[2, 10]] = [30, 30]  # exactly min_samples
    count[3] = 0
    count[[0, 8]] = [150, 150]  # mostly missing features
    hists: dict[str, np.ndarray] = {}
    refs: dict[str, np.ndarray] = {}
    for name, width in profile.hist_bins.items():
        h = np.zeros((N, width), dtype=np.int64)
        r = np.zeros((N, width))
        for i in range(N):
            base = rng.dirichlet(np.ones(width) * 2.0)
            # Half the cells drawn from their reference, half from another distribution.
            window_shares = base if i % 2 else rng.dirichlet(np.ones(width) * 0.5)
            if name.startswith("f:"):
                miss = 0.8 if i in (0, 8) else 0.05
                present = rng.binomial(count[i], 1 - miss)
                values = rng.multinomial(present, window_shares[:-1] / window_shares[:-1].sum())
                h[i] = np.r_[values, count[i] - present]
                r[i] = np.r_[base[:-1] / base[:-1].sum() * 950.0, 50.0]
            else:
                h[i] = rng.multinomial(count[i], window_shares)
                r[i] = base * rng.uniform(50, 5000)
        r[11] = 0.0  # no reference
        hists[name], refs[name] = h, r
    mean = rng.uniform(0.1, 0.6, N)
    ref_mean = rng.uniform(0.1, 0.6, N)
    ref_std = rng.uniform(0.05, 0.3, N)
    ref_mean[11] = ref_std[11] = np.nan
    return dict(
        count=count,
        mean=mean,
        variance=rng.uniform(0.001, 0.05, N),
        hists=hists,
        prev_mean=rng.uniform(0.1, 0.6, N),
        prev_count=rng.integers(0, 100, N).astype(np.int64),
        reference=Reference(refs, ref_mean, ref_std),
    )


def _nan_equal(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_statistic_equals_a_direct_computation(profile: DriftProfile, seed: int) -> None:
    g = _grid(profile, seed)
    d = derive_window_drift(profile, **g)  # type: ignore[arg-type]
    k = SETTINGS.min_samples
    count: np.ndarray = g["count"]  # type: ignore[assignment]
    hists: dict[str, np.ndarray] = g["hists"]  # type: ignore[assignment]
    ref: Reference = g["reference"]  # type: ignore[assignment]
    mean, var = g["mean"], g["variance"]
    nan = lambda: np.full(N, np.nan)  # noqa: E731
    e = {name: nan() for name in ("psi", "js", "z", "lo", "hi", "change", "p", "p_score", "eff")}
    nf = len(profile.features)
    fpsi, feff, fp = (np.full((N, nf), np.nan) for _ in range(3))
    miss, mlo, mhi, mp = (np.full((N, nf), np.nan) for _ in range(4))
    z = float(stats.norm.ppf(0.975))
    for i in range(N):
        c = int(count[i])
        if c < k:
            continue
        lo, hi = stats.t.interval(0.95, c - 1, loc=mean[i], scale=math.sqrt(var[i] / c))  # type: ignore[index]
        e["lo"][i], e["hi"][i] = lo, hi
        if g["prev_count"][i] >= k:  # type: ignore[index]
            e["change"][i] = mean[i] - g["prev_mean"][i]  # type: ignore[index]
        for j, name in enumerate(profile.features):
            h, r = hists[f"f:{name}"][i], ref.hists[f"f:{name}"][i]
            m_ = h[-1]
            p_ = m_ / c
            centre = (p_ + z * z / (2 * c)) / (1 + z * z / c)
            half = z * math.sqrt(p_ * (1 - p_) / c + z * z / (4 * c * c)) / (1 + z * z / c)
            miss[i, j] = p_
            mlo[i, j] = 0.0 if m_ == 0 else max(centre - half, 0.0)
            mhi[i, j] = 1.0 if m_ == c else min(centre + half, 1.0)
            if r.sum() > 0:
                if h[:-1].sum() >= k:
                    fpsi[i, j] = psi(r[:-1], h[:-1])
                if h[:-1].sum() > 0:
                    fp[i, j] = homogeneity_pvalue(r[:-1], h[:-1])
                    feff[i, j] = psi_effect(r[:-1], h[:-1])
                mp[i, j] = proportion_pvalue(r[-1], r.sum(), m_, c)
        if ref.hists["score"][i].sum() > 0:
            r, h = ref.hists["score"][i], hists["score"][i]
            e["psi"][i] = psi(r, h)
            e["js"][i] = jensenshannon(r / r.sum(), h / c, base=2)
            e["z"][i] = (mean[i] - ref.mean[i]) / (ref.std[i] / math.sqrt(c))  # type: ignore[index]
            e["p_score"][i] = homogeneity_pvalue(r, h)
            e["eff"][i] = psi_effect(r, h)
        rc, hc = ref.hists["class"][i], hists["class"][i]
        if rc.sum() > 0 and hc.sum() > 0:
            e["p"][i] = homogeneity_pvalue(rc, hc)
    _nan_equal(d.score_psi, e["psi"])
    _nan_equal(d.score_js_distance, e["js"])
    _nan_equal(d.mean_zscore, e["z"])
    _nan_equal(d.mean_lower, e["lo"])
    _nan_equal(d.mean_upper, e["hi"])
    _nan_equal(d.mean_change, e["change"])
    _nan_equal(d.class_pvalue, e["p"])
    _nan_equal(d.pvalue["score_psi"], e["p_score"])
    _nan_equal(d.effect["score_psi"], e["eff"])
    _nan_equal(d.feature_psi, fpsi)
    _nan_equal(d.feature_effect, feff)
    _nan_equal(d.missing_ratio, miss)
    _nan_equal(d.missing_lower, mlo)
    _nan_equal(d.missing_upper, mhi)
    assert d.features == profile.features == ["plan", "x"]

    # One Benjamini-Hochberg family: every tested cell and signal of the window.
    class_eff = np.full(N, np.nan)
    for i in np.flatnonzero(~np.isnan(e["p"])):
        class_eff[i] = psi_effect(ref.hists["class"][i], hists["class"][i])
    family = np.concatenate([e["p_score"], e["p"], fp.ravel(), mp.ravel()])
    tested = ~np.isnan(family)
    rejected = np.zeros(family.size, dtype=bool)
    rejected[tested] = stats.false_discovery_control(family[tested], method="bh") <= 0.05
    r_score, r_class = rejected[:N], rejected[N : 2 * N]
    r_feat = rejected[2 * N : 2 * N + N * nf].reshape(N, nf)
    r_miss = rejected[2 * N + N * nf :].reshape(N, nf)
    assert sorted(d.flags) == sorted(FLAG_SIGNALS)
    with np.errstate(invalid="ignore"):
        expected = {
            "score_psi": r_score & (e["eff"] > 0.25),
            "class_shift": r_class & (class_eff > SETTINGS.class_alert),
            "feature_psi": (r_feat & (feff > 0.25)).any(axis=1),
            "missing": (r_miss & (miss > 0.5)).any(axis=1),
        }
    # Cell 11 has no reference: its missing share alone decides.
    expected["missing"][11] = bool((np.nan_to_num(miss[11]) > 0.5).any())
    for signal, mask in expected.items():
        np.testing.assert_array_equal(d.flags[signal], mask, err_msg=signal)
    np.testing.assert_array_equal(d.class_significant, expected["class_shift"])


def test_gating_and_no_reference(profile: DriftProfile) -> None:
    g = _grid(profile, 7)
    d = derive_window_drift(profile, **g)  # type: ignore[arg-type]
    count: np.ndarray = g["count"]  # type: ignore[assignment]
    low = count < SETTINGS.min_samples
    assert low[[1, 3, 9]].all() and not low[[2, 10]].any()
    for arr in (d.score_psi, d.score_js_distance, d.mean_zscore, d.mean_lower, d.mean_upper):
        assert np.isnan(arr[low]).all()
    for arr in (d.feature_psi, d.missing_ratio, d.missing_lower, d.missing_upper):
        assert np.isnan(arr[low]).all()
    for values in (*d.pvalue.values(), *d.effect.values()):
        assert np.isnan(values[low]).all()
    assert not any(flags[low].any() for flags in d.flags.values())
    # Cell 11 has no reference: every statistic against it is NaN, the rest is not.
    for arr in (d.score_psi, d.score_js_distance, d.mean_zscore, d.class_pvalue, d.feature_psi):
        assert np.isnan(arr[11]).all()
    assert not np.isnan(d.mean_lower[11]) and not np.isnan(d.missing_ratio[11]).any()


def test_mean_change_uses_previous_window(profile: DriftProfile) -> None:
    g = _grid(profile, 1)
    count = np.full(N, 100, dtype=np.int64)
    prev_count = np.array([100, 29, 30, 0] * 3, dtype=np.int64)
    mean = np.linspace(0.2, 0.5, N)
    prev_mean = np.where(prev_count > 0, np.linspace(0.5, 0.1, N), np.nan)
    g.update(count=count, prev_count=prev_count, mean=mean, prev_mean=prev_mean)
    d = derive_window_drift(profile, **g)  # type: ignore[arg-type]
    expected = np.where(prev_count >= 30, mean - prev_mean, np.nan)
    _nan_equal(d.mean_change, expected)


def _two_cells(profile: DriftProfile, rng: np.random.Generator, n_events: int) -> tuple:
    """A clean cell drawn from its reference and a shifted one, each with its own reference."""
    refs: dict[str, np.ndarray] = {}
    hists: dict[str, np.ndarray] = {}
    for name, width in profile.hist_bins.items():
        r = rng.dirichlet(np.ones(width) * 3.0, size=2) * 20_000
        if name.startswith("f:"):
            r[:, -1] = 0.0
        shares = r / r.sum(axis=1, keepdims=True)
        clean = rng.multinomial(n_events, shares[0])
        if name.startswith("f:"):
            shifted = np.r_[np.zeros(width - 1, dtype=np.int64), n_events]  # all missing
        else:
            shifted = rng.multinomial(n_events, shares[1][::-1])  # bins reversed
        refs[name], hists[name] = r, np.stack([clean, shifted])
    mean = np.array([0.3, 0.3])
    return refs, hists, mean


def test_shifted_cells_flagged_clean_not(profile: DriftProfile) -> None:
    rng = np.random.default_rng(5)
    refs, hists, mean = _two_cells(profile, rng, 2000)
    d = derive_window_drift(
        profile,
        np.array([2000, 2000]),
        mean,
        np.array([0.01, 0.01]),
        hists,
        np.array([np.nan, np.nan]),
        np.array([0, 0]),
        Reference(refs, np.array([0.3, 0.3]), np.array([0.1, 0.1])),
    )
    assert {s: bool(f[0]) for s, f in d.flags.items()} == dict.fromkeys(FLAG_SIGNALS, False)
    assert {s: bool(f[1]) for s, f in d.flags.items()} == {
        "score_psi": True,
        "feature_psi": False,  # every value missing: no values to compare (NaN PSI)
        "class_shift": True,
        "missing": True,
    }
    assert d.effect["score_psi"][0] < 0.02 < SETTINGS.psi_alert < d.effect["score_psi"][1]
    np.testing.assert_array_equal(d.missing_ratio[1], [1.0, 1.0])
    assert np.isnan(d.feature_psi[1]).all()


@pytest.mark.parametrize("n_events", [20, 40, 130, 1000])
def test_clean_small_cells_are_not_flagged_though_raw_psi_is_large(
    profile: DriftProfile, n_events: int
) -> None:
    """The issue's failure: 20 bins and ~130 events give a raw PSI of 0.15-0.35 by chance.
    200 clean cells per size: raw PSI often above psi_alert, no flag (p-value and debiased
    effect)."""
    rng = np.random.default_rng(n_events)
    cells = 200
    refs, hists = {}, {}
    for name, width in profile.hist_bins.items():
        shares = rng.dirichlet(np.ones(width) * 2.0, size=cells)
        refs[name] = shares * rng.integers(300, 5000, (cells, 1))
        hists[name] = np.stack([rng.multinomial(n_events, p) for p in shares])
    nan = np.full(cells, np.nan)
    d = derive_window_drift(
        DriftProfile(DriftSettings(min_samples=20), SCORE_RANGE, _baseline()),
        np.full(cells, n_events),
        np.full(cells, 0.3),
        np.full(cells, 0.01),
        hists,
        nan,
        np.zeros(cells, dtype=np.int64),
        Reference(refs, np.full(cells, 0.3), np.full(cells, 0.1)),
    )
    if n_events <= 130:
        assert (d.score_psi > 0.25).mean() > 0.1  # the raw statistic alone would flag these
    assert not any(f.any() for f in d.flags.values())
