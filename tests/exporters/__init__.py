"""Tests of exporters/ (tilewatch.exporters): collectors, endpoint and the generated files."""
