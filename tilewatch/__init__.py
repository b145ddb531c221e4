"""tilewatch: a streaming model-health monitor.

Reads prediction events from Kafka, keeps per-cell statistics and drift detectors, and exposes
them to Prometheus. This package wires ``streams``, ``aggregators`` and ``exporters`` together
(configuration and command line).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
