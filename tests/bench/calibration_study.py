"""Null calibration of ``tilewatch.aggregators.stats.homogeneity``, by simulation.

A script, not a pytest test (the suite's fast, seeded checks are in
``tests/aggregators/test_homogeneity.py``). Every configuration draws ``--reps`` clean
(reference, window) pairs from one distribution, so every rejection is a false flag, and prints:

- ``homogeneity``: for :func:`homogeneity_pvalue`, the share of rows tested (not NaN) and the
  rejection rates at alpha 0.05, 0.001 and 1e-4 (n_w = 5000: a quarter of the rows); for
  :func:`psi_effect`, the mean raw PSI (``divergence.psi``), the mean corrected PSI before
  clipping (its centring) and the mean and 99th percentile after clipping.
  Shares: ``uniform``; ``dirichlet``: fresh Dirichlet(0.5) shares for every row;
  ``tiny``: one bin (in the middle) with share 0.001, the others equal.
- ``proportion``: rejection rates of the one-sided :func:`proportion_pvalue`.
- ``calibration``: :func:`calibration_pvalue` with calibrated synthetic scores (labels drawn
  as Bernoulli(score), 10 equal-width bins), with and without the sums of squared scores, and
  the raw and debiased ECE (:func:`debiased_ece`: signed mean, clipped mean).
- ``timing``: each function on 10,000 rows x 20 bins (best of 5).

Usage (from the repository root)::

    .venv/bin/python tests/bench/calibration_study.py                  # all parts, ~15 min
    .venv/bin/python tests/bench/calibration_study.py --part timing
    .venv/bin/python tests/bench/calibration_study.py --part homogeneity --reps 20000

A rate at alpha over R tested rows has standard error sqrt(alpha (1 - alpha) / R): at
R = 100,000, 0.0007 at 0.05, 0.0001 at 0.001 and 0.00003 at 1e-4.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

from tilewatch.aggregators.stats.calibration_error import calibration_pvalue, debiased_ece
from tilewatch.aggregators.stats.divergence import psi
from tilewatch.aggregators.stats.homogeneity import homogeneity_pvalue, proportion_pvalue
from tilewatch.aggregators.stats.psi_bias import psi_effect

N_W = (20, 50, 130, 500, 5000)
N_R: tuple[int | None, ...] = (200, 2000, 50000, None)
BINS = (2, 5, 10, 20)
ALPHAS = (0.05, 0.001, 1e-4)
CHUNK = 50_000


def shares(rng: np.random.Generator, kind: str, bins: int, rows: int) -> np.ndarray:
    """True distribution per row, shape (rows, bins)."""
    if kind == "uniform":
        return np.full((rows, bins), 1.0 / bins)
    if kind == "dirichlet":
        return rng.dirichlet(np.full(bins, 0.5), size=rows)
    if kind == "tiny":
        p = np.full(bins, 0.999 / (bins - 1))
        p[bins // 2] = 0.001
        return np.broadcast_to(p, (rows, bins)).copy()
    raise ValueError(kind)


def draws(
    rng: np.random.Generator, kind: str, bins: int, n_w: int, n_r: int | None, reps: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(reference, window) count arrays, in chunks; the reference is shares when n_r is None."""
    for start in range(0, reps, CHUNK):
        m = min(CHUNK, reps - start)
        p = shares(rng, kind, bins, m)
        window = rng.multinomial(n_w, p).astype(np.float64)
        ref = p if n_r is None else rng.multinomial(n_r, p).astype(np.float64)
        yield ref, window


def _rates(pvalues: list[np.ndarray]) -> tuple[float, dict[float, float]]:
    pv = np.concatenate(pvalues)
    tested = pv[~np.isnan(pv)]
    if not tested.size:
        return 0.0, dict.fromkeys(ALPHAS, math.nan)
    return tested.size / pv.size, {a: float(np.mean(tested <= a)) for a in ALPHAS}


