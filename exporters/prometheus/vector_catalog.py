"""The vector metrics (embedding drift, aggregated explanations) of the catalog.

A table of its own so the catalog stays small; :mod:`tilewatch.exporters.prometheus.catalog`
includes it in ``CATALOG``. Plain data: imports only the record type.
"""

from __future__ import annotations

from tilewatch.exporters.prometheus.metric_doc import COUNTER, GAUGE, MetricDoc

__all__ = ["VECTOR_METRICS"]

# fmt: off
#: Exported with [events] embedding or attributions (vector_families).
VECTOR_METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("tilewatch_window_embedding_events", GAUGE, "cell, class",
              "Events with a valid embedding of the cell and predicted class in the model's "
              "last judged window."),
    MetricDoc("tilewatch_window_embedding_psi", GAUGE, "cell, class, component",
              "Debiased PSI of one principal component's histogram (the baseline's equal-mass "
              "bins) against the group's reference (NaN: not tested)."),
    MetricDoc("tilewatch_window_embedding_distance", GAUGE, "cell, class",
              "Mahalanobis distance of the window's mean embedding from the reference mean, in "
              "the reference's principal-component space (reference standard deviations)."),
    MetricDoc("tilewatch_window_embedding_distance_pvalue", GAUGE, "cell, class",
              "P-value of \"the mean did not move\": n m / (n + m) d^2 against chi2(k)."),
    MetricDoc("tilewatch_window_vector_flag", GAUGE, "cell, class, signal",
              "1 when the group is flagged for the signal (embedding_psi, embedding_distance, "
              "attribution_shift: significant after Benjamini-Hochberg over the window's vector "
              "tests at [drift] fdr_rate, and above its effect threshold), else 0."),
    MetricDoc("tilewatch_window_attribution_mean", GAUGE, "cell, class, feature",
              "Mean absolute attribution of the feature over the window's events."),
    MetricDoc("tilewatch_window_attribution_share_ratio", GAUGE, "cell, class, feature",
              "The feature's share of the total mean absolute attribution in the window."),
    MetricDoc("tilewatch_window_attribution_share_change", GAUGE, "cell, class, feature",
              "The feature's share of total mean absolute attribution in the window minus its "
              "share in the reference."),
    MetricDoc("tilewatch_window_attribution_rank_correlation", GAUGE, "cell, class",
              "Spearman correlation of the window's and the reference's mean absolute "
              "attributions over the tracked features (1: the same ranking)."),
    MetricDoc("tilewatch_embedding_explained_variance_ratio", GAUGE, "model, component",
              "Share of the reference embeddings' variance along each kept principal component."),
    MetricDoc("tilewatch_vector_cells_unexported", GAUGE, "",
              "Leaf cells with vector statistics left out of this scrape by [exporter] "
              "max_exported_cells (read them in /api/embeddings)."),
    MetricDoc("tilewatch_bad_embeddings_total", COUNTER, "model, reason",
              "Embeddings dropped (the event kept without one), by reason: wrong_type, "
              "dimension, not_number, not_finite."),
    MetricDoc("tilewatch_vector_events_skipped_total", COUNTER, "reason",
              "Events the vector statistics left out: late (their window was judged), "
              "no_reference (a model without a vector reference), bad_attributions."),
)
# fmt: on
