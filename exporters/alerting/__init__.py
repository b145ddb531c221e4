"""Alerting generated from the config: recording and alerting rules, promtool tests,
the Alertmanager config and runbooks.

May import: ``tilewatch.aggregators`` (settings only).
"""
