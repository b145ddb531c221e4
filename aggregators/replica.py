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
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from aggregators.cells import CellKey, CellRegistry
from aggregators.moments import merge_moments, variance
from aggregators.partition import ApplyResult, PartitionState
from aggregators.settings import CellSettings

__all__ = ["IngestStats", "PartitionKey", "ReplicaState", "Snapshot"]

PartitionKey = tuple[str, int]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class IngestStats:
    """Counters of the ingest side, written by the runtime loop and read by the exporter.

    Plain numbers and dicts; the runtime mutates them under :attr:`ReplicaState.lock`.
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


@dataclass(frozen=True)
class Snapshot:
    """A consistent, merged, read-only view of every cell of a replica.

    Per-cell arrays are indexed like :attr:`keys`. Window arrays hold, for each cell, the
    statistics of its model's latest reported window (count 0 and NaN statistics when the cell
    had no event in it, or when its model has no reported window yet).
    """

    dimensions: tuple[str, ...]
    keys: list[CellKey]
    is_leaf: npt.NDArray[np.bool_]
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

    def __init__(self, settings: CellSettings) -> None:
        self.settings = settings
        self.registry = CellRegistry(settings)
        self.partitions: dict[PartitionKey, PartitionState] = {}
        self.ingest = IngestStats()
        self.lock = threading.RLock()

    def assign(self, key: PartitionKey, state: PartitionState | None = None) -> PartitionState:
        """Take ownership of a partition, with restored ``state`` or empty."""
        with self.lock:
            if state is None:
                state = self.partitions.get(key) or PartitionState(self.registry)
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
    ) -> ApplyResult:
        """Apply a batch of valid events read from partition ``key`` up to ``next_offset``."""
        with self.lock:
            part = self.partitions.get(key)
            if part is None:
                part = self.assign(key)
            result = part.apply(cell_keys, event_times, scores)
            part.offset = next_offset
            return result

    def refresh(self) -> None:
        """Bring derived statistics (rolling moments) up to date; called per poll loop."""
        with self.lock:
            for part in self.partitions.values():
                part.rolling.refresh()

    def snapshot(self) -> Snapshot:
        """A merged, consistent view; copies under the lock and merges outside it."""
        with self.lock:
            reg = self.registry
            n = len(reg)
            keys = list(reg.keys)
            is_leaf = reg.is_leaf
            model_ids = reg.model_ids
            model_names = list(reg.model_names)
            parts = []
            for pkey, part in self.partitions.items():
                part._ensure(n)
                parts.append(
                    (
                        pkey,
                        part.offset,
                        part.events[:n].copy(),
                        part.late[:n].copy(),
                        part.last_event_time[:n].copy(),
                        {w: part.window_models(w, open_=True) for w in part.open},
                        {w: acc.sized(n) for w, acc in part.closed.items()},
                        part.rolling.moments(n),
                    )
                )
            ing = self.ingest
            ingest = dataclasses.replace(
                ing,
                invalid=dict(ing.invalid),
                dead_letter_failures=dict(ing.dead_letter_failures),
                lag=dict(ing.lag),
                checkpoint_restores=dict(ing.checkpoint_restores),
                checkpoint_errors=dict(ing.checkpoint_errors),
            )
            overflow = dict(reg.overflow)
        return _merge(self.settings, keys, is_leaf, model_ids, model_names, parts, ingest, overflow)


def _merge(
    settings: CellSettings,
    keys: list[CellKey],
    is_leaf: npt.NDArray[np.bool_],
    model_ids: IntArray,
    model_names: list[str],
    parts: list[
        tuple[
            PartitionKey,
            int | None,
            IntArray,
            IntArray,
            FloatArray,
            dict[int, set[int]],
            dict[int, tuple[IntArray, FloatArray, FloatArray]],
            tuple[IntArray, FloatArray, FloatArray],
        ]
    ],
    ingest: IngestStats,
    overflow: dict[str, int],
) -> Snapshot:
    n = len(keys)
    events = np.zeros(n, dtype=np.int64)
    late = np.zeros(n, dtype=np.int64)
    last = np.full(n, -math.inf)
    r_c, r_m, r_s = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    still_open: set[tuple[int, int]] = set()  # (window, model) held open by some partition
    for _pk, _off, ev, lt, ts, opened, _closed, (rc, rm, rs) in parts:
        events += ev
        late += lt
        np.maximum(last, ts, out=last)
        r_c, r_m, r_s = merge_moments(r_c, r_m, r_s, rc, rm, rs)
        still_open |= {(w, mid) for w, mids in opened.items() for mid in mids}
    # Each model's latest window that some partition closed with data for the model and no
    # owned partition holding data of that model for it still holds open.
    latest: dict[int, int] = {}
    for _pk, _off, _ev, _lt, _ts, _opened, closed, _r in parts:
        for w, (c, _m, _s) in closed.items():
            for mid in np.unique(model_ids[c > 0]).tolist():
                if (w, mid) not in still_open and latest.get(mid, -(2**62)) < w:
                    latest[mid] = w
    w_c, w_m, w_s = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    size = settings.window_seconds
    window_start: dict[str, float] = {}
    window_end: dict[str, float] = {}
    for w in sorted(set(latest.values())):
        mids = [mid for mid, lw in latest.items() if lw == w]
        acc_c, acc_m, acc_s = (
            np.zeros(n, dtype=np.int64),
            np.zeros(n),
            np.zeros(n),
        )
        for _pk, _off, _ev, _lt, _ts, _opened, closed, _r in parts:
            if w in closed:
                acc_c, acc_m, acc_s = merge_moments(acc_c, acc_m, acc_s, *closed[w])
        sel = np.isin(model_ids, mids)
        w_c[sel], w_m[sel], w_s[sel] = acc_c[sel], acc_m[sel], acc_s[sel]
        for mid in mids:
            window_start[model_names[mid]] = float(w * size)
            window_end[model_names[mid]] = float((w + 1) * size)
    mean = np.where(w_c > 0, w_m, math.nan)
    roll_mean = np.where(r_c > 0, r_m, math.nan)
    return Snapshot(
        dimensions=settings.dimensions,
        keys=keys,
        is_leaf=is_leaf,
        model_ids=model_ids,
        model_names=model_names,
        events_total=events,
        late_total=late,
        last_event_time=np.where(np.isfinite(last), last, math.nan),
        window_count=w_c,
        window_mean=mean,
        window_variance=variance(w_c, w_s),
        window_start=window_start,
        window_end=window_end,
        rolling_count=r_c,
        rolling_mean=roll_mean,
        rolling_variance=variance(r_c, r_s),
        overflow=overflow,
        ingest=ingest,
        partitions={pk: off for pk, off, *_rest in parts},
    )
