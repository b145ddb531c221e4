"""Grafana dashboards generated from the config.

May import: ``tilewatch.aggregators`` (settings only).
"""
