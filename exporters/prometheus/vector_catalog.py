"""The rows of the vector metrics (embedding drift, aggregated explanations) of the catalog.

Plain tuples (name, type, labels, help) that :mod:`tilewatch.exporters.prometheus.catalog`
turns into its ``VECTOR_METRICS``; a separate module so the catalog stays small. Imports
nothing.
"""

from __future__ import annotations

__all__ = ["VECTOR_ROWS"]

# fmt: off
#: Exported with [events] embedding or attributions (vector_families).
VECTOR_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("tilewatch_window_embedding_events", "gauge", "cell, class",
              "Events with a valid embedding of the cell and predicted class in the model's "
              "last judged window."),
    ("tilewatch_window_embedding_psi", "gauge", "cell, class, component",
              "Debiased PSI of one principal component's histogram (the baseline's equal-mass "
              "bins) against the group's reference (NaN: not tested)."),
    ("tilewatch_window_embedding_distance", "gauge", "cell, class",
              "Mahalanobis distance of the window's mean embedding from the reference mean, in "
              "the reference's principal-component space (reference standard deviations)."),
    ("tilewatch_window_embedding_distance_pvalue", "gauge", "cell, class",
              "P-value of \"the mean did not move\": n m / (n + m) d^2 against chi2(k)."),
    ("tilewatch_window_vector_flag", "gauge", "cell, class, signal",
              "1 when the group is flagged for the signal (embedding_psi, embedding_distance, "
              "attribution_shift: significant after Benjamini-Hochberg over the window's vector "
              "tests at [drift] fdr_rate, and above its effect threshold), else 0."),
    ("tilewatch_window_attribution_mean", "gauge", "cell, class, feature",
              "Mean absolute attribution of the feature over the window's events."),
    ("tilewatch_window_attribution_share_ratio", "gauge", "cell, class, feature",
              "The feature's share of the total mean absolute attribution in the window."),
    ("tilewatch_window_attribution_share_change", "gauge", "cell, class, feature",
              "The feature's share of total mean absolute attribution in the window minus its "
              "share in the reference."),
    ("tilewatch_window_attribution_rank_correlation", "gauge", "cell, class",
              "Spearman correlation of the window's and the reference's mean absolute "
              "attributions over the tracked features (1: the same ranking)."),
    ("tilewatch_embedding_explained_variance_ratio", "gauge", "model, component",
              "Share of the reference embeddings' variance along each kept principal component."),
    ("tilewatch_bad_embeddings_total", "counter", "model, reason",
              "Embeddings dropped (the event kept without one), by reason: wrong_type, "
              "dimension, not_number, not_finite."),
    ("tilewatch_vector_events_skipped_total", "counter", "reason",
              "Events the vector statistics left out: late (their window was judged), "
              "no_reference (a model without a vector reference), bad_attributions."),
)
# fmt: on
