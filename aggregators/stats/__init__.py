"""Online statistics with no notion of cells: moments, rolling windows, binning, latency
histograms, divergences, tests and intervals, threshold choice.

May import: numpy, scipy, river; within tilewatch only ``tilewatch.aggregators.errors``.
"""
