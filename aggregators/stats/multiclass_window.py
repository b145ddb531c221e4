"""The multi-class statistics a window keeps per cell: histograms that merge by adding.

The monitor keeps each cell's window as integer histograms (``WindowAcc``), which batches,
partitions, replicas and checkpoints already handle. :func:`window_bins` gives each event one
bin per histogram (and, for the sums, an integer weight: the event's term in units of
``1 / SUM_SCALE``); :func:`window_metrics` turns a window's histograms into the metrics of
:class:`~tilewatch.aggregators.stats.multiclass.MulticlassMetrics`. Counts are exact; the
sums (top-class probability, Brier, log loss, confidence per calibration bin) are rounded to
``1 / SUM_SCALE`` per event, so their means are within ``0.5 / SUM_SCALE`` of the exact ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.stats.multiclass import (
    CLIP,
    MulticlassMetrics,
    equal_bins,
    metrics_from_tables,
    ratio,
)

__all__ = [
    "LABELED_HISTS",
    "SUM_SCALE",
    "window_bins",
    "window_hist_widths",
    "window_metrics",
    "window_weights",
]

#: Units per 1 of the summed histograms' weights (micro-units).
SUM_SCALE = 1_000_000
#: The histograms of :func:`window_hist_widths` that only labeled events fill (a label
#: joined later adds to these alone).
LABELED_HISTS = (
    "mc_confusion",
    "mc_rank",
    "mc_calib_n",
    "mc_calib_right",
    "mc_calib_conf",
    "mc_brier",
    "mc_logloss",
)
#: Metrics of every event (gated by events); the others are of labeled events.
_PER_EVENT = frozenset({"class_share", "expected_accuracy"})


def window_hist_widths(k: int, bins: int = 10, max_k: int = 5) -> dict[str, int]:
    """The count histograms a window keeps per cell for a multi-class model (their name and
    width), filled by :func:`window_bins`; they merge by adding like every window histogram.

    Examples
    --------
    >>> list(window_hist_widths(4).items())[:5]
    [('mc_class', 4), ('mc_top', 10), ('mc_margin', 10), ('mc_confusion', 16), ('mc_rank', 6)]
    """
    return {
        "mc_class": k,
        "mc_top": bins,
        "mc_margin": bins,
        "mc_confusion": k * k,
        "mc_rank": max_k + 1,
        # Labeled events with a valid vector, per bin of their top-class probability: how
        # many, how many had the label as top class, and their summed confidence (weights).
        "mc_calib_n": bins,
        "mc_calib_right": bins,
        "mc_calib_conf": bins,
        # Sums (weights, one column): top-class probability; Brier and log loss (labeled).
        "mc_top_sum": 1,
        "mc_brier": 1,
        "mc_logloss": 1,
    }


def window_bins(
    probs: FloatArray,
    valid: Any,
    predicted: IntArray,
    labels: IntArray,
    bins: int = 10,
    max_k: int = 5,
) -> dict[str, IntArray]:
    """One bin per event per histogram of :func:`window_hist_widths` (-1: not counted).

    ``mc_class`` the predicted column; ``mc_top`` and ``mc_margin`` the bins of the top-class
    probability and of the margin (valid vectors); ``mc_confusion`` ``label * k + predicted``
    (labeled events with a prediction); ``mc_rank`` the label's rank among the columns (the
    number strictly more probable), ``max_k`` and above pooled (labeled valid vectors).

    Examples
    --------
    >>> probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    >>> out = window_bins(probs, np.array([True, True]), np.array([0, 2]), np.array([1, -1]),
    ...                   bins=4, max_k=2)
    >>> {name: b.tolist() for name, b in out.items() if name in ("mc_confusion", "mc_rank")}
    {'mc_confusion': [3, -1], 'mc_rank': [1, -1]}
    >>> out["mc_calib_n"].tolist(), out["mc_calib_right"].tolist(), out["mc_top_sum"].tolist()
    ([2, -1], [-1, -1], [0, 0])
    """
    m, k = probs.shape
    ordered = np.sort(probs, axis=1)
    top = ordered[:, -1]
    margin = top - ordered[:, -2]
    rows = np.arange(m)
    y = np.maximum(labels, 0)
    rank = (probs > probs[rows, y][:, None]).sum(axis=1)
    labeled = labels >= 0
    top_bin = equal_bins(top, bins)
    judged = labeled & valid
    right = judged & (np.argmax(probs, axis=1) == y)
    one = np.where(valid, 0, -1)
    return {
        "mc_class": predicted.astype(np.int64),
        "mc_top": np.where(valid, top_bin, -1),
        "mc_margin": np.where(valid, equal_bins(margin, bins), -1),
        "mc_confusion": np.where(labeled & (predicted >= 0), y * k + predicted, -1),
        "mc_rank": np.where(judged, np.minimum(rank, max_k), -1),
        "mc_calib_n": np.where(judged, top_bin, -1),
        "mc_calib_right": np.where(right, top_bin, -1),
        "mc_calib_conf": np.where(judged, top_bin, -1),
        "mc_top_sum": one,
        "mc_brier": np.where(judged, 0, -1),
        "mc_logloss": np.where(judged, 0, -1),
    }


def window_weights(probs: FloatArray, labels: IntArray) -> dict[str, IntArray]:
    """What each event adds to the summed histograms of :func:`window_bins`, in units of
    ``1 / SUM_SCALE`` (events the bins leave out add nothing whatever their weight).

    Examples
    --------
    >>> w = window_weights(np.array([[0.6, 0.3, 0.1]]), np.array([1]))
    >>> w["mc_top_sum"].tolist(), w["mc_brier"].tolist(), w["mc_logloss"].tolist()
    ([600000], [860000], [1203973])
    """
    m = len(probs)
    rows = np.arange(m)
    y = np.maximum(labels, 0)
    p_label = probs[rows, y]
    top = probs.max(axis=1) if probs.shape[1] else np.zeros(m)
    brier = (probs * probs).sum(axis=1) - 2.0 * p_label + 1.0
    logloss = -np.log(np.maximum(p_label, CLIP))
    scaled = {
        "mc_top_sum": top,
        "mc_calib_conf": top,
        "mc_brier": np.maximum(brier, 0.0),
        "mc_logloss": logloss,
    }
    return {name: np.rint(v * SUM_SCALE).astype(np.int64) for name, v in scaled.items()}


def window_metrics(hists: dict[str, IntArray], k: int, min_samples: int = 1) -> MulticlassMetrics:
    """The metrics of each cell's window from its :func:`window_bins` histograms. Class shares
    and the expected accuracy are NaN below ``min_samples`` events, the rest below that many
    labeled ones (    accuracy excepted: it needs no label).

    Examples
    --------
    >>> h = {"mc_class": np.array([[3, 1]]), "mc_confusion": np.array([[2, 0, 1, 1]]),
    ...      "mc_rank": np.array([[3, 1, 0]])}
    >>> m = window_metrics(h, 2)
    >>> m.class_share.tolist(), m.accuracy.tolist(), m.topk_accuracy.tolist()
    ([[0.75, 0.25]], [0.75], [[0.75, 1.0]])
    """
    n = len(hists["mc_class"])
    m = metrics_from_tables(
        hists["mc_class"],
        hists["mc_confusion"].reshape(n, k, k),
        np.cumsum(hists["mc_rank"][:, :-1], axis=1),
    )
    sums = _window_sums(hists, n)
    if sums is not None:
        m = MulticlassMetrics(**{**vars(m), **sums})
    few, few_labels = m.events < min_samples, m.labeled < min_samples
    gated = {
        name: np.where(few if name in _PER_EVENT else few_labels, np.nan, value.T).T
        for name, value in vars(m).items()
        if name not in ("events", "labeled")
    }
    return MulticlassMetrics(events=m.events, labeled=m.labeled, **gated)


def _window_sums(hists: dict[str, IntArray], n: int) -> dict[str, Any] | None:
    """Expected accuracy, Brier, log loss and calibration error from the summed histograms
    (None when the window has none of them: an older layout)."""
    if "mc_top_sum" not in hists:
        return None
    scale = float(SUM_SCALE)
    valid = hists["mc_top"].sum(axis=1)
    judged = hists["mc_calib_n"].sum(axis=1)
    gap = np.abs(hists["mc_calib_right"] - hists["mc_calib_conf"] / scale).sum(axis=1)
    return {
        "expected_accuracy": ratio(hists["mc_top_sum"][:, 0] / scale, valid),
        "brier": ratio(hists["mc_brier"][:, 0] / scale, judged),
        "log_loss": ratio(hists["mc_logloss"][:, 0] / scale, judged),
        "calibration_error": ratio(gap, judged),
    }
