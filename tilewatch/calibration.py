"""Is a model calibrated on its baseline? The check ``tilewatch baseline`` prints per model.

The label-free estimate of accuracy (``tilewatch_window_estimated_accuracy_ratio``) is the mean
probability of being right given the scores; it equals the expected accuracy only when the scores
are calibrated. The holdout set the baseline is built from has labels, so the same two numbers can
be compared there, with the same code the monitor uses
(:class:`tilewatch.aggregators.labels.sums.PerfAcc`): the expected calibration error over
equal-width score bins, and the estimate against the realized accuracy at the model's threshold,
with the bound within which they agree when the scores are calibrated. ``docs/performance.md``
explains how to read them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tilewatch.aggregators.labels.metrics import derive_performance
from tilewatch.aggregators.labels.settings import PerformanceSettings
from tilewatch.aggregators.labels.sums import PerfAcc

__all__ = ["CalibrationCheck", "calibration_check"]


@dataclass(frozen=True, slots=True)
class CalibrationCheck:
    """Calibration of one model on its labelled baseline rows.

    ``estimated_accuracy``, ``accuracy`` and ``bound`` are NaN without a threshold.
    """

    rows: int
    bins: int
    calibration_error: float
    threshold: float | None
    accuracy: float
    estimated_accuracy: float
    bound: float

    @property
    def consistent(self) -> bool:
        """Whether the estimate is within its bound of the accuracy (False without threshold)."""
        return abs(self.accuracy - self.estimated_accuracy) <= self.bound

    def describe(self) -> str:
        """One sentence for the ``tilewatch baseline`` summary."""
        text = (
            f"calibration on {self.rows} labelled rows: expected calibration error "
            f"{self.calibration_error:.3f} ({self.bins} bins)"
        )
        if self.threshold is None:
            return text + "; no threshold, so no check of the label-free estimate"
        gap = self.accuracy - self.estimated_accuracy
        verdict = (
            "consistent: the label-free estimate can be trusted while traffic looks like this"
            if self.consistent
            else "NOT consistent: the scores are not calibrated, do not trust the label-free "
            "estimate (recalibrate, or read it as a trend only)"
        )
        return (
            f"{text}; at threshold {self.threshold:.6g} the label-free estimate of accuracy is "
            f"{self.estimated_accuracy:.3f} and the accuracy {self.accuracy:.3f} (gap "
            f"{gap:+.3f}, bound {self.bound:.3f}): {verdict}"
        )


def calibration_check(
    scores: Sequence[float],
    labels: Sequence[int | bool | None],
    threshold: float | None,
    bins: int = 10,
    confidence: float = 0.95,
) -> CalibrationCheck | None:
    """Calibration of a model on its labelled rows (None without any, or with scores outside
    ``[0, 1]``, which are not probabilities).

    Parameters
    ----------
    scores, labels
        One per row; rows whose label is None are left out.
    threshold
        The decision threshold the monitor will use for this model (None: only the ECE).
    bins
        Equal-width score bins of the expected calibration error (``[labels]
        calibration_bins``).
    confidence
        Coverage of the bound (``[labels] confidence``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(size=20_000)
    >>> calibrated = calibration_check(s, (rng.uniform(size=20_000) < s).tolist(), 0.5)
    >>> round(calibrated.calibration_error, 2), calibrated.consistent
    (0.01, True)
    >>> overconfident = calibration_check(s, (rng.uniform(size=20_000) < 0.5).tolist(), 0.5)
    >>> round(overconfident.calibration_error, 2), overconfident.consistent
    (0.25, False)
    """
    pairs = [(float(s), float(y)) for s, y in zip(scores, labels, strict=True) if y is not None]
    if not pairs:
        return None
    s = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    if not ((s >= 0.0) & (s <= 1.0)).all():
        return None
    settings = PerformanceSettings(calibration_bins=bins, min_samples=1, confidence=confidence)
    acc = PerfAcc(settings)
    cells = np.zeros(len(s), dtype=np.int64)
    predicted = s >= (0.5 if threshold is None else threshold)
    acc.add_classified(cells, s, y, predicted, n_cells=1)
    stats = derive_performance(acc, 1)
    nan = math.nan
    return CalibrationCheck(
        rows=len(s),
        bins=bins,
        calibration_error=float(stats.calibration_error[0]),
        threshold=threshold,
        accuracy=nan if threshold is None else float(stats.accuracy[0]),
        estimated_accuracy=nan if threshold is None else float(stats.estimated_accuracy[0]),
        bound=nan if threshold is None else float(stats.estimate_bound[0]),
    )
