"""What a partition held at its last acknowledged checkpoint: the next delta round compares with it.

Pure: no Kafka, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tilewatch.aggregators.arrays import IntArray, resized

if TYPE_CHECKING:
    from tilewatch.aggregators.state.partition import PartitionState

__all__ = ["DeltaMark", "mark_of"]


@dataclass
class DeltaMark:
    """What a partition held when a checkpoint was taken: compared with at the next one."""

    events: IntArray
    late: IntArray
    #: Counts per cell of the windows that were open (closed windows never change).
    open_counts: dict[int, IntArray] = field(default_factory=dict)
    #: Every window the checkpoint held.
    windows: frozenset[int] = frozenset()


def mark_of(state: PartitionState) -> DeltaMark:
    """The mark of what ``state`` holds now (copies): what every delta round leaves for the
    next to compare with (``partition_delta(state, mark).mark``).

    A partition restored from a delta checkpoint holds exactly what that checkpoint's units
    hold, so this mark lets the first round after a restore write only what changed since,
    naming the restored units for the rest. Take it under the state's lock.

    Examples
    --------
    >>> from tilewatch.aggregators import CellRegistry, CellSettings, PartitionState
    >>> import numpy as np
    >>> part = PartitionState(CellRegistry(CellSettings(dimensions=("segment",))))
    >>> _ = part.apply([("m", "a"), ("m", "b")], np.array([1.0, 2.0]), np.array([0.1, 0.2]))
    >>> mark = mark_of(part)
    >>> sorted(mark.events.tolist()), sorted(mark.windows) == sorted(part.open)  # a, b, roll-up
    ([1, 1, 2], True)
    """
    n = len(state.registry)
    return DeltaMark(
        resized(state.events, n),
        resized(state.late, n),
        {w: acc.sized(n)[0].copy() for w, acc in sorted(state.open.items())},
        frozenset([*state.open, *state.closed]),
    )
