"""Latency quantiles per cell and window, from fixed log-spaced histograms.

Serving latency is skewed and spans orders of magnitude, so it is counted into
:data:`LATENCY_BINS` fixed bins whose edges grow geometrically from 0.1 ms to 100 s (a factor
of ``10 ** 0.1``, about 1.26, per bin), plus one bin below and one above. Histograms of the same
layout merge exactly by adding counts, so partitions and replicas combine; a quantile is read by
interpolating geometrically inside its bin, which bounds its relative error by the bin's width
(at most 26%, typically about half of that).

Latencies are given in seconds. A missing or invalid latency gets bin ``-1`` and is not counted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray

__all__ = [
    "LATENCY_BINS",
    "LATENCY_QUANTILES",
    "latency_bins",
    "latency_quantiles",
    "latency_quantiles_many",
    "percentile_label",
]


_LO, _HI, _PER_DECADE = 1e-4, 100.0, 10
#: Edges (seconds) of the log-spaced bins between 0.1 ms and 100 s.
_EDGES = np.logspace(math.log10(_LO), math.log10(_HI), 6 * _PER_DECADE + 1)
#: Bins of a latency histogram: below 0.1 ms, the log-spaced bins, and 100 s or more.
LATENCY_BINS = len(_EDGES) + 1
#: Quantiles exported per cell (the ``percentile`` label: ``50``, ``95``, ``99``).
LATENCY_QUANTILES = (0.5, 0.95, 0.99)


def percentile_label(q: float) -> str:
    """The ``percentile`` label value of a quantile (``0.95`` -> ``"95"``).

    Prometheus reserves the ``quantile`` label for summaries, so gauges say ``percentile``.

    >>> [percentile_label(q) for q in LATENCY_QUANTILES]
    ['50', '95', '99']
    """
    return f"{q * 100:g}"


_PLAIN = {float, int, type(None)}


def latency_bins(values: list[Any]) -> tuple[IntArray, int]:
    """Bin indices of raw latency values in milliseconds (JSON numbers), and how many were bad.

    ``None`` (absent) gets bin -1 silently; a value that is not a finite number >= 0 gets bin
    -1 and is counted as bad.

    Examples
    --------
    >>> bins, bad = latency_bins([0.05, 1.0, 250.0, None, -3, "x", 1e9])
    >>> bins.tolist(), bad
    ([0, 11, 34, -1, -1, -1, 61], 2)
    """
    out = np.full(len(values), -1, dtype=np.int64)
    if set(map(type, values)) <= _PLAIN:  # the usual batch: numbers and absent values
        ms = np.asarray(values, dtype=np.float64)  # None becomes NaN
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(ms) & (ms >= 0)
        out[valid] = np.searchsorted(_EDGES, ms[valid] / 1000.0, side="right")
        return out, len(values) - int(valid.sum()) - values.count(None)
    ms = np.full(len(values), np.nan)
    bad = 0
    for i, v in enumerate(values):
        t = type(v)
        if t is float or t is int:
            if v >= 0 and v - v == 0:
                ms[i] = v
            else:
                bad += 1
        elif v is not None:
            bad += 1
    ok = ~np.isnan(ms)
    out[ok] = np.searchsorted(_EDGES, ms[ok] / 1000.0, side="right")
    return out, bad


#: Rows of a histogram converted and summed at a time by :func:`latency_quantiles_many`.
_CHUNK = 8192


def latency_quantiles(hist: IntArray, q: float) -> FloatArray:
    """Quantile ``q`` (seconds) of each row of a ``(cells, LATENCY_BINS)`` histogram.

    Rows without counts give NaN. Inside a log-spaced bin the quantile is interpolated
    geometrically; the open bins at either end report their finite edge.

    Examples
    --------
    >>> h = np.zeros((2, LATENCY_BINS), dtype=np.int64)
    >>> np.add.at(h[0], latency_bins([10.0] * 99 + [900.0])[0], 1)
    >>> qs = latency_quantiles(h, 0.5)
    >>> bool(0.0079 < qs[0] < 0.0126), bool(np.isnan(qs[1]))
    (True, True)
    """
    return latency_quantiles_many(hist, (q,))[0]


def latency_quantiles_many(hist: IntArray, qs: tuple[float, ...]) -> list[FloatArray]:
    """:func:`latency_quantiles` for each of ``qs``, reading the histogram once, a block of
    rows at a time: the cumulative sums are those of :data:`_CHUNK` rows, not of the whole
    table (50 MB at 100,000 cells), integers summed straight from the table's dtype (a
    closed window's are one byte a bin), and each row's result is the same."""
    out = [np.full(len(hist), np.nan) for _ in qs]
    for start in range(0, len(hist), _CHUNK):
        chunk = hist[start : start + _CHUNK]
        cum = np.cumsum(chunk, axis=1, dtype=np.int64)
        if not cum.shape[1]:
            continue
        rows: IntArray = np.flatnonzero(cum[:, -1] > 0)
        if not len(rows):
            continue
        cum = cum[rows]
        for q, res in zip(qs, out, strict=True):
            res[start + rows] = _quantile_rows(chunk, rows, cum, q)
    return out


def _quantile_rows(hist: IntArray, rows: IntArray, cum: IntArray, q: float) -> FloatArray:
    """Quantile ``q`` of ``hist[rows]`` (each with events), ``cum`` their cumulative sums."""
    n = cum[:, -1].astype(np.float64)
    target = q * n
    # Bins whose cumulative count is below the target: for integer sums, those below its
    # ceiling, so the comparison stays in integers.
    b = (cum < np.ceil(target).astype(np.int64)[:, None]).sum(axis=1)
    b = np.minimum(b, LATENCY_BINS - 1)
    below = np.where(b > 0, cum[np.arange(len(rows)), np.maximum(b - 1, 0)], 0).astype(np.float64)
    inside = hist[rows, b].astype(np.float64)
    frac = np.clip(
        np.where(inside > 0, (target - below) / np.where(inside > 0, inside, 1), 0), 0, 1
    )
    lo_edge = _EDGES[np.clip(b - 1, 0, len(_EDGES) - 1)]
    hi_edge = _EDGES[np.clip(b, 0, len(_EDGES) - 1)]
    value = lo_edge * (hi_edge / lo_edge) ** frac
    value = np.where(b == 0, _EDGES[0], value)
    out: FloatArray = np.where(b == LATENCY_BINS - 1, _EDGES[-1], value)
    return out
