"""Join predictions with their labels by event id, within an event-time TTL and a memory budget.

Labels arrive inline in the prediction event or later on an outcomes topic co-partitioned
with the predictions, so one :class:`LabelJoin` per input partition sees both sides of every
id it can join. Every id is in exactly one place:

``pending``
    a prediction waiting for its label (at most ``ttl_seconds`` of event time);
``held``
    a label whose prediction has not arrived yet (at most ``orphan_ttl_seconds``);
``recent``
    an id joined less than ``ttl_seconds`` ago (by its prediction's event time), kept so that
    a repeated prediction or label is counted as a duplicate instead of joining twice;
gone
    expired, evicted, orphaned or forgotten.

The counters reconcile at all times::

    predictions with an id = joined + expired + evicted + pending + duplicate_predictions
    labels with an id      = joined + orphaned + held + duplicate_labels

**Expiry order.** Each place keeps its entries in arrival order (``recent``: in the order they
joined) and :meth:`LabelJoin.expire` removes them from the front while the front entry's time
is before the cutoff. An entry whose time is before the cutoff but which arrived after a newer
one therefore expires when that newer one does: late by at most the disorder of its stream
(how far its time is behind the largest one that arrived before it), never lost and never
counted twice. A checkpoint keeps these orders, so a restored join expires the same entries
at the same calls as the original.

**Memory budget.** After each add, while ``pending + held > max_pending`` the oldest pending
predictions are evicted (``evicted``: they stay unlabeled), then the oldest held labels
(``orphaned``). Recently joined ids are bounded on their own by ``max_pending`` (the oldest are
forgotten: a later repeat of a forgotten id counts as a new prediction or label, which keeps
the counters reconciled), so the join never holds more than ``2 * max_pending`` ids.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.labels.class_rows import NOT_MULTICLASS, ClassRows, move_rows
from tilewatch.aggregators.labels.join_codec import COUNTERS, ParsedJoin, join_to_dict, parse_join
from tilewatch.aggregators.labels.slots import SlotRing

__all__ = ["JoinSettings", "Joined", "LabelJoin"]


#: Bytes of the int object a dict value (a slot number) costs, as pymalloc allocates it.
_INT_BYTES = 32
_SAMPLE_IDS = 64
#: Stands for "no entry" in a lookup of the shared pending/recent index.
_ABSENT = -(2**62)


@dataclass(frozen=True, slots=True)
class JoinSettings:
    """How long each side of the join waits, and how many entries it may hold.

    Parameters
    ----------
    ttl_seconds
        A prediction waits this long (on the partition's event-time clock) for its label;
        a joined id is remembered as long, to recognise duplicates.
    max_pending
        Memory budget: pending predictions plus held labels (and, separately, recently
        joined ids).
    orphan_ttl_seconds
        A label with no prediction yet is held this long.
    """

    ttl_seconds: float = 7200.0
    max_pending: int = 1_000_000
    orphan_ttl_seconds: float = 600.0

    def __post_init__(self) -> None:
        for name in ("ttl_seconds", "orphan_ttl_seconds"):
            value = getattr(self, name)
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if type(self.max_pending) is not int or self.max_pending < 1:
            raise ValueError(f"max_pending must be an integer >= 1, got {self.max_pending!r}")


@dataclass(frozen=True, slots=True, eq=False)
class Joined:
    """Prediction-label pairs matched by one call, as columns (empty when none joined).

    ``event_times`` and ``scores`` are the prediction's; ``labels`` and ``label_times`` the
    label's value and time.
    """

    leaf: IntArray
    event_times: FloatArray
    scores: FloatArray
    labels: FloatArray
    label_times: FloatArray
    #: With class columns: the predictions' class rows and the labels' class names.
    classes: ClassRows | None = None
    names: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.leaf)


def _empty() -> Joined:
    return Joined(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))


class LabelJoin:
    """Pending predictions, held labels and recently joined ids of one partition.

    Parameters
    ----------
    settings
        TTLs and the memory budget.

    Examples
    --------
    >>> j = LabelJoin(JoinSettings(ttl_seconds=60, orphan_ttl_seconds=30))
    >>> j.add_predictions(["a", "b", None], np.array([0, 1, 1]), np.array([10.0, 11.0, 12.0]),
    ...                   np.array([0.9, 0.2, 0.5])).labels.tolist()
    []
    >>> out = j.add_labels(["b", "c"], np.array([1.0, 0.0]), np.array([40.0, 41.0]))
    >>> out.leaf.tolist(), out.scores.tolist(), out.labels.tolist()
    ([1], [0.2], [1.0])
    >>> j.pending, j.held, j.missing_id
    (1, 1, 1)
    >>> j.add_predictions(["c"], np.array([0]), np.array([50.0]), np.array([0.7])).labels.tolist()
    [0.0]
    >>> j.expire(71.0)  # "a" (t=10) is now more than 60 s behind the clock
    >>> j.pending, j.expired, j.joined
    (0, 1, 2)
    """

    def __init__(self, settings: JoinSettings, class_width: int | None = None) -> None:
        self.settings = settings
        #: Columns of the class rows kept with each pending prediction (None: no multi-class
        #: model; then predictions carry no class rows and labels no class names).
        self.class_width = class_width
        wide = None if class_width is None else {"mc_probs": class_width}
        mc = () if class_width is None else ("mc_valid", "mc_predicted")
        self._pending = SlotRing(("score", *mc), leaf=True, wide=wide)
        # One dict for pending and recent ids (recent ones as -1 - slot): one lookup per id.
        self._recent = SlotRing(index=self._pending.index, negative=True)
        self._held = SlotRing(("label",), objects=("name",) if class_width is not None else ())
        #: Predictions matched with a label.
        self.joined = 0
        #: Pending predictions whose TTL passed with no label.
        self.expired = 0
        #: Pending predictions dropped by the memory budget (unlabeled).
        self.evicted = 0
        #: Held labels whose prediction never came (orphan TTL or memory budget).
        self.orphaned = 0
        #: Predictions whose id was already pending or recently joined (the first is kept).
        self.duplicate_predictions = 0
        #: Labels whose id was already held or recently joined.
        self.duplicate_labels = 0
        #: Predictions (and labels) without an event id.
        self.missing_id = 0

    @property
    def pending(self) -> int:
        """Predictions waiting for their label."""
        return self._pending.live

    @property
    def held(self) -> int:
        """Labels waiting for their prediction."""
        return self._held.live

    @property
    def recent(self) -> int:
        """Ids joined within the TTL, remembered to recognise duplicates."""
        return self._recent.live

    def add_predictions(
        self,
        event_ids: list[str | None],
        leaf: IntArray,
        event_times: FloatArray,
        scores: FloatArray,
        classes: ClassRows | None = None,
    ) -> Joined:
        """Register predictions as pending; those whose label is held join now (returned).

        A ``None`` id counts in ``missing_id``; an id already pending or recently joined (or
        repeated in the batch) counts in ``duplicate_predictions`` and the first one is kept.
        ``classes``: with class columns, each prediction's class row (None: all binary).
        """
        if not len(event_ids) == len(leaf) == len(event_times) == len(scores):
            raise ValueError("event_ids, leaf, event_times and scores differ in length")
        if self.class_width is not None and classes is None:
            classes = ClassRows.binary(len(event_ids), self.class_width)
        if not event_ids:
            return _empty()
        known, held = self._pending.index, self._held.index
        distinct = dict.fromkeys(event_ids)
        if (
            len(distinct) != len(event_ids)
            or None in distinct
            or not known.keys().isdisjoint(distinct)
        ):
            keep: list[int] = []
            seen: set[str] = set()
            for i, eid in enumerate(event_ids):
                if eid is None:
                    self.missing_id += 1
                elif eid in seen or eid in known:
                    self.duplicate_predictions += 1
                else:
                    seen.add(eid)
                    keep.append(i)
            event_ids = [event_ids[i] for i in keep]
            sel = np.array(keep, dtype=np.int64)
            leaf, event_times, scores = leaf[sel], event_times[sel], scores[sel]
            if classes is not None:
                classes = classes.take(sel)
        ids = cast(list[str], event_ids)
        out = _empty()
        if held and not held.keys().isdisjoint(ids):
            hslots = np.fromiter(map(held.get, ids, itertools.repeat(-1)), np.int64, len(ids))
            match = hslots >= 0
            pos = np.flatnonzero(match)
            hs = hslots[match]
            h = self._held
            out = Joined(
                leaf[pos],
                event_times[pos],
                scores[pos],
                h.cols["label"][hs],
                h.time[hs].copy(),
                None if classes is None else classes.take(pos),
                None if classes is None else h.cols["name"][hs].tolist(),
            )
            h.kill(hs)
            self._remember([ids[i] for i in pos.tolist()], out.event_times)
            rest = np.flatnonzero(~match)
            ids = [ids[i] for i in rest.tolist()]
            leaf, event_times, scores = leaf[rest], event_times[rest], scores[rest]
            if classes is not None:
                classes = classes.take(rest)
        if ids:
            p = self._pending
            slots = p.alloc(ids)
            p.leaf[slots] = leaf
            p.time[slots] = event_times
            p.cols["score"][slots] = scores
            if classes is not None:
                p.cols["mc_probs"][slots] = classes.probs
                p.cols["mc_valid"][slots] = classes.valid
                p.cols["mc_predicted"][slots] = classes.predicted
        self._enforce_budget()
        return out

    def add_labels(
        self,
        event_ids: list[str],
        labels: FloatArray,
        label_times: FloatArray,
        names: list[Any] | None = None,
    ) -> Joined:
        """Join labels with their pending predictions (returned); hold the others.

        A label for an id already held or recently joined (or repeated in the batch) counts
        in ``duplicate_labels``; a ``None`` id (which the decoder should not let through)
        counts in ``missing_id``. A held label waits for its prediction until the orphan TTL.
        ``names``: with class columns, each label's class name (None: not one).
        """
        if not len(event_ids) == len(labels) == len(label_times):
            raise ValueError("event_ids, labels and label_times differ in length")
        if self.class_width is not None and names is None:
            names = [None] * len(event_ids)
        if not event_ids:
            return _empty()
        distinct = dict.fromkeys(event_ids)
        if len(distinct) != len(event_ids) or None in distinct:
            keep: list[int] = []
            for i, eid in enumerate(cast(list[str | None], event_ids)):
                if eid is None:
                    self.missing_id += 1
                elif distinct.pop(eid, self) is self:  # popped at its first occurrence
                    self.duplicate_labels += 1
                else:
                    keep.append(i)
            event_ids = [event_ids[i] for i in keep]
            sel = np.array(keep, dtype=np.int64)
            labels, label_times = labels[sel], label_times[sel]
            if names is not None:
                names = [names[i] for i in keep]
        p = self._pending
        n = len(event_ids)
        found = map(p.index.get, event_ids, itertools.repeat(_ABSENT))
        pslots = np.fromiter(found, np.int64, n)
        match = pslots >= 0
        out = _empty()
        if match.any():
            pos = np.flatnonzero(match)
            js = pslots[match]
            classes, joined_names = None, None
            if names is not None:
                cols = p.cols
                classes = ClassRows(
                    cols["mc_probs"][js],
                    cols["mc_valid"][js] > 0,
                    cols["mc_predicted"][js].astype(np.int64),
                )
                joined_names = [names[i] for i in pos.tolist()]
            out = Joined(
                p.leaf[js],
                p.time[js],
                p.cols["score"][js],
                labels[pos],
                label_times[pos],
                classes,
                joined_names,
            )
            p.kill(js, forget=False)  # _remember overwrites their index entries
            self._remember([event_ids[i] for i in pos.tolist()], out.event_times)
        absent = pslots == _ABSENT
        # Labels of recently joined ids are duplicates.
        self.duplicate_labels += n - len(out) - int(absent.sum())
        if absent.any():
            held = self._held.index
            new: list[int] = []
            for i in np.flatnonzero(absent).tolist():
                eid = event_ids[i]
                if eid in held:
                    self.duplicate_labels += 1
                else:
                    new.append(i)
            if new:
                h = self._held
                slots = h.alloc([event_ids[i] for i in new])
                sel = np.array(new, dtype=np.int64)
                h.cols["label"][slots] = labels[sel]
                h.time[slots] = label_times[sel]
                if names is not None:
                    h.cols["name"][slots] = [names[i] for i in new]
        self._enforce_budget()
        return out

    def move_classes(
        self, moves: dict[str, list[int]], model_ids: IntArray, model_names: list[str]
    ) -> None:
        """Move pending class rows to the columns of another table (a restore's), by model."""
        p, s = self._pending, self._pending.order()
        if self.class_width is not None and len(s):
            models = [model_names[i] for i in model_ids[p.leaf[s]].tolist()]
            move_rows(p.cols["mc_probs"], p.cols["mc_predicted"], s, models, moves)

    def _remember(self, ids: list[str], event_times: FloatArray) -> None:
        self.joined += len(ids)
        slots = self._recent.alloc(ids)
        self._recent.time[slots] = event_times

    def _enforce_budget(self) -> None:
        budget = self.settings.max_pending
        over = self.pending + self.held - budget
        if over > 0:
            evict = min(over, self.pending)
            self.evicted += self._pending.pop_live(evict)
            if over > evict:
                self.orphaned += self._held.pop_live(over - evict)
        if self.recent > budget:
            self._recent.pop_live(self.recent - budget)
        for ring in (self._pending, self._recent, self._held):
            ring.compact()

    def expire(self, clock: float) -> None:
        """Expire what the event-time ``clock`` (largest prediction event time) has passed.

        Pending predictions with event time ``< clock - ttl`` are ``expired``; held labels with
        label time ``< clock - orphan_ttl`` are ``orphaned``; recently joined ids with event
        time ``< clock - ttl`` are forgotten (see the module notes on expiry order).
        """
        cut = clock - self.settings.ttl_seconds
        self.expired += self._pending.pop(self._pending.front(cut))
        self._recent.pop(self._recent.front(cut))
        held_cut = clock - self.settings.orphan_ttl_seconds
        self.orphaned += self._held.pop(self._held.front(held_cut))

    def nbytes(self) -> int:
        """Estimated bytes held: numpy columns, dicts, slot ints and the id strings.

        The id strings are sized on a sample of up to 64 ids per place.
        """
        total = sys.getsizeof(self)
        total += sum(ring.nbytes() for ring in (self._pending, self._recent, self._held))
        for index in (self._pending.index, self._held.index):  # the first one has recent ids too
            n = len(index)
            sample = list(itertools.islice(index, _SAMPLE_IDS))
            per_id = sum(map(sys.getsizeof, sample)) / len(sample) if sample else 0.0
            total += sys.getsizeof(index) + n * _INT_BYTES + round(n * per_id)
        return total

    # -- checkpoints -------------------------------------------------------------------------

    def to_dict(self, keys: list[tuple[str, ...]]) -> dict[str, Any]:
        """Plain JSON data for a checkpoint: counters and every entry in arrival order
        (:func:`~tilewatch.aggregators.labels.join_codec.join_to_dict`)."""
        counters = {name: getattr(self, name) for name in COUNTERS}
        multiclass = self.class_width is not None
        return join_to_dict(counters, self._pending, self._recent, self._held, keys, multiclass)

    @staticmethod
    def parse(data: Any, key_len: int, class_width: int | None = None) -> ParsedJoin:
        """Check a :meth:`to_dict` checkpoint completely; raises StateError naming the place."""
        return parse_join(data, key_len, class_width)

    @classmethod
    def from_parsed(
        cls,
        settings: JoinSettings,
        parsed: ParsedJoin,
        index: Callable[[tuple[str, ...]], int],
    ) -> LabelJoin:
        """Rebuild a join from a parsed checkpoint; ``index`` maps a cell key to its leaf."""
        out = cls(settings, parsed.class_width)
        for name in COUNTERS:
            setattr(out, name, parsed.counters[name])
        leaf_of: dict[tuple[str, ...], int] = {}
        for key in parsed.pending_keys:
            if key not in leaf_of:
                leaf_of[key] = index(key)
        p, r, h = out._pending, out._recent, out._held
        slots = p.alloc(parsed.pending_ids)
        p.time[slots] = parsed.pending_times
        p.leaf[slots] = [leaf_of[k] for k in parsed.pending_keys]
        p.cols["score"][slots] = parsed.pending_scores
        if parsed.class_width is not None:  # without class columns: binary predictions
            got = parsed.pending_predicted
            p.cols["mc_predicted"][slots] = NOT_MULTICLASS if got is None else got
            if parsed.pending_probs is not None:
                p.cols["mc_probs"][slots] = parsed.pending_probs
                p.cols["mc_valid"][slots] = parsed.pending_valid
        slots = r.alloc(parsed.recent_ids)
        r.time[slots] = parsed.recent_times
        slots = h.alloc(parsed.held_ids)
        h.cols["label"][slots] = parsed.held_labels
        h.time[slots] = parsed.held_times
        if parsed.class_width is not None:
            h.cols["name"][slots] = parsed.held_names or [None] * len(slots)
        return out
