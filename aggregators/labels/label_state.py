"""Labels of one input partition: the join, per-window performance sums, cumulative counters.

Labels come inline (in the prediction event) or on an outcomes topic co-partitioned with the
predictions topic (partition ``p`` of both belongs to the same consumer, see
``docs/performance.md``), so each partition's predictions meet their labels here.

A label is credited to the cell and event-time window of its prediction while that window is
not *final*: a window becomes final when the partition's watermark passes its end plus the
label grace (``[labels] grace``). After that the label still updates the cumulative per-cell
counters (``labeled_total``, ``errors_total``) and is counted in ``late``. Every prediction adds
its probability of being right to its window (the label-free estimate), labeled or not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray, grow
from tilewatch.aggregators.cells.classes import class_name
from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.cells.windows import models_in, retained, window_numbers
from tilewatch.aggregators.labels.class_rows import NOT_MULTICLASS, ClassRows
from tilewatch.aggregators.labels.error_detectors import ErrorDetectors
from tilewatch.aggregators.labels.join import Joined, LabelJoin
from tilewatch.aggregators.labels.label_state_codec import labels_to_dict, parse_labels
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.labels.sums import PerfAcc, correct_probability

__all__ = ["RETAIN_FINAL", "PartitionLabels", "label_values"]


#: Final performance windows a partition keeps besides each model's latest one.
RETAIN_FINAL = 4


def label_values(raw: list[Any], classification: bool) -> tuple[FloatArray, int]:
    """Labels as floats (NaN: no label) from raw JSON values, and how many were invalid.

    Classification labels are ``true``/``false`` or the numbers 0 and 1; regression labels are
    finite numbers. ``None`` means "no label yet" and is not invalid.

    Examples
    --------
    >>> values, bad = label_values([1, 0, True, None, 2, "1", 0.0], classification=True)
    >>> values.tolist(), bad
    ([1.0, 0.0, 1.0, nan, nan, nan, 0.0], 2)
    """
    if raw and set(map(type, raw)) == {float}:  # what LabelDecoder gives: check vectorized
        out = np.array(raw, dtype=np.float64)
        ok = ((out == 0.0) | (out == 1.0)) if classification else np.isfinite(out)
        bad = len(out) - int(ok.sum())
        if bad:
            out[~ok] = math.nan
        return out, bad
    out = np.full(len(raw), math.nan)
    bad = 0
    for i, v in enumerate(raw):
        if v is None:
            continue
        t = type(v)
        if t is bool:
            if classification:
                out[i] = float(v)
            else:
                bad += 1
        elif t is int or t is float:
            if classification:
                if v == 0 or v == 1:
                    out[i] = float(v)
                else:
                    bad += 1
            elif v - v == 0:
                out[i] = float(v)
            else:
                bad += 1
        else:
            bad += 1
    return out, bad


def _take(joined: Joined, pos: IntArray, names: list[Any] | None = None) -> Joined:
    """Rows ``pos`` of a join result (the class rows too when ``names`` are given)."""
    return Joined(
        joined.leaf[pos],
        joined.event_times[pos],
        joined.scores[pos],
        joined.labels[pos],
        joined.label_times[pos],
        None if names is None or joined.classes is None else joined.classes.take(pos),
        names,
    )


class PartitionLabels:
    """The label side of one partition.

    Parameters
    ----------
    settings
        The ``[labels]`` settings.
    registry
        The replica's cell registry (roll-up expansion, model ids).
    window_seconds
        The cell windows' size.
    thresholds
        Decision threshold of each given leaf cell's model (classification).
    """

    def __init__(
        self,
        settings: LabelSettings,
        registry: CellRegistry,
        window_seconds: float,
        thresholds: Callable[[IntArray], FloatArray],
        class_width: int | None = None,
    ) -> None:
        self.settings = settings
        self.thresholds_of = thresholds
        self.registry = registry
        self.size = window_seconds
        #: Performance sums by window number; ``final`` holds the ones no label can change.
        self.perf: dict[int, PerfAcc] = {}
        self.final: dict[int, PerfAcc] = {}
        #: Class columns of multi-class models (None: none): the join then keeps each
        #: multi-class prediction's class row and each label's class name.
        self.class_width = class_width
        self.join = LabelJoin(settings.join, class_width) if settings.source == "topic" else None
        #: Multi-class predictions joined with their labels from the outcomes topic, waiting
        #: for the partition to credit them to its windows' class histograms
        #: (:meth:`take_class_labels`).
        self.class_joined: list[Joined] = []
        self.detectors = (
            ErrorDetectors(settings.error_detector)
            if settings.error_detector is not None and settings.classification
            else None
        )
        self.labeled_total = np.zeros(0, dtype=np.int64)
        self.errors_total = np.zeros(0, dtype=np.int64)
        #: Labels credited only to the cumulative counters (their window was final).
        self.late = 0
        #: Labels with an invalid value, by reason.
        self.invalid: dict[str, int] = {}
        #: Next offset to read on the outcomes topic's partition (topic source).
        self.offset: int | None = None
        #: Largest label time read from the outcomes topic (the label stream's clock; not
        #: checkpointed: it only paces reading, see tilewatch.streams.pacing).
        self.max_label_time = -math.inf
        #: Final windows kept besides each model's latest (a trailing error reference needs
        #: its span; set by the replica). They are checkpointed with the partition.
        self.retain_final = RETAIN_FINAL
        #: The newest final window (windows finalize in order; -2**62: none yet).
        self.final_upto = -(2**62)
        #: Incremented on every change, so snapshots know when to recompute.
        self.version = 0
        #: Each final window's checkpoint rows as ``labels_to_dict``'s ``freeze`` made them.
        self.final_json: dict[int, tuple[PerfAcc, Any]] = {}

    # -- input -------------------------------------------------------------------------------

    def predictions(
        self,
        leaf: IntArray,
        windows: IntArray,
        event_times: FloatArray,
        scores: FloatArray,
        event_ids: list[Any] | None = None,
        labels: list[Any] | None = None,
        classes: ClassRows | None = None,
    ) -> None:
        """Add a batch of on-time predictions: the estimate, the join or inline labels.

        A label that meets its prediction here (inline, or held until the prediction came) is
        never late: the prediction's window is still open. ``classes``: each prediction's
        class row, for the join (multi-class models).
        """
        if not len(leaf):
            return
        self.version += 1
        rollups = self.registry.rollups
        n_cells = len(self.registry)
        thresholds = self.thresholds_of(leaf)
        if self.settings.classification:
            known = ~np.isnan(thresholds)
            q = correct_probability(scores, scores >= thresholds)
            cells = rollups[leaf]
            k = cells.shape[1]
            for w in np.unique(windows[known]).tolist():
                sel = known & (windows == w)
                acc = self._window(w)
                acc.add_predictions(cells[sel].ravel(), np.repeat(q[sel], k), n_cells)
        if labels is not None:
            values, bad = label_values(labels, self.settings.classification)
            if bad:
                self.invalid["bad_label"] = self.invalid.get("bad_label", 0) + bad
            has = ~np.isnan(values)
            if has.any():
                self._credit(
                    leaf[has],
                    event_times[has],
                    scores[has],
                    values[has],
                    thresholds[has],
                    event_times[has],  # an inline label is known when its prediction is
                )
        if self.join is not None and event_ids is not None:
            ids = [
                str(e) if type(e) is int else (e if type(e) is str and e else None)
                for e in event_ids
            ]
            joined = self.join.add_predictions(ids, leaf, event_times, scores, classes)
            self._credit_joined(joined)

    def labels(
        self,
        event_ids: list[str],
        labels: list[Any],
        label_times: FloatArray,
        next_offset: int,
    ) -> None:
        """Add a batch of label records from the outcomes topic (already decoded)."""
        self.version += 1
        self.offset = next_offset
        if len(label_times):
            self.max_label_time = max(self.max_label_time, float(label_times.max()))
        if self.join is None or not event_ids:
            return
        values, bad = label_values(labels, self.settings.classification)
        names = None
        if self.class_width is not None:
            # A label may name a class (of a multi-class prediction): kept when it is a
            # binary value or a class name; which one counts is known at the join.
            names = [class_name(x) for x in labels]
            has_name = np.array([n is not None for n in names], dtype=np.bool_)
            bad = int((np.isnan(values) & ~has_name).sum()) - labels.count(None)
            ok = ~np.isnan(values) | has_name
        else:
            ok = ~np.isnan(values)
        if bad:
            self.invalid["bad_label"] = self.invalid.get("bad_label", 0) + bad
        keep = ok.tolist()
        ids = [e for e, k in zip(event_ids, keep, strict=True) if k]
        if names is not None:
            names = [n for n, k in zip(names, keep, strict=True) if k]
        joined = self.join.add_labels(ids, values[ok], label_times[ok], names)
        self._credit_joined(joined)

    def take_class_labels(self) -> list[Joined]:
        """The multi-class predictions joined since the last call (and forget them)."""
        out, self.class_joined = self.class_joined, []
        return out

    def expire(self, clock: float, watermark: float) -> None:
        """Expire the join by the event-time ``clock``; finalize the windows no label can change.

        A window ending at ``end`` is final once it is closed (``watermark >= end``) and the
        label clock has passed ``end + grace``, so no on-time label can still come. The label
        clock is the largest label time read (inline labels: the watermark). If the outcomes
        topic falls silent, the window is final anyway once the watermark passes
        ``end + max(grace, ttl)``: by then every prediction of the window has expired from the
        join, so no label could be joined to it.
        """
        if self.join is not None and math.isfinite(clock):
            self.join.expire(clock)
        grace = self.settings.grace_seconds
        label_clock = watermark if self.join is None else self.max_label_time
        stall = max(grace, self.settings.join.ttl_seconds)
        for w in sorted(self.perf):
            end = (w + 1) * self.size
            if (end <= watermark and end + grace <= label_clock) or end + stall <= watermark:
                self.final[w] = self.perf.pop(w)
                self.final_upto = max(self.final_upto, w)
                self.version += 1
            else:
                break
        if len(self.final) > self.retain_final:
            self._evict()

    # -- internals ---------------------------------------------------------------------------

    def _window(self, w: int) -> PerfAcc:
        acc = self.perf.get(w)
        if acc is None:
            acc = self.perf[w] = PerfAcc(self.settings.performance)
        return acc

    def _credit_joined(self, joined: Joined) -> None:
        if len(joined.leaf) and joined.classes is not None:
            multi = joined.classes.predicted != NOT_MULTICLASS
            if multi.any():  # left for the partition's class histograms
                pos = np.flatnonzero(multi)
                names = joined.names or [None] * len(multi)
                self.class_joined.append(_take(joined, pos, [names[i] for i in pos.tolist()]))
            # A binary prediction joined with a label that is only a class name: invalid.
            binary = ~multi & ~np.isnan(joined.labels)
            no_value = int((~multi).sum() - binary.sum())
            if no_value:
                self.invalid["bad_label"] = self.invalid.get("bad_label", 0) + no_value
            if not binary.all():
                joined = _take(joined, np.flatnonzero(binary))
        if len(joined.leaf):
            thresholds = self.thresholds_of(joined.leaf)
            self._credit(
                joined.leaf,
                joined.event_times,
                joined.scores,
                joined.labels,
                thresholds,
                joined.label_times,
            )

    def _credit(
        self,
        leaf: IntArray,
        event_times: FloatArray,
        scores: FloatArray,
        labels: FloatArray,
        thresholds: FloatArray,
        label_times: FloatArray,
    ) -> None:
        """Count labeled predictions: into their window while on time, else as late.

        A label is on time when its time is before its prediction's window end plus the
        grace, and the window is not final yet (it is final only past that point of the label
        clock, except when the outcomes topic stalled).
        """
        classification = self.settings.classification
        if classification:
            known = ~np.isnan(thresholds)
            if not known.all():
                # A model with no threshold (none configured, none in its baseline): its
                # labels cannot be scored; counted, never guessed at 0.5.
                missing = int((~known).sum())
                self.invalid["no_threshold"] = self.invalid.get("no_threshold", 0) + missing
                leaf, event_times, scores = leaf[known], event_times[known], scores[known]
                labels, thresholds = labels[known], thresholds[known]
                label_times = label_times[known]
        rollups = self.registry.rollups
        n_cells = len(self.registry)
        self._ensure(n_cells)
        cells = rollups[leaf]
        k = cells.shape[1]
        flat = cells.ravel()
        predicted = scores >= thresholds
        errors = (predicted != (labels > 0.5)) if classification else np.zeros(len(leaf), bool)
        self.labeled_total[:n_cells] += np.bincount(flat, minlength=n_cells)
        if classification:
            self.errors_total[:n_cells] += np.bincount(
                flat, weights=np.repeat(errors, k).astype(np.float64), minlength=n_cells
            ).astype(np.int64)
        windows = window_numbers(event_times, self.size)
        deadline = (windows + 1) * self.size + self.settings.grace_seconds
        on_time = (label_times < deadline) & (windows > self.final_upto)
        self.late += int((~on_time).sum())
        for w in np.unique(windows[on_time]).tolist():
            sel = on_time & (windows == w)
            acc = self._window(w)
            c = cells[sel].ravel()
            if classification:
                acc.add_classified(
                    c,
                    np.repeat(scores[sel], k),
                    np.repeat(labels[sel], k),
                    np.repeat(predicted[sel], k),
                    n_cells,
                )
            else:
                acc.add_regressed(c, np.repeat(scores[sel], k), np.repeat(labels[sel], k), n_cells)
        if self.detectors is not None:
            self.detectors.update(leaf, errors, event_times)

    def _ensure(self, n: int) -> None:
        self.labeled_total = grow(self.labeled_total, n)
        self.errors_total = grow(self.errors_total, n)

    def _evict(self) -> None:
        model_ids = self.registry.model_ids
        keep = retained(
            self.final, self.retain_final, lambda w: models_in(self.final[w].touched(), model_ids)
        )
        for w in [w for w in self.final if w not in keep]:
            del self.final[w]

    # -- checkpoints -------------------------------------------------------------------------

    def to_dict(
        self, keys: list[tuple[str, ...]], freeze: Callable[[list[Any]], Any] | None = None
    ) -> dict[str, Any]:
        """Plain JSON data for a checkpoint; cells by key
        (:func:`~tilewatch.aggregators.labels.label_state_codec.labels_to_dict`)."""
        return labels_to_dict(self, keys, freeze)

    @classmethod
    def from_dict(
        cls,
        settings: LabelSettings,
        registry: CellRegistry,
        window_seconds: float,
        thresholds: Callable[[IntArray], FloatArray],
        data: Any,
        class_width: int | None = None,
    ) -> PartitionLabels:
        """Rebuild from :meth:`to_dict`; checks everything
        (:func:`~tilewatch.aggregators.labels.label_state_codec.parse_labels`) before touching
        ``registry``."""
        parsed = parse_labels(data, settings, registry.ndims + 1, class_width)
        out = cls(settings, registry, window_seconds, thresholds, class_width)
        out.offset = parsed.offset
        out.late = parsed.late
        out.max_label_time = parsed.label_clock
        out.invalid = parsed.invalid
        out._ensure(len(registry))
        for k, labeled, errors in parsed.totals:
            i = registry.ensure(k)
            out._ensure(len(registry))
            out.labeled_total[i] += labeled
            out.errors_total[i] += errors
        for table, target in (("open", out.perf), ("final", out.final)):
            for w, parsed_rows in parsed.windows[table]:
                acc = PerfAcc.from_parsed(
                    settings.performance, parsed_rows, registry.ensure, len(registry)
                )
                if w in target:
                    target[w].merge(acc)
                else:
                    target[w] = acc
        if out.final:
            out.final_upto = max(out.final)
        if parsed.join is not None:
            out.join = LabelJoin.from_parsed(settings.join, parsed.join, registry.ensure)
        if out.detectors is not None:
            out.detectors.load([(registry.ensure(k), d, c, t) for k, d, c, t in parsed.detections])
        return out
