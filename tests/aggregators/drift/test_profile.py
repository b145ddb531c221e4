"""DriftProfile: histogram layout per model and the batch encoder, against a per-event reference."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tilewatch.aggregators.drift.profile import (
    VIOLATION_KINDS,
    DriftProfile,
    DriftSettings,
    FeatureSpec,
)
from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelBaseline,
    ModelColumns,
    build_model_baseline,
)

SCORE_RANGE = (0.0, 1.0)


def _model(seed: int, loc: float, plans: list[str], n: int = 400) -> ModelBaseline:
    """A baseline with numeric ``x``, categorical ``plan`` (top 2 + known others), classes."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(
        plans, size=n, p=np.linspace(2, 1, len(plans)) / np.linspace(2, 1, len(plans)).sum()
    )
    feats: list[dict[str, object]] = []
    for i in range(n):
        row: dict[str, object] = {"plan": str(plan[i])}
        if i % 10:
            row["x"] = float(rng.normal(loc, 1.0))
        feats.append(row)
    cols = ModelColumns(
        scores=list(rng.uniform(0.0, 1.0, n)),
        labels=[None] * n,
        predictions=list(rng.choice(["0", "1"], size=n)),
        features=feats,
    )
    return build_model_baseline(
        cols, BaselineSettings(score_bins=20, feature_bins=5, top_categories=2), *SCORE_RANGE
    )


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    return Baseline(
        created_at="2026-01-01T00:00:00Z",
        sources=[],
        score_range=SCORE_RANGE,
        settings=BaselineSettings(),
        models={
            "m1": _model(1, 0.0, ["free", "pro", "team", "edu"]),
            "m2": _model(2, 5.0, ["basic", "gold", "silver"]),
        },
    )


def test_violation_kinds_documented() -> None:
    assert sorted(VIOLATION_KINDS) == ["absent", "out_of_range", "unseen_category", "wrong_type"]


def test_hist_bins_without_baseline() -> None:
    profile = DriftProfile(DriftSettings(features=("a", "b"), score_bins=7), SCORE_RANGE)
    assert profile.features == ["a", "b"]
    assert profile.hist_bins == {"score": 7, "class": 3, "f:a": 2, "f:b": 2}
    spec = profile.spec("anything")
    assert [f.kind for f in spec.features] == ["presence", "presence"]
    np.testing.assert_allclose(spec.score_edges, np.linspace(0.0, 1.0, 8))
    assert spec.score_ref is None and spec.class_ref is None
    assert spec.classes == {"0": 0, "1": 1}


def test_no_features_without_baseline_or_settings() -> None:
    profile = DriftProfile(DriftSettings(), SCORE_RANGE)
    assert profile.features == []
    assert profile.hist_bins == {"score": 20, "class": 3}


def test_hist_bins_with_baseline(baseline: Baseline) -> None:
    profile = DriftProfile(DriftSettings(), SCORE_RANGE, baseline)
    assert profile.features == ["plan", "x"]  # the baseline's, sorted
    widest_x = max(len(m.features["x"].inner_edges or []) + 1 for m in baseline.models.values())
    widest_plan = max(len(m.features["plan"].top or {}) + 2 for m in baseline.models.values())
    assert profile.hist_bins == {
        "score": 20,
        "class": 3,
        "f:plan": widest_plan + 1,
        "f:x": widest_x + 1,
    }
    for name, mb in baseline.models.items():
        spec = profile.spec(name)
        np.testing.assert_array_equal(spec.score_edges, mb.score.edges)
        np.testing.assert_array_equal(spec.score_ref, mb.score.shares)
        assert spec.score_mean == mb.score.mean and spec.score_std == mb.score.std
        assert mb.predictions is not None
        np.testing.assert_allclose(spec.class_ref, [*mb.predictions.values(), 0.0])
        x = spec.features[1]
        assert (x.name, x.kind) == ("x", "numeric")
        np.testing.assert_array_equal(x.edges, mb.features["x"].inner_edges)
        assert (x.lo, x.hi) == (mb.features["x"].min, mb.features["x"].max)
        assert x.ref_missing == pytest.approx(0.1)
        plan = spec.features[0]
        assert plan.kind == "categorical" and plan.categories is not None
        assert list(plan.categories.top) == list(mb.features["plan"].top or {})
        top_shares = list((mb.features["plan"].top or {}).values())
        np.testing.assert_allclose(
            plan.ref_shares, [*top_shares, mb.features["plan"].other_share, 0.0]
        )
    # A model the baseline does not know gets the default (presence-only) spec.
    unknown = profile.spec("nope")
    assert [f.kind for f in unknown.features] == ["presence", "presence"]
    assert unknown.score_ref is None


