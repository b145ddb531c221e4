"""Multi-class sums and metrics against direct numpy computations on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.stats.multiclass import MulticlassSums, multiclass_metrics
from tilewatch.aggregators.stats.multiclass_window import (
    SUM_SCALE,
    window_bins,
    window_hist_widths,
    window_metrics,
    window_weights,
)

CLASS_COUNTS = [3, 4, 7, 12, 25, 50]
GROUPS = 4


def random_batch(k: int, m: int, seed: int) -> tuple[np.ndarray, ...]:
    """Groups, probabilities (peaked, so predictions are often right), labels (-1: none)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, m)
    logits = rng.normal(0.0, 1.0, (m, k))
    logits[np.arange(m), truth] += rng.uniform(0.0, 3.0, m)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.where(rng.random(m) < 0.8, truth, -1)
    groups = rng.integers(0, GROUPS, m)
    return groups, probs, labels


def reference(group: int, groups, probs, labels, k: int, bins: int, max_k: int) -> dict:
    """One group's metrics, computed event by event from their definitions."""
    sel = groups == group
    p, y = probs[sel], labels[sel]
    pred = p.argmax(axis=1)
    out: dict = {"events": len(p)}
    out["class_share"] = np.array([np.mean(pred == c) for c in range(k)])
    out["expected_accuracy"] = p.max(axis=1).mean()
    lab = y >= 0
    p, y, pred = p[lab], y[lab], pred[lab]
    out["labeled"] = len(y)
    out["accuracy"] = np.mean(pred == y)
    precision, recall, f1 = [], [], []
    for c in range(k):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        precision.append(tp / (tp + fp) if tp + fp else math.nan)
        recall.append(tp / (tp + fn) if tp + fn else math.nan)
        pr, rc = precision[-1], recall[-1]
        if tp + fp + fn == 0:
            f1.append(math.nan)
        elif tp == 0:
            f1.append(0.0)
        else:
            f1.append(2 * pr * rc / (pr + rc))
    out["precision"], out["recall"], out["f1"] = map(np.array, (precision, recall, f1))
    out["macro_f1"] = np.nanmean(out["f1"])
    support = np.array([np.sum(y == c) for c in range(k)])
    out["weighted_f1"] = np.nansum(out["f1"] * support) / support.sum()
    order = np.argsort(-p, axis=1, kind="stable")
    out["topk"] = np.array(
        [np.mean([y[i] in order[i, :j] for i in range(len(y))]) for j in range(1, max_k + 1)]
    )
    onehot = np.eye(k)[y]
    out["brier"] = np.mean(np.sum((p - onehot) ** 2, axis=1))
    out["log_loss"] = -np.mean(np.log(p[np.arange(len(y)), y]))
    conf = p.max(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for b in range(bins):
        inb = (conf >= edges[b]) & ((conf < edges[b + 1]) if b < bins - 1 else (conf <= 1))
        if inb.any():
            ece += inb.sum() / len(y) * abs(np.mean(pred[inb] == y[inb]) - conf[inb].mean())
    out["calibration_error"] = ece
    ordered = np.sort(probs[sel], axis=1)
    out["margin_hist"] = np.histogram(ordered[:, -1] - ordered[:, -2], bins=edges)[0]
    out["top_hist"] = np.histogram(ordered[:, -1], bins=edges)[0]
    return out


@pytest.mark.parametrize("k", CLASS_COUNTS)
def test_metrics_equal_the_numpy_reference(k: int) -> None:
    bins, max_k = 10, 5
    groups, probs, labels = random_batch(k, 3000, seed=k)
    sums = MulticlassSums(GROUPS, k, bins, max_k)
    # In three batches: the sums must add up to the same as one pass.
    for part in np.array_split(np.arange(3000), 3):
        sums.update(groups[part], probs[part], labels=labels[part])
    m = multiclass_metrics(sums)
    for g in range(GROUPS):
        ref = reference(g, groups, probs, labels, k, bins, max_k)
        assert m.events[g] == ref["events"] and m.labeled[g] == ref["labeled"]
        for name in (
            "expected_accuracy",
            "accuracy",
            "macro_f1",
            "weighted_f1",
            "brier",
            "log_loss",
            "calibration_error",
        ):
            assert getattr(m, name)[g] == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name
        for name in ("class_share", "precision", "recall", "f1"):
            np.testing.assert_allclose(getattr(m, name)[g], ref[name], rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(m.topk_accuracy[g], ref["topk"], rtol=1e-12)
        np.testing.assert_array_equal(sums.margin_hist[g], ref["margin_hist"])
        np.testing.assert_array_equal(sums.top_hist[g], ref["top_hist"])
    # The confusion counts are the pairs (label, argmax) of the labeled events.
    lab = labels >= 0
    expected = np.zeros((GROUPS, k, k), dtype=np.int64)
    np.add.at(expected, (groups[lab], labels[lab], probs[lab].argmax(axis=1)), 1)
    np.testing.assert_array_equal(sums.confusion, expected)


@pytest.mark.parametrize("k", [3, 50])
def test_merged_sums_equal_one_pass_and_survive_plain_data(k: int) -> None:
    groups, probs, labels = random_batch(k, 1000, seed=100 + k)
    whole = MulticlassSums(GROUPS, k)
    whole.update(groups, probs, labels=labels)
    left, right = MulticlassSums(GROUPS, k), MulticlassSums(GROUPS, k)
    left.update(groups[:400], probs[:400], labels=labels[:400])
    right.update(groups[400:], probs[400:], labels=labels[400:])
    left.merge(MulticlassSums.from_dict(right.to_dict()))
    a, b = multiclass_metrics(whole), multiclass_metrics(left)
    for name in ("accuracy", "macro_f1", "brier", "log_loss", "calibration_error"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)
    np.testing.assert_array_equal(whole.confusion, left.confusion)
    np.testing.assert_array_equal(whole.topk, left.topk)


def test_given_predictions_and_undefined_metrics() -> None:
    sums = MulticlassSums(n=2, k=3, bins=4, max_k=2)
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])
    # The events' own predictions (class 2) count, not the argmax; group 1 has no events.
    sums.update(np.array([0, 0]), probs, predicted=np.array([2, 2]), labels=np.array([2, -1]))
    m = multiclass_metrics(sums)
    assert sums.predicted[0].tolist() == [0, 0, 2]
    # Performance counts labeled events only: one, predicted and labeled class 2.
    assert m.accuracy[0] == 1.0 and m.precision[0, 2] == 1.0 and m.recall[0, 2] == 1.0
    assert np.isnan(m.precision[0, 0]) and np.isnan(m.f1[0, 0])  # class 0: never labeled
    assert m.macro_f1[0] == 1.0  # over class 2 only, the one predicted or labeled
    assert m.topk_accuracy[0].tolist() == [0.0, 0.0]  # the label is third most probable
    assert m.calibration_error[0] == pytest.approx(0.5)  # top class wrong at confidence 0.5
    for name in ("accuracy", "expected_accuracy", "brier", "log_loss", "macro_f1"):
        assert np.isnan(getattr(m, name)[1]), name


