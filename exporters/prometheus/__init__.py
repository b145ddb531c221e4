"""The Prometheus side at run time: the metric catalog, the collectors, the HTTP endpoint.

- ``catalog``: every exported metric's name, type, labels and help, defined once;
- ``families``: metric families built from the catalog (the loops every collector shares);
- ``cell_collector``: :class:`CellCollector`, which yields the families of ``cell_families``,
  ``ingest_families``, ``drift_families`` and ``performance_families``;
- ``health_collector``: :class:`HealthCollector` (the health hierarchy, evaluated per scrape);
- ``http``, ``auth``, ``settings``: the metrics endpoint and its ``[exporter]`` settings.

May import: ``tilewatch.aggregators``, ``prometheus_client``; not the generators
(``tilewatch.exporters.grafana``, ``tilewatch.exporters.alerting``), ``tilewatch.streams`` or
the CLI and config modules.
"""

from __future__ import annotations

from tilewatch.exporters.prometheus.catalog import (
    CATALOG,
    DRIFT_METRICS,
    HEALTH_METRICS,
    METRICS,
    PERFORMANCE_METRICS,
    MetricDoc,
)
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.exporters.prometheus.health_collector import HealthCollector
from tilewatch.exporters.prometheus.http import ExporterError, MetricsServer
from tilewatch.exporters.prometheus.settings import BasicAuth, ExporterSettings, TLSFiles

__all__ = [
    "CATALOG",
    "DRIFT_METRICS",
    "HEALTH_METRICS",
    "METRICS",
    "PERFORMANCE_METRICS",
    "BasicAuth",
    "CellCollector",
    "ExporterError",
    "ExporterSettings",
    "HealthCollector",
    "MetricDoc",
    "MetricsServer",
    "TLSFiles",
]
