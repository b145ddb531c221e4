"""State owned by one input partition: cumulative counts, event-time windows, rolling windows.

Kafka hands partitions, not cells, to consumers, so state is kept per partition: the cells
whose events were read from it and the offset up to which they are complete. A rebalance then
moves whole partition states, and a checkpoint is one partition's state plus its offset.

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
import numpy.typing as npt

from aggregators.cells import CellRegistry
from aggregators.errors import StateError
from aggregators.moments import group_moments, merge_moments
from aggregators.rolling import RollingWindows
from aggregators.settings import CellSettings

__all__ = ["ApplyResult", "PartitionState", "WindowAcc"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Closed windows a partition keeps besides each model's latest one, so that partitions
#: whose event times run a few windows apart still merge exactly.
RETAIN_CLOSED = 8


def _grow(arr: npt.NDArray[Any], n: int, fill: float | int = 0) -> npt.NDArray[Any]:
    if len(arr) >= n:
        return arr
    out = np.full(max(n, 2 * len(arr), 16), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class WindowAcc:
    """Count, mean and m2 of the score per cell for one event-time window."""

    __slots__ = ("count", "m2", "mean")

    def __init__(self, n: int = 0) -> None:
        self.count = np.zeros(n, dtype=np.int64)
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)

    def add(self, cells: IntArray, values: FloatArray, n_cells: int) -> None:
        """Merge the moments of ``values`` grouped by ``cells`` into this window."""
        c, m, s = group_moments(cells, values, n_cells)
        self.count = _grow(self.count, n_cells)
        self.mean = _grow(self.mean, n_cells)
        self.m2 = _grow(self.m2, n_cells)
        k = n_cells
        self.count[:k], self.mean[:k], self.m2[:k] = merge_moments(
            self.count[:k], self.mean[:k], self.m2[:k], c, m, s
        )

    def sized(self, n: int) -> tuple[IntArray, FloatArray, FloatArray]:
        """The arrays cut or zero-padded to ``n`` cells."""
        out_c = np.zeros(n, dtype=np.int64)
        out_m, out_s = np.zeros(n), np.zeros(n)
        k = min(n, len(self.count))
        out_c[:k], out_m[:k], out_s[:k] = self.count[:k], self.mean[:k], self.m2[:k]
        return out_c, out_m, out_s


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

    @property
    def watermark(self) -> float:
        """Largest event time seen minus the grace (``-inf`` before any event)."""
        return self.max_event_time - self.settings.grace_seconds

    def _ensure(self, n: int) -> None:
        self.events = _grow(self.events, n)
        self.late = _grow(self.late, n)
        self.last_event_time = _grow(self.last_event_time, n, -math.inf)

    def apply(
        self,
        keys: list[tuple[str, ...]],
        event_times: FloatArray,
        scores: FloatArray,
    ) -> ApplyResult:
        """Apply one batch of valid events, given as columns in the partition's order."""
        n = len(keys)
        if n == 0:
            return ApplyResult(0, 0)
        leaf = self.registry.index_many(keys)
        return self.apply_indexed(leaf, event_times, scores)

    def apply_indexed(
        self, leaf: IntArray, event_times: FloatArray, scores: FloatArray
    ) -> ApplyResult:
        """:meth:`apply` with leaf cell indices already resolved by the registry."""
        size = self.settings.window_seconds
        grace = self.settings.grace_seconds
        n_cells = len(self.registry)
        self._ensure(n_cells)
        window = np.floor(event_times / size).astype(np.int64)
        # The watermark each event meets is the one left by the events before it.
        seen = np.maximum.accumulate(np.r_[self.max_event_time, event_times])[:-1]
        late = (window + 1) * size <= seen - grace
        n_late = int(late.sum())
        if n_late:
            np.add.at(self.late, leaf[late], 1)
            ok = ~late
            leaf, event_times, scores, window = leaf[ok], event_times[ok], scores[ok], window[ok]
        if len(leaf):
            cells = self.registry.rollups[leaf]  # (events, variants), event order kept row-wise
            flat = cells.ravel()
            k = cells.shape[1]
            flat_scores = np.repeat(scores, k)
            self.events[:n_cells] += np.bincount(flat, minlength=n_cells)
            np.maximum.at(self.last_event_time, flat, np.repeat(event_times, k))
            for w in np.unique(window).tolist():
                sel = np.repeat(window == w, k)
                acc = self.open.get(w)
                if acc is None:
                    acc = self.open[w] = WindowAcc()
                acc.add(flat[sel], flat_scores[sel], n_cells)
            self.rolling.update(flat, flat_scores)
        if len(event_times):
            self.max_event_time = max(self.max_event_time, float(event_times.max()))
        self._close_windows()
        return ApplyResult(len(leaf), n_late)

    def _close_windows(self) -> None:
        size = self.settings.window_seconds
        wm = self.watermark
        for w in sorted(self.open):
            if (w + 1) * size <= wm:
                self.closed[w] = self.open.pop(w)
        if len(self.closed) > RETAIN_CLOSED:
            self._evict_closed()

    def _evict_closed(self) -> None:
        model_ids = self.registry.model_ids
        ordered = sorted(self.closed, reverse=True)
        keep = set(ordered[:RETAIN_CLOSED])
        covered: set[int] = set()
        for w in ordered:
            acc = self.closed[w]
            k = min(len(acc.count), len(model_ids))
            models = set(np.unique(model_ids[:k][acc.count[:k] > 0]).tolist())
            if w in keep or models - covered:
                keep.add(w)
                covered |= models
        for w in ordered:
            if w not in keep:
                del self.closed[w]

    def window_models(self, w: int) -> set[int]:
        """Model ids with events in closed window ``w``."""
        acc = self.closed[w]
        model_ids = self.registry.model_ids
        k = min(len(acc.count), len(model_ids))
        return set(np.unique(model_ids[:k][acc.count[:k] > 0]).tolist())

    # -- checkpoints -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data (numbers, strings, lists) for a checkpoint: cells are named by key."""
        keys = self.registry.keys
        n = len(keys)
        self._ensure(n)
        touched = np.flatnonzero((self.events[:n] > 0) | (self.late[:n] > 0)).tolist()

        def windows(table: dict[int, WindowAcc]) -> list[Any]:
            out = []
            for w, acc in sorted(table.items()):
                c, m, s = acc.sized(n)
                idx = np.flatnonzero(c).tolist()
                out.append([w, [[list(keys[i]), int(c[i]), float(m[i]), float(s[i])] for i in idx]])
            return out

        return {
            "offset": self.offset,
            "max_event_time": None if self.max_event_time == -math.inf else self.max_event_time,
            "cells": [
                [
                    list(keys[i]),
                    int(self.events[i]),
                    int(self.late[i]),
                    float(self.last_event_time[i]),
                ]
                for i in touched
            ],
            "open": windows(self.open),
            "closed": windows(self.closed),
            "rolling": self.rolling.to_dict(keys),
        }

    @classmethod
    def from_dict(cls, registry: CellRegistry, data: dict[str, Any]) -> PartitionState:
        """Rebuild a partition from :meth:`to_dict` output; raises StateError on bad data.

        Everything is parsed and checked before the result is returned, so a bad checkpoint
        never leaves a half-applied partition behind.
        """
        try:
            out = cls(registry, offset=data["offset"])
            if data["max_event_time"] is not None:
                out.max_event_time = float(data["max_event_time"])
            index: dict[tuple[str, ...], int] = {}

            def idx(key: list[str]) -> int:
                t = tuple(str(v) for v in key)
                found = index.get(t)
                if found is None:
                    found = index[t] = registry.ensure(t)
                return found

            rows = [(idx(k), int(e), int(lt), float(ts)) for k, e, lt, ts in data["cells"]]
            out._ensure(len(registry))
            for i, e, lt, ts in rows:
                out.events[i], out.late[i], out.last_event_time[i] = e, lt, ts
            for name in ("open", "closed"):
                table: dict[int, WindowAcc] = getattr(out, name)
                for w, cells in data[name]:
                    acc = WindowAcc(len(registry))
                    for key, c, m, s in cells:
                        i = idx(key)
                        acc.count = _grow(acc.count, i + 1)
                        acc.mean = _grow(acc.mean, i + 1)
                        acc.m2 = _grow(acc.m2, i + 1)
                        acc.count[i], acc.mean[i], acc.m2[i] = int(c), float(m), float(s)
                    table[int(w)] = acc
            rolling = data["rolling"]
            for key, _vals in rolling["cells"]:
                idx(key)
            out.rolling.load(rolling, index)
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StateError(f"partition state is malformed: {exc!r}") from exc
        return out
