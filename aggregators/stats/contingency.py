"""Two-row contingency tables for the tests of :mod:`tilewatch.aggregators.stats.homogeneity`
and :mod:`tilewatch.aggregators.stats.calibration_error`: reading the rows, pooling adjacent
bins, power-divergence terms and exact hypergeometric tails, all vectorized over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from tilewatch.aggregators.arrays import BoolArray, FloatArray, as_floats

__all__ = [
    "CR_LAMBDA",
    "ReferenceTotal",
    "group_ends",
    "group_sums",
    "hypergeom_tail",
    "log_choose",
    "power_terms",
    "tables",
]

IntArray = npt.NDArray[np.intp]
#: The reference total of a row: ``"sum"`` (its counts' sum), a number (an effective size) or
#: None (exact shares, no sampling error).
ReferenceTotal = npt.ArrayLike | Literal["sum"] | None
#: Cressie and Read's power-divergence exponent, recommended for small expected counts.
CR_LAMBDA = 2.0 / 3.0


def tables(
    reference_counts: npt.ArrayLike, window_counts: npt.ArrayLike, reference_total: ReferenceTotal
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, tuple[int, ...]]:
    """Rows of reference shares and window counts, ``n_w`` and ``n_r`` (inf: no reference
    sampling error), and the output shape. Reference rows summing to 0 get NaN shares."""
    r = as_floats(reference_counts)
    o = as_floats(window_counts)
    if r.ndim == 0 or o.ndim == 0:
        raise ValueError("reference_counts and window_counts need a bin axis")
    if r.shape[-1] != o.shape[-1]:
        raise ValueError(f"bin counts differ: {r.shape[-1]} reference, {o.shape[-1]} window")
    r, o = np.broadcast_arrays(r, o)
    shape = r.shape[:-1]
    k = r.shape[-1]
    r = r.reshape(-1, k)
    o = o.reshape(-1, k)
    if (r < 0).any() or (o < 0).any():
        raise ValueError("counts must be >= 0")
    r_sum = r.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = r / r_sum[:, None]
    if reference_total is None:
        n_r = np.full(r.shape[0], np.inf)
    elif isinstance(reference_total, str):
        if reference_total != "sum":
            raise ValueError(
                f'reference_total must be "sum", a number or None, got {reference_total!r}'
            )
        n_r = r_sum
    else:
        n_r = np.broadcast_to(as_floats(reference_total), shape).reshape(-1).copy()
        if (n_r < 0).any():
            raise ValueError("reference_total must be >= 0")
    return p, o, o.sum(axis=1), n_r, shape


def group_ends(columns: Sequence[FloatArray], need: FloatArray) -> BoolArray:
    """Where each group of adjacent bins ends, per row.

    Bins are taken left to right into the current group until every one of ``columns``
    (shape ``(rows, bins)``), summed over the group, reaches ``need`` (per row); a remainder
    that does not reach it joins the last group. A row where no group reaches ``need`` is one
    group. The last bin always ends a group.
    """
    rows, k = columns[0].shape
    ends = np.zeros((rows, k), dtype=np.bool_)
    acc = [np.zeros(rows) for _ in columns]
    limit = need * (1.0 - 1e-9)  # shares summing to exactly ``need`` count as reaching it
    for b in range(k):
        done = np.ones(rows, dtype=np.bool_)
        for a, col in zip(acc, columns, strict=True):
            a += col[:, b]
            done &= a >= limit
        ends[:, b] = done
        for a in acc:
            a[done] = 0.0
    short = ~ends[:, -1] & ends.any(axis=1)
    last = k - 1 - np.argmax(ends[:, ::-1], axis=1)
    where = np.flatnonzero(short)
    ends[where, last[where]] = False
    ends[:, -1] = True
    return ends


def group_sums(ends: BoolArray, *values: FloatArray) -> tuple[IntArray, IntArray, list[FloatArray]]:
    """Sums of ``values`` over each group: (row of each group, groups per row, sums)."""
    row, col = np.nonzero(ends)
    first = np.ones(row.size, dtype=np.bool_)
    first[1:] = row[1:] != row[:-1]
    sums = []
    for v in values:
        at_end = np.cumsum(v, axis=1)[row, col]
        before = np.empty_like(at_end)
        before[0:1] = 0.0
        before[1:] = at_end[:-1]
        before[first] = 0.0
        sums.append(at_end - before)
    return row, np.bincount(row, minlength=ends.shape[0]), sums


def power_terms(observed: FloatArray, expected: FloatArray, lambda_: float) -> FloatArray:
    """Cells' terms of the power divergence ``2/(l(l+1)) sum O((O/E)^l - 1)``, per cell."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if lambda_ == 1.0:
            return (observed - expected) ** 2 / expected
        if lambda_ == 0.0:
            t = np.where(observed > 0, observed * np.log(observed / expected), 0.0)
            return 2.0 * t
        ratio = observed / expected
        t = observed * (np.power(ratio, lambda_) - 1.0)
        return 2.0 / (lambda_ * (lambda_ + 1.0)) * t


def log_choose(n: FloatArray, k: FloatArray) -> FloatArray:
    out: FloatArray = (
        special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
    )
    return out


def hypergeom_tail(
    x: FloatArray, draws: FloatArray, hits: FloatArray, total: FloatArray, upper: bool
) -> FloatArray:
    """``P(X >= x)`` (upper) or ``P(X <= x)`` of ``X ~ Hypergeometric(total, hits, draws)``.

    For each row the tail on the far side of the mode from ``x`` is summed term by term (each
    pmf from the previous one by their ratio, so the terms shrink), for all rows at once until
    no term changes a sum; the requested tail is that sum or one minus it. Integer-valued
    float arrays of one shape.
    """
    lo = np.maximum(0.0, draws - (total - hits))
    hi = np.minimum(draws, hits)
    mode = np.floor((draws + 1.0) * (hits + 1.0) / (total + 2.0))
    if upper:  # P(X >= x): sum x, x+1, ... above the mode; else 1 - (x-1, x-2, ...)
        step = np.where(x > mode, 1.0, -1.0)
        j = np.where(x > mode, x, x - 1.0)
    else:  # P(X <= x): sum x, x-1, ... below the mode; else 1 - (x+1, x+2, ...)
        step = np.where(x < mode, -1.0, 1.0)
        j = np.where(x < mode, x, x + 1.0)
    complement = (step > 0) != upper
    inside = (j >= lo) & (j <= hi)
    jc = np.clip(j, lo, hi)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        term = np.exp(
            log_choose(hits, jc) + log_choose(total - hits, draws - jc) - log_choose(total, draws)
        )
    term = np.where(inside, term, 0.0)
    acc = term.copy()
    active = np.flatnonzero(inside)
    while active.size:
        ja, sa = j[active], step[active]
        h, d, t = hits[active], draws[active], total[active]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(
                sa > 0,
                (h - ja) * (d - ja) / ((ja + 1.0) * (t - h - d + ja + 1.0)),
                ja * (t - h - d + ja) / ((h - ja + 1.0) * (d - ja + 1.0)),
            )
        nxt = ja + sa
        ok = (nxt >= lo[active]) & (nxt <= hi[active])
        new = np.where(ok, np.nan_to_num(term[active] * ratio, nan=0.0), 0.0)
        term[active] = new
        acc[active] += new
        j[active] = nxt
        active = active[ok & (new > acc[active] * 1e-17)]
    return np.clip(np.where(complement, 1.0 - acc, acc), 0.0, 1.0)