def test_plain_data_is_checked() -> None:
    data = MulticlassSums(1, 3).to_dict()
    with pytest.raises(StateError, match="predicted"):
        MulticlassSums.from_dict({**data, "predicted": [[1, 2]]})
    with pytest.raises(StateError, match="negative"):
        MulticlassSums.from_dict({**data, "brier_sum": [-1.0]})
    with pytest.raises(StateError):
        MulticlassSums.from_dict({"n": 1})
    with pytest.raises(ValueError, match="shapes"):
        MulticlassSums(1, 3).merge(MulticlassSums(1, 4))


def window_hists(groups, probs, labels, k):  # type: ignore[no-untyped-def]
    """The window histograms of a batch, accumulated per group as WindowAcc does."""
    bins = window_bins(probs, np.ones(len(probs), dtype=bool), probs.argmax(axis=1), labels)
    weights = window_weights(probs, labels)
    hists = {}
    for name, width in window_hist_widths(k).items():
        ok = bins[name] >= 0
        w = weights[name][ok] if name in weights else None
        flat = np.bincount(groups[ok] * width + bins[name][ok], weights=w, minlength=GROUPS * width)
        hists[name] = np.rint(flat).astype(np.int64).reshape(GROUPS, width)
    return hists


@pytest.mark.parametrize("k", CLASS_COUNTS)
def test_window_histograms_give_the_metrics_of_the_sums(k: int) -> None:
    """What the monitor keeps per window (histograms) gives the metrics of the exact sums:
    the counts exactly, the sums within half a unit of SUM_SCALE per event."""
    groups, probs, labels = random_batch(k, 2000, seed=7 * k)
    hists = window_hists(groups, probs, labels, k)
    sums = MulticlassSums(GROUPS, k)
    sums.update(groups, probs, labels=labels)
    np.testing.assert_array_equal(hists["mc_top"], sums.top_hist)
    np.testing.assert_array_equal(hists["mc_margin"], sums.margin_hist)
    np.testing.assert_array_equal(hists["mc_calib_n"], sums.calib_count)
    np.testing.assert_array_equal(hists["mc_calib_right"], sums.calib_right)
    got, want = window_metrics(hists, k), multiclass_metrics(sums)
    for name in (
        "class_share",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "macro_f1",
        "weighted_f1",
        "topk_accuracy",
    ):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    for name in ("expected_accuracy", "brier", "log_loss", "calibration_error"):
        np.testing.assert_allclose(
            getattr(got, name), getattr(want, name), rtol=0, atol=0.5 / SUM_SCALE, err_msg=name
        )


def test_window_metrics_of_an_empty_grid() -> None:
    hists = {name: np.zeros((0, w), dtype=np.int64) for name, w in window_hist_widths(4).items()}
    m = window_metrics(hists, 4, min_samples=30)
    assert m.class_share.shape == (0, 4) and m.accuracy.shape == (0,)
