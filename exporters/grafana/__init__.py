"""Grafana dashboards generated from the config, with the recording rules they read.

- ``render``: :func:`render_dashboards`, every Grafana file of ``tilewatch generate``;
- ``overview_dashboard``, ``heatmaps_dashboard``, ``cell_dashboard``: the three dashboards;
- ``dashboard_statistics``: the statistics they show (metric, merge, scale, thresholds);
- ``dashboard_rules``: the recording rules the panels query (one series per cell and statistic);
- ``frame``, ``panels``, ``json_model``: the shared frame, the panel builders, the JSON basics;
- ``provisioning``: Grafana's data source and dashboard provider.

May import: ``tilewatch.aggregators`` (settings and names only),
``tilewatch.exporters.generator_inputs``, ``tilewatch.exporters.yaml_output``; not
``tilewatch.exporters.prometheus``, ``tilewatch.exporters.alerting``, ``tilewatch.streams`` or
the CLI and config modules.
"""

from __future__ import annotations

from tilewatch.exporters.grafana.dashboard_statistics import Statistic, dashboard_statistics
from tilewatch.exporters.grafana.render import render_dashboards

__all__ = ["Statistic", "dashboard_statistics", "render_dashboards"]
