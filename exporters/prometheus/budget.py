"""The series budget: which cells one scrape exports when there are too many leaf cells.

``[exporter] max_exported_cells`` bounds the leaf cells a scrape exports (each leaf cell is
about 17 series in the spine, about 70 with drift and labels). Roll-up cells (any dimension
``__all__``) are always exported: the overview dashboards and the alert rules read them. When
more leaf cells have events than the budget, leaf cells are taken in this order:

1. **flagged or unhealthy**: a drift flag or class shift in the reported window, an active
   drift detector, or a component status amber or red (when the health hierarchy is known);
2. then by **volume**: events in the reported window, then events since the start;
3. then by cell index (the order cells were first seen), so the choice is stable.

The leaf cells left out are counted in ``tilewatch_cells_unexported`` and stay readable in the
tile page's JSON API (``/api/cells?model=...&segment=...``), which is not budgeted.

Examples
--------
>>> import numpy as np
>>> budget = CellBudget(2)
>>> leaf = np.array([True, True, True, False])
>>> volume = np.array([5, 9, 7, 21])
>>> budget.choose(leaf, volume > 0, np.array([True, False, False, False]), volume, volume)
(array([ True,  True, False,  True]), 1)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.state.snapshot import Snapshot

__all__ = ["CellBudget"]

BoolArray = npt.NDArray[np.bool_]


class CellBudget:
    """Chooses the cells of one scrape.

    Parameters
    ----------
    max_leaf_cells
        Most leaf cells exported per scrape; ``0`` exports every cell.
    unhealthy
        Optional: a snapshot's cells whose health status is amber or red (the health
        collector's evaluation); without it only drift flags mark a cell as flagged.
    """

    def __init__(
        self,
        max_leaf_cells: int,
        unhealthy: Callable[[Snapshot], BoolArray] | None = None,
    ) -> None:
        if max_leaf_cells < 0:
            raise ValueError("max_leaf_cells must be >= 0")
        self.max_leaf_cells = max_leaf_cells
        self.unhealthy = unhealthy

    def select(
        self, snap: Snapshot, unhealthy: Callable[[], BoolArray] | None = None
    ) -> tuple[BoolArray, int]:
        """``(exported, unexported)``: a mask over the snapshot's cells (those with events that
        the budget keeps) and how many leaf cells with events it leaves out.

        ``unhealthy``: the snapshot's unhealthy cells from an evaluation the caller already
        made (instead of :attr:`unhealthy` evaluating the hierarchy again); called only when
        the budget has to choose.
        """
        present = snap.events_total > 0
        leaf = snap.is_leaf[: len(present)]
        n_leaf = int((leaf & present).sum())
        if self.max_leaf_cells == 0 or n_leaf <= self.max_leaf_cells:
            return present, 0
        flagged = self._flagged(snap, unhealthy)
        return self.choose(leaf, present, flagged, snap.window_count, snap.events_total)

    def choose(
        self,
        leaf: BoolArray,
        present: BoolArray,
        flagged: BoolArray,
        window_count: npt.NDArray[np.integer],
        events_total: npt.NDArray[np.integer],
    ) -> tuple[BoolArray, int]:
        """The mask and the count of :meth:`select` from the arrays it reads."""
        candidates = np.flatnonzero(leaf & present)
        # lexsort: the last key is the primary one; negate for descending order.
        order = np.lexsort(
            (
                candidates,
                -events_total[candidates],
                -window_count[candidates],
                -flagged[candidates].astype(np.int8),
            )
        )
        keep = candidates[order[: self.max_leaf_cells]]
        exported = present & ~leaf
        exported[keep] = True
        return exported, len(candidates) - len(keep)

    def _flagged(self, snap: Snapshot, unhealthy: Callable[[], BoolArray] | None) -> BoolArray:
        n = len(snap.events_total)
        flagged = np.zeros(n, dtype=bool)
        drift = snap.drift
        if drift is not None:
            for mask in drift.flags.values():
                flagged[: len(mask)] |= np.asarray(mask, dtype=bool)[:n]
            significant = np.asarray(drift.class_significant, dtype=bool)[:n]
            flagged[: len(significant)] |= significant
        for (cell, _detector), (_n, _when, on) in snap.detections.items():
            if on and cell < n:
                flagged[cell] = True
        bad = None
        if unhealthy is not None:
            bad = unhealthy()[:n]
        elif self.unhealthy is not None:
            bad = self.unhealthy(snap)[:n]
        if bad is not None:
            flagged[: len(bad)] |= bad
        return flagged
