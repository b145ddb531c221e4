"""Performance metrics of many cells at once, from the sums of a :class:`PerfAcc`.

Everything is vectorized over cells; a metric is NaN where a cell has fewer than ``min_samples``
labeled events (predictions, for :func:`estimate_all`) or where it is undefined (a zero
denominator). Only the public accessors of the accumulator are used (``sized``, ``column``), so this
module imports :mod:`tilewatch.aggregators.labels.sums` for types only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.stats.intervals import wilson_interval

if TYPE_CHECKING:
    from tilewatch.aggregators.labels.sums import PerfAcc

__all__ = ["PerformanceStats", "derive_performance", "estimate_all"]


@dataclass(frozen=True)
class PerformanceStats:
    """Performance metrics per cell; NaN where labeled < ``min_samples`` or undefined.

    ``labeled`` is never NaN. Classification fields are NaN for regression and vice versa.
    ``estimate_bound`` is ``z sqrt(sum q (1 - q)) / labeled``: with calibrated scores,
    ``|estimate_gap|`` stays within it with probability about ``confidence``.
    """

    labeled: IntArray
    accuracy: FloatArray
    accuracy_lower: FloatArray
    accuracy_upper: FloatArray
    error: FloatArray
    error_lower: FloatArray
    error_upper: FloatArray
    precision: FloatArray
    recall: FloatArray
    f1: FloatArray
    brier: FloatArray
    log_loss: FloatArray
    calibration_error: FloatArray
    estimated_accuracy: FloatArray
    estimate_gap: FloatArray
    estimate_bound: FloatArray
    mae: FloatArray
    rmse: FloatArray
    mean_error: FloatArray


def _ratio(num: npt.ArrayLike, den: npt.ArrayLike) -> FloatArray:
    """``num / den``, NaN where ``den == 0``."""
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out: FloatArray = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out


def derive_performance(acc: PerfAcc, n: int) -> PerformanceStats:
    """Every metric of ``n`` cells from their sums, for the whole grid at once.

    Accuracy and error carry Wilson intervals; precision, recall and F1 are NaN on a zero
    denominator (no predicted positives, no positives, neither); the ECE is
    ``sum_b |positives_b - score sum_b| / labeled``, i.e. ``sum_b (n_b / n) |mean(label)_b -
    mean(score)_b|`` over the non-empty bins.

    Examples
    --------
    >>> from tilewatch.aggregators.labels.settings import PerformanceSettings
    >>> from tilewatch.aggregators.labels.sums import PerfAcc
    >>> acc = PerfAcc(PerformanceSettings(min_samples=4))
    >>> s = np.array([0.9, 0.8, 0.3, 0.6, 0.1])
    >>> acc.add_classified(np.array([0, 0, 0, 0, 1]), s, np.array([1.0, 1, 0, 0, 0]), s >= 0.5,
    ...                    n_cells=2)
    >>> st = derive_performance(acc, 2)
    >>> st.labeled.tolist(), st.accuracy.tolist(), st.precision.tolist(), st.f1.tolist()
    ([4, 1], [0.75, nan], [0.666..., nan], [0.8, nan])
    >>> round(float(st.brier[0]), 4), round(float(st.calibration_error[0]), 4)
    (0.125, 0.3)
    """
    a, s = acc.sized(n), acc.settings
    lab = a.column("labeled")
    ok = lab >= s.min_samples
    nan = np.full(n, np.nan)

    def gated(v: FloatArray) -> FloatArray:
        return np.where(ok, v, np.nan)

    cls = {k: nan for k in ("accuracy", "accuracy_lower", "accuracy_upper", "error")}
    cls |= {k: nan for k in ("error_lower", "error_upper", "precision", "recall", "f1")}
    cls |= {k: nan for k in ("brier", "log_loss", "calibration_error", "estimated_accuracy")}
    cls |= {"estimate_gap": nan, "estimate_bound": nan}
    reg = {"mae": nan, "rmse": nan, "mean_error": nan}
    if s.task == "classification":
        correct, tp, fp, fn = (a.column(f) for f in ("correct", "tp", "fp", "fn"))
        lo, hi = wilson_interval(correct, lab, s.confidence)
        elo, ehi = wilson_interval(lab - correct, lab, s.confidence)
        accuracy = _ratio(correct, lab)
        estimated = _ratio(a.column("labeled_q"), lab)
        ece = _ratio(np.abs(a.column("bin_positives") - a.column("bin_score")).sum(axis=1), lab)
        raw = {
            "accuracy": accuracy,
            "accuracy_lower": lo,
            "accuracy_upper": hi,
            "error": _ratio(lab - correct, lab),
            "error_lower": elo,
            "error_upper": ehi,
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "brier": _ratio(a.column("brier"), lab),
            "log_loss": _ratio(a.column("log_loss"), lab),
            "calibration_error": ece,
            "estimated_accuracy": estimated,
            "estimate_gap": accuracy - estimated,
            "estimate_bound": _ratio(s.z * np.sqrt(a.column("labeled_q_var")), lab),
        }
        cls = {k: gated(v) for k, v in raw.items()}
    else:
        reg = {
            "mae": gated(_ratio(a.column("abs_error"), lab)),
            "rmse": gated(np.sqrt(_ratio(a.column("squared_error"), lab))),
            "mean_error": gated(_ratio(a.column("error"), lab)),
        }
    return PerformanceStats(labeled=lab, **cls, **reg)


def estimate_all(acc: PerfAcc, n: int, min_samples: int) -> tuple[IntArray, FloatArray, FloatArray]:
    """Label-free accuracy estimate over ALL predictions of the window, per cell.

    ``estimate = sum q / predictions`` and ``bound = z sqrt(sum q (1 - q)) / predictions``:
    with calibrated scores the window's true accuracy lies within ``estimate -+ bound`` with
    probability about ``confidence``. NaN below ``min_samples`` predictions, and for
    regression.

    Returns
    -------
    (predictions, estimate, bound) : tuple of numpy.ndarray, shape (n,)

    Examples
    --------
    >>> from tilewatch.aggregators.labels.settings import PerformanceSettings
    >>> from tilewatch.aggregators.labels.sums import PerfAcc, correct_probability
    >>> acc = PerfAcc(PerformanceSettings())
    >>> s = np.array([0.9, 0.2, 0.6, 0.7])
    >>> acc.add_predictions(np.array([0, 0, 0, 1]), correct_probability(s, s >= 0.5), 2)
    >>> count, est, bound = estimate_all(acc, 2, min_samples=2)
    >>> count.tolist(), est.tolist(), bool(np.isnan(bound[1]))
    ([3, 1], [0.766..., nan], True)
    """
    a = acc.sized(n)
    count = a.column("predictions")
    if acc.settings.task != "classification":
        return count, np.full(n, np.nan), np.full(n, np.nan)
    ok = count >= min_samples
    est = np.where(ok, _ratio(a.column("q"), count), np.nan)
    bound = np.where(ok, _ratio(acc.settings.z * np.sqrt(a.column("q_var")), count), np.nan)
    return count, est, bound
