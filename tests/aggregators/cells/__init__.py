"""Tests of aggregators/cells (tilewatch.aggregators.cells): the cell registry and roll-ups."""
