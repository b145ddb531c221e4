"""Tiles: one cell's value, sample size, bounds, health, flags and why it is grey, as JSON.

:func:`tiles` builds the tiles of a set of cells for one statistic and normalisation from a
:class:`~tilewatch.exporters.web.source.TileFrame` and the window history:

- ``raw``: the value of the latest window (score statistics: the reported window; label
  statistics: the performance window);
- ``z``: ``(value - mean) / sd`` of the same statistic over the cell's earlier windows in the
  history (at least :data:`MIN_REFERENCE` of them with a value): "how unusual is this window for
  this cell";
- ``change``: the value minus the previous window's value.

A tile is grey (``grey`` holds the reason) when the cell had no events, fewer than
``min_samples`` samples, no value, or the normalisation has too little history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.exporters.grafana.dashboard_statistics import Statistic
from tilewatch.exporters.web.query import HEALTH
from tilewatch.exporters.web.source import EVENTS, LABELED, TileFrame, TileSource

__all__ = [
    "MIN_REFERENCE",
    "Strips",
    "current_windows",
    "normalise",
    "strips",
    "tiles",
    "window_size",
]

#: Earlier windows with a value that a z needs.
MIN_REFERENCE = 3


def _f(x: float) -> float | None:
    """JSON number or null."""
    return None if x is None or not math.isfinite(x) else float(x)


def normalise(values: FloatArray, norm: str, span: float) -> FloatArray:
    """Normalise each row of ``values`` (cells x windows, oldest first) along the windows.

    ``z`` compares each window with the windows before it in the row; the spread is floored
    at ``1e-6 * span`` (the statistic's colour-scale width) so a constant history gives a large
    finite z rather than a division by zero.

    Examples
    --------
    >>> normalise(np.array([[1.0, 2.0, 4.0]]), "change", 1.0).tolist()
    [[nan, 1.0, 2.0]]
    >>> z = normalise(np.array([[1.0, 2.0, 3.0, 5.0]]), "z", 1.0)
    >>> [round(v, 3) for v in z[0].tolist()[3:]]
    [3.0]
    """
    if norm == "raw":
        return values
    out = np.full(values.shape, math.nan)
    if norm == "change":
        out[:, 1:] = values[:, 1:] - values[:, :-1]
        return out
    has = ~np.isnan(values)
    x = np.where(has, values, 0.0)
    cnt = np.cumsum(has, axis=1)[:, :-1].astype(np.float64)
    s1 = np.cumsum(x, axis=1)[:, :-1]
    s2 = np.cumsum(x * x, axis=1)[:, :-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        var = np.maximum(s2 - cnt * mean * mean, 0.0) / (cnt - 1.0)
        sd = np.maximum(np.sqrt(var), 1e-6 * span)
        z = (values[:, 1:] - mean) / sd
    out[:, 1:] = np.where(cnt >= MIN_REFERENCE, z, math.nan)
    return out


def current_windows(frame: TileFrame, stat: Statistic | None, cells: IntArray) -> IntArray:
    """The window number each cell's tile shows (-1: none yet)."""
    snap = frame.snap
    starts: dict[str, float] = dict(snap.window_start)
    size = window_size(frame)
    if stat is not None and stat.count == LABELED:
        perf = snap.performance
        starts = {} if perf is None else {m: e - size for m, e in perf.window_end.items()}
    by_model = np.array(
        [
            round(starts[m] / size) if m in starts and math.isfinite(size) else -1
            for m in snap.model_names
        ],
        dtype=np.int64,
    )
    return by_model[snap.model_ids[cells]] if len(by_model) else np.full(len(cells), -1)


def window_size(frame: TileFrame) -> float:
    """The window length in seconds (NaN before the first reported window)."""
    snap = frame.snap
    for m, start in snap.window_start.items():
        if m in snap.window_end:
            return snap.window_end[m] - start
    return math.nan


@dataclass(frozen=True)
class Strips:
    """The last windows of some cells: window numbers, raw and normalised values, counts."""

    windows: IntArray
    raw: FloatArray
    norm: FloatArray
    counts: FloatArray


def strips(
    source: TileSource, frame: TileFrame, cells: IntArray, stat: Statistic, norm: str
) -> Strips | None:
    """The history of ``cells`` for one statistic (None when no history is kept)."""
    found = source.read_history(frame.snap.model_ids, cells.tolist())
    if found is None:
        return None
    windows, values = found
    raw = values.get(stat.key, np.full(windows.shape, math.nan))
    count = values.get(stat.count if stat.count in values else EVENTS, np.zeros(windows.shape))
    return Strips(windows, raw, normalise(raw, norm, stat.high - stat.low), count)


def _grey(n: float, need: int, value: float, what: str) -> str | None:
    if not n or not math.isfinite(n):
        return f"no {what} in this window"
    if n < need:
        return f"n = {int(n)} < min_samples = {need}: too few {what} for a verdict"
    if not math.isfinite(value):
        return "no value for this statistic in this window"
    return None


def tiles(
    source: TileSource,
    frame: TileFrame,
    cells: Sequence[int],
    statistic: str,
    norm: str,
) -> list[dict[str, Any]]:
    """The tiles of ``cells`` (indices into the frame's snapshot), in that order."""
    idx = np.asarray(cells, dtype=np.int64)
    snap = frame.snap
    stat = source.by_key.get(statistic)
    status = frame.status[idx].tolist()
    events = frame.counts[EVENTS][idx].tolist()
    out: list[dict[str, Any]] = []
    if stat is None:  # the health pseudo-statistic
        assert statistic == HEALTH
        for j, i in enumerate(idx.tolist()):
            st = int(status[j])
            out.append(
                {
                    "key": list(snap.keys[i][1:]),
                    "value": st if st >= 0 else None,
                    "n": int(events[j]),
                    "status": st,
                    "flags": frame.flags[i],
                    "grey": None if st >= 0 else "no health verdict (too few samples)",
                }
            )
        return out
    count_name = stat.count if stat.count in frame.counts else EVENTS
    need = source.min_samples.get(count_name, 1)
    what = "labeled events" if count_name == LABELED else "events"
    values = frame.values[stat.key][idx].tolist()
    counts = frame.counts[count_name][idx].tolist()
    bounds = frame.bounds.get(stat.key)
    lower = bounds[0][idx].tolist() if bounds is not None else [math.nan] * len(idx)
    upper = bounds[1][idx].tolist() if bounds is not None else [math.nan] * len(idx)
    normed = [math.nan] * len(idx)
    norm_grey: list[str | None] = [None] * len(idx)
    if norm != "raw":
        found = strips(source, frame, idx, stat, norm)
        current = current_windows(frame, stat, idx)
        for j in range(len(idx)):
            if found is not None:
                pos = np.flatnonzero(found.windows[j] == current[j])
                if len(pos):
                    normed[j] = float(found.norm[j, pos[0]])
            if not math.isfinite(normed[j]):
                norm_grey[j] = (
                    f"z needs {MIN_REFERENCE} earlier windows with a value"
                    if norm == "z"
                    else "change needs the previous window's value"
                )
    for j, i in enumerate(idx.tolist()):
        grey = _grey(counts[j], need, values[j], what) or norm_grey[j]
        out.append(
            {
                "key": list(snap.keys[i][1:]),
                "value": _f(values[j]),
                "norm": _f(normed[j]) if norm != "raw" else _f(values[j]),
                "n": int(counts[j]) if math.isfinite(counts[j]) else 0,
                "lower": _f(lower[j]),
                "upper": _f(upper[j]),
                "status": int(status[j]),
                "flags": frame.flags[i],
                "grey": grey,
            }
        )
    return out
