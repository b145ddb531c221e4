"""Tests of exporters/grafana (tilewatch.exporters.grafana): the generated dashboards."""
