"""Exporters of tilewatch: the Prometheus side at run time, and the files generated from the config.

They read aggregator snapshots at scrape time; they import nothing from ``streams``.
"""

from __future__ import annotations

from tilewatch.exporters.prometheus import (
    CATALOG,
    DRIFT_METRICS,
    HEALTH_METRICS,
    METRICS,
    PERFORMANCE_METRICS,
    CellCollector,
    ExporterError,
    ExporterSettings,
    HealthCollector,
    MetricDoc,
    MetricsServer,
)

__all__ = [
    "CATALOG",
    "DRIFT_METRICS",
    "HEALTH_METRICS",
    "METRICS",
    "PERFORMANCE_METRICS",
    "CellCollector",
    "ExporterError",
    "ExporterSettings",
    "HealthCollector",
    "MetricDoc",
    "MetricsServer",
]
