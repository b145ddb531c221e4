"""Grafana dashboards generated from the config: overview, heatmaps, cell detail.

:func:`render_dashboards` is the ``"dashboards"`` generator of ``tilewatch generate``: it returns
the dashboard JSON files, the recording rules they read and Grafana's provisioning files, as
``{path relative to the repository root: text}``. Everything is derived from the config (the
cell dimensions, which statistics exist, the hierarchy's thresholds), so a metric cannot be
renamed without the dashboards following, and a test fails when the checked-in files are stale.

Dashboards (uids are stable, links between them carry the model and the cell):

- ``tilewatch-overview``: business indicators and their status, component status per model,
  the status grid of the first two dimensions for the latest window (each tile links to the
  cell detail), the drivers of every status, and the monitor's own health.
- ``tilewatch-heatmaps``: per key statistic, a heatmap with time on x and the values of each
  dimension on y (roll-up cells: the other dimensions at the value of their variable, by
  default ``__all__``), with the sample count beside each; drift flags as state timelines; and
  the statistic chosen in the ``statistic`` variable on its normalized scale.
- ``tilewatch-cell``: one cell's statuses, drivers, statistics with the hierarchy's thresholds
  and the model total for comparison, and its drift flags.
"""

from __future__ import annotations

import json
from typing import Any

from tilewatch.exporters.generator_inputs import GeneratorInputs
from tilewatch.exporters.grafana.cell_dashboard import cell_dashboard
from tilewatch.exporters.grafana.dashboard_rules import dashboard_rules
from tilewatch.exporters.grafana.dashboard_statistics import dashboard_statistics
from tilewatch.exporters.grafana.frame import CELL_UID, HEATMAPS_UID, OVERVIEW_UID
from tilewatch.exporters.grafana.heatmaps_dashboard import heatmaps_dashboard
from tilewatch.exporters.grafana.overview_dashboard import overview_dashboard
from tilewatch.exporters.grafana.provisioning import (
    TILEWATCH_API_URL,
    dashboard_provider,
    datasource_provisioning,
)

__all__ = ["DASHBOARD_DIR", "PROVISIONING_DIR", "RULES_PATH", "render_dashboards"]

#: Where the files go, relative to the repository root.
DASHBOARD_DIR = "deploy/grafana/dashboards"
PROVISIONING_DIR = "deploy/grafana/provisioning"
RULES_PATH = "deploy/prometheus/rules/tilewatch-dashboards.rules.yml"


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def render_dashboards(inputs: GeneratorInputs) -> dict[str, str]:
    """Every Grafana file generated from ``inputs``: ``{path from the repo root: text}``.

    The dashboards, the recording rules they read
    (``deploy/prometheus/rules/tilewatch-dashboards.rules.yml``) and Grafana's provisioning
    (data source with the fixed uid, dashboard provider).
    """
    statistics = dashboard_statistics(inputs)
    return {
        f"{DASHBOARD_DIR}/{OVERVIEW_UID}.json": _json(overview_dashboard(inputs)),
        f"{DASHBOARD_DIR}/{HEATMAPS_UID}.json": _json(heatmaps_dashboard(inputs, statistics)),
        f"{DASHBOARD_DIR}/{CELL_UID}.json": _json(cell_dashboard(inputs, statistics)),
        RULES_PATH: dashboard_rules(
            statistics,
            ["model", *inputs.dimensions],
            drift=inputs.drift is not None,
            performance=inputs.labels is not None,
        ),
        f"{PROVISIONING_DIR}/datasources/tilewatch.yml": datasource_provisioning(
            api_url=TILEWATCH_API_URL if inputs.embeddings else None
        ),
        f"{PROVISIONING_DIR}/dashboards/tilewatch.yml": dashboard_provider(),
    }
