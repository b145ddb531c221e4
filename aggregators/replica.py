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
from typing import Any

import numpy as np
import numpy.typing as npt

from aggregators.cells import CellKey, CellRegistry
from aggregators.detectors import CellDetectors
from aggregators.moments import merge_moments, variance
from aggregators.partition import ApplyResult, PartitionState
from aggregators.profile import DriftProfile
from aggregators.settings import CellSettings
from aggregators.window_stats import WindowDrift, derive_window_drift

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
    #: Window statistics against the baseline (None without a drift profile).
    drift: WindowDrift | None = None
    #: Schema violations by (model, feature, kind), summed over partitions.
    violations: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: (cell, detector) -> (detections, last detection event time, active), merged.
    detections: dict[tuple[int, str], tuple[int, float, bool]] = field(default_factory=dict)

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

    def __init__(self, settings: CellSettings, profile: DriftProfile | None = None) -> None:
        self.settings = settings
        #: What the drift and data-quality stages watch (None: they are off).
        self.profile = profile
        self.registry = CellRegistry(settings)
        self.partitions: dict[PartitionKey, PartitionState] = {}
        self.ingest = IngestStats()
        self.lock = threading.RLock()
        # The merged reported windows and their statistics, keyed by the windows they came
        # from: closed windows never change, so scrapes reuse what refresh() computed.
        self._window_cache: tuple[Any, _WindowView] | None = None

    def assign(self, key: PartitionKey, state: PartitionState | None = None) -> PartitionState:
        """Take ownership of a partition, with restored ``state`` or empty."""
        with self.lock:
            if state is None:
                state = self.partitions.get(key) or PartitionState(self.registry)
            if self.profile is not None:
                state.hist_bins = dict(self.profile.hist_bins)
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
    ) -> ApplyResult:
        """Apply a batch of valid events read from partition ``key`` up to ``next_offset``.

        ``bins`` and ``violations`` come from ``DriftProfile.encode`` on the same events.
        """
        with self.lock:
            part = self.partitions.get(key)
            if part is None:
                part = self.assign(key)
            result = part.apply(cell_keys, event_times, scores, bins)
            for vkey, count in (violations or {}).items():
                part.violations[vkey] = part.violations.get(vkey, 0) + count
            part.offset = next_offset
            return result

    def refresh(self) -> None:
        """Bring derived statistics (rolling moments) up to date; called per poll loop."""
        with self.lock:
            for part in self.partitions.values():
                part.rolling.refresh()
        self.snapshot()  # computes the window statistics here, in the consumer thread

    def snapshot(self) -> Snapshot:
        """A merged, consistent view; copies under the lock and merges outside it.

        Under the lock: the per-partition arrays, which window each model reports (its latest
        window that some partition closed with data for the model and that no partition
        holding data of that model for it still holds open), and copies of just those windows
        and the ones before them. Outside: the merge and the window statistics.
        """
        profile = self.profile
        with self.lock:
            reg = self.registry
            n = len(reg)
            model_ids = reg.model_ids
            still_open: set[tuple[int, int]] = set()
            closed_models: list[tuple[PartitionState, int, set[int]]] = []
            for part in self.partitions.values():
                part._ensure(n)
                for w in part.open:
                    still_open |= {(w, mid) for mid in part.window_models(w, open_=True)}
                for w in part.closed:
                    closed_models.append((part, w, part.window_models(w)))
            latest: dict[int, int] = {}
            for _part, w, mids in closed_models:
                for mid in mids:
                    if (w, mid) not in still_open and latest.get(mid, -(2**62)) < w:
                        latest[mid] = w
            needed = set(latest.values()) | {w - 1 for w in latest.values()}
            hist_bins = profile.hist_bins if profile is not None else {}
            cache_key = (
                n,
                tuple(sorted(latest.items())),
                tuple(
                    (pkey, w, acc)  # the objects themselves: compared by identity
                    for pkey, part in self.partitions.items()
                    for w, acc in sorted(part.closed.items())
                    if w in needed
                ),
            )
            cached = self._window_cache
            window_view = cached[1] if cached is not None and cached[0] == cache_key else None
            if window_view is not None:
                needed = set()
            parts = [
                _PartCopy(
                    key=pkey,
                    offset=part.offset,
                    events=part.events[:n].copy(),
                    late=part.late[:n].copy(),
                    last=part.last_event_time[:n].copy(),
                    rolling=part.rolling.moments(n),
                    windows={
                        w: (
                            acc.sized(n),
                            {name: acc.hist_sized(name, n, b) for name, b in hist_bins.items()},
                        )
                        for w, acc in part.closed.items()
                        if w in needed
                    },
                    violations=dict(part.violations),
                    detections=_detections(part),
                )
                for pkey, part in self.partitions.items()
            ]
            view = _View(
                keys=list(reg.keys),
                is_leaf=reg.is_leaf,
                model_ids=model_ids,
                model_names=list(reg.model_names),
                latest=latest,
                overflow=dict(reg.overflow),
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
        if window_view is None:
            window_view = _window_view(self.settings, profile, view, parts)
            with self.lock:
                self._window_cache = (cache_key, window_view)
        return _merge(self.settings, profile, view, parts, ingest, window_view)


@dataclass
class _PartCopy:
    key: PartitionKey
    offset: int | None
    events: IntArray
    late: IntArray
    last: FloatArray
    rolling: tuple[IntArray, FloatArray, FloatArray]
    windows: dict[int, tuple[tuple[IntArray, FloatArray, FloatArray], dict[str, IntArray]]]
    violations: dict[tuple[str, str, str], int]
    detections: dict[tuple[int, str], tuple[int, float, bool]]


def _detections(part: PartitionState) -> dict[tuple[int, str], tuple[int, float, bool]]:
    """(cell, detector) -> (detections, last time, active) of one partition."""
    det = part.detectors
    if det is None:
        return {}
    horizon = part.max_event_time - part.settings.window_seconds
    return {key: (n, det.last[key], det.last[key] >= horizon) for key, n in det.detections.items()}


@dataclass
class _View:
    keys: list[CellKey]
    is_leaf: npt.NDArray[np.bool_]
    model_ids: IntArray
    model_names: list[str]
    latest: dict[int, int]
    overflow: dict[str, int]


def _window(
    parts: list[_PartCopy], w: int, n: int, hist_bins: dict[str, int]
) -> tuple[IntArray, FloatArray, FloatArray, dict[str, IntArray]]:
    c, m, s = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    hists = {name: np.zeros((n, b), dtype=np.int64) for name, b in hist_bins.items()}
    for part in parts:
        if w in part.windows:
            moments, part_hists = part.windows[w]
            c, m, s = merge_moments(c, m, s, *moments)
            for name, h in part_hists.items():
                if name in hists:  # callers may ask for the moments only
                    hists[name] += h
    return c, m, s, hists


@dataclass(frozen=True)
class _WindowView:
    """Each cell's model's reported window, merged, with its statistics (cached)."""

    count: IntArray
    mean: FloatArray
    variance: FloatArray
    start: dict[str, float]
    end: dict[str, float]
    drift: WindowDrift | None


def _window_view(
    settings: CellSettings, profile: DriftProfile | None, view: _View, parts: list[_PartCopy]
) -> _WindowView:
    n = len(view.keys)
    model_ids = view.model_ids
    hist_bins = profile.hist_bins if profile is not None else {}
    w_c, w_m, w_s = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    p_c, p_m = np.zeros(n, dtype=np.int64), np.zeros(n)
    w_h = {name: np.zeros((n, b), dtype=np.int64) for name, b in hist_bins.items()}
    size = settings.window_seconds
    window_start: dict[str, float] = {}
    window_end: dict[str, float] = {}
    for w in sorted(set(view.latest.values())):
        mids = [mid for mid, lw in view.latest.items() if lw == w]
        sel = np.isin(model_ids, mids)
        c, m, s, hists = _window(parts, w, n, hist_bins)
        w_c[sel], w_m[sel], w_s[sel] = c[sel], m[sel], s[sel]
        for name, h in hists.items():
            w_h[name][sel] = h[sel]
        pc, pm, _ps, _ph = _window(parts, w - 1, n, {})
        p_c[sel], p_m[sel] = pc[sel], pm[sel]
        for mid in mids:
            window_start[view.model_names[mid]] = float(w * size)
            window_end[view.model_names[mid]] = float((w + 1) * size)
    mean = np.where(w_c > 0, w_m, math.nan)
    var = variance(w_c, w_s)
    drift = None
    if profile is not None:
        drift = derive_window_drift(
            profile,
            view.model_names,
            model_ids,
            view.is_leaf,
            w_c,
            mean,
            var,
            w_h,
            np.where(p_c > 0, p_m, math.nan),
            p_c,
        )
    return _WindowView(w_c, mean, var, window_start, window_end, drift)


def _merge(
    settings: CellSettings,
    profile: DriftProfile | None,
    view: _View,
    parts: list[_PartCopy],
    ingest: IngestStats,
    window_view: _WindowView | None = None,
) -> Snapshot:
    n = len(view.keys)
    model_ids = view.model_ids
    events = np.zeros(n, dtype=np.int64)
    late = np.zeros(n, dtype=np.int64)
    last = np.full(n, -math.inf)
    r_c, r_m, r_s = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    violations: dict[tuple[str, str, str], int] = {}
    detections: dict[tuple[int, str], tuple[int, float, bool]] = {}
    for part in parts:
        for dkey, (dn, dlast, dactive) in part.detections.items():
            pn, plast, pactive = detections.get(dkey, (0, -math.inf, False))
            detections[dkey] = (pn + dn, max(plast, dlast), pactive or dactive)
        events += part.events
        late += part.late
        np.maximum(last, part.last, out=last)
        r_c, r_m, r_s = merge_moments(r_c, r_m, r_s, *part.rolling)
        for vkey, count in part.violations.items():
            violations[vkey] = violations.get(vkey, 0) + count
    wv = window_view if window_view is not None else _window_view(settings, profile, view, parts)
    return Snapshot(
        dimensions=settings.dimensions,
        keys=view.keys,
        is_leaf=view.is_leaf,
        model_ids=model_ids,
        model_names=view.model_names,
        events_total=events,
        late_total=late,
        last_event_time=np.where(np.isfinite(last), last, math.nan),
        window_count=wv.count,
        window_mean=wv.mean,
        window_variance=wv.variance,
        window_start=wv.start,
        window_end=wv.end,
        rolling_count=r_c,
        rolling_mean=np.where(r_c > 0, r_m, math.nan),
        rolling_variance=variance(r_c, r_s),
        overflow=view.overflow,
        ingest=ingest,
        partitions={part.key: part.offset for part in parts},
        drift=wv.drift,
        violations=violations,
        detections=detections,
    )
