"""Online statistics with no notion of cells: moments, rolling windows, binning, latency
histograms, divergences, confidence intervals, decisions across a grid (small-sample gate,
Benjamini-Hochberg), threshold choice, and the log of detector findings.

May import: numpy, scipy, river; within tilewatch only the basic modules
(``tilewatch.aggregators.errors``, ``arrays``, ``codec``).
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
