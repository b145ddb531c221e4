"""Tests of exporters/alerting (tilewatch.exporters.alerting): rules, Alertmanager, runbooks."""
