"""Entries keyed by an id, stored in numpy slot columns and kept in arrival order.

The storage behind :class:`tilewatch.aggregators.labels.join.LabelJoin`. Each entry has a slot: a
row of the ring's float columns (``time`` and any others it was built with), a ``dead`` flag and its
id (an object array, for removing it from :attr:`SlotRing.index`). Slots are recycled through a free
stack, so an entry costs no Python object besides its id string, its dict entry and its slot number.

Arrival order is a ring of slot numbers (``ring[head:tail]``). Entries leave it in two ways:

* from the front (:meth:`SlotRing.front`, :meth:`SlotRing.pop`, :meth:`SlotRing.pop_live`),
  oldest first;
* from the middle (:meth:`SlotRing.kill`): the id leaves the index at once and the entry is
  flagged dead; its slot is recycled when the front reaches it, or by
  :meth:`SlotRing.compact` once dead entries outnumber live ones, so every entry costs
  amortized O(1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import IntArray, grow, resized

__all__ = ["SlotRing"]


_MIN_CAPACITY = 1024
_FIRST_STEP = 64


class SlotRing:
    """Id-keyed entries in slot columns, in arrival order, with a free list.

    Parameters
    ----------
    columns
        Names of the float64 columns besides ``time``.
    wide, objects
        Further columns in :attr:`cols`: float64 ones of ``wide[name]`` values per entry (a
        row each), and object ones (any Python value per entry).
    leaf
        Whether entries also carry an int64 ``leaf`` column.
    index, negative
        Share ``index`` with another ring: this ring stores ``-1 - slot`` for its entries
        when ``negative``, so one lookup tells which ring an id is in.

    Examples
    --------
    >>> r = SlotRing()
    >>> slots = r.alloc(["a", "b", "c"])
    >>> r.time[slots] = [5.0, 1.0, 9.0]
    >>> r.front(6.0)  # the first live entry at or after the cutoff stops the scan
    2
    >>> r.pop(2)
    2
    >>> r.kill(np.array([r.index["c"]]))
    >>> sorted(r.index), r.live, r.pop_live(1)
    ([], 0, 0)
    """

    def __init__(
        self,
        columns: tuple[str, ...] = (),
        leaf: bool = False,
        index: dict[str, int] | None = None,
        negative: bool = False,
        wide: dict[str, int] | None = None,
        objects: tuple[str, ...] = (),
    ) -> None:
        #: id -> slot (or ``-1 - slot`` when ``negative``) of every live entry.
        self.index: dict[str, int] = {} if index is None else index
        self._negative = negative
        self.time = np.zeros(0)
        #: Further float columns by name.
        self.cols: dict[str, npt.NDArray[Any]] = {name: np.zeros(0) for name in columns}
        self.cols.update({name: np.zeros((0, k)) for name, k in (wide or {}).items()})
        self.cols.update({name: np.zeros(0, dtype=object) for name in objects})
        self.leaf = np.zeros(0, dtype=np.int64)
        self._with_leaf = leaf
        self.dead = np.zeros(0, dtype=bool)
        self.ids = np.zeros(0, dtype=object)
        self.ring = np.zeros(_MIN_CAPACITY, dtype=np.int64)
        self.head = 0
        self.tail = 0
        self._free = np.zeros(0, dtype=np.int64)
        self._nfree = 0
        #: Dead entries still in the ring.
        self.ndead = 0

    @property
    def live(self) -> int:
        """Entries in the ring that are not dead."""
        return self.tail - self.head - self.ndead

    def _grow(self, need: int) -> None:
        old = len(self.dead)
        self.dead = grow(self.dead, old + need, minimum=_MIN_CAPACITY)
        cap = len(self.dead)
        self.time = resized(self.time, cap)
        self.cols = {name: resized(col, (cap, *col.shape[1:])) for name, col in self.cols.items()}
        if self._with_leaf:
            self.leaf = resized(self.leaf, cap)
        self.ids = resized(self.ids, cap)
        free = resized(self._free[: self._nfree], cap)
        # Lowest new slots on top of the stack, so they are used first.
        free[self._nfree : self._nfree + cap - old] = np.arange(cap - 1, old - 1, -1)
        self._free = free
        self._nfree += cap - old

    def alloc(self, ids: list[str]) -> IntArray:
        """Slots for new entries ``ids`` (distinct, absent from the index), appended in order.

        The index maps each id to its slot; the caller fills the columns.
        """
        k = len(ids)
        if self._nfree < k:
            self._grow(k - self._nfree)
        slots = self._free[self._nfree - k : self._nfree][::-1].copy()
        self._nfree -= k
        if self.tail + k > len(self.ring):
            self._make_room(k)
        self.ring[self.tail : self.tail + k] = slots
        self.tail += k
        self.ids[slots] = ids
        codes = -1 - slots if self._negative else slots
        self.index.update(zip(ids, codes.tolist(), strict=True))
        return slots

    def _make_room(self, k: int) -> None:
        n = self.tail - self.head
        if n + k <= len(self.ring) // 2:
            self.ring[:n] = self.ring[self.head : self.tail]
        else:
            live = self.ring[self.head : self.tail]
            self.ring = resized(live, max(2 * len(self.ring), 2 * (n + k)))
        self.head, self.tail = 0, n

    def front(self, cutoff: float) -> int:
        """How many entries at the front precede the first live one with ``time >= cutoff``."""
        pos, step = self.head, _FIRST_STEP
        while pos < self.tail:
            end = min(self.tail, pos + step)
            s = self.ring[pos:end]
            stop = ~self.dead[s] & (self.time[s] >= cutoff)
            if stop.any():
                return pos + int(stop.argmax()) - self.head
            pos, step = end, 2 * step
        return self.tail - self.head

    def pop(self, k: int) -> int:
        """Remove the ``k`` oldest entries (ids leave the index); how many were live."""
        s = self.ring[self.head : self.head + k]
        self.head += k
        dead = self.dead[s]
        n_dead = int(dead.sum())
        self.ndead -= n_dead
        live = s[~dead] if n_dead else s
        self._forget(live)
        self._release(s)
        return len(live)

    def pop_live(self, k: int) -> int:
        """Remove the oldest entries up to and including the ``k``-th live one; live removed."""
        pos, step, need = self.head, _FIRST_STEP, k
        while need > 0 and pos < self.tail:
            end = min(self.tail, pos + step)
            alive = np.cumsum(~self.dead[self.ring[pos:end]])
            if len(alive) and alive[-1] >= need:
                end = pos + int(np.searchsorted(alive, need)) + 1
                need = 0
            else:
                need -= int(alive[-1]) if len(alive) else 0
            pos, step = end, 2 * step
        return self.pop(pos - self.head)

    def kill(self, slots: IntArray, forget: bool = True) -> None:
        """Remove live entries wherever they are (slots recycled later).

        Their ids leave the index, unless ``forget`` is false: then the caller overwrites
        them at once (an entry moving to a ring that shares the index).
        """
        self.dead[slots] = True
        self.ndead += len(slots)
        if forget:
            self._forget(slots)

    def compact(self) -> None:
        """Recycle dead entries now if they outnumber the live ones (amortized O(1))."""
        if self.ndead <= max(_MIN_CAPACITY, self.live):
            return
        s = self.ring[self.head : self.tail]
        dead = self.dead[s]
        self._release(s[dead])
        keep = s[~dead]
        self.ring[: len(keep)] = keep
        self.head, self.tail, self.ndead = 0, len(keep), 0

    def order(self) -> IntArray:
        """Slots of the live entries, oldest first."""
        s = self.ring[self.head : self.tail]
        return s[~self.dead[s]]

    def _forget(self, slots: IntArray) -> None:
        index = self.index
        for eid in self.ids[slots].tolist():
            del index[eid]

    def _release(self, slots: IntArray) -> None:
        k = len(slots)
        self.dead[slots] = False
        self.ids[slots] = None
        self._free[self._nfree : self._nfree + k] = slots
        self._nfree += k

    def nbytes(self) -> int:
        """Bytes of the numpy columns, ring and free stack (not the index or the id strings)."""
        arrays: list[npt.NDArray[Any]] = [
            self.time,
            *self.cols.values(),
            self.leaf,
            self.dead,
            self.ids,
            self.ring,
            self._free,
        ]
        return sum(a.nbytes for a in arrays)
