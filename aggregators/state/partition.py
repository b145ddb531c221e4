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

from tilewatch.aggregators.arrays import FloatArray, IntArray, grow, resized
from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.detectors import CellDetectors
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.labels.state import PartitionLabels
from tilewatch.aggregators.state.versions import VersionTable, parse_versions, version_rows
from tilewatch.aggregators.stats.moments import group_moments, merge_moments
from tilewatch.aggregators.stats.rolling import RollingWindows

__all__ = ["ApplyResult", "PartitionState", "WindowAcc"]


#: Closed windows a partition keeps besides each model's latest one, so that partitions
#: whose event times run a few windows apart still merge exactly.
RETAIN_CLOSED = 8


class WindowAcc:
    """Count, mean and m2 of the score per cell for one event-time window, and histograms.

    ``hist`` maps a histogram name (``score``, ``class``, ``f:<feature>``) to a
    ``(cells, bins)`` count array; histograms merge by adding.
    """

    __slots__ = ("count", "hist", "m2", "mean")

    def __init__(self, n: int = 0) -> None:
        self.count = np.zeros(n, dtype=np.int64)
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)
        self.hist: dict[str, IntArray] = {}

    def add_hist(
        self, name: str, cells: IntArray, bins: IntArray, n_cells: int, n_bins: int
    ) -> None:
        """Count ``bins[i]`` for cell ``cells[i]`` (negative bins are not counted)."""
        ok = bins >= 0
        flat = np.bincount(cells[ok] * n_bins + bins[ok], minlength=n_cells * n_bins)
        counts = flat.reshape(n_cells, n_bins).astype(np.int64)
        self.hist[name] = _add_rows(self.hist.get(name), counts)

    def hist_sized(self, name: str, n: int, n_bins: int) -> IntArray:
        """Histogram ``name`` cut or zero-padded to ``n`` cells (zeros if absent)."""
        h = self.hist.get(name)
        return np.zeros((n, n_bins), dtype=np.int64) if h is None else resized(h, (n, n_bins))

    def add(self, cells: IntArray, values: FloatArray, n_cells: int) -> None:
        """Merge the moments of ``values`` grouped by ``cells`` into this window."""
        c, m, s = group_moments(cells, values, n_cells)
        self.count = grow(self.count, n_cells)
        self.mean = grow(self.mean, n_cells)
        self.m2 = grow(self.m2, n_cells)
        k = n_cells
        self.count[:k], self.mean[:k], self.m2[:k] = merge_moments(
            self.count[:k], self.mean[:k], self.m2[:k], c, m, s
        )

    def sized(self, n: int) -> tuple[IntArray, FloatArray, FloatArray]:
        """The arrays cut or zero-padded to ``n`` cells."""
        return resized(self.count, n), resized(self.mean, n), resized(self.m2, n)


