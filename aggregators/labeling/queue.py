"""The labeling queue of one partition: bounded per-cell candidates per window, budgeted emission.

For every open event-time window and every reason, each leaf cell keeps at most
:attr:`LabelingSettings.cell_capacity` candidates, the best by (priority, then the smaller
offset). A batch is offered as columns: candidates at or below their cell's cutoff (the worst
priority kept when the cell was last full: a later offset cannot beat it) are dropped at once,
the rest appended, and the window's table is compacted back to ``capacity`` per cell when it
has doubled, so memory stays within about twice ``open windows x reasons x cells with
candidates x capacity`` records (each holding the event's bytes) plus one batch, and the cost
per event is amortised ``O(log n)``.

When the partition's watermark passes a window's end, :meth:`LabelingQueue.close` spends the
window's budget (:meth:`LabelingSettings.reason_budgets` of its valid events, split over the
reasons); each cell gets at most its quota (larger for cells amber or red in some health
component), then the best candidates over all cells fill the reason's budget. Because ranks
and ties depend only on the events of the window, the selection does not depend on how the
records were cut into batches; an event can be selected under two reasons (two records).

Late events (whose window had closed when they arrived) are never candidates, like everywhere
else in the partition state. The queue's candidates, window counts and selection counters are
checkpointed with the partition (:meth:`to_dict`, :meth:`from_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray, grow
from tilewatch.aggregators.labeling.queue_codec import parse_queue, queue_to_dict
from tilewatch.aggregators.labeling.reasons import Signals, priorities
from tilewatch.aggregators.labeling.settings import REASONS, LabelingSettings

__all__ = ["LabelingQueue", "Payload", "Selected", "late_mask", "top_per_cell"]

#: An event's Kafka key and value, as read.
Payload = tuple[bytes | None, bytes | None]
#: Health status of leaf cells (-1 none, 0 green, 1 amber, 2 red), by leaf index.
StatusOf = Callable[[IntArray], IntArray]


@dataclass(frozen=True, slots=True)
class Selected:
    """One queue record: which event, why, and what the monitor knew about it."""

    cell: int
    reason: str
    window: int
    offset: int
    priority: float
    score: float
    threshold: float
    status: int
    key: bytes | None
    value: bytes | None


def late_mask(
    event_times: FloatArray, max_event_time: float, window_seconds: float, grace_seconds: float
) -> Any:
    """Events whose window had closed when they arrived (the partition's own rule)."""
    window = np.floor(event_times / window_seconds)
    seen = np.maximum.accumulate(np.r_[max_event_time, event_times])[:-1]
    return (window + 1) * window_seconds <= seen - grace_seconds


def top_per_cell(cell: IntArray, prio: FloatArray, offset: IntArray, quota: Any) -> IntArray:
    """Indices of the best ``quota`` rows of each cell (priority descending, then offset).

    ``quota`` is a number or a function of the cells (sorted) giving each row's cell quota.

    Examples
    --------
    >>> top_per_cell(np.array([1, 1, 1, 2]), np.array([0.1, 0.9, 0.9, 0.5]),
    ...              np.array([10, 12, 11, 13]), 2).tolist()
    [2, 1, 3]
    """
    order = np.lexsort((offset, -prio, cell))
    c = cell[order]
    n = len(c)
    start = np.r_[True, c[1:] != c[:-1]] if n else np.zeros(0, dtype=bool)
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0)) if n else start.astype(int)
    rank = np.arange(n) - first
    limit = quota(c) if callable(quota) else quota
    out: IntArray = order[rank < limit]
    return out


