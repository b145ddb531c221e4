"""Tests of aggregators/state (tilewatch.aggregators.state): partitions, replicas, merge."""
