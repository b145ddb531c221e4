"""Cells: the settings of the cell table, and the registry of cell keys, roll-ups and overflow.

May import: ``tilewatch.aggregators.stats`` and ``tilewatch.aggregators.errors``.
"""