class _Table:
    """Candidates of one (window, reason): columns plus the events' bytes."""

    __slots__ = ("cell", "cutoff", "kept", "offset", "payload", "prio", "score", "threshold")

    def __init__(self) -> None:
        self.cell = np.zeros(0, dtype=np.int64)
        self.prio = np.zeros(0)
        self.offset = np.zeros(0, dtype=np.int64)
        self.score = np.zeros(0)
        self.threshold = np.zeros(0)
        self.payload: list[Payload] = []
        self.kept = 0
        #: Per cell, the worst priority kept at the last compaction when the cell was full
        #: (-inf: not full): a later event (larger offset) at or below it cannot enter.
        self.cutoff = np.zeros(0)

    def __len__(self) -> int:
        return len(self.cell)

    def append(self, cols: tuple[Any, ...], payload: Sequence[Payload], capacity: int) -> None:
        """Add candidates (in offset order, after those held) and compact when doubled."""
        cell, prio, offset, score, threshold = cols
        cutoff = self.cutoff
        if len(cutoff):
            known = cell < len(cutoff)
            keep = ~known
            keep[known] = prio[known] > cutoff[cell[known]]
            if not keep.all():
                at = np.flatnonzero(keep)
                cell, prio, offset, score, threshold = (
                    c[at] for c in (cell, prio, offset, score, threshold)
                )
                payload = [payload[i] for i in at.tolist()]
        self.cell = np.concatenate((self.cell, cell))
        self.prio = np.concatenate((self.prio, prio))
        self.offset = np.concatenate((self.offset, offset))
        self.score = np.concatenate((self.score, score))
        self.threshold = np.concatenate((self.threshold, threshold))
        self.payload.extend(payload)
        if len(self) > max(2 * self.kept, 256):
            self.compact(capacity)

    def compact(self, capacity: int) -> None:
        """Keep the best ``capacity`` per cell; note the cutoff of each full cell."""
        idx = top_per_cell(self.cell, self.prio, self.offset, capacity)
        self.cell, self.prio, self.offset = self.cell[idx], self.prio[idx], self.offset[idx]
        self.score, self.threshold = self.score[idx], self.threshold[idx]
        payload = self.payload
        self.payload = [payload[i] for i in idx.tolist()]
        self.kept = len(self.cell)
        n = int(self.cell.max()) + 1 if self.kept else 0
        full = np.bincount(self.cell, minlength=n) >= capacity
        cutoff = np.full(n, np.inf)
        np.minimum.at(cutoff, self.cell, self.prio)
        self.cutoff = np.where(full, cutoff, -np.inf)


