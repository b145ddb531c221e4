"""DampedTrend against a per-series reference written from Hyndman et al. (2008), on random data,
and its interval variance against simulated ETS(A,Ad,N) paths."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from tilewatch.aggregators.stats.forecast import DampedTrend


def _reference(
    ys: list[float], alpha: float, beta: float, phi: float, coverage: float, memory: int, h: int
) -> tuple[list[float], list[float], list[float]]:
    """One series, scalar loops, NaN observations skipped."""
    obs = [y for y in ys if not math.isnan(y)]
    if len(obs) < 3:
        return [math.nan] * h, [math.nan] * h, [math.nan] * h
    level, trend = obs[1], obs[1] - obs[0]
    s2 = 0.0
    for k, y in enumerate(obs[2:], 1):
        e = y - (level + phi * trend)
        level = level + phi * trend + alpha * e
        trend = phi * trend + beta * e
        w = max(1.0 / k, 1.0 / memory)
        s2 = s2 + w * (e * e - s2)
    z = NormalDist().inv_cdf(0.5 + coverage / 2)
    mean, lower, upper = [], [], []
    for step in range(1, h + 1):
        phi_h = sum(phi**i for i in range(1, step + 1))
        v = s2 * (1 + sum((alpha + beta * sum(phi**i for i in range(1, j + 1))) ** 2
                          for j in range(1, step)))  # fmt: skip
        m = level + phi_h * trend
        mean.append(m)
        lower.append(m - z * math.sqrt(v))
        upper.append(m + z * math.sqrt(v))
    return mean, lower, upper


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_scalar_reference_on_random_series(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, t, h = 7, int(rng.integers(1, 40)), 5
    alpha = float(rng.uniform(0.2, 0.9))
    beta = float(rng.uniform(0.01, alpha))
    phi = float(rng.uniform(0.7, 1.0))
    memory = int(rng.integers(2, 20))
    data = rng.normal(0, 1, (t, n)).cumsum(axis=0) + rng.normal(0, 3, n)
    data[rng.random((t, n)) < 0.2] = np.nan  # missing windows
    f = DampedTrend(0, alpha, beta, phi, coverage=0.8, memory=memory)
    for row in data:
        subset = np.flatnonzero(rng.random(n) < 0.9)  # some series get no update at all
        f.update(row[subset], subset)
        data_seen = np.full(n, np.nan)
        data_seen[subset] = row[subset]
        row[:] = data_seen
    mean, lower, upper = f.forecast(h)
    for i in range(n):
        ref = _reference(list(data[:, i]), alpha, beta, phi, 0.8, memory, h)
        np.testing.assert_allclose(mean[:, i], ref[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(lower[:, i], ref[1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(upper[:, i], ref[2], rtol=1e-10, atol=1e-12)


def test_interval_variance_matches_simulated_paths() -> None:
    """Many series simulated from ETS(A,Ad,N) with known noise: the h-step forecast errors'
    variance is what the formula says, and the intervals cover about their nominal share."""
    rng = np.random.default_rng(5)
    alpha, beta, phi, sigma = 0.5, 0.1, 0.9, 2.0
    n, warm, h = 20_000, 200, 5
    f = DampedTrend(n, alpha, beta, phi, coverage=0.9, memory=1_000)
    level, trend = np.zeros(n), np.full(n, 0.3)
    for _ in range(warm):  # the generating process is the model itself
        e = rng.normal(0, sigma, n)
        y = level + phi * trend + e
        level, trend = level + phi * trend + alpha * e, phi * trend + beta * e
        f.update(y)
    mean, lower, upper = f.forecast(h)
    future = []
    for _ in range(h):
        e = rng.normal(0, sigma, n)
        future.append(level + phi * trend + e)
        level, trend = level + phi * trend + alpha * e, phi * trend + beta * e
    future_arr = np.array(future)
    errors = future_arr - mean[:, :n]
    phi_j = np.cumsum(phi ** np.arange(1, h))
    expected = sigma**2 * (1 + np.concatenate([[0.0], np.cumsum((alpha + beta * phi_j) ** 2)]))
    np.testing.assert_allclose(errors.var(axis=1), expected, rtol=0.05)
    covered = ((lower[:, :n] <= future_arr) & (future_arr <= upper[:, :n])).mean(axis=1)
    assert np.all(np.abs(covered - 0.9) < 0.015), covered


def test_too_few_observations_give_no_forecast_and_bad_parameters_are_refused() -> None:
    f = DampedTrend(2)
    f.update(np.array([1.0, 2.0]))
    f.update(np.array([2.0, np.nan]))
    assert np.isnan(f.forecast(2)[0][:, :2]).all()
    f.update(np.array([3.0, 3.0]))
    mean = f.forecast(2)[0]
    assert np.isfinite(mean[:, 0]).all() and np.isnan(mean[:, 1]).all()
    with pytest.raises(ValueError, match="beta <= alpha"):
        DampedTrend(1, alpha=0.1, beta=0.2)
