"""Multi-class statistics per group (cell) as sums that merge by adding.

A :class:`MulticlassSums` keeps, for ``n`` groups over ``k`` class columns (a model's classes
plus the pooled ``__other__`` one, :mod:`tilewatch.aggregators.cells.classes`), everything the
multi-class metrics need; batches, windows, partitions and replicas combine by adding
(:meth:`MulticlassSums.merge`), so every metric of a merged group is exact. A batch updates every
group with a few ``bincount`` calls; nothing loops over events in Python.

Kept per group, for events with a valid probability vector ``p`` (rows sum to 1):

* ``predicted``: events per predicted class column (shares: the class mix);
* ``top_sum``: the sum of the top-class probability ``max(p)`` (the label-free expected
  accuracy is its mean), and the histograms ``top_hist`` and ``margin_hist`` of ``max(p)`` and
  of the margin ``top1 - top2`` on ``bins`` equal-width bins over [0, 1];

and for labeled events (``y`` the label's column):

* ``confusion[y, predicted]`` counts (bounded: ``k x k`` per group);
* ``topk``: hits of the label within the ``j + 1`` most probable columns, ``j < max_k``
  (ties counted as hits: the rank is the number of columns strictly more probable);
* ``brier_sum``: ``sum_c (p_c - [c = y])^2``; ``logloss_sum``: ``-log max(p_y, 1e-15)``;
* per bin of ``max(p)``: the events (``calib_count``), their summed confidence
  (``calib_conf``) and how many had the label as their top class (``calib_right``), for the
  calibration of the top-class confidence.

A label in the pooled column is compared with the prediction as one class, ``__other__``.
:func:`multiclass_metrics` derives the metrics of every group at once. What the monitor keeps per
cell and window is in :mod:`tilewatch.aggregators.stats.multiclass_window`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.errors import StateError

__all__ = [
    "CLIP",
    "MulticlassMetrics",
    "MulticlassSums",
    "equal_bins",
    "metrics_from_tables",
    "multiclass_metrics",
    "ratio",
]

#: Smallest probability a log-loss term uses.
CLIP = 1e-15
_COUNTS = (
    "predicted",
    "top_hist",
    "margin_hist",
    "confusion",
    "topk",
    "calib_count",
    "calib_right",
)
_SUMS = ("top_sum", "brier_sum", "logloss_sum", "calib_conf")


def equal_bins(values: FloatArray, bins: int) -> IntArray:
    """The bin of each value in [0, 1] on ``bins`` equal-width bins (1 in the last).

    Examples
    --------
    >>> equal_bins(np.array([0.0, 0.25, 0.99, 1.0]), 4).tolist()
    [0, 1, 3, 3]
    """
    return np.minimum((values * bins).astype(np.int64), bins - 1)


class MulticlassSums:
    """The multi-class sums of ``n`` groups over ``k`` class columns; see the module docstring.

    Examples
    --------
    >>> s = MulticlassSums(n=1, k=3, bins=4, max_k=2)
    >>> probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.3, 0.6]])
    >>> s.update(np.array([0, 0, 0]), probs, labels=np.array([0, 0, -1]))
    >>> s.predicted.tolist(), s.confusion[0].tolist()
    ([[1, 1, 1]], [[1, 1, 0], [0, 0, 0], [0, 0, 0]])
    >>> m = multiclass_metrics(s)
    >>> float(m.accuracy[0]), float(m.topk_accuracy[0, 1]), round(float(m.expected_accuracy[0]), 4)
    (0.5, 1.0, 0.6333)
    """

    def __init__(self, n: int, k: int, bins: int = 10, max_k: int = 5) -> None:
        self.n, self.k, self.bins, self.max_k = n, k, bins, max_k
        self.predicted = np.zeros((n, k), dtype=np.int64)
        self.top_hist = np.zeros((n, bins), dtype=np.int64)
        self.margin_hist = np.zeros((n, bins), dtype=np.int64)
        self.top_sum = np.zeros(n)
        self.confusion = np.zeros((n, k, k), dtype=np.int64)
        self.topk = np.zeros((n, max_k), dtype=np.int64)
        self.brier_sum = np.zeros(n)
        self.logloss_sum = np.zeros(n)
        self.calib_count = np.zeros((n, bins), dtype=np.int64)
        self.calib_conf = np.zeros((n, bins))
        self.calib_right = np.zeros((n, bins), dtype=np.int64)

    def update(
        self,
        groups: IntArray,
        probs: FloatArray,
        predicted: IntArray | None = None,
        labels: IntArray | None = None,
    ) -> None:
        """Add events: ``probs`` ``(events, k)`` valid rows, ``groups`` each event's group,
        ``predicted`` its predicted column (default: the argmax), ``labels`` the label's column
        (-1: unlabeled; None: none labeled)."""
        n, k, b = self.n, self.k, self.bins
        if predicted is None:
            predicted = np.argmax(probs, axis=1)
        ordered = np.sort(probs, axis=1)
        top = ordered[:, -1]
        margin = top - (ordered[:, -2] if k > 1 else 0.0)
        self.predicted += _table(groups, predicted, n, k)
        self.top_sum += np.bincount(groups, weights=top, minlength=n)
        self.top_hist += _table(groups, equal_bins(top, b), n, b)
        self.margin_hist += _table(groups, equal_bins(margin, b), n, b)
        if labels is None:
            return
        has = labels >= 0
        g, y, pred, p, t = groups[has], labels[has], predicted[has], probs[has], top[has]
        rows = np.arange(len(y))
        flat = np.bincount((g * k + y) * k + pred, minlength=n * k * k)
        self.confusion += flat.reshape(n, k, k)
        p_label = p[rows, y]
        rank = (p > p_label[:, None]).sum(axis=1)
        hits = rank[:, None] < np.arange(1, self.max_k + 1)[None, :]
        for j in range(self.max_k):
            self.topk[:, j] += np.bincount(g, weights=hits[:, j], minlength=n).astype(np.int64)
        onehot_term = (p * p).sum(axis=1) - 2.0 * p_label + 1.0
        self.brier_sum += np.bincount(g, weights=onehot_term, minlength=n)
        self.logloss_sum += np.bincount(g, weights=-np.log(np.maximum(p_label, CLIP)), minlength=n)
        cell_bin = g * b + equal_bins(t, b)
        right = (np.argmax(p, axis=1) == y).astype(np.float64)  # the top class, right or not
        self.calib_count += np.bincount(cell_bin, minlength=n * b).reshape(n, b)
        self.calib_conf += np.bincount(cell_bin, weights=t, minlength=n * b).reshape(n, b)
        self.calib_right += (
            np.bincount(cell_bin, weights=right, minlength=n * b).reshape(n, b).astype(np.int64)
        )

    def merge(self, other: MulticlassSums) -> None:
        """Add another table of the same shape (another batch, window part or partition)."""
        if (other.n, other.k, other.bins, other.max_k) != (self.n, self.k, self.bins, self.max_k):
            raise ValueError("multi-class sums of different shapes do not merge")
        for name in (*_COUNTS, *_SUMS):
            getattr(self, name).__iadd__(getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (numbers and nested lists) for a checkpoint."""
        out: dict[str, Any] = {"n": self.n, "k": self.k, "bins": self.bins, "max_k": self.max_k}
        for name in (*_COUNTS, *_SUMS):
            out[name] = getattr(self, name).tolist()
        return out

    @classmethod
    def from_dict(cls, data: Any) -> MulticlassSums:
        """The sums of :meth:`to_dict`, checked (shapes, non-negative finite values) first."""
        try:
            sums = cls(int(data["n"]), int(data["k"]), int(data["bins"]), int(data["max_k"]))
            arrays = {}
            for name in (*_COUNTS, *_SUMS):
                want = getattr(sums, name)
                value = np.asarray(data[name], dtype=want.dtype)
                if value.shape != want.shape:
                    raise StateError(f"multi-class sums: {name} has shape {value.shape}")
                if not np.isfinite(value).all() or (value < 0).any():
                    raise StateError(f"multi-class sums: {name} has a negative or odd value")
                arrays[name] = value
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"multi-class sums: {exc}") from None
        for name, value in arrays.items():
            setattr(sums, name, value)
        return sums


