"""Damped-trend exponential smoothing over many series at once, with prediction intervals.

Each series (one per cell) follows the innovations form of ETS(A,Ad,N) (Hyndman et al. 2008,
*Forecasting with Exponential Smoothing*, ch. 2 and 6), with fixed smoothing parameters:

.. code-block:: text

    forecast   yhat = l + phi * b                   one step ahead
    error      e    = y - yhat
    level      l   <- l + phi * b + alpha * e
    trend      b   <- phi * b + beta * e
    h steps    yhat(h) = l + (phi + phi^2 + ... + phi^h) * b
    variance   v(h) = s2 * (1 + sum_{j=1}^{h-1} (alpha + beta * phi_j)^2)
               with phi_j = phi + ... + phi^j

``s2`` is the variance of the one-step errors: their running mean square for the first
``memory`` observations, then an exponentially weighted one with weight ``1 / memory`` (so the
intervals follow a series whose noise changes). The interval is ``yhat(h) +- z * sqrt(v(h))``
with ``z`` the normal quantile of the nominal coverage. A series is initialised from its first
two observations (level the second, trend their difference) and forecasts from its third on.

One update is a handful of numpy operations over all series (microseconds per series); a
missing observation (NaN, or a series not in the update) leaves the series unchanged.

Examples
--------
>>> import numpy as np
>>> f = DampedTrend(2)
>>> for t in range(6):
...     f.update(np.array([1.0 + t, 5.0]))
>>> mean, lower, upper = f.forecast(3)
>>> np.round(mean[:, 0], 3).tolist()  # a rising series keeps rising, damped
[6.107, 6.695, 7.224]
>>> lo, hi = lower[:, :2], upper[:, :2]
>>> np.round(mean[:, 1], 3).tolist(), bool((lo <= mean[:, :2]).all() and (mean[:, :2] <= hi).all())
([5.0, 5.0, 5.0], True)
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray, grow

__all__ = ["DampedTrend"]


class DampedTrend:
    """Damped-trend exponential smoothing of ``n`` series, vectorised.

    Parameters
    ----------
    n
        Series to start with (:meth:`resize` adds more).
    alpha, beta, phi
        Level and trend smoothing, and the trend damping (``0 < beta <= alpha < 1``,
        ``0 < phi <= 1``).
    coverage
        Nominal coverage of the prediction intervals.
    memory
        Observations after which the error variance is exponentially weighted.
    """

    def __init__(
        self,
        n: int = 0,
        alpha: float = 0.2,
        beta: float = 0.05,
        phi: float = 0.9,
        coverage: float = 0.9,
        memory: int = 50,
    ) -> None:
        if not (0 < beta <= alpha < 1 and 0 < phi <= 1 and 0 < coverage < 1 and memory >= 2):
            raise ValueError(
                "DampedTrend: expected 0 < beta <= alpha < 1, 0 < phi <= 1, 0 < coverage < 1 "
                f"and memory >= 2, got alpha={alpha}, beta={beta}, phi={phi}, "
                f"coverage={coverage}, memory={memory}"
            )
        self.alpha, self.beta, self.phi = alpha, beta, phi
        self.coverage, self.memory = coverage, memory
        self.z = NormalDist().inv_cdf(0.5 + coverage / 2)
        self.level: FloatArray = np.full(0, np.nan)
        self.trend: FloatArray = np.zeros(0)
        #: Observations per series; errors counted in the variance (from the third on).
        self.seen: IntArray = np.zeros(0, dtype=np.int64)
        self.errors: IntArray = np.zeros(0, dtype=np.int64)
        self.variance: FloatArray = np.zeros(0)
        self.resize(n)

    def __len__(self) -> int:
        return len(self.level)

    def resize(self, n: int) -> None:
        """Make room for ``n`` series (new ones start empty)."""
        self.level = grow(self.level, n, fill=math.nan)
        self.trend = grow(self.trend, n)
        self.seen = grow(self.seen, n)
        self.errors = grow(self.errors, n)
        self.variance = grow(self.variance, n)

    def update(self, y: FloatArray, rows: IntArray | None = None) -> None:
        """One observation per series of ``rows`` (all series when None); NaN: none."""
        if rows is None:
            rows = np.arange(len(y))
        if len(rows) and int(rows.max()) >= len(self):
            self.resize(int(rows.max()) + 1)
        ok = np.isfinite(y)
        rows, y = rows[ok], y[ok]
        seen = self.seen[rows]
        first = seen == 0
        r = rows[first]
        self.level[r] = y[first]
        second = seen == 1
        r = rows[second]
        self.trend[r] = y[second] - self.level[r]
        self.level[r] = y[second]
        more = seen >= 2
        r, y = rows[more], y[more]
        a, b, phi = self.alpha, self.beta, self.phi
        damped = phi * self.trend[r]
        e = y - (self.level[r] + damped)
        self.level[r] += damped + a * e
        self.trend[r] = damped + b * e
        n = self.errors[r] + 1
        w = np.maximum(1.0 / n, 1.0 / self.memory)
        self.variance[r] += w * (e * e - self.variance[r])
        self.errors[r] = n
        self.seen[rows] += 1

    def forecast(self, horizon: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(mean, lower, upper)``, each ``(horizon, series)``: the forecasts 1..horizon steps
        ahead and their prediction interval (NaN for a series with fewer than 3 observations).
        """
        h = np.arange(1, horizon + 1)
        phi_h = np.cumsum(self.phi**h)  # phi + ... + phi^h
        mean = self.level[None, :] + phi_h[:, None] * self.trend[None, :]
        c = self.alpha + self.beta * phi_h[:-1]  # c_j for j = 1 .. horizon-1
        factor = 1.0 + np.concatenate([[0.0], np.cumsum(c * c)])
        half = self.z * np.sqrt(factor[:, None] * self.variance[None, :])
        ready = self.errors > 0
        mean = np.where(ready[None, :], mean, np.nan)
        return mean, mean - half, mean + half

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """Plain data of the series' state (for checkpoints)."""
        return {
            "level": self.level.tolist(),
            "trend": self.trend.tolist(),
            "seen": self.seen.tolist(),
            "errors": self.errors.tolist(),
            "variance": self.variance.tolist(),
        }
