"""Tests of aggregators/drift (tilewatch.aggregators.drift).

Baselines, drift profiles, window statistics and detectors.
"""
