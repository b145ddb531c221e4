"""tilewatch.aggregators.stats.homogeneity against scipy on random data, plus seeded simulations
of the null calibration (small: the full study is tests/bench/calibration_study.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tilewatch.aggregators.stats.calibration_error import calibration_pvalue, debiased_ece
from tilewatch.aggregators.stats.divergence import psi
from tilewatch.aggregators.stats.homogeneity import homogeneity_pvalue, proportion_pvalue
from tilewatch.aggregators.stats.psi_bias import psi_effect

# --- reference implementations, one row at a time -------------------------------------------


def _pool(margin: np.ndarray, need: float) -> list[list[int]]:
    """The documented greedy pooling of one row: adjacent bins until the share reaches need."""
    groups: list[list[int]] = []
    current: list[int] = []
    acc = 0.0
    for b, share in enumerate(margin):
        current.append(b)
        acc += share
        if acc >= need * (1 - 1e-9):
            groups.append(current)
            current, acc = [], 0.0
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return groups


def _two_sided(greater: float, less: float) -> float:
    return min(1.0, 2.0 * min(greater, less))


def _homogeneity_row(
    ref: np.ndarray, win: np.ndarray, n_r: float | None, min_expected: float, lambda_: float
) -> float:
    n_w = win.sum()
    p = ref / ref.sum()
    if n_r is None:
        margin, smaller = p, n_w
        r = None
    else:
        r = p * n_r
        margin, smaller = (r + win) / (n_r + n_w), min(n_w, n_r)
    groups = _pool(margin, min_expected / smaller)
    if len(groups) < 2:
        return math.nan
    o_g = np.array([win[g].sum() for g in groups])
    if len(groups) == 2:
        if r is None:
            share = p[groups[0]].sum()
            x = int(np.rint(o_g[0]))
            g = stats.binomtest(x, int(n_w), share, alternative="greater").pvalue
            s = stats.binomtest(x, int(n_w), share, alternative="less").pvalue
        else:
            r_g = np.array([r[gr].sum() for gr in groups])
            table = np.rint([o_g, r_g]).astype(int)
            g = stats.fisher_exact(table, alternative="greater").pvalue
            s = stats.fisher_exact(table, alternative="less").pvalue
        return _two_sided(g, s)
    if r is None:
        e_g = n_w * np.array([p[g].sum() for g in groups])
        return float(stats.power_divergence(o_g, e_g, lambda_=lambda_).pvalue)
    r_g = np.array([r[g].sum() for g in groups])
    table = np.array([o_g, r_g])
    return float(stats.chi2_contingency(table, correction=False, lambda_=lambda_).pvalue)


def _random_tables(seed: int, rows: int, finite: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bins = int(rng.integers(2, 25))
    p = rng.dirichlet(np.full(bins, rng.choice([0.3, 1.0, 5.0])), size=rows)
    n_w = rng.choice([5, 20, 60, 130, 800, 5000], size=rows)
    shift = rng.random(rows) < 0.3
    q = np.where(shift[:, None], rng.dirichlet(np.ones(bins), size=rows), p)
    win = rng.multinomial(n_w, q).astype(float)
    if finite:
        ref = rng.multinomial(rng.choice([30, 200, 3000], size=rows), p).astype(float)
        ref[: rows // 10] += rng.random((rows // 10, bins)) * 3  # pseudo-counts
    else:
        ref = p
    return ref, win


# --- homogeneity_pvalue --------------------------------------------------------------------


@pytest.mark.parametrize("lambda_", [1.0, 2.0 / 3.0, 0.0])
@pytest.mark.parametrize("finite", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_homogeneity_matches_scipy_on_pooled_tables(
    seed: int, finite: bool, lambda_: float
) -> None:
    ref, win = _random_tables(seed, 60, finite)
    total = "sum" if finite else None
    got = homogeneity_pvalue(ref, win, reference_total=total, lambda_=lambda_)
    want = [
        _homogeneity_row(r, w, r.sum() if finite else None, 5.0, lambda_)
        for r, w in zip(ref, win, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


def test_homogeneity_effective_reference_size_and_min_expected() -> None:
    ref, win = _random_tables(9, 40, finite=True)
    n_r = np.linspace(50, 5000, 40)
    got = homogeneity_pvalue(ref, win, reference_total=n_r, min_expected=10.0)
    want = [
        _homogeneity_row(r, w, t, 10.0, 2.0 / 3.0) for r, w, t in zip(ref, win, n_r, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


def test_homogeneity_undefined_rows_are_nan() -> None:
    ref = [[50, 50, 0], [0, 0, 0], [50, 50, 0], [50, 50, 0]]
    win = [[0, 0, 0], [5, 5, 0], [2, 1, 0], [30, 30, 1]]
    out = homogeneity_pvalue(ref, win)
    assert np.isnan(out[:3]).all()  # no events, empty reference, too few events for 2 groups
    assert 0.0 <= out[3] <= 1.0
    # One reference row broadcast over windows; 1-D inputs give a 0-d result.
    assert homogeneity_pvalue([1, 1], [[10, 10], [20, 0]], reference_total=None).shape == (2,)
    assert homogeneity_pvalue([1, 1], [10, 10], reference_total=None).shape == ()


def test_homogeneity_input_errors() -> None:
    with pytest.raises(ValueError, match="bin counts differ"):
        homogeneity_pvalue([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match=">= 0"):
        homogeneity_pvalue([1, -2], [1, 2])
    with pytest.raises(ValueError, match="min_expected"):
        homogeneity_pvalue([1, 2], [1, 2], min_expected=0)
    with pytest.raises(ValueError, match="reference_total"):
        homogeneity_pvalue([1, 2], [1, 2], reference_total="rows")  # type: ignore[arg-type]


def test_homogeneity_detects_a_shift_a_pooled_window_cannot_hide() -> None:
    ref = np.full(20, 100.0)
    shifted = np.r_[np.zeros(10), np.full(10, 13.0)]
    assert homogeneity_pvalue(ref, shifted) < 1e-10


# --- psi_effect ----------------------------------------------------------------------------


def _exact_bias(n: int, p: np.ndarray, eps: float) -> float:
    """Expected PSI of Binomial(n, p_b) bins against exact shares p, by summation."""
    k = p.size
    total = 0.0
    for share in p:
        o = np.arange(n + 1)
        q = o / n
        pmf = stats.binom.pmf(o, n, share)
        total += float(np.sum(pmf * (q - share) * np.log((q + eps) / (share + eps))))
    return total / (1.0 + k * eps)


@pytest.mark.parametrize("n_w", [20, 64, 130, 900])
@pytest.mark.parametrize("seed", range(3))
def test_psi_effect_subtracts_the_exact_null_expectation(n_w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    bins = int(rng.integers(3, 21))
    p = rng.dirichlet(np.full(bins, 0.7))
    win = rng.multinomial(n_w, p).astype(float)
    got = psi_effect(p, win, reference_total=None, clip=False)
    raw = psi(p, win)
    bias = _exact_bias(n_w, p, 1e-4)
    assert raw - got == pytest.approx(bias, rel=0.015)


def test_psi_effect_raw_part_is_divergence_psi_and_clips() -> None:
    ref = np.array([[300.0, 200, 100, 400], [10, 10, 10, 10]])
    win = np.array([[30.0, 20, 10, 40], [0, 0, 0, 0]])
    eff = psi_effect(ref, win, clip=False)
    assert eff[0] < 0 and np.isnan(eff[1])
    assert psi_effect(ref, win)[0] == 0.0
    # With an effectively infinite reference, the reference side adds nothing.
    big = psi_effect(ref[0], win[0], reference_total=1e12, clip=False)
    inf = psi_effect(ref[0], win[0], reference_total=None, clip=False)
    assert big == pytest.approx(inf, abs=1e-9)


@pytest.mark.parametrize(
    ("n_w", "n_r", "tolerance"),
    [(20, None, 0.05), (20, 2000, 0.05), (130, None, 0.01), (130, 500, 0.01), (5000, 2000, 0.001)],
)
def test_psi_effect_is_centred_on_clean_data(n_w: int, n_r: int | None, tolerance: float) -> None:
    rng = np.random.default_rng([n_w, n_r or 0])
    reps, bins = 3000, 20
    p = rng.dirichlet(np.full(bins, 1.0), size=reps)
    win = rng.multinomial(n_w, p).astype(float)
    ref = p if n_r is None else rng.multinomial(n_r, p).astype(float)
    total = None if n_r is None else "sum"
    signed = psi_effect(ref, win, reference_total=total, clip=False)
    raw = psi(ref, win)
    assert abs(float(np.mean(signed))) < tolerance, (np.mean(raw), np.mean(signed))
    assert float(np.mean(raw)) > 5 * tolerance  # while the raw PSI is far from 0 by chance


# --- proportion_pvalue ---------------------------------------------------------------------


@pytest.mark.parametrize("alternative", ["greater", "less"])
@pytest.mark.parametrize("seed", range(3))
def test_proportion_matches_fisher_and_binomtest(seed: int, alternative: str) -> None:
    rng = np.random.default_rng(seed)
    rows = 80
    n_r = rng.integers(1, 4000, rows)
    n_w = rng.integers(1, 700, rows)
    rate = rng.choice([0.0, 0.001, 0.02, 0.2, 0.6, 1.0], rows)
    k_r = rng.binomial(n_r, rate)
    k_w = rng.binomial(n_w, np.clip(rate * rng.uniform(0.3, 3.0, rows), 0, 1))
    got = proportion_pvalue(k_r, n_r, k_w, n_w, alternative)  # type: ignore[arg-type]
    want = [
        stats.fisher_exact([[a, b - a], [c, d - c]], alternative=alternative).pvalue
        for a, b, c, d in zip(k_w, n_w, k_r, n_r, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-13)
    got_b = proportion_pvalue(rate, None, k_w, n_w, alternative)  # type: ignore[arg-type]
    want_b = [
        stats.binomtest(int(a), int(b), float(r), alternative=alternative).pvalue
        for a, b, r in zip(k_w, n_w, rate, strict=True)
    ]
    np.testing.assert_allclose(got_b, want_b, rtol=1e-7, atol=1e-13)


def test_proportion_undefined_and_errors() -> None:
    out = proportion_pvalue([1, 1, 0], [10, 0, 10], [1, 1, 0], [0, 5, 5])
    assert np.isnan(out[:2]).all() and out[2] == 1.0
    assert np.isnan(proportion_pvalue(1.5, None, 1, 10))
    with pytest.raises(ValueError, match="alternative"):
        proportion_pvalue(1, 10, 1, 10, alternative="two-sided")  # type: ignore[arg-type]


# --- calibration ---------------------------------------------------------------------------


def _calibrated(
    rng: np.random.Generator, rows: int, n: int, a: float, b: float, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    score = rng.beta(a, b, size=(rows, n))
    label = (rng.random((rows, n)) < score).astype(float)
    idx = np.minimum((score * bins).astype(int), bins - 1) + bins * np.arange(rows)[:, None]

    def per_bin(w: np.ndarray | None) -> np.ndarray:
        flat = None if w is None else w.ravel()
        return np.bincount(idx.ravel(), flat, rows * bins).reshape(rows, bins)

    return per_bin(None), per_bin(score), per_bin(label), per_bin(score * score)


def _calibration_row(
    cnt: np.ndarray, s: np.ndarray, y: np.ndarray, s2: np.ndarray | None, lambda_: float
) -> float:
    groups: list[list[int]] = []
    current: list[int] = []
    pos = neg = 0.0
    for b in range(cnt.size):
        current.append(b)
        pos += s[b]
        neg += cnt[b] - s[b]
        if pos >= 5 * (1 - 1e-9) and neg >= 5 * (1 - 1e-9):
            groups.append(current)
            current, pos, neg = [], 0.0, 0.0
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            sg, ng = s.sum(), cnt.sum()
            if sg < 5 * (1 - 1e-9) or ng - sg < 5 * (1 - 1e-9):
                return math.nan
            groups.append(current)
    stat = 0.0
    for g in groups:
        n_g, s_g, y_g = cnt[g].sum(), s[g].sum(), y[g].sum()
        observed, expected = np.array([y_g, n_g - y_g]), np.array([s_g, n_g - s_g])
        term = stats.power_divergence(observed, expected, lambda_=lambda_).statistic
        if s2 is not None:
            term *= (s_g * (n_g - s_g) / n_g) / (s_g - s2[g].sum())
        stat += term
    return float(stats.chi2.sf(stat, len(groups)))


@pytest.mark.parametrize("squares", [True, False])
@pytest.mark.parametrize("lambda_", [1.0, 2.0 / 3.0])
def test_calibration_pvalue_matches_direct_computation(squares: bool, lambda_: float) -> None:
    rng = np.random.default_rng(4)
    cnt, s, y, s2 = _calibrated(rng, 60, 150, 1.0, 6.0)
    y[::3] = np.minimum(y[::3] + rng.integers(0, 4, (20, 10)), cnt[::3])  # miscalibrated rows
    got = calibration_pvalue(cnt, s, y, s2 if squares else None, lambda_=lambda_)
    want = [
        _calibration_row(c, a, b, q if squares else None, lambda_)
        for c, a, b, q in zip(cnt, s, y, s2, strict=True)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-13)


def test_debiased_ece_subtracts_exact_binomial_mean_absolute_deviation() -> None:
    rng = np.random.default_rng(8)
    cnt, s, y, _ = _calibrated(rng, 30, 120, 2.0, 3.0)
    got = debiased_ece(cnt, s, y, clip=False)
    for i in range(30):
        mad = 0.0
        for n, sb in zip(cnt[i], s[i], strict=True):
            if n > 0:
                o = np.arange(int(n) + 1)
                mad += float(np.sum(stats.binom.pmf(o, int(n), sb / n) * np.abs(o - sb)))
        ece = np.abs(y[i] - s[i]).sum() / cnt[i].sum()
        assert got[i] == pytest.approx(ece - mad / cnt[i].sum(), abs=1e-12)
    assert np.isnan(debiased_ece([0, 0], [0, 0], [0, 0]))


# --- null calibration, seeded simulations (fast; see tests/bench/calibration_study.py) -----


def _rate_ok(pvalues: np.ndarray, alpha: float) -> tuple[bool, float]:
    tested = pvalues[~np.isnan(pvalues)]
    rate = float(np.mean(tested <= alpha))
    se = math.sqrt(alpha * (1 - alpha) / tested.size)
    return rate <= alpha + 3.5 * se, rate


@pytest.mark.parametrize(
    ("n_w", "n_r", "kind"),
    [
        (20, None, "dirichlet"),
        (130, 200, "dirichlet"),
        (130, None, "tiny"),
        (5000, 200, "dirichlet"),
        (5000, 2000, "tiny"),
        (500, 50000, "uniform"),
    ],
)
def test_homogeneity_null_rejection_rate(n_w: int, n_r: int | None, kind: str) -> None:
    rng = np.random.default_rng([n_w, n_r or 1, len(kind)])
    reps, bins = 6000, 20
    if kind == "dirichlet":
        p = rng.dirichlet(np.full(bins, 0.5), size=reps)
    elif kind == "tiny":
        p = np.full((reps, bins), 0.999 / (bins - 1))
        p[:, 3] = 0.001
    else:
        p = np.full((reps, bins), 1.0 / bins)
    win = rng.multinomial(n_w, p).astype(float)
    ref = p if n_r is None else rng.multinomial(n_r, p).astype(float)
    pv = homogeneity_pvalue(ref, win, reference_total=None if n_r is None else "sum")
    ok, rate = _rate_ok(pv, 0.05)
    assert ok, rate
    assert rate > 0.02  # not uselessly conservative either
    assert _rate_ok(pv, 0.001)[0]


@pytest.mark.parametrize(("rate", "n_w", "n_r"), [(0.001, 5000, None), (0.01, 130, 2000)])
def test_proportion_null_rejection_rate(rate: float, n_w: int, n_r: int | None) -> None:
    rng = np.random.default_rng(31)
    reps = 20000
    k_w = rng.binomial(n_w, rate, reps)
    if n_r is None:
        pv = proportion_pvalue(rate, None, k_w, n_w)
    else:
        pv = proportion_pvalue(rng.binomial(n_r, rate, reps), n_r, k_w, n_w)
    assert _rate_ok(pv, 0.05)[0] and _rate_ok(pv, 0.001)[0]


@pytest.mark.parametrize(("n", "a", "b"), [(150, 1.0, 20.0), (150, 0.5, 0.5), (1000, 2.0, 5.0)])
def test_calibration_null_rejection_rate_and_centred_ece(n: int, a: float, b: float) -> None:
    rng = np.random.default_rng([n, int(a * 10), int(b)])
    cnt, s, y, s2 = _calibrated(rng, 4000, n, a, b)
    pv = calibration_pvalue(cnt, s, y, s2)
    ok, rate = _rate_ok(pv, 0.05)
    assert ok and rate > 0.02, rate
    assert _rate_ok(pv, 0.001)[0]
    raw = np.abs(y - s).sum(axis=1) / cnt.sum(axis=1)
    signed = debiased_ece(cnt, s, y, clip=False)
    assert abs(float(signed.mean())) < 0.002 < float(raw.mean())
