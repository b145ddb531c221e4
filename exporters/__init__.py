"""Exporters of tilewatch: the Prometheus collector and its HTTP endpoint.

They read aggregator snapshots at scrape time; they import nothing from ``streams``.
"""

from __future__ import annotations

from tilewatch.exporters.prometheus.collector import METRICS, CellCollector, MetricDoc
from tilewatch.exporters.prometheus.health import HEALTH_METRICS, HealthCollector
from tilewatch.exporters.prometheus.http import ExporterError, MetricsServer
from tilewatch.exporters.prometheus.settings import ExporterSettings

__all__ = [
    "HEALTH_METRICS",
    "METRICS",
    "CellCollector",
    "ExporterError",
    "ExporterSettings",
    "HealthCollector",
    "MetricDoc",
    "MetricsServer",
]
