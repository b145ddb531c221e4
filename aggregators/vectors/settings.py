"""Settings of the vector signals (embeddings and attributions)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VectorSettings"]


@dataclass(frozen=True, slots=True)
class VectorSettings:
    """How embeddings and attributions are summarised and judged.

    Parameters
    ----------
    components
        Principal components kept per model (``k``).
    bins
        Equal-mass reference bins per component for the per-component PSI.
    min_rows, prior_strength
        Reference rows a (cell, class) group needs for its own reference; with fewer it is
        shrunk toward its parent's (the same class model-wide, then the model-wide reference)
        with a prior worth ``prior_strength`` rows (``[drift] prior_strength``).
    min_samples, fdr_rate, psi_alert
        As in ``[drift]``: window events a group needs to be tested, the Benjamini-Hochberg
        rate of the window's family of tests, and the debiased PSI a component flag needs.
    distance_alert
        Mahalanobis distance of the window mean (in reference standard deviations) a distance
        flag needs.
    attribution_alert
        Change of a feature's share of total mean absolute attribution an explanation flag needs.
    max_features
        Features whose attributions are tracked (the reference's largest, ``[drift]
        max_features``).
    reservoir
        Projected points (first two components) kept per group for the scatter.
    """

    components: int = 8
    bins: int = 10
    min_rows: int = 50
    prior_strength: float = 20.0
    min_samples: int = 30
    fdr_rate: float = 0.01
    psi_alert: float = 0.25
    distance_alert: float = 0.5
    attribution_alert: float = 0.05
    max_features: int = 10
    reservoir: int = 100