def _add_rows(acc: IntArray | None, counts: IntArray) -> IntArray:
    """``acc + counts`` row-wise, growing ``acc`` (rows and bins) as needed."""
    if acc is None:
        return counts
    rows, bins = max(acc.shape[0], counts.shape[0]), max(acc.shape[1], counts.shape[1])
    if acc.shape != (rows, bins):
        acc = resized(acc, (rows, bins))
    acc[: counts.shape[0], : counts.shape[1]] += counts
    return acc


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
    ) -> ApplyResult:
        """Apply one batch of valid events, given as columns in the partition's order.

        ``bins`` holds, per histogram of :attr:`hist_bins`, one bin index per event (-1: not
        counted), as made by ``DriftProfile.encode``.
        """
        n = len(keys)
        if n == 0:
            return ApplyResult(0, 0)
        leaf = self.registry.index_many(keys)
        return self.apply_indexed(leaf, event_times, scores, bins, event_ids, labels)

    def apply_indexed(
        self,
        leaf: IntArray,
        event_times: FloatArray,
        scores: FloatArray,
        bins: dict[str, IntArray] | None = None,
        event_ids: list[Any] | None = None,
        labels: list[Any] | None = None,
    ) -> ApplyResult:
        """:meth:`apply` with leaf cell indices already resolved by the registry.

        ``event_ids`` and ``labels`` (raw JSON values, one per event) feed the label side when
        there is one: the join on event ids, and inline labels.
        """
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
            if bins:
                bins = {name: b[ok] for name, b in bins.items()}
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
            self.events[:n_cells] += np.bincount(flat, minlength=n_cells)
            np.maximum.at(self.last_event_time, flat, np.repeat(event_times, k))
            for w in np.unique(window).tolist():
                in_window = window == w
                sel = np.repeat(in_window, k)
                acc = self.open.get(w)
                if acc is None:
                    acc = self.open[w] = WindowAcc()
                acc.add(flat[sel], flat_scores[sel], n_cells)
                for name, b in (bins or {}).items():
                    acc.add_hist(
                        name, flat[sel], np.repeat(b[in_window], k), n_cells, self.hist_bins[name]
                    )
            self.rolling.update(flat, flat_scores)
            if self.detectors is not None:
                self.detectors.update_scores(leaf, scores, event_times)
        if len(event_times):
            self.max_event_time = max(self.max_event_time, float(event_times.max()))
        if self.labels is not None:
            self.labels.predictions(leaf, window, event_times, scores, event_ids, labels)
        self._close_windows()
        return ApplyResult(len(leaf), n_late)

    def apply_labels(
        self, event_ids: list[str], labels: list[Any], label_times: FloatArray, next_offset: int
    ) -> None:
        """Apply a batch of label records read from the co-partitioned outcomes topic."""
        if self.labels is None:
            raise StateError("this partition does not measure performance (no [labels])")
        self.labels.labels(event_ids, labels, label_times, next_offset)
        self.labels.expire(self.max_event_time, self.watermark)

    def _close_windows(self) -> None:
        size = self.settings.window_seconds
        wm = self.watermark
        for w in sorted(self.open):
            if (w + 1) * size <= wm:
                acc = self.closed[w] = self.open.pop(w)
                if self.detectors is not None:
                    cells = np.flatnonzero(acc.count >= self.min_samples)
                    self.detectors.update_windows(cells, acc.mean[cells], (w + 1) * size)
        if len(self.closed) > RETAIN_CLOSED:
            self._evict_closed()
        if self.labels is not None:
            self.labels.expire(self.max_event_time, wm)

    def _evict_closed(self) -> None:
        ordered = sorted(self.closed, reverse=True)
        keep = set(ordered[:RETAIN_CLOSED])
        covered: set[int] = set()
        for w in ordered:
            models = self.window_models(w)
            if w in keep or models - covered:
                keep.add(w)
                covered |= models
        for w in ordered:
            if w not in keep:
                del self.closed[w]

    def window_models(self, w: int, open_: bool = False) -> set[int]:
        """Model ids with events in closed (or, with ``open_``, open) window ``w``."""
        acc = self.open[w] if open_ else self.closed[w]
        model_ids = self.registry.model_ids
        k = min(len(acc.count), len(model_ids))
        return set(np.unique(model_ids[:k][acc.count[:k] > 0]).tolist())

    # -- checkpoints -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (numbers, strings, lists, null) for a checkpoint; cells by key."""
        keys = self.registry.keys
        n = len(keys)
        self._ensure(n)
        touched = np.flatnonzero((self.events[:n] > 0) | (self.late[:n] > 0)).tolist()

        def windows(table: dict[int, WindowAcc]) -> list[Any]:
            out = []
            for w, acc in sorted(table.items()):
                c, m, s = acc.sized(n)
                idx = np.flatnonzero(c).tolist()
                entry: list[Any] = [
                    w,
                    [[list(keys[i]), int(c[i]), float(m[i]), float(s[i])] for i in idx],
                ]
                if acc.hist:
                    entry.append(
                        {
                            name: [
                                [list(keys[i]), h[i].tolist()]
                                for i in np.flatnonzero(h[:n].any(axis=1)).tolist()
                            ]
                            for name, h in sorted(acc.hist.items())
                            if h[:n].any()
                        }
                    )
                out.append(entry)
            return out

        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "offset": self.offset,
            "max_event_time": finite(self.max_event_time),
            "cells": [
                [
                    list(keys[i]),
                    int(self.events[i]),
                    int(self.late[i]),
                    finite(float(self.last_event_time[i])),
                ]
                for i in touched
            ],
            "open": windows(self.open),
            "closed": windows(self.closed),
            "rolling": self.rolling.to_dict(keys),
            "violations": [[*k, n] for k, n in sorted(self.violations.items())],
            "detectors": [] if self.detectors is None else self.detectors.to_dict(keys),
            "versions": version_rows(self.versions),
            "labels": None if self.labels is None else self.labels.to_dict(keys),
        }

    @staticmethod
    def validate(registry: CellRegistry, data: Any) -> None:
        """Check a checkpoint completely without building anything; raises StateError."""
        _parse_checkpoint(data, registry.ndims + 1, registry.settings.rolling_events)

    @classmethod
    def from_dict(cls, registry: CellRegistry, data: dict[str, Any]) -> PartitionState:
        """Rebuild a partition from :meth:`to_dict` output; raises StateError on bad data.

        The data is parsed and checked completely before anything touches ``registry``, so a
        bad checkpoint leaves neither a half-built partition nor stray cells behind. Cells that
        map to one cell here (an overflow cell of a full registry) are added together.
        """
        parsed = _parse_checkpoint(data, registry.ndims + 1, registry.settings.rolling_events)
        out = cls(registry, offset=parsed.offset)
        out.max_event_time = parsed.max_event_time
        index = {key: registry.ensure(key) for key in parsed.keys}
        out._ensure(len(registry))
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
                    width = max(len(counts) for _k, counts in hrows)
                    counts_arr = np.zeros((n, width), dtype=np.int64)
                    for hkey, hcounts in hrows:
                        counts_arr[index[hkey], : len(hcounts)] += hcounts
                    acc.hist[hname] = _add_rows(acc.hist.get(hname), counts_arr)
                cells = np.array([index[k] for k, *_ in rows], dtype=np.int64)
                c = np.zeros(n, dtype=np.int64)
                m, s = np.zeros(n), np.zeros(n)
                for (_k, ci, mi, si), cell in zip(rows, cells.tolist(), strict=True):
                    c[cell : cell + 1], m[cell : cell + 1], s[cell : cell + 1] = merge_moments(
                        c[cell : cell + 1],
                        m[cell : cell + 1],
                        s[cell : cell + 1],
                        np.array([ci]),
                        np.array([mi]),
                        np.array([si]),
                    )
                acc.count, acc.mean, acc.m2 = merge_moments(*acc.sized(n), c, m, s)
        out.detection_rows = [
            (index[dkey], name, count, last) for dkey, name, count, last in parsed.detections
        ]
        for vkey, vcount in parsed.violations:
            out.violations[vkey] = out.violations.get(vkey, 0) + vcount
        for key, values in parsed.rolling:
            out.rolling.update(np.full(len(values), index[key], dtype=np.int64), np.asarray(values))
        out.versions = parsed.versions
        return out


