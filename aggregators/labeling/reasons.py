"""The selection rules: each event's signals and its priority under each reason, vectorised.

Signals of an event (NaN where they cannot be computed):

- binary model with decision threshold ``t`` and score ``p``: ``confidence = margin = |p - t|``
  (distance from the decision); the prediction is ``p >= t``; it is *confident* when
  ``margin > settings.margin``.
- multi-class model with class probabilities: ``confidence`` = the top-class probability,
  ``margin`` = top1 - top2; the prediction is the top class; it is *confident* when
  ``confidence >= settings.confidence`` (or ``threshold``).

Priority under each reason (higher is selected first; NaN: not a candidate):

==================== ==============================================================
``least_confident``  ``-margin``
``threshold_margin`` a uniform hash of the offset, among ``margin <= settings.margin``
``most_confident``   ``confidence``
``confident_wrong``  ``confidence``, among labelled, wrong and confident events
``unsure_but_right`` ``-confidence``, among labelled, right and not confident events
==================== ==============================================================

Ties are broken by the smaller offset, so the selection does not depend on how the partition's
records were cut into batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.labeling.settings import LabelingSettings

__all__ = ["Signals", "binary_signals", "multiclass_signals", "offset_hash", "priorities"]


@dataclass(frozen=True, slots=True)
class Signals:
    """Per-event signals: confidence, margin, whether confident, correctness, the threshold.

    ``correct`` is 1 (right), 0 (wrong) or -1 (no label); ``score`` is what the header reports
    (binary: the score; multi-class: the top-class probability).
    """

    confidence: FloatArray
    margin: FloatArray
    confident: BoolArray
    correct: IntArray
    score: FloatArray
    threshold: FloatArray


def binary_signals(
    scores: FloatArray, thresholds: FloatArray, labels: FloatArray | None, margin: float
) -> Signals:
    """Signals of binary events: ``labels`` are 0/1 or NaN (no label); NaN thresholds give NaN.

    Examples
    --------
    >>> s = binary_signals(np.array([0.1, 0.42, 0.9]), np.array([0.4, 0.4, np.nan]),
    ...                    np.array([1.0, 1.0, np.nan]), margin=0.05)
    >>> s.margin.round(2).tolist(), s.confident.tolist(), s.correct.tolist()
    ([0.3, 0.02, nan], [True, False, False], [0, 1, -1])
    """
    m = np.abs(scores - thresholds)
    predicted = scores >= thresholds
    correct = np.full(len(scores), -1, dtype=np.int64)
    if labels is not None:
        known = ~np.isnan(labels) & ~np.isnan(thresholds)
        correct[known] = (predicted[known] == (labels[known] == 1.0)).astype(np.int64)
    return Signals(m, m, m > margin, correct, scores, thresholds)


def multiclass_signals(
    probs: FloatArray, labels: IntArray | None, confident_at: float | None
) -> Signals:
    """Signals of multi-class events from their class probabilities (rows; NaN: absent class).

    ``labels`` are class columns (-1: no label); ``confident_at`` the top-class probability at
    which a prediction counts as confident (None: never confident, so only the reasons that do
    not need it apply).

    Examples
    --------
    >>> p = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])
    >>> s = multiclass_signals(p, np.array([0, 1]), confident_at=0.8)
    >>> s.confidence.tolist(), s.margin.round(2).tolist(), s.confident.tolist(), s.correct.tolist()
    ([0.5, 0.9], [0.2, 0.85], [False, True], [1, 0])
    """
    filled = np.where(np.isnan(probs), -np.inf, probs)
    top = np.sort(filled, axis=1)
    top1 = top[:, -1]
    top2 = top[:, -2] if probs.shape[1] > 1 else np.zeros(len(top1))
    top2 = np.where(np.isfinite(top2), top2, 0.0)
    predicted = np.argmax(filled, axis=1)
    correct = np.full(len(top1), -1, dtype=np.int64)
    if labels is not None:
        known = labels >= 0
        correct[known] = (predicted[known] == labels[known]).astype(np.int64)
    t = math.nan if confident_at is None else confident_at
    confident = top1 >= t
    return Signals(top1, top1 - top2, confident, correct, top1, np.full(len(top1), t))


def offset_hash(offsets: IntArray) -> FloatArray:
    """A uniform number in [0, 1) per offset (splitmix64): a seeded, batch-independent sample.

    Examples
    --------
    >>> h = offset_hash(np.arange(100_000))
    >>> bool(0.49 < h.mean() < 0.51), bool(h.min() >= 0.0 and h.max() < 1.0)
    (True, True)
    """
    z = offsets.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def priorities(
    reason: str, signals: Signals, offsets: IntArray, settings: LabelingSettings
) -> FloatArray:
    """Each event's priority under ``reason`` (NaN: not a candidate); see the module."""
    s = signals
    nan = np.full(len(offsets), math.nan)
    if reason == "least_confident":
        return -s.margin
    if reason == "threshold_margin":
        return np.where(s.margin <= settings.margin, offset_hash(offsets), nan)
    if reason == "most_confident":
        return s.confidence.copy()
    judged = ~np.isnan(s.threshold)  # "confident" needs the threshold
    if reason == "confident_wrong":
        return np.where(judged & (s.correct == 0) & s.confident, s.confidence, nan)
    if reason == "unsure_but_right":
        return np.where(judged & (s.correct == 1) & ~s.confident, -s.confidence, nan)
    raise ValueError(f"unknown reason {reason!r}")
