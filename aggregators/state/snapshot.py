"""What a replica exports: the ingest counters and the merged, read-only snapshot of its cells."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.cells.registry import CellKey
from tilewatch.aggregators.drift.window import WindowDrift
from tilewatch.aggregators.labels.fairness import Gap
from tilewatch.aggregators.labels.view import PerformanceView
from tilewatch.aggregators.state.versions import VersionTable
from tilewatch.aggregators.stats.class_drift import ClassDrift
from tilewatch.aggregators.stats.class_errors import ClassErrorDecisions
from tilewatch.aggregators.stats.multiclass import MulticlassMetrics

__all__ = ["IngestStats", "IngestUpdate", "PartitionKey", "Snapshot"]

PartitionKey = tuple[str, int]


@dataclass
class IngestStats:
    """Counters of the ingest side, written by the runtime loop and read by the exporter.

    Plain numbers and dicts. The runtime changes them only through :meth:`add` (by way of
    :meth:`ReplicaState.count_ingest`, under :attr:`ReplicaState.lock`), one
    :class:`IngestUpdate` per batch, checkpoint or restore.
    """

    #: Records read from Kafka (valid + late + invalid).
    read: int = 0
    #: Rejected records by reason code.
    invalid: dict[str, int] = field(default_factory=dict)
    #: Dead-letter records that could not be produced, by reason code.
    dead_letter_failures: dict[str, int] = field(default_factory=dict)
    #: Dead-letter records produced.
    dead_lettered: int = 0
    #: Lag in records per (topic, partition), from the fetch high watermark.
    lag: dict[PartitionKey, int] = field(default_factory=dict)
    #: 1 while the consumer can reach the brokers, 0 otherwise.
    kafka_up: int = 0
    #: Poll batches processed.
    batches: int = 0
    #: Checkpoints written (one per partition per checkpoint round).
    checkpoints_written: int = 0
    #: Size in bytes of the last checkpoint round, and when it was written (epoch seconds).
    checkpoint_last_bytes: int = 0
    checkpoint_last_time: float = 0.0
    #: Partition assignments by restore result: ``restored`` or ``empty``.
    checkpoint_restores: dict[str, int] = field(default_factory=dict)
    #: Refused checkpoint slots and failed writes, by reason.
    checkpoint_errors: dict[str, int] = field(default_factory=dict)
    #: Optional fields of valid events with an unusable value, by field (the event is kept).
    invalid_values: dict[str, int] = field(default_factory=dict)
    #: Records read from the outcomes topic, and the rejected ones by reason.
    label_records: int = 0
    invalid_labels: dict[str, int] = field(default_factory=dict)
    #: Multi-class events: dropped probability vectors by reason, and ``pooled``, the events
    #: naming a class past ``max_classes`` (the event is kept either way).
    class_scores: dict[str, int] = field(default_factory=dict)

    def copy(self) -> IngestStats:
        """A copy that shares no mutable table with this one."""
        out = dataclasses.replace(self)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if type(value) is dict:
                setattr(out, f.name, dict(value))
        return out

    def add(self, update: IngestUpdate) -> None:
        """Add one hand-over of the ingest side (the caller holds the replica's lock).

        Examples
        --------
        >>> stats = IngestStats(lag={("t", 0): 5, ("t", 1): 7})
        >>> stats.add(IngestUpdate(read=3, invalid={"not_json": 1}, lag={("t", 1): None}))
        >>> stats.add(IngestUpdate(read=2, invalid={"not_json": 2}, kafka_up=1))
        >>> stats.read, stats.invalid, stats.lag, stats.kafka_up
        (5, {'not_json': 3}, {('t', 0): 5}, 1)
        """
        self.read += update.read
        self.batches += update.batches
        self.label_records += update.label_records
        self.checkpoints_written += update.checkpoints_written
        for total, counts in (
            (self.invalid, update.invalid),
            (self.invalid_labels, update.invalid_labels),
            (self.dead_letter_failures, update.dead_letter_failures),
            (self.checkpoint_restores, update.checkpoint_restores),
            (self.checkpoint_errors, update.checkpoint_errors),
            (self.class_scores, update.class_scores),
        ):
            for name, n in counts.items():
                total[name] = total.get(name, 0) + n
        if update.kafka_up is not None:
            self.kafka_up = update.kafka_up
        if update.dead_lettered is not None:
            self.dead_lettered = update.dead_lettered
        if update.checkpoint_last_bytes is not None:
            self.checkpoint_last_bytes = update.checkpoint_last_bytes
        if update.checkpoint_last_time is not None:
            self.checkpoint_last_time = update.checkpoint_last_time
        for key, lag in update.lag.items():
            if lag is None:
                self.lag.pop(key, None)
            else:
                self.lag[key] = lag


@dataclass(frozen=True, slots=True)
class IngestUpdate:
    """One hand-over of ingest counters from the Kafka side: a batch, a checkpoint, a restore.

    Counts are added to :class:`IngestStats`; the gauges (``kafka_up``, ``dead_lettered``,
    ``checkpoint_last_*``) replace its value unless None; ``lag`` sets each listed partition's
    lag, None removing it.
    """

    read: int = 0
    batches: int = 0
    invalid: Mapping[str, int] = field(default_factory=dict)
    label_records: int = 0
    invalid_labels: Mapping[str, int] = field(default_factory=dict)
    dead_letter_failures: Mapping[str, int] = field(default_factory=dict)
    checkpoints_written: int = 0
    checkpoint_restores: Mapping[str, int] = field(default_factory=dict)
    checkpoint_errors: Mapping[str, int] = field(default_factory=dict)
    kafka_up: int | None = None
    dead_lettered: int | None = None
    checkpoint_last_bytes: int | None = None
    checkpoint_last_time: float | None = None
    lag: Mapping[PartitionKey, int | None] = field(default_factory=dict)
    class_scores: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """A consistent, merged, read-only view of every cell of a replica.

    Per-cell arrays are indexed like :attr:`keys`. Window arrays hold, for each cell, the
    statistics of its model's latest reported window (count 0 and NaN statistics when the cell
    had no event in it, or when its model has no reported window yet).
    """

    dimensions: tuple[str, ...]
    keys: list[CellKey]
    is_leaf: BoolArray
    model_ids: IntArray
    model_names: list[str]
    events_total: IntArray
    late_total: IntArray
    last_event_time: FloatArray
    window_count: IntArray
    window_mean: FloatArray
    window_variance: FloatArray
    #: Start and end (epoch seconds) of each model's latest reported window.
    window_start: dict[str, float]
    window_end: dict[str, float]
    rolling_count: IntArray
    rolling_mean: FloatArray
    rolling_variance: FloatArray
    overflow: dict[str, int]
    ingest: IngestStats
    partitions: dict[PartitionKey, int | None]
    #: Window statistics against the baseline (None without a drift profile).
    drift: WindowDrift | None = None
    #: Schema violations by (model, feature, kind), summed over partitions.
    violations: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: (cell, detector) -> (detections, last detection event time, active), merged.
    detections: dict[tuple[int, str], tuple[int, float, bool]] = field(default_factory=dict)
    #: Latency quantile (seconds) per cell in the reported window, by quantile.
    window_latency: dict[float, FloatArray] = field(default_factory=dict)
    #: Model versions seen: (model, version) -> [first seen, last seen, events], merged.
    model_versions: VersionTable = field(default_factory=dict)
    #: Performance from labels (None without a [labels] section).
    performance: PerformanceView | None = None
    #: Multi-class statistics of each cell's reported window (None: no multi-class model);
    #: per-class arrays have one column per class column of :attr:`class_labels`.
    multiclass: MulticlassMetrics | None = None
    #: Decisions on each cell's multi-class error rate against its trailing windows (None:
    #: no multi-class model, or drift off).
    class_errors: ClassErrorDecisions | None = None
    #: Confidence and margin drift of each cell against its trailing windows (same condition).
    class_drift: ClassDrift | None = None
    #: Per model and dimension, the spread of the multi-class accuracy across its values.
    class_gaps: tuple[Gap, ...] = ()
    #: Per multi-class model, the name of each class column (``""``: unused column).
    class_labels: dict[str, list[str]] | None = None
    #: Per model, the per-class threshold of each class column (NaN: none).
    class_thresholds: dict[str, list[float]] | None = None
    #: Forecasts per statistic: (mean, lower, upper), each (horizon, cells) (None: not kept;
    #: see :mod:`tilewatch.aggregators.state.forecasts`).
    forecasts: dict[str, tuple[FloatArray, FloatArray, FloatArray]] | None = None

    def cell(self, key: CellKey) -> int:
        """Index of a cell key (a linear search, for tests and tools); KeyError if absent."""
        try:
            return self.keys.index(key)
        except ValueError:
            raise KeyError(key) from None

    def late_by_model(self) -> dict[str, int]:
        """Late events per model."""
        totals = np.bincount(
            self.model_ids, weights=self.late_total, minlength=len(self.model_names)
        )
        return {m: int(totals[i]) for i, m in enumerate(self.model_names)}
