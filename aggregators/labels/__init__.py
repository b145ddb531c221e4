"""Labels and performance: the settings of the label side, the label join, per-window performance
sums and metrics, the label side of a partition and its checkpoint codec, the merged view,
fairness gaps, error-stream detectors.

May import: the basic modules (``tilewatch.aggregators.errors``, ``arrays``, ``codec``),
``tilewatch.aggregators.stats`` and ``tilewatch.aggregators.cells`` (not ``drift``).
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
