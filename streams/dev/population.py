"""What each synthetic cell looks like: its parameters, and the feature draws per event.

Pure: every value comes from a seeded :class:`numpy.random.Generator`. Cell parameters (traffic
weight, score Beta, feature and latency distributions) depend only on the seed; features are
drawn per event from its cell's parameters, shifted for events of a degraded cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CellParams", "categorical", "cell_params", "draw_features"]

_PLANS: tuple[str, ...] = ("free", "basic", "pro", "business")
_CHANNELS: tuple[str, ...] = ("web", "mobile", "partner", "sales")
_SPEND_DRIFT_FACTOR = 1.8
_TICKETS_DRIFT = 3.0


@dataclass(frozen=True)
class CellParams:
    """Per-cell parameters, one array entry per (model, segment, region) cell."""

    weights: np.ndarray
    beta_a: np.ndarray
    beta_b: np.ndarray
    base_mean: np.ndarray
    tenure_scale: np.ndarray
    spend_mu: np.ndarray
    tickets_lam: np.ndarray
    plan_cdf: np.ndarray
    channel_cdf: np.ndarray
    latency_mu: np.ndarray


def cell_params(seed: int, n_cells: int) -> CellParams:
    """The parameters of ``n_cells`` cells for a traffic ``seed``."""
    # A separate stream from the per-event one, so cell parameters depend only on the seed.
    rng = np.random.default_rng([seed, 1])
    weights = rng.lognormal(0.0, 0.9, n_cells)
    mean = rng.uniform(0.12, 0.55, n_cells)
    concentration = rng.uniform(6.0, 14.0, n_cells)
    plan_p = rng.dirichlet(np.full(len(_PLANS), 2.0), n_cells)
    channel_p = rng.dirichlet(np.full(len(_CHANNELS), 2.0), n_cells)
    return CellParams(
        weights=weights / weights.sum(),
        beta_a=mean * concentration,
        beta_b=(1.0 - mean) * concentration,
        base_mean=mean,
        tenure_scale=rng.uniform(6.0, 20.0, n_cells),
        spend_mu=rng.uniform(3.0, 4.8, n_cells),
        tickets_lam=rng.uniform(0.3, 2.5, n_cells),
        plan_cdf=np.cumsum(plan_p, axis=1),
        channel_cdf=np.cumsum(channel_p, axis=1),
        latency_mu=np.log(rng.uniform(6.0, 25.0, n_cells)),
    )


def categorical(rng: np.random.Generator, cdf: np.ndarray, values: tuple[str, ...]) -> list[str]:
    """Draw one category per row of ``cdf`` (rows are per-event cumulative probabilities)."""
    u = rng.random((cdf.shape[0], 1))
    idx = np.minimum((u >= cdf).sum(axis=1), len(values) - 1)
    return [values[i] for i in idx.tolist()]


def draw_features(
    rng: np.random.Generator,
    cells: CellParams,
    names: tuple[str, ...],
    cell: np.ndarray,
    degraded: np.ndarray,
    n: int,
) -> dict[str, list[Any]]:
    """One value per event of each named feature, from the event's ``cell``.

    ``tenure_months``, ``plan``, ``monthly_spend``, ``tickets_30d`` and ``channel`` have
    realistic generators (``monthly_spend`` and ``tickets_30d`` shift up where ``degraded``);
    any other name gets a standard normal number.
    """
    out: dict[str, list[Any]] = {}
    for name in names:
        if name == "tenure_months":
            values = np.round(rng.gamma(2.0, cells.tenure_scale[cell]), 1)
            out[name] = values.tolist()
        elif name == "plan":
            out[name] = categorical(rng, cells.plan_cdf[cell], _PLANS)
        elif name == "monthly_spend":
            spend = rng.lognormal(cells.spend_mu[cell], 0.5)
            spend = spend * np.where(degraded, _SPEND_DRIFT_FACTOR, 1.0)
            out[name] = np.round(spend, 2).tolist()
        elif name == "tickets_30d":
            lam = cells.tickets_lam[cell] + _TICKETS_DRIFT * degraded
            out[name] = rng.poisson(lam).tolist()
        elif name == "channel":
            out[name] = categorical(rng, cells.channel_cdf[cell], _CHANNELS)
        else:
            out[name] = np.round(rng.standard_normal(n), 4).tolist()
    return out
