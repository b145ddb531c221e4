"""Tests of aggregators/labels (tilewatch.aggregators.labels).

The label join, performance sums, fairness and error detectors.
"""
