"""Tests of aggregators/stats (tilewatch.aggregators.stats).

Moments, rolling windows, binning, latency, divergences and intervals.
"""
