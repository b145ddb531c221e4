"""Exporters of tilewatch: the Prometheus collector and its HTTP endpoint.

They read aggregator snapshots at scrape time; they import nothing from ``streams``.
"""

from __future__ import annotations

from exporters.collector import METRICS, CellCollector, MetricDoc
from exporters.health import HEALTH_METRICS, HealthCollector
from exporters.http import ExporterError, MetricsServer
from exporters.settings import ExporterSettings

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
