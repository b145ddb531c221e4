"""The state of one replica: its partitions, merged into one consistent snapshot on demand.

A cell exported by a replica is the merge of that cell across the partitions the replica owns.
Counts add and window moments merge exactly (Chan et al.). Rolling windows are kept per
(partition, cell): with producers keyed by cell, the recommended set-up, a cell lives in one
partition and its rolling window is exact; with unkeyed traffic the exported rolling statistic
is the merge of the per-partition windows (up to ``rolling_events`` per partition).

A window of a cell's model is reported once every owned partition that holds data for it has
closed it; each model exports its latest reported window.

All mutation happens under :attr:`ReplicaState.lock` in the consumer thread; :meth:`snapshot`
copies under the same lock and merges outside it, and never changes state.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.cells.classes import ClassVocabulary, class_tables
from tilewatch.aggregators.cells.registry import CellKey, CellRegistry
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.cell_reference import CellReferences
from tilewatch.aggregators.drift.detectors import CellDetectors
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.labeling.queue import LabelingQueue
from tilewatch.aggregators.labeling.settings import LabelingSettings
from tilewatch.aggregators.labels.class_rows import ClassRows
from tilewatch.aggregators.labels.label_state import RETAIN_FINAL, PartitionLabels
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.labels.view import copy_labels
from tilewatch.aggregators.state.forecasts import CellForecasts
from tilewatch.aggregators.state.history import WindowHistory
from tilewatch.aggregators.state.merge import (
    PartCopy,
    View,
    WindowView,
    build_window_view,
    detections_of,
    merge,
)
from tilewatch.aggregators.state.partition import RETAIN_CLOSED, ApplyResult, PartitionState
from tilewatch.aggregators.state.reported import (
    needed_windows,
    performance,
    reported_latest,
    window_copies,
)
from tilewatch.aggregators.state.snapshot import IngestStats, IngestUpdate, PartitionKey, Snapshot
from tilewatch.aggregators.state.versions import update_versions
from tilewatch.aggregators.stats.latency import LATENCY_BINS, latency_bins
from tilewatch.aggregators.stats.multiclass_window import window_hist_widths

__all__ = ["ReplicaState"]


class ReplicaState:
    """Partitions owned by this replica, the shared cell registry, and the ingest counters.

    Examples
    --------
    >>> rs = ReplicaState(CellSettings(dimensions=("segment",), window_seconds=10,
    ...                                grace_seconds=0))
    >>> p = rs.assign(("events", 0))
    >>> rs.apply(("events", 0), [("m", "a"), ("m", "b")], np.array([1.0, 2.0]),
    ...          np.array([0.2, 0.4]), next_offset=2)
    ApplyResult(valid=2, late=0)
    >>> rs.apply(("events", 0), [("m", "a")], np.array([15.0]), np.array([0.9]), next_offset=3)
    ApplyResult(valid=1, late=0)
    >>> snap = rs.snapshot()
    >>> i = snap.cell(("m", "__all__"))
    >>> int(snap.events_total[i]), int(snap.window_count[i]), float(snap.window_mean[i])
    (3, 2, 0.3)
    >>> snap.window_end
    {'m': 10.0}
    """

    def __init__(
        self,
        settings: CellSettings,
        profile: DriftProfile | None = None,
        labels: LabelSettings | None = None,
        thresholds: dict[str, float] | None = None,
        classes: ClassVocabulary | None = None,
    ) -> None:
        self.settings = settings
        #: The class columns of multi-class models (None: no multi-class model).
        self.classes = classes
        self.class_width = None if classes is None else classes.width
        #: What the drift and data-quality stages watch (None: they are off).
        self.profile = profile
        #: How labels arrive and performance is measured (None: not measured).
        self.labels = labels
        #: Decision thresholds chosen on the baseline, per model.
        self.baseline_thresholds = dict(thresholds or {})
        self._threshold_table = np.zeros(0)
        #: Histogram widths every partition keeps (the drift profile's, and latency).
        self.hist_bins = {**(profile.hist_bins if profile else {}), "latency": LATENCY_BINS}
        if classes is not None:  # the multi-class count histograms of every window
            self.hist_bins.update(window_hist_widths(classes.width))
        self.registry = CellRegistry(settings)
        self.partitions: dict[PartitionKey, PartitionState] = {}
        self.ingest = IngestStats()
        self.lock = threading.RLock()
        #: The merged reported windows and their statistics, keyed by the windows they came
        #: from (a new tuple when they change): scrapes reuse what refresh() computed.
        self.window_cache: tuple[Any, WindowView] | None = None
        #: Each cell's reference against the baseline (None: trailing references, or no drift).
        self.references = (
            CellReferences(profile, settings, profile.settings.prior_strength)
            if profile is not None and profile.settings.reference == "baseline"
            else None
        )
        #: Closed windows a partition keeps besides each model's latest (a trailing
        #: reference needs its span and the window before it).
        self.retain_closed = RETAIN_CLOSED
        #: Whether windows are compared with their trailing windows: every signal with trailing
        #: references, the multi-class error and confidence/margin ones always (the baseline
        #: has no confusion counts or margin histograms).
        self.trailing = profile is not None and (
            profile.settings.reference == "trailing" or classes is not None
        )
        if self.trailing:
            assert profile is not None
            span = profile.settings.trailing_windows + profile.settings.trailing_gap + 1
            self.retain_closed = max(RETAIN_CLOSED, span + 1)
        # The last performance decisions and the digest of their inputs (performance_view).
        self._decision_cache: dict[str, Any] = {}
        #: The last reported windows of every cell (None: not kept), written by refresh().
        self.history: WindowHistory | None = None
        self.forecasts: CellForecasts | None = None  # updated by refresh() (None: none)
        self.labeling: LabelingSettings | None = None  #: The labeling queue's (None: off).

    def assign(self, key: PartitionKey, state: PartitionState | None = None) -> PartitionState:
        """Take ownership of a partition, with restored ``state`` or empty."""
        with self.lock:
            if state is None:
                state = self.partitions.get(key) or PartitionState(self.registry)
            state.hist_bins = dict(self.hist_bins)
            state.retain_closed = self.retain_closed
            state.classes = self.classes
            if self.labels is not None and state.labels is None:
                state.labels = PartitionLabels(
                    self.labels,
                    self.registry,
                    self.settings.window_seconds,
                    self.thresholds_of,
                    self.class_width,
                )
            if state.labels is not None:
                state.labels.retain_final = self._retain_final()
            if self.profile is not None:
                state.min_samples = self.profile.settings.min_samples
                if self.profile.settings.detectors and state.detectors is None:
                    state.detectors = CellDetectors(self.profile.settings)
                    state.detectors.load(state.detection_rows)
            self.partitions[key] = state
            return state

    def revoke(self, key: PartitionKey) -> PartitionState | None:
        """Give up a partition; returns its state (for a last checkpoint) or None."""
        with self.lock:
            self.ingest.lag.pop(key, None)
            return self.partitions.pop(key, None)

    def apply(
        self,
        key: PartitionKey,
        cell_keys: list[CellKey],
        event_times: FloatArray,
        scores: FloatArray,
        next_offset: int,
        bins: dict[str, IntArray] | None = None,
        violations: dict[tuple[str, str, str], int] | None = None,
        *,
        event_ids: list[Any] | None = None,
        labels: list[Any] | None = None,
        latencies: list[Any] | None = None,
        versions: list[Any] | None = None,
        weights: dict[str, IntArray] | None = None,
        class_errors: IntArray | None = None,
        class_rows: ClassRows | None = None,
    ) -> ApplyResult:
        """Apply a batch of valid events read from partition ``key`` up to ``next_offset``.

        ``bins`` and ``violations`` come from ``DriftProfile.encode`` on the same events. The
        optional raw columns (one JSON value per event) feed the label join (``event_ids``),
        inline labels, the latency histograms (milliseconds) and the model versions; unusable
        values are counted in ``ingest.invalid_values`` and the event is kept.
        """
        if latencies is not None:
            lat, bad_latency = latency_bins(latencies)
            bins = {**(bins or {}), "latency": lat}
        with self.lock:
            part = self.partitions.get(key)
            if part is None:
                part = self.assign(key)
            if latencies is not None and bad_latency:
                self._count_invalid("latency", bad_latency)
            if versions is not None and cell_keys:
                bad = update_versions(
                    part.versions, [k[0] for k in cell_keys], versions, event_times
                )
                if bad:
                    self._count_invalid("model_version", bad)
            if self.labels is None:
                event_ids = labels = None
            elif self.labels.source == "inline":
                event_ids = None
            else:
                labels = None
            result = part.apply(
                cell_keys,
                event_times,
                scores,
                bins,
                event_ids=event_ids,
                labels=labels,
                weights=weights,
                class_errors=class_errors,
                class_rows=class_rows if event_ids is not None else None,
            )
            for vkey, count in (violations or {}).items():
                part.violations[vkey] = part.violations.get(vkey, 0) + count
            part.offset = next_offset
            return result

    def apply_labels(
        self,
        key: PartitionKey,
        event_ids: list[str],
        labels: list[Any],
        label_times: FloatArray,
        next_offset: int,
    ) -> None:
        """Apply label records read from the outcomes topic's partition co-partitioned with
        the predictions partition ``key``, up to ``next_offset`` on the outcomes topic."""
        with self.lock:
            part = self.partitions.get(key)
            if part is None:
                part = self.assign(key)
            part.apply_labels(event_ids, labels, label_times, next_offset)

    def count_ingest(self, update: IngestUpdate) -> None:
        """Add the ingest side's counters of one batch, checkpoint or restore, under the lock."""
        with self.lock:
            self.ingest.add(update)

    def thresholds_of(self, leaf: IntArray) -> FloatArray:
        """Decision threshold of each leaf cell's model (NaN: the model has none)."""
        names = self.registry.model_names
        if len(self._threshold_table) < len(names):
            cfg = self.labels
            default = math.nan if cfg is None or cfg.threshold is None else cfg.threshold
            own = {} if cfg is None else cfg.thresholds
            picks = [(own.get(m), self.baseline_thresholds.get(m), default) for m in names]
            self._threshold_table = np.array(
                [next((float(v) for v in p if v is not None), math.nan) for p in picks],
                dtype=np.float64,
            )
        return self._threshold_table[self.registry.model_ids[leaf]]

    def _retain_final(self) -> int:
        """Final performance windows a partition keeps: a trailing error reference needs its
        span and the window before it (they are checkpointed with the partition)."""
        trailing = self._trailing_errors()
        if trailing is None:
            return RETAIN_FINAL
        return max(RETAIN_FINAL, trailing[0] + trailing[1] + 2)

    def _reference_errors(self, keys: list[CellKey]) -> tuple[FloatArray, FloatArray] | None:
        """Each cell's baseline error rate and effective labelled rows (None: no baseline)."""
        if self.references is None:
            return None
        return self.references.errors(keys)

    def _trailing_errors(self) -> tuple[int, int] | None:
        """``(windows, gap)`` of the trailing error reference: with ``[drift] reference =
        "trailing"``, and whenever there is no baseline to take the cells' error rates from
        (then with the ``[drift]`` defaults); None: the baseline's per-cell error rates."""
        profile = self.profile
        if profile is None:
            d = DriftSettings()
            return d.trailing_windows, d.trailing_gap
        s = profile.settings
        if s.reference == "trailing" or profile.baseline is None:
            return s.trailing_windows, s.trailing_gap
        return None

    def restore_partition(self, data: Any) -> PartitionState:
        """Rebuild a partition from checkpoint data; raises StateError on bad data.

        The whole checkpoint is checked before cells are added to the registry.
        """
        with self.lock:
            parsed = PartitionState.validate(self.registry, data)
            labels = None
            if self.labels is not None and data.get("labels") is not None:
                labels = PartitionLabels.from_dict(
                    self.labels,
                    self.registry,
                    self.settings.window_seconds,
                    self.thresholds_of,
                    data["labels"],
                    self.class_width,
                )
            queue = LabelingQueue.restore(data.get("labeling"), self.labeling, self.registry)
            state = PartitionState.from_dict(self.registry, data, self.classes, parsed)
            if labels is not None and labels.join is not None and state.class_moves:
                reg = self.registry
                labels.join.move_classes(state.class_moves, reg.model_ids, reg.model_names)
            state.labels, state.labeling = labels, queue
            return state

    def _count_invalid(self, name: str, n: int) -> None:
        table = self.ingest.invalid_values
        table[name] = table.get(name, 0) + n

    def refresh(self) -> None:
        """Bring derived statistics (rolling moments) up to date; called per poll loop.

        Also records the reported windows into :attr:`history` when one is kept.
        """
        with self.lock:
            for part in self.partitions.values():
                part.rolling.refresh()
        snap = self.snapshot()  # computes the window statistics here, in the consumer thread
        if self.history is not None:
            with self.lock:
                self.history.record(snap, self.settings.window_seconds)
        if self.forecasts is not None:
            self.forecasts.catch_up(self, snap)

    def snapshot(self, upto: int | None = None) -> Snapshot:
        """A merged, consistent view; copies under the lock and merges outside it.

        ``upto``: report the windows up to that number only (a replay closing several at once).

        Under the lock: the per-partition arrays, which window each model reports
        (:func:`~tilewatch.aggregators.state.reported.reported_latest`), and copies of just
        those windows and the ones their statistics merge. Outside: the merge and the window
        statistics.
        """
        profile = self.profile
        with self.lock:
            reg = self.registry
            n = len(reg)
            model_ids = reg.model_ids
            latest = reported_latest(self.partitions.values(), n, upto)
            needed = needed_windows(latest, profile, self.trailing)
            hist_bins = self.hist_bins
            fc = None if self.forecasts is None else self.forecasts.view(n)
            cache_key = (
                n,
                tuple(sorted(latest.items())),
                tuple(
                    (pkey, w, acc)  # the objects themselves: compared by identity
                    for pkey, part in self.partitions.items()
                    for w, acc in sorted(part.closed.items())
                    if w in needed
                ),
                # Labels joined from the outcomes topic may add to closed windows.
                tuple(part.closed_version for part in self.partitions.values()),
            )
            # A replay's past window leaves the reported one's cache.
            cached = self.window_cache if upto is None else None
            window_view = cached[1] if cached is not None and cached[0] == cache_key else None
            if window_view is not None:
                needed = set()
            parts = [
                PartCopy(
                    key=pkey,
                    offset=part.offset,
                    events=part.events[:n].copy(),
                    late=part.late[:n].copy(),
                    last=part.last_event_time[:n].copy(),
                    rolling=part.rolling.copy(n),
                    windows=window_copies(part, needed, n, hist_bins),
                    violations=dict(part.violations),
                    detections=detections_of(part),
                    versions={k: list(v) for k, v in part.versions.items()},
                    labels=None
                    if part.labels is None
                    else copy_labels(part.labels, n, model_ids, set(latest.values())),
                )
                for pkey, part in self.partitions.items()
            ]
            view = View(
                keys=list(reg.keys),
                is_leaf=reg.is_leaf,
                model_ids=model_ids,
                model_names=list(reg.model_names),
                latest=latest,
                overflow=dict(reg.overflow),
            )
            class_labels, class_thresholds = class_tables(self.classes, reg.model_names)
            ingest = self.ingest.copy()
        if window_view is None:
            window_view = build_window_view(
                self.settings, profile, hist_bins, view, parts, self.references
            )
            if upto is None:
                with self.lock:
                    self.window_cache = (cache_key, window_view)
        perf = performance(self, view, [part.labels for part in parts if part.labels is not None])
        snap = merge(self.settings, profile, view, parts, ingest, window_view)
        snap = dataclasses.replace(snap, performance=perf, forecasts=fc, class_labels=class_labels)
        return dataclasses.replace(snap, class_thresholds=class_thresholds)
