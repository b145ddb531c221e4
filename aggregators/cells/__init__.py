"""Cells: the settings of the cell table, the registry of cell keys, roll-ups and overflow, and
the event-time windows of cells (numbering, retention).

May import: the basic modules (``tilewatch.aggregators.errors``, ``arrays``, ``codec``) and
``tilewatch.aggregators.stats``.
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
