"""Tests of aggregators/health (tilewatch.aggregators.health): the health hierarchy."""
