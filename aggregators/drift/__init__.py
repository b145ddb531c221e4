"""Drift and data quality: references (baselines) and their column summaries, the compiled drift
profile, window statistics against the reference, river detectors on scores.

May import: the basic modules (``tilewatch.aggregators.errors``, ``arrays``, ``codec``),
``tilewatch.aggregators.stats`` and ``tilewatch.aggregators.cells``.
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
