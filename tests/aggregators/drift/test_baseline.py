"""Tests of the pure baseline builder (tilewatch.aggregators.drift.reference) against brute force
and numpy."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from tilewatch.aggregators.drift.reference import (
    FORMAT,
    VERSION,
    Baseline,
    BaselineSettings,
    ModelColumns,
    build_model_baseline,
)
from tilewatch.aggregators.drift.summaries import (
    MAX_CATEGORIES,
    categorical_summary,
    detect_kind,
    numeric_summary,
    score_histogram,
)
from tilewatch.aggregators.stats.binning import bin_numeric, numeric_edges
from tilewatch.aggregators.stats.threshold import choose_threshold

# --- threshold selection ---------------------------------------------------------------------


def _data(seed: int, n: int, positive_share: float, decimals: int | None) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < positive_share).astype(int)
    labels[0], labels[1] = 0, 1  # both classes always present
    scores = np.clip(rng.normal(0.4 + 0.25 * labels, 0.2), 0.0, 1.0)
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    return scores, labels


def _brute_force(scores: Any, labels: Any, rule: str, ratio: float | None) -> float:
    """Try every distinct score as threshold with exact arithmetic; ties -> highest threshold."""
    y = labels.astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    best_t, best_v = None, None
    for t in sorted(set(scores.tolist()), reverse=True):
        pred = scores >= t
        tp, fp = int(np.sum(pred & y)), int(np.sum(pred & ~y))
        fn = pos - tp
        if rule == "max_f1":
            value = Fraction(2 * tp, 2 * tp + fp + fn)
        elif rule == "youden":
            value = Fraction(tp, pos) - Fraction(fp, neg)
        else:
            value = -(fp + fn * Fraction(ratio))  # maximise minus the cost
        if best_v is None or value > best_v:
            best_t, best_v = t, value
    assert best_t is not None
    return best_t


CASES = [
    (seed, share, decimals)
    for seed in (1, 2, 3)
    for share in (0.05, 0.3, 0.5, 0.9)
    for decimals in (None, 1, 2)
]
RULES = [("max_f1", None), ("youden", None)] + [
    ("cost", r) for r in (0.1, 0.5, 1.0, 3.0, 10.0, 0.3)
]


@pytest.mark.parametrize(("seed", "share", "decimals"), CASES)
@pytest.mark.parametrize(("rule", "ratio"), RULES)
def test_threshold_equals_brute_force(
    seed: int, share: float, decimals: int | None, rule: str, ratio: float | None
) -> None:
    scores, labels = _data(seed, 300, share, decimals)
    chosen = choose_threshold(scores, labels, rule, ratio)
    assert chosen.value == _brute_force(scores, labels, rule, ratio)
    assert chosen.rule == rule


@pytest.mark.parametrize("seed", [4, 5, 6])
@pytest.mark.parametrize(("rule", "ratio"), RULES)
def test_metrics_at_threshold_equal_numpy(seed: int, rule: str, ratio: float | None) -> None:
    scores, labels = _data(seed, 500, 0.3, 2)
    t = choose_threshold(scores, labels, rule, ratio)
    pred = scores >= t.value
    y = labels == 1
    tp, fp = np.sum(pred & y), np.sum(pred & ~y)
    tn, fn = np.sum(~pred & ~y), np.sum(~pred & y)
    assert (t.tp, t.fp, t.tn, t.fn) == (tp, fp, tn, fn)
    assert (t.positives, t.negatives, t.labeled_rows) == (y.sum(), (~y).sum(), y.size)
    assert t.accuracy == pytest.approx(np.mean(pred == y))
    assert t.precision == pytest.approx(tp / (tp + fp))
    assert t.recall == pytest.approx(tp / (tp + fn))
    assert t.tpr == t.recall
    assert t.fpr == pytest.approx(fp / (fp + tn))
    p, r = tp / (tp + fp), tp / (tp + fn)
    assert t.f1 == pytest.approx(2 * p * r / (p + r))
    assert t.youden_j == pytest.approx(t.tpr - t.fpr)
    used = 1.0 if ratio is None else ratio
    assert t.cost_ratio == used
    assert t.cost == pytest.approx(fp + fn * used)


def test_threshold_accepts_booleans_and_is_a_seen_score() -> None:
    scores = np.array([0.9, 0.8, 0.3, 0.2])
    t = choose_threshold(scores, [True, True, False, False], "max_f1")
    assert t.value == 0.8 and t.f1 == 1.0 and t.value in scores


@pytest.mark.parametrize(
    ("labels", "rule", "ratio", "match"),
    [
        ([1, 1, 1], "max_f1", None, "both classes, got 3 positives and 0 negatives"),
        ([0, 0, 0], "youden", None, "both classes"),
        ([0, 1, 0], "best", None, "unknown threshold rule 'best'"),
        ([0, 1, 0], "cost", None, "needs a cost_ratio > 0, got None"),
        ([0, 1, 0], "cost", 0.0, "needs a cost_ratio > 0, got 0.0"),
        ([0, 1], "max_f1", None, "differ in shape"),
    ],
)
def test_threshold_errors(labels: list[int], rule: str, ratio: float | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        choose_threshold([0.1, 0.5, 0.9], labels, rule, ratio)


# --- scores and features ---------------------------------------------------------------------


@pytest.mark.parametrize("bins", [1, 5, 20])
@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (-3.0, 7.5)])
def test_score_histogram_matches_numpy(bins: int, lo: float, hi: float) -> None:
    rng = np.random.default_rng(bins)
    s = rng.uniform(lo, hi, 1000)
    s[:3] = [lo, hi, hi]  # both ends are inside the range
    h = score_histogram(s, bins, lo, hi)
    counts, edges = np.histogram(s, bins=bins, range=(lo, hi))
    assert h.edges == pytest.approx(edges.tolist())
    assert h.shares == pytest.approx((counts / s.size).tolist())
    assert sum(h.shares) == pytest.approx(1.0)
    assert (h.count, h.mean, h.std) == (1000, pytest.approx(s.mean()), pytest.approx(s.std()))


@pytest.mark.parametrize("bins", [2, 4, 10])
@pytest.mark.parametrize("kind", ["normal", "integers", "constant"])
def test_numeric_summary_matches_numpy(bins: int, kind: str) -> None:
    rng = np.random.default_rng(bins)
    x = {
        "normal": rng.normal(5.0, 2.0, 997),
        "integers": rng.integers(0, 4, 500).astype(float),
        "constant": np.full(50, 3.5),
    }[kind]
    f = numeric_summary(x, bins, missing=3)
    edges = numeric_edges(x, bins)
    ids = bin_numeric(x, edges)
    assert f.kind == "numeric"
    assert f.inner_edges == edges.tolist()
    assert len(f.shares or []) == len(edges) + 1
    assert f.shares == pytest.approx([float(np.mean(ids == i)) for i in range(len(edges) + 1)])
    assert f.count == x.size and f.missing_share == pytest.approx(3 / (x.size + 3))
    assert (f.mean, f.std) == (pytest.approx(x.mean()), pytest.approx(x.std()))
    assert (f.min, f.max) == (x.min(), x.max())
    assert (f.top, f.other_share, f.categories) == (None, None, None)


def test_numeric_quantile_bins_are_even_without_ties() -> None:
    f = numeric_summary(np.arange(1000.0), 10, missing=0)
    assert f.shares == pytest.approx([0.1] * 10)
    assert f.inner_edges == [float(e) for e in range(100, 1000, 100)]


def test_categorical_top_k_and_other_share() -> None:
    rng = np.random.default_rng(0)
    values = list(rng.choice(["a", "b", "c", "d", "e"], size=400, p=[0.4, 0.3, 0.15, 0.1, 0.05]))
    f = categorical_summary(values, top=3, missing=100)
    names, counts = np.unique(values, return_counts=True)
    order = sorted(zip(names.tolist(), counts.tolist(), strict=True), key=lambda t: (-t[1], t[0]))
    assert list(f.top or {}) == [n for n, _ in order[:3]]
    assert f.top == pytest.approx({n: c / 400 for n, c in order[:3]})
    assert f.other_share == pytest.approx(sum(c for _, c in order[3:]) / 400)
    assert f.categories == ["a", "b", "c", "d", "e"]
    assert f.missing_share == pytest.approx(100 / 500)
    assert f.count == 400


def test_categorical_ties_by_name_booleans_and_many_categories() -> None:
    f = categorical_summary(["z", "y", True, False, True], top=2, missing=0)
    assert f.top == {"true": 0.4, "false": 0.2}  # tie between false, y, z: by name
    assert f.categories == ["false", "true", "y", "z"]
    many = categorical_summary([f"c{i}" for i in range(MAX_CATEGORIES + 1)], top=5, missing=0)
    assert many.categories is None and many.other_share == pytest.approx(1 - 5 / 1001)
    exact = categorical_summary([f"c{i}" for i in range(MAX_CATEGORIES)], top=5, missing=0)
    assert exact.categories is not None and len(exact.categories) == MAX_CATEGORIES


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2.5, None, float("nan")], ("numeric", False)),
        (["a", None], ("categorical", False)),
        ([True, False], ("categorical", False)),
        ([1, True], ("categorical", True)),
        ([1.0, "x"], ("categorical", True)),
        ([None, None], ("categorical", False)),
        ([], ("categorical", False)),
    ],
)
def test_detect_kind(values: list[object], expected: tuple[str, bool]) -> None:
    assert detect_kind(values) == expected


# --- one model -------------------------------------------------------------------------------


def _columns() -> ModelColumns:
    rng = np.random.default_rng(11)
    n = 200
    labels = (rng.random(n) < 0.4).astype(int)
    scores = np.round(np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0, 1), 3)
    features: list[dict[str, object]] = []
    for i in range(n):
        row: dict[str, object] = {"tenure": float(rng.integers(1, 60)), "plan": ["a", "b"][i % 2]}
        if i % 10 == 0:
            del row["tenure"]  # missing in 10% of rows
        row["mixed"] = i if i % 3 else "x"
        features.append(row)
    return ModelColumns(
        scores=scores.tolist(),
        labels=[int(v) if i % 4 else None for i, v in enumerate(labels)],
        predictions=[None] * n,
        features=features,
    )


def test_model_baseline_with_labels() -> None:
    cols = _columns()
    b = build_model_baseline(cols, BaselineSettings(threshold_rule="youden"), 0.0, 1.0)
    labeled = [(s, y) for s, y in zip(cols.scores, cols.labels, strict=True) if y is not None]
    expected = choose_threshold([s for s, _ in labeled], [y for _, y in labeled], "youden")
    assert b.threshold == expected
    assert (b.rows, b.labeled_rows) == (200, 150)
    assert b.features["tenure"].kind == "numeric"
    assert b.features["tenure"].missing_share == pytest.approx(0.1)
    assert b.features["plan"].top == {"a": 0.5, "b": 0.5}
    assert b.features["mixed"].kind == "categorical"
    assert any("'mixed' mixes numbers" in note for note in b.notes)
    positive = float(np.mean(np.array(cols.scores) >= expected.value))
    assert b.prediction_source == "threshold"
    assert b.predictions == pytest.approx({"0": 1 - positive, "1": positive})
    assert len(b.score.shares) == 20


def test_model_baseline_without_labels_has_no_threshold() -> None:
    cols = _columns()
    cols.labels = [None] * len(cols.labels)
    b = build_model_baseline(cols, BaselineSettings(), 0.0, 1.0)
    assert b.threshold is None and b.labeled_rows == 0
    assert "no labels: no threshold" in b.notes
    assert b.predictions is None and b.prediction_source is None


def test_model_baseline_one_class_and_predictions_from_field() -> None:
    cols = ModelColumns(
        scores=[0.1, 0.2, 0.9],
        labels=[0, 0, None],
        predictions=["no", "no", "yes"],
        features=[{}, {}, {}],
    )
    b = build_model_baseline(cols, BaselineSettings(), 0.0, 1.0)
    assert b.threshold is None
    assert any(n.startswith("no threshold: labels need both classes") for n in b.notes)
    assert b.prediction_source == "field"
    assert b.predictions == pytest.approx({"no": 2 / 3, "yes": 1 / 3})


# --- plain data ------------------------------------------------------------------------------


def _baseline() -> Baseline:
    settings = BaselineSettings(threshold_rule="cost", cost_ratio=4.0, score_bins=5)
    cols = _columns()
    return Baseline(
        created_at="2026-01-01T00:00:00Z",
        sources=[{"path": "a.jsonl", "format": "jsonl", "rows": 200, "bad_rows": 0}],
        score_range=(0.0, 1.0),
        settings=settings,
        models={"churn": build_model_baseline(cols, settings, 0.0, 1.0)},
        rows_read=200,
    )


def test_to_dict_is_plain_json_and_round_trips() -> None:
    base = _baseline()
    data = json.loads(json.dumps(base.to_dict(), allow_nan=False))
    assert (data["format"], data["version"]) == (FORMAT, VERSION)
    assert set(data["models"]["churn"]["features"]["plan"]) == {
        "kind",
        "count",
        "missing_share",
        "top",
        "other_share",
        "categories",
    }
    assert "top" not in data["models"]["churn"]["features"]["tenure"]
    assert data["models"]["churn"]["threshold"]["rule"] == "cost"
    assert data["settings"]["cost_ratio"] == 4.0 and "path" not in data["settings"]
    again = Baseline.from_dict(data)
    assert again.models == base.models
    assert again.to_dict() == base.to_dict()


def _broken(change: Any) -> str:
    data = json.loads(json.dumps(_baseline().to_dict()))
    change(data)
    with pytest.raises(ValueError) as info:
        Baseline.from_dict(data)
    return str(info.value)


def test_from_dict_refuses_foreign_and_corrupt_data() -> None:
    assert _broken(lambda d: d.update(format="other")) == (
        "format: expected 'tilewatch-baseline', got 'other'"
    )
    assert "version: expected one of (1, 2)" in _broken(lambda d: d.update(version=3))
    assert _broken(lambda d: d["models"]["churn"]["score"].pop("mean")) == (
        "models.churn.score.mean: missing"
    )
    assert "models.churn.features.tenure.shares: expected a list of finite numbers" in _broken(
        lambda d: d["models"]["churn"]["features"]["tenure"].update(shares="x")
    )
    assert "models.churn.threshold.value: expected a finite number" in _broken(
        lambda d: d["models"]["churn"]["threshold"].update(value="0.5")
    )
    assert "one more share than inner_edges" in _broken(
        lambda d: d["models"]["churn"]["features"]["tenure"]["shares"].pop()
    )
    assert "score_range: expected [min, max]" in _broken(lambda d: d.update(score_range=[1, 0]))
    assert "kind: expected 'numeric' or 'categorical'" in _broken(
        lambda d: d["models"]["churn"]["features"]["plan"].update(kind="text")
    )