class LabelingQueue:
    """The labeling candidates and counters of one partition (see the module).

    Examples
    --------
    >>> from tilewatch.aggregators.labeling.reasons import binary_signals
    >>> q = LabelingQueue(LabelingSettings(reasons=("least_confident",), rate=1.0,
    ...                   max_per_window=2, cell_share=1.0, flagged_cell_share=1.0), 60.0, 0.0)
    >>> scores = np.array([0.1, 0.49, 0.8, 0.55])
    >>> sig = binary_signals(scores, np.full(4, 0.5), None, 0.05)
    >>> q.offer(np.array([0, 0, 1, 1]), np.array([1.0, 2.0, 3.0, 4.0]), np.arange(4), sig,
    ...         [(None, b"e%d" % i) for i in range(4)], max_event_time=-math.inf)
    >>> [(s.offset, s.reason, s.value) for s in q.close(watermark=60.0)]
    [(1, 'least_confident', b'e1'), (3, 'least_confident', b'e3')]
    """

    def __init__(
        self, settings: LabelingSettings, window_seconds: float, grace_seconds: float
    ) -> None:
        self.settings = settings
        self.window_seconds = window_seconds
        self.grace_seconds = grace_seconds
        #: Open windows: valid events seen, and the candidates of each reason.
        self.events: dict[int, int] = {}
        self.tables: dict[int, dict[str, _Table]] = {}
        #: Records selected per (leaf cell, reason index of :data:`REASONS`), cumulative.
        self.selected = np.zeros((0, len(REASONS)), dtype=np.int64)
        #: Events not judged because their model has no decision threshold.
        self.no_threshold = 0

    def offer(
        self,
        leaf: IntArray,
        event_times: FloatArray,
        offsets: IntArray,
        signals: Signals,
        payloads: Sequence[Payload],
        max_event_time: float,
    ) -> None:
        """Offer a batch of valid events in partition order; ``max_event_time`` is the
        partition's before the batch (late events are dropped here, as in the partition)."""
        if not len(leaf):
            return
        ok = ~late_mask(event_times, max_event_time, self.window_seconds, self.grace_seconds)
        self.no_threshold += int((ok & np.isnan(signals.threshold)).sum())
        window = np.floor(event_times / self.window_seconds).astype(np.int64)
        capacity = self.settings.cell_capacity
        for w in np.unique(window[ok]).tolist():
            in_w = ok & (window == w)
            self.events[w] = self.events.get(w, 0) + int(in_w.sum())
            tables = self.tables.setdefault(w, {})
            if in_w.all():
                at, sig, w_leaf, w_offsets = None, signals, leaf, offsets
            else:
                at = np.flatnonzero(in_w)
                sig = Signals(*(getattr(signals, f)[at] for f in Signals.__slots__))
                w_leaf, w_offsets = leaf[at], offsets[at]
            for reason in self.settings.reasons:
                prio = priorities(reason, sig, w_offsets, self.settings)
                cand = np.flatnonzero(~np.isnan(prio))
                if not len(cand):
                    continue
                rows = cand if at is None else at[cand]
                table = tables.setdefault(reason, _Table())
                table.append(
                    (
                        w_leaf[cand],
                        prio[cand],
                        w_offsets[cand],
                        sig.score[cand],
                        sig.threshold[cand],
                    ),
                    [payloads[i] for i in rows.tolist()],
                    capacity,
                )

    def close(self, watermark: float, status_of: StatusOf | None = None) -> list[Selected]:
        """Select from every window whose end the watermark reached; forget those windows."""
        out: list[Selected] = []
        for w in sorted(self.events):
            if (w + 1) * self.window_seconds > watermark:
                continue
            events = self.events.pop(w)
            tables = self.tables.pop(w, {})
            budgets = self.settings.reason_budgets(events)
            for reason, budget in zip(self.settings.reasons, budgets, strict=True):
                table = tables.get(reason)
                if table is None or budget <= 0:
                    continue
                out.extend(self._select(w, reason, table, budget, status_of))
        return out

    def _select(
        self, w: int, reason: str, t: _Table, budget: int, status_of: StatusOf | None
    ) -> list[Selected]:
        cells = np.unique(t.cell)
        status = np.full(len(cells), -1, dtype=np.int64) if status_of is None else status_of(cells)
        flagged = status >= 1
        quotas = np.array(
            [self.settings.cell_quota(budget, bool(f)) for f in flagged.tolist()], dtype=np.int64
        )

        def quota(sorted_cells: IntArray) -> IntArray:
            return quotas[np.searchsorted(cells, sorted_cells)]

        idx = top_per_cell(t.cell, t.prio, t.offset, quota)
        if len(idx) > budget:
            idx = idx[np.lexsort((t.offset[idx], -t.prio[idx]))[:budget]]
        idx = idx[np.argsort(t.offset[idx], kind="stable")]
        r = REASONS.index(reason)
        self.selected = grow(self.selected, int(t.cell.max()) + 1 if len(t) else 0)
        np.add.at(self.selected[:, r], t.cell[idx], 1)
        cell_status = status[np.searchsorted(cells, t.cell[idx])]
        return [
            Selected(c, reason, w, o, p, s, th, st, *t.payload[i])
            for i, c, o, p, s, th, st in zip(
                idx.tolist(),
                t.cell[idx].tolist(),
                t.offset[idx].tolist(),
                t.prio[idx].tolist(),
                t.score[idx].tolist(),
                t.threshold[idx].tolist(),
                cell_status.tolist(),
                strict=True,
            )
        ]

    def candidates(self) -> int:
        """Candidates held (each with its event's bytes)."""
        return sum(len(t) for tables in self.tables.values() for t in tables.values())

    # -- checkpoints -------------------------------------------------------------------------

    def to_dict(self, keys: Sequence[tuple[str, ...]]) -> dict[str, Any]:
        """Plain data (:func:`~tilewatch.aggregators.labeling.queue_codec.queue_to_dict`)."""
        return queue_to_dict(self, keys)

    @classmethod
    def restore(cls, data: Any, settings: LabelingSettings | None, registry: Any) -> Any:
        """The queue of a partition of ``registry`` (a ``CellRegistry``): from checkpoint
        ``data`` (None: empty), or None when ``settings`` is None (no queue)."""
        if settings is None:
            return None
        cells = registry.settings
        if data is None:
            return cls(settings, cells.window_seconds, cells.grace_seconds)
        return cls.from_dict(
            data,
            settings,
            cells.window_seconds,
            cells.grace_seconds,
            registry.ndims + 1,
            registry.ensure,
        )

    @classmethod
    def from_dict(
        cls,
        data: Any,
        settings: LabelingSettings,
        window_seconds: float,
        grace_seconds: float,
        key_len: int,
        ensure: Callable[[tuple[str, ...]], int],
    ) -> LabelingQueue:
        """Rebuild from :meth:`to_dict`; everything is checked before ``ensure`` adds cells.

        Candidates of reasons no longer configured are dropped; the caps of the settings apply
        at the next compaction and at selection.
        """
        parsed_queue = parse_queue(data, key_len)
        out = cls(settings, window_seconds, grace_seconds)
        out.no_threshold = parsed_queue.no_threshold
        for w, n, parsed in parsed_queue.windows:
            out.events[w] = n
            for reason, rows in parsed.items():
                if reason not in settings.reasons or not rows:
                    continue
                t = out.tables.setdefault(w, {}).setdefault(reason, _Table())
                t.append(
                    (
                        np.array([ensure(r[0]) for r in rows], dtype=np.int64),
                        np.array([r[1] for r in rows]),
                        np.array([r[2] for r in rows], dtype=np.int64),
                        np.array([r[3] for r in rows]),
                        np.array([math.nan if r[4] is None else r[4] for r in rows]),
                    ),
                    [(r[5], r[6]) for r in rows],
                    settings.cell_capacity,
                )
        for key, reason, count in parsed_queue.selected:
            c = ensure(key)
            out.selected = grow(out.selected, c + 1)
            out.selected[c, REASONS.index(reason)] += count
        return out
