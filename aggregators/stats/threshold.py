"""Decision thresholds chosen on a labelled holdout set: max F1, Youden's J, or a cost ratio.

Candidates are every distinct score (predict positive when ``score >= t``); rules are compared
exactly and ties go to the highest threshold. A static 0.5 is never assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import BoolArray, FloatArray

__all__ = ["THRESHOLD_RULES", "Threshold", "ThresholdRule", "choose_threshold"]

#: How a threshold is chosen (``[baseline] threshold_rule``): lowest cost, highest F1, or
#: highest Youden's J.
ThresholdRule = Literal["cost", "max_f1", "youden"]
#: Values of :data:`ThresholdRule`.
THRESHOLD_RULES: tuple[ThresholdRule, ...] = get_args(ThresholdRule)


@dataclass(frozen=True, slots=True)
class Threshold:
    """A decision threshold (predict positive when ``score >= value``) and its metrics."""

    rule: ThresholdRule
    value: float
    cost_ratio: float
    labeled_rows: int
    positives: int
    negatives: int
    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    tpr: float
    fpr: float
    youden_j: float
    cost: float


def _curve(scores: FloatArray, labels: BoolArray) -> tuple[FloatArray, Any, Any]:
    """Distinct scores, descending, with the true and false positives at each as threshold."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    return s[last], np.cumsum(y)[last], np.cumsum(~y)[last]


def choose_threshold(
    scores: Sequence[float] | FloatArray,
    labels: Sequence[int | bool] | npt.NDArray[Any],
    rule: ThresholdRule = "max_f1",
    cost_ratio: float | None = None,
) -> Threshold:
    """Choose the decision threshold on a labelled holdout set.

    Candidates are all distinct scores; a threshold ``t`` predicts positive when
    ``score >= t``. The rules: ``"max_f1"`` maximises F1 = 2TP / (2TP + FP + FN),
    ``"youden"`` maximises Youden's J = TPR - FPR, ``"cost"`` minimises FP + FN * cost_ratio
    (``cost_ratio`` = cost of a false negative / cost of a false positive). Ties go to the
    highest threshold (the fewest positive predictions).

    Parameters
    ----------
    scores
        Model scores.
    labels
        True classes, 0/1 or booleans, one per score; both classes must occur.
    rule
        One of :data:`THRESHOLD_RULES`.
    cost_ratio
        Required (> 0) for ``"cost"``; with the other rules it only sets the reported cost
        (default 1).

    Returns
    -------
    Threshold
        The threshold and the confusion counts, accuracy, precision, recall, F1, TPR, FPR,
        Youden's J and cost at it.

    Raises
    ------
    ValueError
        On an unknown rule, a missing or non-positive cost ratio for ``"cost"``, lengths that
        differ, or labels of one class only.

    Examples
    --------
    >>> scores = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2]
    >>> labels = [0, 0, 1, 1, 1, 0]
    >>> t = choose_threshold(scores, labels, "max_f1")
    >>> t.value, t.tp, t.fp, t.f1
    (0.35, 3, 1, 0.857)
    >>> t = choose_threshold(scores, labels, "youden")  # J = 2/3 at 0.7 and at 0.35
    >>> t.value, t.youden_j
    (0.7, 0.667)
    >>> t = choose_threshold(scores, labels, "cost", cost_ratio=5.0)
    >>> t.value, t.fn, t.fp, t.cost
    (0.35, 0, 1, 1.0)
    >>> choose_threshold(scores, labels, "cost")
    Traceback (most recent call last):
    ...
    ValueError: the cost rule needs a cost_ratio > 0, got None
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}, expected one of {THRESHOLD_RULES}")
    if rule == "cost" and (cost_ratio is None or not cost_ratio > 0):
        raise ValueError(f"the cost rule needs a cost_ratio > 0, got {cost_ratio!r}")
    ratio = 1.0 if cost_ratio is None else float(cost_ratio)
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels differ in shape: {s.shape} and {y.shape}")
    pos = int(y.sum())
    neg = int(y.size - pos)
    if pos == 0 or neg == 0:
        raise ValueError(f"labels need both classes, got {pos} positives and {neg} negatives")
    thresholds, tp, fp = _curve(s, y)
    fn = pos - tp
    # Exact comparisons, so that ties in exact arithmetic stay ties: F1 is one correctly
    # rounded quotient of integers, J is compared as tp*neg - fp*pos, the cost as
    # (fp*q + fn*p) / q with cost_ratio == p/q exactly (Python integers, never overflowing).
    if rule == "max_f1":
        best = int(np.argmax(2 * tp / (2 * tp + fp + fn)))
    elif rule == "youden":
        best = int(np.argmax(tp * neg - fp * pos))
    else:
        p, q = ratio.as_integer_ratio()
        costs = [int(a) * q + int(b) * p for a, b in zip(fp, fn, strict=True)]
        best = costs.index(min(costs))
    return _metrics(rule, float(thresholds[best]), ratio, int(tp[best]), int(fp[best]), pos, neg)


def _metrics(
    rule: ThresholdRule, value: float, ratio: float, tp: int, fp: int, pos: int, neg: int
) -> Threshold:
    fn, tn = pos - tp, neg - fp
    return Threshold(
        rule=rule,
        value=value,
        cost_ratio=ratio,
        labeled_rows=pos + neg,
        positives=pos,
        negatives=neg,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        accuracy=(tp + tn) / (pos + neg),
        precision=tp / (tp + fp),
        recall=tp / pos,
        f1=2 * tp / (2 * tp + fp + fn),
        tpr=tp / pos,
        fpr=fp / neg,
        youden_j=tp / pos - fp / neg,
        cost=fp + fn * ratio,
    )
