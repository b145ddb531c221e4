"""Tests of aggregators/ (tilewatch.aggregators): pure statistics and state, no broker."""
