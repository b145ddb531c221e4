"""The Prometheus side at run time: collectors, the metric catalog, the HTTP endpoint.

May import: ``tilewatch.aggregators``, ``prometheus_client``.
"""
