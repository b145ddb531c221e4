"""Exporters of tilewatch: the Prometheus side at run time, and the files generated from the config.

- ``prometheus``: the metric catalog, the collectors and the metrics endpoint (run time);
- ``grafana``, ``alerting``: the dashboards, rule files, Alertmanager config and runbooks that
  ``tilewatch generate`` writes, from a :class:`GeneratorInputs` built from the config;
- ``generator_inputs``: that input (and ``[hierarchy.alerts]``, :class:`AlertSettings`);
- ``yaml_output``: the YAML layout of the generated files;
- ``terminal``: the terminal heatmap of ``tilewatch demo``.

May import: ``tilewatch.aggregators``; never ``tilewatch.streams`` or the ``tilewatch`` CLI and
config modules (``tilewatch/generate.py`` builds the generator inputs and passes them in).
"""

from __future__ import annotations

from tilewatch.exporters.generator_inputs import AlertSettings, GeneratorInputs
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
    "AlertSettings",
    "CellCollector",
    "ExporterError",
    "ExporterSettings",
    "GeneratorInputs",
    "HealthCollector",
    "MetricDoc",
    "MetricsServer",
]
