"""The checkpoint rows of performance sums: their layout and their strict, pure validation.

One row per touched cell, cells named by key (never by index)::

    [key, counts, sums]                                                  regression
    [key, counts, sums, bin counts, bin positives, bin score sums]       classification

``counts`` and ``sums`` follow :data:`COUNT_FIELDS` and :data:`SUM_FIELDS`; the bin vectors have
``calibration_bins`` entries. :func:`parse_rows` checks every type, length and range (and the
identities the sums obey, e.g. ``correct == labeled - fp - fn``) before anything is resolved,
so a bad checkpoint can neither half-apply nor create cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.codec import Check
from tilewatch.aggregators.labels.settings import Task

__all__ = ["COUNT_FIELDS", "SUM_FIELDS", "ParsedRows", "parse_rows"]


#: Integer sums per cell, by task, in row order.
COUNT_FIELDS: dict[Task, tuple[str, ...]] = {
    "classification": ("predictions", "labeled", "correct", "tp", "fp", "fn"),
    "regression": ("predictions", "labeled"),
}
#: Float sums per cell, by task, in row order.
SUM_FIELDS: dict[Task, tuple[str, ...]] = {
    "classification": ("q", "q_var", "labeled_q", "labeled_q_var", "brier", "log_loss"),
    "regression": ("error", "abs_error", "squared_error"),
}
#: Largest log-loss term, ``-ln(1e-15)`` (probabilities are clipped to ``[1e-15, 1 - 1e-15]``).
LOG_LOSS_MAX = -math.log(1e-15)
#: Relative slack of the range checks on float sums (rounding, never data).
_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class ParsedRows:
    """Checked checkpoint rows of performance sums, cells by key (nothing resolved yet).

    ``counts`` is ``(rows, count fields)``, ``sums`` ``(rows, sum fields)`` and the bin
    arrays ``(rows, bins)`` (zero bins for regression).
    """

    keys: list[tuple[str, ...]]
    counts: IntArray
    sums: FloatArray
    bin_count: IntArray
    bin_positives: IntArray
    bin_score: FloatArray
    #: Sum of squared scores per bin (rows written before it existed: the score sums, which
    #: makes the calibration test conservative for those windows).
    bin_square: FloatArray


#: The checks of performance rows (``performance state is malformed: <where>: <why>``).
CHECK = Check("performance state")


def _check(bad: BoolArray, where: str, why: str) -> None:
    """Raise naming the first row where ``bad`` (shape ``(rows,)`` or ``(rows, k)``) holds."""
    rows = np.flatnonzero(bad.any(axis=1) if bad.ndim == 2 else bad)
    if len(rows):
        raise CHECK.fail(f"rows[{int(rows[0])}].{where}", why)


def _at_most(value: FloatArray, limit: npt.ArrayLike) -> BoolArray:
    """Where ``value`` exceeds ``limit`` by more than rounding (or is negative)."""
    lim = np.asarray(limit, dtype=np.float64)
    return (value < 0) | (value > lim * (1 + _TOL) + _TOL)


def parse_rows(rows: Any, task: Task, bins: int, key_len: int) -> ParsedRows:
    """Check performance checkpoint rows completely; pure, raises StateError naming where.

    Parameters
    ----------
    rows : Any
        Decoded JSON, as written by ``PerfAcc.to_rows``.
    task : str
        ``"classification"`` or ``"regression"``.
    bins : int
        The configured calibration bins (classification rows must have exactly as many).
    key_len : int
        Parts of a cell key (model plus dimensions).

    Returns
    -------
    ParsedRows

    Raises
    ------
    StateError
        On any wrong shape, type, non-finite number, negative count, duplicate key, wrong
        bin-vector length or sum out of its possible range.

    Examples
    --------
    >>> parse_rows([[["m"], [3, 2], [0.5, 0.5, 0.25]]], "regression", 10, 1).counts.tolist()
    [[3, 2]]
    >>> parse_rows([[["m"], [3, -2], [0.5, 0.5, 0.25]]], "regression", 10, 1)
    Traceback (most recent call last):
    tilewatch.aggregators.errors.StateError: performance state is malformed: rows[0].counts: ...
    """
    cls = task == "classification"
    n_counts, n_sums = len(COUNT_FIELDS[task]), len(SUM_FIELDS[task])
    width = 7 if cls else 3
    nb = bins if cls else 0
    shape = (
        "[key, counts, sums, bin counts, bin positives, bin scores, bin squared scores]"
        if cls
        else "[key, counts, sums]"
    )
    keys: dict[tuple[str, ...], None] = {}
    counts, sums, b_count, b_pos, b_score, b_square = [], [], [], [], [], []
    for j, row in enumerate(CHECK.array(rows, "rows")):
        at = f"rows[{j}]"
        if cls and type(row) is list and len(row) == width - 1:
            row = [*row, row[5]]  # written before squared scores were kept
        CHECK.row(row, at, width, shape)
        t = CHECK.key(row[0], f"{at}.key", key_len)
        if t in keys:
            raise CHECK.fail(f"{at}.key", f"duplicate cell key {t!r}")
        keys[t] = None
        counts.append(CHECK.ints(row[1], f"{at}.counts", n_counts))
        sums.append(CHECK.floats(row[2], f"{at}.sums", n_sums))
        if cls:
            b_count.append(CHECK.ints(row[3], f"{at}.bin_counts", nb))
            b_pos.append(CHECK.ints(row[4], f"{at}.bin_positives", nb))
            b_score.append(CHECK.floats(row[5], f"{at}.bin_scores", nb))
            b_square.append(CHECK.floats(row[6], f"{at}.bin_squares", nb))
    m = len(keys)
    out = ParsedRows(
        keys=list(keys),
        counts=np.array(counts, dtype=np.int64).reshape(m, n_counts),
        sums=np.array(sums, dtype=np.float64).reshape(m, n_sums),
        bin_count=np.array(b_count, dtype=np.int64).reshape(m, nb),
        bin_positives=np.array(b_pos, dtype=np.int64).reshape(m, nb),
        bin_score=np.array(b_score, dtype=np.float64).reshape(m, nb),
        bin_square=np.array(b_square, dtype=np.float64).reshape(m, nb),
    )
    _check_ranges(out, cls)
    return out


def _check_ranges(p: ParsedRows, cls: bool) -> None:
    """The identities and bounds the sums of real events always satisfy."""
    c, s = p.counts, p.sums
    pred, lab = c[:, 0], c[:, 1]
    if not cls:
        err, abs_err, sq = s[:, 0], s[:, 1], s[:, 2]
        _check((abs_err < 0) | (sq < 0), "sums", "abs_error and squared_error must be >= 0")
        _check(_at_most(np.abs(err), abs_err), "sums", "|error| exceeds abs_error")
        _check((lab == 0) & (s != 0).any(axis=1), "sums", "sums without labeled events")
        return
    correct, tp, fp, fn = c[:, 2], c[:, 3], c[:, 4], c[:, 5]
    _check(tp + fp + fn > lab, "counts", "tp + fp + fn exceeds labeled")
    _check(correct != lab - fp - fn, "counts", "correct differs from labeled - fp - fn")
    _check(p.bin_count.sum(axis=1) != lab, "bin_counts", "bin counts do not add up to labeled")
    _check(p.bin_positives > p.bin_count, "bin_positives", "more positives than events in a bin")
    _check(p.bin_positives.sum(axis=1) != tp + fn, "bin_positives", "positives differ from tp + fn")
    _check(_at_most(p.bin_score, p.bin_count), "bin_scores", "a score sum outside [0, count]")
    _check(_at_most(p.bin_square, p.bin_score), "bin_squares", "a squared sum outside [0, scores]")
    limits = (pred, pred / 4, lab, lab / 4, lab, lab * LOG_LOSS_MAX)
    for k, (name, limit) in enumerate(zip(SUM_FIELDS["classification"], limits, strict=True)):
        _check(_at_most(s[:, k], limit), "sums", f"{name} outside its range for the counts")