def homogeneity_part(reps: int) -> None:
    print("## homogeneity_pvalue and psi_effect, clean data (every rejection is false)")
    print(
        f"{'shares':9s} {'B':>2s} {'n_w':>5s} {'n_r':>6s} {'tested':>6s}"
        f" {'r@0.05':>7s} {'r@0.001':>8s} {'r@1e-4':>8s} | {'raw PSI':>8s}"
        f" {'corr mean':>9s} {'clip mean':>9s} {'clip p99':>8s}"
    )
    worst: dict[float, tuple[float, str]] = dict.fromkeys(ALPHAS, (0.0, ""))
    rng = np.random.default_rng(2026)
    for kind in ("uniform", "dirichlet", "tiny"):
        for bins in BINS:
            for n_w in N_W:
                for n_r in N_R:
                    r_reps = reps if n_w <= 500 else max(reps // 4, 1)
                    total = "sum" if n_r is not None else None
                    pvs, raws, signed = [], [], []
                    for ref, win in draws(rng, kind, bins, n_w, n_r, r_reps):
                        pvs.append(homogeneity_pvalue(ref, win, reference_total=total))
                        raws.append(psi(ref, win))
                        signed.append(psi_effect(ref, win, reference_total=total, clip=False))
                    tested, rates = _rates(pvs)
                    raw = np.concatenate(raws)
                    eff = np.concatenate(signed)
                    eff = eff[~np.isnan(eff)]
                    clipped = np.maximum(eff, 0.0)
                    name = f"{kind} B={bins} n_w={n_w} n_r={n_r or 'inf'}"
                    for a in ALPHAS:
                        if tested * r_reps >= 10_000 and rates[a] > worst[a][0]:
                            worst[a] = (rates[a], name)
                    print(
                        f"{kind:9s} {bins:2d} {n_w:5d} {n_r or 'inf':>6} {tested:6.2f}"
                        f" {rates[0.05]:7.4f} {rates[0.001]:8.5f} {rates[1e-4]:8.5f} |"
                        f" {np.nanmean(raw):8.3f} {eff.mean():+9.4f} {clipped.mean():9.4f}"
                        f" {np.quantile(clipped, 0.99):8.3f}",
                        flush=True,
                    )
    for a in ALPHAS:
        print(f"worst rate at alpha {a:g}: {worst[a][0]:.5f} ({worst[a][1]})")


def proportion_part(reps: int) -> None:
    print("\n## proportion_pvalue (one-sided, greater), clean data")
    print(f"{'rate':>6s} {'n_w':>5s} {'n_r':>6s} {'r@0.05':>7s} {'r@0.001':>8s} {'r@1e-4':>8s}")
    rng = np.random.default_rng(7)
    for rate in (0.001, 0.01, 0.1, 0.3):
        for n_w in (20, 130, 5000):
            for n_r in N_R:
                kw = rng.binomial(n_w, rate, reps)
                if n_r is None:
                    pv = proportion_pvalue(rate, None, kw, n_w)
                else:
                    kr = rng.binomial(n_r, rate, reps)
                    pv = proportion_pvalue(kr, n_r, kw, n_w)
                _, rates = _rates([pv])
                print(
                    f"{rate:6.3f} {n_w:5d} {n_r or 'inf':>6} {rates[0.05]:7.4f}"
                    f" {rates[0.001]:8.5f} {rates[1e-4]:8.5f}",
                    flush=True,
                )


def calibrated_sums(
    rng: np.random.Generator, dist: tuple[float, float], n: int, rows: int, bins: int = 10
) -> tuple[np.ndarray, ...]:
    """Per-bin sums of ``rows`` windows of ``n`` calibrated events (scores ~ Beta(dist))."""
    score = rng.beta(dist[0], dist[1], size=(rows, n))
    label = rng.random((rows, n)) < score
    b = np.minimum((score * bins).astype(np.int64), bins - 1)
    flat = b + bins * np.arange(rows)[:, None]
    size = rows * bins

    def per_bin(weights: np.ndarray | None) -> np.ndarray:
        w = None if weights is None else weights.ravel()
        return np.bincount(flat.ravel(), weights=w, minlength=size).reshape(rows, bins)

    return (
        per_bin(None),
        per_bin(score),
        per_bin(label.astype(np.float64)),
        per_bin(score * score),
    )


def calibration_part(reps: int) -> None:
    print("\n## calibration_pvalue and debiased_ece, calibrated scores, 10 bins")
    print(
        f"{'scores':12s} {'n':>5s} {'tested':>6s} {'r@0.05':>7s} {'r@0.001':>8s} {'r@1e-4':>8s}"
        f" | {'bound r@0.05':>12s} {'r@0.001':>8s} | {'ECE':>6s} {'debiased':>9s}"
        f" {'clipped':>8s} {'clip p95':>8s}"
    )
    rng = np.random.default_rng(11)
    for name, dist in (
        ("beta(2,5)", (2.0, 5.0)),
        ("beta(.5,.5)", (0.5, 0.5)),
        ("beta(1,20)", (1.0, 20.0)),
    ):
        for n in (50, 150, 500, 5000):
            r_reps = reps if n <= 500 else max(reps // 10, 1)
            chunk = max(1, 2_000_000 // n)
            exact_p, bound_p, ece, deb = [], [], [], []
            for start in range(0, r_reps, chunk):
                m = min(chunk, r_reps - start)
                cnt, s, y, s2 = calibrated_sums(rng, dist, n, m)
                exact_p.append(calibration_pvalue(cnt, s, y, score_square_sums=s2))
                bound_p.append(calibration_pvalue(cnt, s, y))
                ece.append(np.abs(y - s).sum(axis=1) / cnt.sum(axis=1))
                deb.append(debiased_ece(cnt, s, y, clip=False))
            tested, rates = _rates(exact_p)
            _, brates = _rates(bound_p)
            d = np.concatenate(deb)
            c = np.maximum(d, 0.0)
            print(
                f"{name:12s} {n:5d} {tested:6.2f} {rates[0.05]:7.4f} {rates[0.001]:8.5f}"
                f" {rates[1e-4]:8.5f} | {brates[0.05]:12.4f} {brates[0.001]:8.5f} |"
                f" {np.concatenate(ece).mean():6.3f} {d.mean():+9.4f} {c.mean():8.4f}"
                f" {np.quantile(c, 0.95):8.4f}",
                flush=True,
            )


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def timing_part() -> None:
    print("\n## cost, 10,000 rows x 20 bins (best of 5)")
    rng = np.random.default_rng(3)
    rows, bins = 10_000, 20
    p = rng.dirichlet(np.full(bins, 1.0), size=rows)
    n_w = rng.integers(20, 5000, rows)
    window = rng.multinomial(n_w, p).astype(np.float64)
    ref = rng.multinomial(2000, p).astype(np.float64)
    cnt, s, y, s2 = calibrated_sums(rng, (2.0, 5.0), 150, rows)
    kr = rng.binomial(2000, 0.05, rows)
    kw = rng.binomial(n_w, 0.05)
    homogeneity_pvalue(ref, window)  # warm the caches (tables are built once per process)
    psi_effect(ref, window)
    cases: dict[str, Callable[[], object]] = {
        "divergence.psi (for scale)": lambda: psi(ref, window),
        "homogeneity_pvalue, finite reference": lambda: homogeneity_pvalue(ref, window),
        "homogeneity_pvalue, reference shares": lambda: homogeneity_pvalue(
            p, window, reference_total=None
        ),
        "psi_effect, finite reference": lambda: psi_effect(ref, window),
        "psi_effect, reference shares": lambda: psi_effect(p, window, reference_total=None),
        "proportion_pvalue, Fisher": lambda: proportion_pvalue(kr, 2000, kw, n_w),
        "proportion_pvalue, known rate": lambda: proportion_pvalue(0.05, None, kw, n_w),
        "calibration_pvalue (10 bins)": lambda: calibration_pvalue(cnt, s, y, s2),
        "debiased_ece (10 bins)": lambda: debiased_ece(cnt, s, y),
    }
    for name, fn in cases.items():
        print(f"{name:40s} {_best(fn) * 1e3:8.1f} ms")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Null calibration of the homogeneity module.")
    parser.add_argument("--reps", type=int, default=100_000, help="rows per configuration")
    parser.add_argument(
        "--part",
        choices=("all", "homogeneity", "proportion", "calibration", "timing"),
        default="all",
    )
    args = parser.parse_args(argv)
    if args.part in ("all", "timing"):
        timing_part()
    if args.part in ("all", "homogeneity"):
        homogeneity_part(args.reps)
    if args.part in ("all", "proportion"):
        proportion_part(args.reps)
    if args.part in ("all", "calibration"):
        calibration_part(args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
