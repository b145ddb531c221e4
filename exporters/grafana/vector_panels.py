"""The cell dashboard's rows of vector signals (``docs/embeddings.md``): embeddings and
explanations, for the cell, per predicted class or over every class (``__all__``).

Each cell's window is exported by the replica that judged it; across replicas the maximum is
shown (exact when producers key by cell, as for the other window statistics).
"""

from __future__ import annotations

from typing import Any

import grafana_foundation_sdk.builders.xychart as xy
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard
from grafana_foundation_sdk.models import xychart as xy_m

from tilewatch.exporters.grafana.frame import DRIFT_MAPPINGS
from tilewatch.exporters.grafana.json_model import Layout, target, threshold_steps
from tilewatch.exporters.grafana.panels import (
    Panel,
    row_panel,
    state_timeline_panel,
    timeseries_panel,
)

__all__ = ["API_DATASOURCE_TYPE", "API_DATASOURCE_UID", "embedding_panels", "explanation_panels"]

ALL = "__all__"
#: The Infinity data source (a Grafana plugin) that reads tilewatch's JSON API for the scatter.
API_DATASOURCE_TYPE = "yesoreyeram-infinity-datasource"
API_DATASOURCE_UID = "tilewatch-api"
_API_REF = dashboard.DataSourceRef(type_val=API_DATASOURCE_TYPE, uid=API_DATASOURCE_UID)


class _ApiQuery(cogvariants.Dataquery):
    """An Infinity query of one list of ``{x, y}`` rows of ``/api/embeddings``."""

    def __init__(self, ref: str, url: str, root: str) -> None:
        self.ref, self.url, self.root = ref, url, root

    def to_json(self) -> dict[str, Any]:
        return {
            "refId": self.ref,
            "datasource": {"type": API_DATASOURCE_TYPE, "uid": API_DATASOURCE_UID},
            "type": "json",
            "source": "url",
            "parser": "backend",
            "format": "table",
            "url": self.url,
            "url_options": {"method": "GET"},
            "root_selector": self.root,
            "columns": [
                {"selector": "x", "text": "x", "type": "number"},
                {"selector": "y", "text": "y", "type": "number"},
            ],
        }


class _ApiQueryBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, ref: str, url: str, root: str) -> None:
        self._internal = _ApiQuery(ref, url, root)

    def build(self) -> cogvariants.Dataquery:
        return self._internal


def _series(frame: int, name: str) -> xy.XYSeriesConfig:
    def by_name(field: str) -> xy.MatcherConfig:
        return xy.MatcherConfig().id("byName").options(field)

    return (
        xy.XYSeriesConfig()
        .name(xy.XychartXYSeriesConfigName().fixed(name))
        .frame(
            xy.XychartXYSeriesConfigFrame().matcher(xy.MatcherConfig().id("byIndex").options(frame))
        )
        .x(xy.XychartXYSeriesConfigX().matcher(by_name("x")))
        .y(xy.XychartXYSeriesConfigY().matcher(by_name("y")))
    )


def scatter_panel(lay: Layout, cell: dict[str, str]) -> Panel:
    """Reference and serving clouds of the cell (every class) on the first two principal
    components, read from ``/api/embeddings`` through the Infinity data source."""
    query = "&".join(["model=$model", *(f"{d}=${d}" for d in cell), "class=__all__"])
    url = f"/api/embeddings?{query}"
    pos = lay.place(12, 9)
    return (
        xy.Panel()
        .id(lay.next_id())
        .title("Embeddings: reference vs serving")
        .description(
            "The cell's projected embeddings on the first two principal components of the "
            "baseline: a sample of the reference (blue) and of the latest judged window "
            "(orange), from /api/embeddings (Infinity data source, docs/embeddings.md)."
        )
        .datasource(_API_REF)
        .grid_pos(dashboard.GridPos(h=pos["h"], w=pos["w"], x=pos["x"], y=pos["y"]))
        .targets([_ApiQueryBuilder("A", url, "reference"), _ApiQueryBuilder("B", url, "live")])
        .mapping(xy_m.SeriesMapping.MANUAL)
        .show(xy_m.XYShowMode.POINTS)
        .series([_series(0, "reference"), _series(1, "serving")])
    )


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
        scatter_panel(lay, cell),
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
            "Attribution share: now vs reference",
            "Each feature's share of the total mean |attribution| in the window (now) and "
            "in the reference (share minus its change; every class); flagged when a share "
            "moves by more than 0.05 and significantly.",
            [
                target(
                    f"max by (feature) (tilewatch_window_attribution_share_ratio{sel})",
                    "{{feature}} now",
                ),
                target(
                    f"max by (feature) (tilewatch_window_attribution_share_ratio{sel}"
                    f" - tilewatch_window_attribution_share_change{sel})",
                    "{{feature}} reference",
                    ref="B",
                ),
            ],
            unit="percentunit",
            value_min=0.0,
            value_max=1.0,
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