def test_settings_features_and_max_features(baseline: Baseline) -> None:
    profile = DriftProfile(DriftSettings(max_features=1), SCORE_RANGE, baseline)
    assert profile.features == ["plan"]
    profile = DriftProfile(DriftSettings(features=("x", "zz")), SCORE_RANGE, baseline)
    assert profile.features == ["x", "zz"]
    assert profile.spec("m1").features[1].kind == "presence"  # zz: not in the baseline
    assert profile.hist_bins["f:zz"] == 2


# -- the per-event reference encoder --------------------------------------------------------


def _ref_feature(spec: FeatureSpec, feats: Any, missing: int) -> tuple[int, list[str]]:
    """Bin and violation kinds of one event's feature, written out plainly.

    ``missing`` is the histogram's last column (the same for every model)."""
    v = feats.get(spec.name) if type(feats) is dict else None
    if v is None:
        return missing, ["absent"]
    if spec.kind == "presence":
        return 0, []
    if spec.kind == "numeric":
        if type(v) not in (int, float) or (type(v) is float and math.isnan(v)):
            return missing, ["wrong_type"]
        x = float(v)
        kinds = ["out_of_range"] if x < spec.lo or x > spec.hi else []
        assert spec.edges is not None
        return int(np.searchsorted(spec.edges, x, side="right")), kinds
    assert spec.categories is not None
    if type(v) is bool:  # the baseline spells booleans "true" / "false"
        v = "true" if v else "false"
    if type(v) is not str:
        return missing, ["wrong_type"]
    top = list(spec.categories.top)
    if v in top:
        return top.index(v), []
    known = spec.categories.known_other
    if known is None or v in known:
        return len(top), []
    return len(top) + 1, ["unseen_category"]


def _reference(
    profile: DriftProfile,
    models: list[str],
    scores: np.ndarray,
    preds: list[Any],
    feats: list[Any],
) -> tuple[dict[str, list[int]], dict[tuple[str, str, str], int]]:
    bins: dict[str, list[int]] = {name: [] for name in profile.hist_bins}
    viol: dict[tuple[str, str, str], int] = {}
    for m, s, p, f in zip(models, scores.tolist(), preds, feats, strict=True):
        spec = profile.spec(m)
        edges = spec.score_edges
        # side="right" on the inner edges: a score equal to an edge starts the next bin.
        b = 0
        while b < len(edges) - 2 and s >= edges[b + 1]:
            b += 1
        bins["score"].append(b)
        bins["class"].append(-1 if p is None else spec.classes.get(str(p), len(spec.classes)))
        for fspec in spec.features:
            fb, kinds = _ref_feature(fspec, f, profile.hist_bins[f"f:{fspec.name}"] - 1)
            bins[f"f:{fspec.name}"].append(fb)
            for kind in kinds:
                viol[(m, fspec.name, kind)] = viol.get((m, fspec.name, kind), 0) + 1
    return bins, viol


def _random_batch(
    seed: int, models: list[str], n: int
) -> tuple[list[str], np.ndarray, list[Any], list[Any]]:
    rng = np.random.default_rng(seed)
    ms = [models[i] for i in rng.integers(0, len(models), n)]
    scores = rng.uniform(0.0, 1.0, n)
    scores[:5] = [0.0, 0.05, 0.5, 0.95, 1.0]  # edges exactly
    pred_pool: list[Any] = ["0", "1", 0, 1, None, "2", 1.0, True]
    preds = [pred_pool[i] for i in rng.integers(0, len(pred_pool), n)]
    x_pool: list[Any] = [None, "7", True, float("nan"), float("inf"), -50, 100.0, 3]
    plan_pool: list[Any] = ["free", "pro", "team", "edu", "basic", "gold", "silver", "new", 4, None]
    feats: list[Any] = []
    for _i in range(n):
        kind = rng.integers(0, 12)
        if kind == 0:
            feats.append(None)
        elif kind == 1:
            feats.append(["not", "a", "dict"])
        else:
            row: dict[str, Any] = {}
            r = rng.random()
            if r < 0.6:
                row["x"] = float(rng.normal(2.5, 3.0))
            elif r < 0.7:
                row["x"] = int(rng.integers(-3, 8))
            elif r < 0.9:
                row["x"] = x_pool[int(rng.integers(0, len(x_pool)))]
            if rng.random() < 0.9:
                row["plan"] = plan_pool[int(rng.integers(0, len(plan_pool)))]
            feats.append(row)
    return ms, scores, preds, feats


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("models", [["m1"], ["m1", "m2"], ["m1", "m2", "other"], ["other"]])
def test_encode_matches_per_event_reference(
    baseline: Baseline, seed: int, models: list[str]
) -> None:
    profile = DriftProfile(DriftSettings(), SCORE_RANGE, baseline)
    ms, scores, preds, feats = _random_batch(seed, models, 600)
    bins, violations = profile.encode(ms, scores, preds, feats)
    ref_bins, ref_viol = _reference(profile, ms, scores, preds, feats)
    assert sorted(bins) == sorted(profile.hist_bins)
    for name, ref in ref_bins.items():
        assert bins[name].dtype == np.int64
        assert bins[name].tolist() == ref, name
    assert violations == ref_viol
    for name, b in bins.items():
        assert b.max() < profile.hist_bins[name]
        assert b.min() >= (-1 if name == "class" else 0)


