"""The labeling queue: which events to send for labeling, per window and cell, within budgets.

Pure and vectorised per batch: the selection rules (:mod:`~.reasons`), the bounded per-cell
candidate heaps of a partition and their budgeted emission when a window closes
(:mod:`~.queue`), and the settings of the ``[labeling]`` section (:mod:`~.settings`). The
streams side (``tilewatch.streams.labeling_sink``) produces what is selected to the queue topic.

May import: the basic modules (``tilewatch.aggregators.errors``, ``arrays``, ``codec``).
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