class _Parsed:
    __slots__ = (
        "cells",
        "closed",
        "detections",
        "hists",
        "keys",
        "max_event_time",
        "offset",
        "open",
        "rolling",
        "versions",
        "violations",
    )

    def __init__(self) -> None:
        self.offset: int | None = None
        self.max_event_time = -math.inf
        self.keys: dict[tuple[str, ...], None] = {}
        self.cells: list[tuple[tuple[str, ...], int, int, float]] = []
        self.open: list[tuple[int, list[tuple[tuple[str, ...], int, float, float]]]] = []
        self.closed: list[tuple[int, list[tuple[tuple[str, ...], int, float, float]]]] = []
        self.rolling: list[tuple[tuple[str, ...], list[float]]] = []
        #: (table, window) -> histogram name -> [(key, counts)]
        self.hists: dict[tuple[str, int], dict[str, list[tuple[tuple[str, ...], list[int]]]]] = {}
        self.violations: list[tuple[tuple[str, str, str], int]] = []
        self.detections: list[tuple[tuple[str, ...], str, int, float]] = []
        self.versions: VersionTable = {}


def _parse_checkpoint(data: Any, key_len: int, rolling_size: int) -> _Parsed:
    """Check the shape and every value of a partition checkpoint; pure, raises StateError."""
    out = _Parsed()

    def fail(where: str, why: str) -> StateError:
        return StateError(f"partition state is malformed: {where}: {why}")

    def integer(v: Any, where: str, lo: int = 0) -> int:
        if type(v) is not int or v < lo or v >= 2**63:
            raise fail(where, f"expected an integer >= {lo}, got {v!r:.40}")
        return v

    def number(v: Any, where: str) -> float:
        if type(v) is int and abs(v) < 2**63:
            return float(v)
        if type(v) is float and math.isfinite(v):
            return v
        raise fail(where, f"expected a finite number, got {v!r:.40}")

    def time_or_none(v: Any, where: str) -> float:
        return -math.inf if v is None else number(v, where)

    def key(v: Any, where: str) -> tuple[str, ...]:
        if type(v) is not list or len(v) != key_len or not all(type(x) is str and x for x in v):
            raise fail(where, f"expected a cell key of {key_len} non-empty strings")
        t = tuple(v)
        out.keys[t] = None
        return t

    def hists(v: Any, where: str) -> dict[str, list[tuple[tuple[str, ...], list[int]]]]:
        if type(v) is not dict:
            raise fail(where, "expected an object of histograms")
        out_h: dict[str, list[tuple[tuple[str, ...], list[int]]]] = {}
        for name, hrows in v.items():
            if type(hrows) is not list or not hrows:
                raise fail(f"{where}.{name}", "expected a non-empty list of [key, counts]")
            parsed_rows = []
            for r, row in enumerate(hrows):
                at = f"{where}.{name}[{r}]"
                if type(row) is not list or len(row) != 2 or type(row[1]) is not list:
                    raise fail(at, "expected [key, counts]")
                if not row[1] or len(row[1]) > 4096:
                    raise fail(at, "expected 1 to 4096 counts")
                parsed_rows.append((key(row[0], at), [integer(x, at) for x in row[1]]))
            out_h[str(name)] = parsed_rows
        return out_h

    def rows(v: Any, where: str) -> list[tuple[int, list[Any]]]:
        if type(v) is not list:
            raise fail(where, "expected a list")
        windows = []
        for j, item in enumerate(v):
            if type(item) is not list or len(item) not in (2, 3) or type(item[1]) is not list:
                raise fail(f"{where}[{j}]", "expected [window, cells] or [window, cells, hists]")
            w = item[0]
            if type(w) is not int or abs(w) >= 2**53:
                raise fail(f"{where}[{j}]", f"expected a window number, got {w!r:.40}")
            cells = []
            for r, row in enumerate(item[1]):
                at = f"{where}[{j}][{r}]"
                if type(row) is not list or len(row) != 4:
                    raise fail(at, "expected [key, count, mean, m2]")
                cells.append(
                    (
                        key(row[0], at),
                        integer(row[1], at, 1),
                        number(row[2], at),
                        max(number(row[3], at), 0.0),
                    )
                )
            windows.append((w, cells))
            if len(item) == 3:
                out.hists[(where, w)] = hists(item[2], f"{where}[{j}][2]")
        return windows

    if type(data) is not dict:
        raise fail("checkpoint", "expected an object")
    try:
        offset = data["offset"]
        out.offset = None if offset is None else integer(offset, "offset")
        out.max_event_time = time_or_none(data["max_event_time"], "max_event_time")
        if type(data["cells"]) is not list:
            raise fail("cells", "expected a list")
        for j, row in enumerate(data["cells"]):
            at = f"cells[{j}]"
            if type(row) is not list or len(row) != 4:
                raise fail(at, "expected [key, events, late, last_event_time]")
            out.cells.append(
                (
                    key(row[0], at),
                    integer(row[1], at),
                    integer(row[2], at),
                    time_or_none(row[3], at),
                )
            )
        out.open = rows(data["open"], "open")
        out.closed = rows(data["closed"], "closed")
        rolling = data["rolling"]
        if type(rolling) is not dict or type(rolling.get("cells")) is not list:
            raise fail("rolling", "expected an object with a list of cells")
        if rolling.get("size") != rolling_size:
            raise StateError(
                f"rolling window size {rolling.get('size')!r} in the checkpoint differs from "
                f"the configured {rolling_size}"
            )
        for j, row in enumerate(rolling["cells"]):
            at = f"rolling.cells[{j}]"
            if type(row) is not list or len(row) != 2 or type(row[1]) is not list:
                raise fail(at, "expected [key, values]")
            values = [number(x, at) for x in row[1][-rolling_size:]]
            out.rolling.append((key(row[0], at), values))
        violations = data["violations"]
        if type(violations) is not list:
            raise fail("violations", "expected a list")
        for j, row in enumerate(violations):
            at = f"violations[{j}]"
            if type(row) is not list or len(row) != 4 or not all(type(x) is str for x in row[:3]):
                raise fail(at, "expected [model, feature, kind, count]")
            out.violations.append(((row[0], row[1], row[2]), integer(row[3], at)))
        detections = data["detectors"]
        if type(detections) is not list:
            raise fail("detectors", "expected a list")
        for j, row in enumerate(detections):
            at = f"detectors[{j}]"
            if type(row) is not list or len(row) != 4 or type(row[1]) is not str:
                raise fail(at, "expected [key, detector, detections, last time]")
            out.detections.append(
                (key(row[0], at), row[1], integer(row[2], at), time_or_none(row[3], at))
            )
        out.versions = parse_versions(data["versions"])
        if data["labels"] is not None and type(data["labels"]) is not dict:
            raise fail("labels", "expected an object or null")
    except KeyError as exc:
        raise fail("checkpoint", f"missing key {exc}") from None
    return out