def test_encode_exact_small_batch(baseline: Baseline) -> None:
    profile = DriftProfile(DriftSettings(), SCORE_RANGE, baseline)
    spec = profile.spec("m1")
    x = spec.features[1]
    assert x.edges is not None and x.categories is None
    top = list(profile.spec("m1").features[0].categories.top)  # type: ignore[union-attr]
    others = sorted(set(["free", "pro", "team", "edu"]) - set(top))
    lo, hi = x.lo, x.hi
    e0 = float(x.edges[0])
    feats: list[Any] = [
        {"x": e0, "plan": top[0]},  # edge value: the bin that starts there
        {"x": lo - 1.0, "plan": others[0]},  # out of range below, a known other
        {"x": hi + 1.0, "plan": "brand-new"},  # out of range above, unseen
        {"x": "3", "plan": 3},  # wrong types both
        {},  # both absent
        None,  # not an object: both absent
    ]
    bins, violations = profile.encode(
        ["m1"] * 6,
        np.array([0.0, 0.05, 0.999, 1.0, 0.5, 0.049]),
        ["1", "0", None, 7, 1, "x"],
        feats,
    )
    nx = x.n_bins
    assert bins["f:x"].tolist() == [1, 0, nx - 1, nx, nx, nx]
    assert bins["f:plan"].tolist() == [0, 2, 3, 4, 4, 4]
    assert bins["score"].tolist() == [0, 1, 19, 19, 10, 0]
    assert bins["class"].tolist() == [1, 0, -1, 2, 1, 2]
    assert violations == {
        ("m1", "x", "out_of_range"): 2,
        ("m1", "x", "wrong_type"): 1,
        ("m1", "x", "absent"): 2,
        ("m1", "plan", "unseen_category"): 1,
        ("m1", "plan", "wrong_type"): 1,
        ("m1", "plan", "absent"): 2,
    }


def test_each_model_uses_its_own_edges(baseline: Baseline) -> None:
    """m2's x is centred at 5: the same value falls in different bins for m1 and m2."""
    profile = DriftProfile(DriftSettings(), SCORE_RANGE, baseline)
    e1 = profile.spec("m1").features[1].edges
    e2 = profile.spec("m2").features[1].edges
    assert e1 is not None and e2 is not None and not np.array_equal(e1, e2)
    values = [-1.0, 0.0, 2.0, 5.0, 7.0]
    ms = ["m1", "m2"] * len(values)
    feats = [{"x": v} for v in values for _ in (0, 1)]
    bins, _ = profile.encode(ms, np.full(len(ms), 0.5), [None] * len(ms), feats)
    expected = [
        int(np.searchsorted(e1 if m == "m1" else e2, f["x"], side="right"))
        for m, f in zip(ms, feats, strict=True)
    ]
    assert bins["f:x"].tolist() == expected
    # and the batch result equals encoding each model alone
    for m in ("m1", "m2"):
        rows = [i for i, mm in enumerate(ms) if mm == m]
        alone, _ = profile.encode(
            [m] * len(rows), np.full(len(rows), 0.5), [None] * len(rows), [feats[i] for i in rows]
        )
        assert bins["f:x"][rows].tolist() == alone["f:x"].tolist()


