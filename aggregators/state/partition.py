"""State owned by one input partition: cumulative counts, event-time windows, rolling windows.

Kafka hands partitions, not cells, to consumers, so state is kept per partition: the cells
whose events were read from it and the offset up to which they are complete. A rebalance then
moves whole partition states, and a checkpoint is one partition's state plus its offset
(written and checked by :mod:`tilewatch.aggregators.state.partition_codec`).

Time is event time. The partition's watermark is the largest event time it has seen minus the
grace; a window ``[k * size, (k + 1) * size)`` (aligned to the epoch, so partitions and replicas
agree) closes when the watermark reaches its end. An event whose window had already closed when
it arrived is late: it is counted per cell in ``late`` and nowhere else, so
``valid + late + invalid == read`` holds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray, grow
from tilewatch.aggregators.cells.classes import ClassVocabulary, remap_class_counts
from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.cells.windows import models_in, retained, window_numbers
from tilewatch.aggregators.drift.detectors import CellDetectors
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.labeling.queue import LabelingQueue
from tilewatch.aggregators.labels.class_rows import ClassRows
from tilewatch.aggregators.labels.label_state import PartitionLabels
from tilewatch.aggregators.state.class_labels import credit_class_labels
from tilewatch.aggregators.state.partition_codec import (
    ParsedPartition,
    parse_partition,
    partition_to_dict,
)
from tilewatch.aggregators.state.unit_columns import ColumnTable, HistTable, RollingTable
from tilewatch.aggregators.state.versions import VersionTable
from tilewatch.aggregators.state.window_acc import WindowAcc, per_variant
from tilewatch.aggregators.stats.rolling import RollingWindows

__all__ = ["RETAIN_CLOSED", "ApplyResult", "PartitionState"]


#: Closed windows a partition keeps besides each model's latest one, so that partitions
#: whose event times run a few windows apart still merge exactly.
RETAIN_CLOSED = 8


class ApplyResult:
    """What one batch did to a partition: events applied and events late."""

    __slots__ = ("late", "valid")

    def __init__(self, valid: int, late: int) -> None:
        self.valid = valid
        self.late = late

    def __repr__(self) -> str:
        return f"ApplyResult(valid={self.valid}, late={self.late})"


class PartitionState:
    """Cells of one input partition, and the offset up to which they are complete.

    Parameters
    ----------
    registry
        The replica's shared cell registry.
    offset
        Next offset to read from the partition (``None``: nothing read yet).

    Examples
    --------
    >>> reg = CellRegistry(CellSettings(dimensions=("segment",), window_seconds=60,
    ...                                 grace_seconds=10, rolling_events=100))
    >>> p = PartitionState(reg)
    >>> p.apply([("m", "a"), ("m", "a"), ("m", "b")], np.array([0.0, 5.0, 61.0]),
    ...         np.array([0.25, 0.75, 0.5]))
    ApplyResult(valid=3, late=0)
    >>> sorted(p.open), sorted(p.closed)
    ([0, 1], [])
    >>> p.apply([("m", "a")], np.array([200.0]), np.array([0.5]))
    ApplyResult(valid=1, late=0)
    >>> sorted(p.open), sorted(p.closed)
    ([3], [0, 1])
    >>> p.apply([("m", "a")], np.array([30.0]), np.array([0.5]))
    ApplyResult(valid=0, late=1)
    """

    def __init__(self, registry: CellRegistry, offset: int | None = None) -> None:
        self.registry = registry
        self.settings: CellSettings = registry.settings
        self.offset = offset
        self.max_event_time = -math.inf
        self.events = np.zeros(0, dtype=np.int64)
        self.late = np.zeros(0, dtype=np.int64)
        self.last_event_time = np.zeros(0)
        #: Open windows by window number (``floor(event_time / window_seconds)``).
        self.open: dict[int, WindowAcc] = {}
        #: Closed windows kept for export and merging, by window number.
        self.closed: dict[int, WindowAcc] = {}
        self.rolling = RollingWindows(self.settings.rolling_events)
        #: Histogram widths (value bins + missing), set by the replica from its drift profile.
        self.hist_bins: dict[str, int] = {}
        #: Closed windows kept besides each model's latest (the replica may ask for more).
        self.retain_closed = RETAIN_CLOSED
        #: Schema violations by (model, feature, kind), since the partition's first event.
        self.violations: dict[tuple[str, str, str], int] = {}
        #: Drift detectors (set by the replica when drift detection is on).
        self.detectors: CellDetectors | None = None
        #: Detections restored from a checkpoint: ``(cell, detector, count, last time)``.
        self.detection_rows: list[tuple[int, str, int, float]] = []
        #: Smallest window event count fed to window-level detectors.
        self.min_samples = 1
        #: The label side (set by the replica when performance is measured).
        self.labels: PartitionLabels | None = None
        #: Model versions seen: (model, version) -> [first seen, last seen, events].
        self.versions: VersionTable = {}
        #: The labeling queue's candidates (set by the replica when ``[labeling]`` is on).
        self.labeling: LabelingQueue | None = None
        #: The class columns of multi-class models (set by the replica; None: none).
        self.classes: ClassVocabulary | None = None
        #: Incremented when labels from the outcomes topic change a closed window.
        self.closed_version = 0
        #: Restored from a checkpoint whose class table differs: per model, the column here
        #: of each of the checkpoint's named class columns.
        self.class_moves: dict[str, list[int]] = {}

    @property
    def watermark(self) -> float:
        """Largest event time seen minus the grace (``-inf`` before any event)."""
        return self.max_event_time - self.settings.grace_seconds

    def _ensure(self, n: int) -> None:
        self.events = grow(self.events, n)
        self.late = grow(self.late, n)
        self.last_event_time = grow(self.last_event_time, n, fill=-math.inf)

    def apply(
        self,
        keys: list[tuple[str, ...]],
        event_times: FloatArray,
        scores: FloatArray,
        bins: dict[str, IntArray] | None = None,
        event_ids: list[Any] | None = None,
        labels: list[Any] | None = None,
        weights: dict[str, IntArray] | None = None,
        class_errors: IntArray | None = None,
        class_rows: ClassRows | None = None,
    ) -> ApplyResult:
        """Apply one batch of valid events, given as columns in the partition's order.

        ``bins`` holds, per histogram of :attr:`hist_bins`, one bin index per event (-1: not
        counted), as made by ``DriftProfile.encode``; ``weights``, for some of them, what each
        event adds to its bin (a non-negative integer; default 1). ``class_errors`` holds each
        multi-class event's error bit (1 wrong, 0 right, -1 unlabeled) for the error-stream
        detector of the label side, when there is one. ``class_rows`` holds each event's class
        row, which a multi-class prediction keeps in the label join until its label comes from
        the outcomes topic.
        """
        n = len(keys)
        if n == 0:
            return ApplyResult(0, 0)
        leaf = self.registry.index_many(keys)
        return self.apply_indexed(
            leaf, event_times, scores, bins, event_ids, labels, weights, class_errors, class_rows
        )

    def apply_indexed(
        self,
        leaf: IntArray,
        event_times: FloatArray,
        scores: FloatArray,
        bins: dict[str, IntArray] | None = None,
        event_ids: list[Any] | None = None,
        labels: list[Any] | None = None,
        weights: dict[str, IntArray] | None = None,
        class_errors: IntArray | None = None,
        class_rows: ClassRows | None = None,
    ) -> ApplyResult:
        """:meth:`apply` with leaf cell indices already resolved by the registry.

        ``event_ids`` and ``labels`` (raw JSON values, one per event) feed the label side when
        there is one: the join on event ids, and inline labels.
        """
        size = self.settings.window_seconds
        grace = self.settings.grace_seconds
        n_cells = len(self.registry)
        self._ensure(n_cells)
        window = window_numbers(event_times, size)
        # The watermark each event meets is the one left by the events before it.
        seen = np.maximum.accumulate(np.r_[self.max_event_time, event_times])[:-1]
        late = (window + 1) * size <= seen - grace
        n_late = int(late.sum())
        if n_late:
            np.add.at(self.late, leaf[late], 1)
            ok = ~late
            leaf, event_times, scores, window = leaf[ok], event_times[ok], scores[ok], window[ok]
            if bins:
                bins = {name: b[ok] for name, b in bins.items()}
            if weights:
                weights = {name: w[ok] for name, w in weights.items()}
            if class_errors is not None:
                class_errors = class_errors[ok]
            if class_rows is not None:
                class_rows = class_rows.take(ok)
            keep = ok.tolist()
            if event_ids is not None:
                event_ids = [e for e, k in zip(event_ids, keep, strict=True) if k]
            if labels is not None:
                labels = [x for x, k in zip(labels, keep, strict=True) if k]
        if len(leaf):
            cells = self.registry.rollups[leaf]  # (events, variants), event order kept row-wise
            flat = cells.ravel()
            k = cells.shape[1]
            flat_scores = np.repeat(scores, k)
            np.add.at(self.events, flat, 1)  # costs the batch, not the cells
            np.maximum.at(self.last_event_time, flat, np.repeat(event_times, k))
            windows = np.unique(window).tolist()
            for w in windows:
                acc = self.open.get(w)
                if acc is None:
                    acc = self.open[w] = WindowAcc(expect_rows=self._rows_before(w))
                if len(windows) == 1:  # the common batch: no selection to make
                    in_window, w_cells, w_scores = None, flat, flat_scores
                else:
                    in_window = window == w
                    sel = np.repeat(in_window, k)
                    w_cells, w_scores = flat[sel], flat_scores[sel]
                acc.add(w_cells, w_scores, n_cells)
                if bins:
                    acc.add_hists(
                        w_cells,
                        [
                            (
                                name,
                                per_variant(b, in_window, k),
                                self.hist_bins[name],
                                None
                                if weights is None or name not in weights
                                else per_variant(weights[name], in_window, k),
                            )
                            for name, b in bins.items()
                        ],
                        n_cells,
                    )
            self.rolling.update(flat, flat_scores)
            if self.detectors is not None:
                self.detectors.update_scores(leaf, scores, event_times)
        if len(event_times):
            self.max_event_time = max(self.max_event_time, float(event_times.max()))
        if self.labels is not None:
            self.labels.predictions(
                leaf, window, event_times, scores, event_ids, labels, class_rows
            )
            detectors = self.labels.detectors
            if class_errors is not None and detectors is not None:
                judged = class_errors >= 0
                if judged.any():
                    detectors.update(leaf[judged], class_errors[judged], event_times[judged])
            credit_class_labels(self)
        self._close_windows()
        return ApplyResult(len(leaf), n_late)

    def apply_labels(
        self, event_ids: list[str], labels: list[Any], label_times: FloatArray, next_offset: int
    ) -> None:
        """Apply a batch of label records read from the co-partitioned outcomes topic."""
        if self.labels is None:
            raise StateError("this partition does not measure performance (no [labels])")
        self.labels.labels(event_ids, labels, label_times, next_offset)
        credit_class_labels(self)
        self.labels.expire(self.max_event_time, self.watermark)

    def _rows_before(self, w: int) -> int:
        """Histogram rows of the newest window before ``w`` (open or closed; 0 if none)."""
        before = [v for v in (*self.open, *self.closed) if v < w]
        if not before:
            return 0
        v = max(before)
        return (self.open.get(v) or self.closed[v]).hist_row_count

    def _close_windows(self) -> None:
        size = self.settings.window_seconds
        wm = self.watermark
        for w in sorted(self.open):
            if (w + 1) * size <= wm:
                acc = self.closed[w] = self.open.pop(w)
                acc.compact()
                if self.detectors is not None:
                    cells = np.flatnonzero(acc.count >= self.min_samples)
                    self.detectors.update_windows(
                        cells, acc.count[cells], acc.mean[cells], acc.m2[cells], (w + 1) * size
                    )
        if len(self.closed) > self.retain_closed:
            self._evict_closed()
        if self.labels is not None:
            self.labels.expire(self.max_event_time, wm)

    def _evict_closed(self) -> None:
        keep = retained(self.closed, self.retain_closed, self.window_models)
        for w in [w for w in self.closed if w not in keep]:
            del self.closed[w]

    def window_models(self, w: int, open_: bool = False) -> set[int]:
        """Model ids with events in closed (or, with ``open_``, open) window ``w`` (a closed
        window's are found once: every snapshot asks for each closed window's)."""
        if open_:
            return models_in(self.open[w].count > 0, self.registry.model_ids)
        acc = self.closed[w]
        if acc.models is None:
            acc.models = models_in(acc.count > 0, self.registry.model_ids)
        return set(acc.models)

    # -- checkpoints -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (numbers, strings, lists, null) for a checkpoint; cells by key
        (:func:`~tilewatch.aggregators.state.partition_codec.partition_to_dict`)."""
        return partition_to_dict(self)

    @staticmethod
    def validate(registry: CellRegistry, data: Any) -> ParsedPartition:
        """Check a checkpoint completely without building anything; raises StateError.
        Returns the checked data (for :meth:`from_dict`, so that it is not parsed twice)."""
        return parse_partition(data, registry.ndims + 1, registry.settings.rolling_events)

    @classmethod
    def from_dict(
        cls,
        registry: CellRegistry,
        data: dict[str, Any],
        classes: ClassVocabulary | None = None,
        parsed: ParsedPartition | None = None,
    ) -> PartitionState:
        """Rebuild a partition from :meth:`to_dict` output; raises StateError on bad data.

        The data is parsed and checked completely before anything touches ``registry``, so a
        bad checkpoint leaves neither a half-built partition nor stray cells behind. Cells that
        map to one cell here (an overflow cell of a full registry) are added together.

        With ``classes`` (the replica's class table) the checkpoint's class names join it
        (:meth:`ClassVocabulary.load`) and its class histograms move to this table's columns
        by name (:attr:`class_moves` keeps, per model, where each of its columns went).
        ``parsed``: what :meth:`validate` returned for ``data`` (else it is parsed here).
        """
        if parsed is None:
            parsed = parse_partition(data, registry.ndims + 1, registry.settings.rolling_events)
        moves: dict[str, list[int]] = {}
        if classes is not None and parsed.classes is not None:
            moves = classes.load(parsed.classes)
            moves = {m: c for m, c in moves.items() if c != list(range(len(c)))}
        out = cls(registry, offset=parsed.offset)
        out.class_moves = moves
        out.max_event_time = parsed.max_event_time
        index = {key: registry.ensure(key) for key in parsed.keys}
        out._ensure(len(registry))
        if isinstance(parsed.cells, ColumnTable):
            cell_at = np.array([index[k] for k in parsed.cells.keys], dtype=np.int64)
            c = parsed.cells.columns
            np.add.at(out.events, cell_at, c["events"])
            np.add.at(out.late, cell_at, c["late"])
            np.maximum.at(out.last_event_time, cell_at, c["last"])
        else:
            for key, events, late, last in parsed.cells:
                i = index[key]
                out.events[i] += events
                out.late[i] += late
                out.last_event_time[i] = max(out.last_event_time[i], last)
        n = len(registry)
        for name, windows in (("open", parsed.open), ("closed", parsed.closed)):
            table: dict[int, WindowAcc] = getattr(out, name)
            for w, rows in windows:
                acc = table.setdefault(w, WindowAcc(n))
                for hname, hrows in parsed.hists.get((name, w), {}).items():
                    if isinstance(hrows, HistTable):
                        if not (moves and hname in ("mc_class", "mc_confusion")):
                            at = [index[k] for k in hrows.keys]
                            acc.add_table(hname, at, hrows.table, n)
                            continue
                        hrows = list(zip(hrows.keys, hrows.table.tolist(), strict=True))
                    width = max(len(counts) for _k, counts in hrows)
                    if moves and hname in ("mc_class", "mc_confusion") and classes is not None:
                        width = max(width, classes.width ** (2 if hname == "mc_confusion" else 1))
                        hrows = [
                            (
                                k,
                                remap_class_counts(
                                    hname, c, moves[k[0]], classes.width, classes.other
                                ),
                            )
                            if k[0] in moves
                            else (k, c)
                            for k, c in hrows
                        ]
                    # Compact rows, not a dense cells x bins table (50 MB at 100k cells).
                    acc.add_rows(
                        hname, [index[k] for k, _c in hrows], [c for _k, c in hrows], width, n
                    )
                if isinstance(rows, ColumnTable):
                    c = rows.columns
                    columns = np.column_stack((c["count"], c["mean"], c["m2"]))
                    acc.add_moments([index[k] for k in rows.keys], columns, n)
                    continue
                cells = [index[k] for k, *_ in rows]
                acc.add_moments(cells, [(c, m, s) for _k, c, m, s in rows], n)
        for acc in out.closed.values():
            acc.compact()
        out.detection_rows = [
            (index[dkey], name, count, last) for dkey, name, count, last in parsed.detections
        ]
        for vkey, vcount in parsed.violations:
            out.violations[vkey] = out.violations.get(vkey, 0) + vcount
        roll = parsed.rolling
        if isinstance(roll, RollingTable):
            roll_cells = np.array([index[k] for k in roll.keys], dtype=np.int64)
            out.rolling.load_arrays(roll_cells, roll.total, roll.lengths, roll.means, roll.m2s)
            roll = []
        blocks = []
        for row in roll:
            if len(row) == 2:  # raw values (version 1 checkpoints): replayed
                values = np.asarray(row[1], dtype=np.float64)
                out.rolling.update(np.full(len(values), index[row[0]], dtype=np.int64), values)
            else:
                blocks.append((index[row[0]], row[1], row[2], row[3]))
        out.rolling.load_many(blocks)
        out.versions = parsed.versions
        return out
