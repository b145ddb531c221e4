"""The cell dashboard's rows of vector signals (``docs/embeddings.md``): embeddings and
explanations, for the cell and predicted class ``$class`` (``__all__``: every class).

Each cell's window is exported by the replica that judged it; across replicas the maximum is
shown (exact when producers key by cell, as for the other window statistics).
"""

from __future__ import annotations

from tilewatch.exporters.grafana.frame import DRIFT_MAPPINGS
from tilewatch.exporters.grafana.json_model import Layout, target, threshold_steps
from tilewatch.exporters.grafana.panels import (
    Panel,
    row_panel,
    state_timeline_panel,
    timeseries_panel,
)

__all__ = ["embedding_panels", "explanation_panels"]

ALL = "__all__"


def _sel(cell: dict[str, str], **more: str) -> str:
    parts = ['model="$model"', *(f'{k}="{v}"' for k, v in {**cell, **more}.items())]
    return "{" + ", ".join(parts) + "}"


def embedding_panels(lay: Layout, cell: dict[str, str]) -> list[Panel]:
    """Distance of the window mean, PSI per component, and the vector flags per class."""
    sel = _sel(cell, **{"class": ALL})
    by_class = _sel(cell)
    return [
        row_panel(lay, "Embeddings"),
        timeseries_panel(
            lay,
            (8, 7),
            "Embedding distance by class",
            "Mahalanobis distance of the window's mean embedding from the reference mean, in "
            "the reference's principal-component space (reference standard deviations), per "
            "predicted class (__all__: every class). Flagged above 0.5 when significant.",
            [
                target(
                    f"max by (class) (tilewatch_window_embedding_distance{by_class})", "{{class}}"
                )
            ],
            unit="short",
            thresholds=threshold_steps(None, 0.5),
            value_min=0.0,
        ),
        timeseries_panel(
            lay,
            (8, 7),
            "Embedding PSI by component",
            "Debiased PSI of each principal component's histogram against the cell's "
            "reference (every class); flagged above [drift] psi_alert when significant.",
            [
                target(
                    f"max by (component) (tilewatch_window_embedding_psi{sel})", "PC {{component}}"
                )
            ],
            unit="short",
            value_min=0.0,
        ),
        state_timeline_panel(
            lay,
            (8, 7),
            "Vector flags",
            "DRIFT (red) while the flag is set for the cell's window: embedding_psi, "
            "embedding_distance, attribution_shift (Benjamini-Hochberg over the window's "
            "vector tests, and above the effect threshold), per predicted class.",
            [
                target(
                    f"max by (class, signal) (tilewatch_window_vector_flag{by_class})",
                    "{{class}} {{signal}}",
                )
            ],
            mappings=DRIFT_MAPPINGS,
            thresholds=threshold_steps(None, 1.0),
        ),
    ]


def explanation_panels(lay: Layout, cell: dict[str, str]) -> list[Panel]:
    """Mean absolute attribution per feature, its share change and the rank correlation."""
    sel = _sel(cell, **{"class": ALL})
    by_class = _sel(cell)
    return [
        row_panel(lay, "Explanations"),
        timeseries_panel(
            lay,
            (8, 7),
            "Mean |attribution| by feature",
            "Mean absolute attribution of each tracked feature over the window's events "
            "(every class): the top features now.",
            [target(f"max by (feature) (tilewatch_window_attribution_mean{sel})", "{{feature}}")],
            unit="short",
            value_min=0.0,
        ),
        timeseries_panel(
            lay,
            (8, 7),
            "Attribution share vs reference",
            "Each feature's share of the total mean |attribution| in the window minus its "
            "share in the reference (every class); flagged beyond 0.05 when significant.",
            [
                target(
                    f"max by (feature) (tilewatch_window_attribution_share_change{sel})",
                    "{{feature}}",
                )
            ],
            unit="percentunit",
        ),
        timeseries_panel(
            lay,
            (8, 7),
            "Feature ranking vs reference",
            "Spearman correlation of the window's and the reference's mean |attribution| "
            "over the tracked features, per predicted class (1: the same ranking).",
            [
                target(
                    f"min by (class) (tilewatch_window_attribution_rank_correlation{by_class})",
                    "{{class}}",
                )
            ],
            unit="short",
            value_min=-1.0,
            value_max=1.0,
        ),
    ]
