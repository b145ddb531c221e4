"""Reference computations of what tilewatch exports, one cell at a time, with plain numpy.

Every test that checks a metric's value compares it with these functions; they are written
from the definitions, not from tilewatch's code, and take the raw events of one cell.

Classification follows scikit-learn's definitions (``accuracy_score``, ``precision_score``,
``recall_score``, ``f1_score``, ``brier_score_loss``, ``log_loss``) with one difference: where
scikit-learn's ``zero_division`` would return 0 (an undefined precision or recall), tilewatch
exports NaN (no value), and so do these references. F1 is ``2 TP / (2 TP + FP + FN)``
(scikit-learn's formula since 1.3): it is 0, not undefined, when precision or recall alone is
undefined and the other is 0, and NaN only when TP + FP + FN = 0. The calibration error is the
expected calibration error over equal-width bins on [0, 1] (the last bin closed); intervals
are Wilson's at the given confidence. The label-free estimate is the mean probability of being
right given the score, with the half-width of its 95% range.

Below ``min_samples`` events every metric is NaN (the counts are not), as tilewatch exports.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = [
    "CLASSIFICATION_FIELDS",
    "EPS",
    "REGRESSION_FIELDS",
    "accuracy",
    "brier",
    "calibration_error",
    "classification",
    "close",
    "estimate",
    "f1",
    "log_loss",
    "precision",
    "ratio",
    "recall",
    "regression",
    "sample_mean",
    "sample_variance",
    "wilson",
    "z",
]

#: Scores are clipped to [EPS, 1 - EPS] in the log loss (as tilewatch and scikit-learn < 1.5).
EPS = 1e-15

#: The keys of :func:`classification` after ``labeled`` (PerformanceStats field names).
CLASSIFICATION_FIELDS = (
    "accuracy",
    "accuracy_lower",
    "accuracy_upper",
    "error",
    "error_lower",
    "error_upper",
    "precision",
    "recall",
    "f1",
    "brier",
    "log_loss",
    "calibration_error",
    "estimated_accuracy",
    "estimate_gap",
    "estimate_bound",
)
REGRESSION_FIELDS = ("mae", "rmse", "mean_error")


# -- small pieces ------------------------------------------------------------------------------


def z(confidence: float = 0.95) -> float:
    """The two-sided standard normal quantile: 1.959964 at 95%."""
    return float(special.ndtri((1 + confidence) / 2))


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is 0."""
    return a / b if b else math.nan


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's interval of ``k`` successes in ``n`` trials; exactly 0 / 1 at the ends, NaN
    without trials."""
    if n == 0:
        return math.nan, math.nan
    q = z(confidence)
    p = k / n
    centre = (p + q * q / (2 * n)) / (1 + q * q / n)
    half = q * math.sqrt(p * (1 - p) / n + q * q / (4 * n * n)) / (1 + q * q / n)
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def close(got: float | None, want: float, tol: float = 1e-9) -> bool:
    """``got`` equals ``want`` within ``tol`` (relative above 1, absolute below); NaN equals
    NaN; a missing sample (None) equals nothing."""
    if got is None:
        return False
    if math.isnan(want):
        return math.isnan(got)
    return abs(got - want) <= tol * max(1.0, abs(want))


# -- scores ------------------------------------------------------------------------------------


def sample_mean(values: np.ndarray) -> float:
    """The mean; NaN without values."""
    return float(values.mean()) if len(values) else math.nan


def sample_variance(values: np.ndarray) -> float:
    """The sample variance (ddof = 1); NaN below two values."""
    return float(values.var(ddof=1)) if len(values) >= 2 else math.nan


# -- classification, one metric at a time (y: 0/1 labels, pred: 0/1 predictions) --------------


def _counts(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum((pred == 1) & (y == 1)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    return tp, fp, fn


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(y == pred)) if len(y) else math.nan


def precision(y: np.ndarray, pred: np.ndarray) -> float:
    tp, fp, _fn = _counts(y, pred)
    return ratio(tp, tp + fp)


def recall(y: np.ndarray, pred: np.ndarray) -> float:
    tp, _fp, fn = _counts(y, pred)
    return ratio(tp, tp + fn)


def f1(y: np.ndarray, pred: np.ndarray) -> float:
    """``2 TP / (2 TP + FP + FN)``: NaN only when there is no positive label or prediction."""
    tp, fp, fn = _counts(y, pred)
    return ratio(2 * tp, 2 * tp + fp + fn)


def brier(y: np.ndarray, s: np.ndarray) -> float:
    return float(np.mean((s - y) ** 2)) if len(y) else math.nan


def log_loss(y: np.ndarray, s: np.ndarray, eps: float = EPS) -> float:
    p = np.clip(s, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else math.nan


def calibration_error(y: np.ndarray, s: np.ndarray, bins: int) -> float:
    """Expected calibration error over ``bins`` equal-width bins of [0, 1], the last closed."""
    if not len(y):
        return math.nan
    total = 0.0
    for b in range(bins):
        inside = (s >= b / bins) & ((s < (b + 1) / bins) if b < bins - 1 else (s <= 1.0))
        if inside.any():
            total += inside.sum() / len(y) * abs(y[inside].mean() - s[inside].mean())
    return total


# -- a cell's whole set ------------------------------------------------------------------------


def classification(
    y: np.ndarray,
    s: np.ndarray,
    threshold: float = 0.5,
    *,
    bins: int = 10,
    min_samples: int = 1,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Every classification metric of one cell's labeled events (labels ``y``, scores ``s``)
    at ``threshold``: ``labeled`` and the :data:`CLASSIFICATION_FIELDS`."""
    n = len(y)
    if n < max(min_samples, 1):
        return {"labeled": n, **dict.fromkeys(CLASSIFICATION_FIELDS, math.nan)}
    pred = (s >= threshold).astype(np.float64)
    k = int(np.sum(pred == y))
    q = np.where(pred == 1, s, 1 - s)
    lo, hi = wilson(k, n, confidence)
    elo, ehi = wilson(n - k, n, confidence)
    return {
        "labeled": n,
        "accuracy": k / n,
        "accuracy_lower": lo,
        "accuracy_upper": hi,
        "error": (n - k) / n,
        "error_lower": elo,
        "error_upper": ehi,
        "precision": precision(y, pred),
        "recall": recall(y, pred),
        "f1": f1(y, pred),
        "brier": brier(y, s),
        "log_loss": log_loss(y, s),
        "calibration_error": calibration_error(y, s, bins),
        "estimated_accuracy": float(q.mean()),
        "estimate_gap": k / n - float(q.mean()),
        "estimate_bound": z(confidence) * math.sqrt(float(np.sum(q * (1 - q)))) / n,
    }


def regression(y: np.ndarray, s: np.ndarray, *, min_samples: int = 1) -> dict[str, float]:
    """MAE, RMSE and mean signed error (prediction - target) of one cell's labeled events."""
    n = len(y)
    if n < max(min_samples, 1):
        return {"labeled": n, **dict.fromkeys(REGRESSION_FIELDS, math.nan)}
    err = s - y
    return {
        "labeled": n,
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mean_error": float(np.mean(err)),
    }


def estimate(
    s: np.ndarray,
    threshold: float = 0.5,
    *,
    min_samples: int = 1,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """The label-free expected accuracy of every prediction (labeled or not) and its bound."""
    n = len(s)
    if n < max(min_samples, 1):
        return math.nan, math.nan
    q = np.where(s >= threshold, s, 1 - s)
    return float(q.mean()), z(confidence) * math.sqrt(float(np.sum(q * (1 - q)))) / n
