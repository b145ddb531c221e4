"""Tests of exporters/prometheus (tilewatch.exporters.prometheus): collectors and endpoint."""