def _table(groups: IntArray, cols: IntArray, n: int, k: int) -> IntArray:
    return np.bincount(groups * k + cols, minlength=n * k).reshape(n, k)


@dataclass(frozen=True)
class MulticlassMetrics:
    """Per group (and class) metrics; NaN where undefined (no events, no labels)."""

    events: IntArray
    labeled: IntArray
    class_share: FloatArray  # (n, k)
    expected_accuracy: FloatArray
    accuracy: FloatArray
    precision: FloatArray  # (n, k)
    recall: FloatArray  # (n, k)
    f1: FloatArray  # (n, k)
    macro_f1: FloatArray
    weighted_f1: FloatArray
    topk_accuracy: FloatArray  # (n, max_k): column j is top-(j + 1)
    brier: FloatArray
    log_loss: FloatArray
    calibration_error: FloatArray
    #: With per-class thresholds (None: no window histograms of them), per class column:
    #: the share of its predictions whose probability did not clear its threshold, how many
    #: of those were labeled and right, and their share of the labeled ones.
    below_threshold: FloatArray | None = None  # (n, k)
    below_threshold_right: FloatArray | None = None  # (n, k) counts
    below_threshold_right_share: FloatArray | None = None  # (n, k)


def ratio(a: Any, b: Any) -> FloatArray:
    """``a / b`` elementwise, NaN where ``b`` is 0.

    Examples
    --------
    >>> ratio([1, 1], [2, 0]).tolist()
    [0.5, nan]
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out: FloatArray = np.full(np.broadcast(x, y).shape, math.nan)
    np.divide(x, y, out=out, where=y > 0)
    return out


def multiclass_metrics(sums: MulticlassSums) -> MulticlassMetrics:
    """Every metric of every group from its sums.

    Per class ``c`` (one-vs-rest): precision ``tp / predicted c``, recall ``tp / labeled c``,
    F1 ``2 tp / (predicted c + labeled c)`` (0 when the class was predicted or labeled and never
    right; NaN when neither). Macro F1 averages F1 over the classes predicted or labeled;
    weighted F1 weighs each class by its labeled events. The calibration error is the expected
    calibration error of the top-class confidence over ``bins`` equal-width bins.

    Examples
    --------
    >>> s = MulticlassSums(n=1, k=2, bins=2, max_k=1)
    >>> s.update(np.array([0, 0]), np.array([[0.8, 0.2], [0.4, 0.6]]), labels=np.array([0, 0]))
    >>> m = multiclass_metrics(s)
    >>> float(m.accuracy[0]), m.f1[0].tolist(), round(float(m.brier[0]), 2)
    (0.5, [0.6666666666666666, 0.0], 0.4)
    """
    return metrics_from_tables(
        sums.predicted,
        sums.confusion,
        sums.topk,
        top_sum=sums.top_sum,
        brier_sum=sums.brier_sum,
        logloss_sum=sums.logloss_sum,
        calibration_gap=np.abs(sums.calib_right - sums.calib_conf).sum(axis=1),
    )


def metrics_from_tables(
    predicted: IntArray,
    confusion: IntArray,
    topk: IntArray,
    *,
    top_sum: FloatArray | None = None,
    brier_sum: FloatArray | None = None,
    logloss_sum: FloatArray | None = None,
    calibration_gap: FloatArray | None = None,
) -> MulticlassMetrics:
    """The metrics of :func:`multiclass_metrics` from the count tables (``predicted`` ``(n,
    k)``, ``confusion`` ``(n, k, k)``, ``topk`` hits ``(n, max_k)``) and whichever sums are
    given (the metrics of a missing one are NaN).

    Examples
    --------
    >>> conf = np.array([[[3, 1], [0, 4]]])  # label x predicted
    >>> m = metrics_from_tables(conf.sum(axis=1), conf, np.array([[7]]))
    >>> float(m.accuracy[0]), m.recall[0].tolist(), bool(np.isnan(m.brier[0]))
    (0.875, [0.75, 1.0], True)
    """
    n = len(predicted)
    events = predicted.sum(axis=1)
    labeled = confusion.sum(axis=(1, 2))
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    by_label = confusion.sum(axis=2)
    by_pred = confusion.sum(axis=1)
    f1 = ratio(2 * tp, by_label + by_pred)
    present = (by_label + by_pred) > 0
    macro = ratio(np.where(present, f1, 0.0).sum(axis=1), present.sum(axis=1))
    weighted = ratio((np.nan_to_num(f1) * by_label).sum(axis=1), labeled)
    missing = np.full(n, math.nan)
    return MulticlassMetrics(
        events=events,
        labeled=labeled,
        class_share=ratio(predicted, events[:, None]),
        expected_accuracy=missing if top_sum is None else ratio(top_sum, events),
        accuracy=ratio(tp.sum(axis=1), labeled),
        precision=ratio(tp, by_pred),
        recall=ratio(tp, by_label),
        f1=f1,
        macro_f1=macro,
        weighted_f1=weighted,
        topk_accuracy=ratio(topk, labeled[:, None]),
        brier=missing if brier_sum is None else ratio(brier_sum, labeled),
        log_loss=missing if logloss_sum is None else ratio(logloss_sum, labeled),
        calibration_error=missing if calibration_gap is None else ratio(calibration_gap, labeled),
    )


#: Per-class thresholds (:func:`class_thresholds`): the precision the predictions of a class
#: at or above its threshold reach on the reference rows, and the fewest labelled reference
#: predictions of a class to choose one from.
CLASS_TARGET_PRECISION = 0.9
CLASS_MIN_ROWS = 30


def class_thresholds(
    predicted: Sequence[str],
    probs: Any,
    labels: Sequence[str],
    target: float = CLASS_TARGET_PRECISION,
    min_rows: int = CLASS_MIN_ROWS,
) -> dict[str, float]:
    """Per-class decision thresholds from labelled reference predictions.

    For each predicted class ``c`` with at least ``min_rows`` labelled predictions: the
    lowest probability ``t`` (among those of its predictions) such that the predictions of
    ``c`` with probability ``>= t`` are right (label ``c``) at least ``target`` of the time.
    A class whose predictions never reach ``target`` gets none. A prediction below its
    class's threshold "did not clear the threshold".

    Examples
    --------
    >>> class_thresholds(["a"] * 4 + ["b"], [0.9, 0.8, 0.6, 0.5, 0.7],
    ...                  ["a", "a", "b", "a", "b"], target=0.75, min_rows=2)
    {'a': 0.5}
    >>> class_thresholds(["a"] * 4, [0.9, 0.8, 0.6, 0.5], ["a", "a", "b", "b"], 0.75, 2)
    {'a': 0.8}
    """
    p = np.asarray(probs, dtype=np.float64)
    pred = np.asarray(predicted, dtype=object)
    right = pred == np.asarray(labels, dtype=object)
    out: dict[str, float] = {}
    for c in sorted(set(predicted)):
        at = pred == c
        if int(at.sum()) < min_rows:
            continue
        values, inverse = np.unique(p[at], return_inverse=True)  # ascending
        n = np.bincount(inverse, minlength=len(values))[::-1].cumsum()[::-1]
        r = np.bincount(inverse, weights=right[at].astype(np.float64), minlength=len(values))
        r = r[::-1].cumsum()[::-1]  # right predictions with probability >= each value
        ok = np.flatnonzero(r >= target * n)
        if len(ok):
            out[str(c)] = float(values[ok[0]])
    return out