def test_unknown_model_uses_defaults(baseline: Baseline) -> None:
    profile = DriftProfile(DriftSettings(score_bins=4), SCORE_RANGE, baseline)
    bins, violations = profile.encode(
        ["u", "u", "u"],
        np.array([0.1, 0.3, 0.9]),
        ["1", "5", None],
        [{"x": "str"}, {"plan": 1}, {}],
    )
    assert bins["score"].tolist() == [0, 1, 3]
    assert bins["class"].tolist() == [1, 2, -1]
    # presence only: any value is present (no wrong types without a baseline)
    assert bins["f:x"].tolist()[0] == 0 and bins["f:plan"].tolist()[1] == 0
    assert violations == {("u", "x", "absent"): 2, ("u", "plan", "absent"): 2}


def test_class_bins_from_baseline_classes() -> None:
    cols = ModelColumns(
        scores=[0.1, 0.2, 0.3, 0.4],
        labels=[None] * 4,
        predictions=["cat", "dog", "dog", None],
        features=[{}] * 4,
    )
    mb = build_model_baseline(cols, BaselineSettings(score_bins=20), *SCORE_RANGE)
    bl = Baseline("t", [], SCORE_RANGE, BaselineSettings(), {"m": mb})
    profile = DriftProfile(DriftSettings(), SCORE_RANGE, bl)
    spec = profile.spec("m")
    assert spec.classes == {"cat": 0, "dog": 1}
    np.testing.assert_allclose(spec.class_ref, [1 / 3, 2 / 3, 0.0])
    bins, _ = profile.encode(["m"] * 4, np.full(4, 0.5), ["dog", "cat", "bird", None], [{}] * 4)
    assert bins["class"].tolist() == [1, 0, 2, -1]


def test_class_histogram_wide_enough_for_baseline_classes() -> None:
    cols = ModelColumns(
        scores=[0.1, 0.2, 0.3, 0.4],
        labels=[None] * 4,
        predictions=["a", "b", "c", "d"],
        features=[{}] * 4,
    )
    mb = build_model_baseline(cols, BaselineSettings(), *SCORE_RANGE)
    bl = Baseline("t", [], SCORE_RANGE, BaselineSettings(), {"m": mb})
    profile = DriftProfile(DriftSettings(), SCORE_RANGE, bl)
    bins, _ = profile.encode(["m"] * 5, np.full(5, 0.5), ["a", "b", "c", "d", "e"], [{}] * 5)
    assert bins["class"].max() < profile.hist_bins["class"]


def test_score_histogram_wide_enough_for_baseline_bins() -> None:
    rng = np.random.default_rng(0)
    cols = ModelColumns(
        scores=list(rng.uniform(0, 1, 200)),
        labels=[None] * 200,
        predictions=[None] * 200,
        features=[{}] * 200,
    )
    mb = build_model_baseline(cols, BaselineSettings(score_bins=40), *SCORE_RANGE)
    bl = Baseline("t", [], SCORE_RANGE, BaselineSettings(), {"m": mb})
    profile = DriftProfile(DriftSettings(score_bins=20), SCORE_RANGE, bl)
    bins, _ = profile.encode(["m"], np.array([0.99]), [None], [{}])
    assert bins["score"].max() < profile.hist_bins["score"]


def test_missing_feature_lands_in_last_column_for_every_model(baseline: Baseline) -> None:
    profile = DriftProfile(DriftSettings(), SCORE_RANGE, baseline)
    bins, _ = profile.encode(["m1", "unknown"], np.array([0.5, 0.5]), [None, None], [{}, {}])
    last = profile.hist_bins["f:x"] - 1
    assert bins["f:x"].tolist() == [last, last]


def test_boolean_feature_matches_its_baseline_categories() -> None:
    cols = ModelColumns(
        scores=[0.1, 0.2, 0.3, 0.4],
        labels=[None] * 4,
        predictions=[None] * 4,
        features=[{"flag": True}, {"flag": False}, {"flag": True}, {"flag": False}],
    )
    mb = build_model_baseline(cols, BaselineSettings(), *SCORE_RANGE)
    assert mb.features["flag"].top == {"false": 0.5, "true": 0.5}
    bl = Baseline("t", [], SCORE_RANGE, BaselineSettings(), {"m": mb})
    profile = DriftProfile(DriftSettings(), SCORE_RANGE, bl)
    bins, violations = profile.encode(
        ["m", "m"], np.array([0.5, 0.5]), [None, None], [{"flag": True}, {"flag": False}]
    )
    assert violations == {}
    assert bins["f:flag"].tolist() == [1, 0]
