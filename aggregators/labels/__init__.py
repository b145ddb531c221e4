"""Labels and performance: the label join, per-window performance sums and metrics, fairness
gaps, error-stream detectors.

May import: ``stats``, ``cells`` and ``errors`` of ``tilewatch.aggregators``.
"""
