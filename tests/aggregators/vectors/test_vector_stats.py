"""Vector statistics against numpy/scipy references on random data."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from tilewatch.aggregators.vectors.attributions import (
    attribution_matrix,
    mean_difference_pvalue,
    spearman,
)
from tilewatch.aggregators.vectors.projection import bin_components, fit_projection
from tilewatch.aggregators.vectors.settings import VectorSettings
from tilewatch.aggregators.vectors.tracker import VectorTracker
from tilewatch.aggregators.vectors.vector_flags import decide_vectors, mahalanobis
from tilewatch.aggregators.vectors.vector_reference import ModelVectors, build_model_vectors


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_matches_the_covariance_eigenvectors(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    p = fit_projection(x, 4)
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    order = values.argsort()[::-1]
    values, vectors = values[order], vectors[:, order]
    np.testing.assert_allclose(p.explained, values[:4] / values.sum(), rtol=1e-8)
    for j in range(4):  # the same axes up to sign
        assert abs(abs(p.components[j] @ vectors[:, j]) - 1.0) < 1e-8
    np.testing.assert_allclose(p.project(x), (x - x.mean(axis=0)) @ p.components.T, atol=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mahalanobis_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(50, 5))
    cov = np.cov(a, rowvar=False)
    u, v = rng.normal(size=5), rng.normal(size=5)
    expected = distance.mahalanobis(u, v, np.linalg.inv(cov))
    assert mahalanobis(u - v, cov) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_spearman_matches_scipy_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, size=(6, 12)).astype(float)
    b = rng.normal(size=(6, 12))
    got = spearman(a, b)
    for i in range(6):
        assert got[i] == pytest.approx(stats.spearmanr(a[i], b[i]).statistic, abs=1e-12)


def test_mean_difference_pvalue_is_the_welch_z_tail() -> None:
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=20), rng.normal(size=20)
    v1, v2 = rng.uniform(0.5, 2, 20), rng.uniform(0.5, 2, 20)
    n1, n2 = rng.integers(20, 500, 20).astype(float), rng.integers(20, 500, 20).astype(float)
    z = np.abs(m1 - m2) / np.sqrt(v1 / n1 + v2 / n2)
    np.testing.assert_allclose(
        mean_difference_pvalue(m1, v1, n1, m2, v2, n2), 2 * stats.norm.sf(z), rtol=1e-10
    )


def test_attribution_matrix_rejects_non_numbers_and_keeps_absent_as_zero() -> None:
    m, ok = attribution_matrix([{"a": "1"}, {"a": float("nan")}, {"b": -1}], ("a", "b"))
    assert ok.tolist() == [False, False, True]
    assert m.tolist() == [[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    m, ok = attribution_matrix([{"a": float("inf")}, {"b": -1}], ("a", "b"))  # the fast path
    assert ok.tolist() == [False, True] and m.tolist() == [[0.0, 0.0], [0.0, 1.0]]


def test_bins_are_equal_mass_on_the_reference() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5000, 6))
    mv = build_model_vectors(
        VectorSettings(components=3, bins=10), [("c",)] * 5000, [None] * 5000, x, range(5000), None
    )
    hist = mv.groups[(("__all__",), "__all__")].bins
    np.testing.assert_allclose(hist, 500, atol=1)


@functools.lru_cache(maxsize=4)
def _reference(seed: int = 0, n: int = 4000, dim: int = 16) -> tuple[ModelVectors, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) + np.linspace(0, 2, dim)
    attrs = [{"f0": 1.0 + rng.random(), "f1": 0.5 * rng.random(), "f2": 0.1} for _ in range(n)]
    mv = build_model_vectors(
        VectorSettings(components=4), [("eu",)] * n, ["a", "b"] * (n // 2), x, range(n), attrs
    )
    return mv, x


def test_clean_windows_reject_at_about_the_nominal_rate() -> None:
    """Under "no change" the distance p-values are uniform: about 5% below 0.05. 300 clean
    windows of 200 events are judged as 300 groups of one window."""
    mv, _ = _reference()
    rng = np.random.default_rng(9)
    assert mv.projection is not None
    z = mv.projection.project(rng.normal(size=(300 * 200, 16)) + mv.projection.center)
    z = z.reshape(300, 200, 4)
    hist = np.stack(
        [np.stack([np.bincount(b, minlength=10) for b in bin_components(w, mv.edges).T]) for w in z]
    )
    keys = [(("eu",), "__all__")] * 300
    d = decide_vectors(
        VectorSettings(components=4),
        mv,
        keys,
        np.full(300, 200),
        z.sum(axis=1),
        hist,
        np.zeros(300, int),
        np.zeros((300, 3)),
        np.zeros((300, 3)),
    )
    rate = float(np.mean(d.distance_pvalue < 0.05))
    assert 0.02 <= rate <= 0.09, rate
    ref = mv.groups[keys[0]]
    expected = distance.mahalanobis(z[0].mean(axis=0), ref.mean, np.linalg.inv(ref.cov))
    assert d.distance[0] == pytest.approx(expected, rel=1e-6)


def test_tracker_sums_match_numpy_on_the_same_events() -> None:
    mv, _ = _reference()
    assert mv.projection is not None
    rng = np.random.default_rng(1)
    n = 500
    x = (rng.normal(size=(n, 16)) + 0.3).astype(np.float32)
    attrs = [{"f0": float(v), "f1": -0.2, "f2": 0.0} for v in rng.random(n)]
    cells = [("m", "eu") if i % 3 else ("m", "us") for i in range(n)]
    classes = ["a" if i % 2 else "b" for i in range(n)]
    t = VectorTracker(VectorSettings(components=4, reservoir=50, min_samples=10), {"m": mv}, 60.0)
    half = n // 2
    for lo, hi in ((0, half), (half, n)):
        rows = np.arange(hi - lo)
        t.apply(
            cells[lo:hi],
            np.full(hi - lo, 5.0),
            classes[lo:hi],
            {"m": (rows, x[lo:hi])},
            attrs[lo:hi],
        )
    t.close_before(100.0)
    closed = t.latest["m"]
    d = closed.decisions
    z = mv.projection.project(x)
    a = np.array([[abs(o["f0"]), 0.2, 0.0] for o in attrs])
    for i, (cell, cls) in enumerate(d.keys):
        member = np.array(
            [
                (cell == ("__all__",) or c[1:] == cell) and (cls == "__all__" or k == cls)
                for c, k in zip(cells, classes, strict=True)
            ]
        )
        assert d.count[i] == member.sum()
        assert d.attr_mean[i] == pytest.approx(a[member].mean(axis=0))
        # every sampled point is the projection of one of the group's vectors
        pts = closed.points[(cell, cls)]
        assert len(pts) == min(50, member.sum())
        dist = np.abs(pts[:, None, :] - z[member][None, :, :2]).max(axis=2).min(axis=1)
        assert dist.max() < 1e-9
    assert d.flags["attribution_shift"].all()  # f1 -> 0.2 and f2 -> 0 moves the shares
    assert not d.flags["embedding_distance"].any() or d.distance[0] > 0.25


def test_reference_round_trips_and_refuses_bad_data() -> None:
    mv, _ = _reference(n=400)
    again = ModelVectors.from_dict(mv.to_dict())
    assert again.groups.keys() == mv.groups.keys()
    key = next(iter(mv.groups))
    np.testing.assert_allclose(again.groups[key].cov, mv.groups[key].cov)
    bad = mv.to_dict()
    bad["groups"][0][2]["mean"] = [1.0]
    with pytest.raises(ValueError, match=r"groups\[0\]\.mean: expected shape"):
        ModelVectors.from_dict(bad)


def test_a_judged_window_takes_a_lagging_partitions_events_and_is_judged_again() -> None:
    mv, _ = _reference()
    rng = np.random.default_rng(5)
    t = VectorTracker(VectorSettings(components=4, min_samples=10), {"m": mv}, 60.0)
    x = (rng.normal(size=(40, 16)) + np.linspace(0, 2, 16)).astype(np.float32)
    t.apply([("m", "eu")] * 20, np.full(20, 5.0), [None] * 20, {"m": (np.arange(20), x[:20])})
    t.close_through("m", 0)
    assert t.latest["m"].decisions.count.tolist() == [20, 20]
    # a partition that was behind: window 0 again, then a model without a reference
    t.apply([("m", "eu")] * 20, np.full(20, 6.0), [None] * 20, {"m": (np.arange(20), x[20:])})
    t.apply([("other", "eu")], np.array([6.0]), [None], {})
    assert t.due(60.0) and not t.due(59.0)
    t.close_through("m", 0)
    assert t.latest["m"].decisions.count.tolist() == [40, 40]
    assert list(t.history["m"]) == [60.0]
    for w in range(1, 10):  # past HISTORY judged windows, window 0's sums are dropped
        t.apply([("m", "eu")], np.array([w * 60.0 + 1]), [None], {"m": (np.arange(1), x[:1])})
        t.close_through("m", w)
    t.apply([("m", "eu")], np.array([7.0]), [None], {"m": (np.arange(1), x[:1])})
    assert t.skipped == {"no_reference": 1, "late": 1}
    assert len(t.history["m"]) == 8 and min(t.history["m"]) == 180.0
    assert [bool(c.points) for c in t.history["m"].values()] == [False] * 6 + [True] * 2


def test_attributions_only_and_embeddings_only_references() -> None:
    rng = np.random.default_rng(8)
    shap = [{"a": float(v), "b": 0.3} for v in rng.random(300)]
    attr_only = build_model_vectors(VectorSettings(), [("eu",)] * 300, [None] * 300, None, (), shap)
    assert attr_only.projection is None and attr_only.features == ("a", "b")
    t = VectorTracker(VectorSettings(min_samples=10), {"m": attr_only}, 60.0)
    t.apply([("m", "eu")] * 50, np.full(50, 1.0), [None] * 50, {}, [{"a": 2.0, "b": 0.3}] * 50)
    t.close_before(60.0)
    d = t.latest["m"].decisions
    assert d.psi.shape == (2, 0) and np.isnan(d.distance).all()
    assert d.flags["attribution_shift"].all() and not d.flags["embedding_psi"].any()
    x = rng.normal(size=(300, 6))
    emb_only = build_model_vectors(
        VectorSettings(components=2), [("eu",)] * 300, ["a"] * 300, x, range(300), None
    )
    t = VectorTracker(VectorSettings(components=2, min_samples=10), {"m": emb_only}, 60.0)
    live = rng.normal(size=(30, 6)).astype(np.float32)
    t.apply(
        [("m", "eu")] * 30,
        np.full(30, 1.0),
        [None] * 30,
        {"m": (np.arange(30), live)},
        [{"a": 1.0}] * 30,
    )  # attributions without tracked features: ignored
    t.close_before(60.0)
    d = t.latest["m"].decisions
    assert [k[1] for k in d.keys] == ["__all__", "__all__"]  # no class: the __all__ groups
    assert d.attr_mean.shape == (2, 0) and not any(f.any() for f in d.flags.values())


def test_a_small_group_is_shrunk_toward_its_parent() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(430, 6))
    x[400:] += 2.0  # the small cell sits apart
    cells = [("big",)] * 400 + [("small",)] * 30
    shap = [{"a": 1.0, "b": 0.5}] * 400 + [{"a": 0.2, "b": 0.5}] * 30
    s = VectorSettings(components=3, min_rows=50, prior_strength=20.0)
    mv = build_model_vectors(s, cells, [None] * 430, x, range(430), shap)
    assert mv.projection is not None
    z = mv.projection.project(x)
    parent = mv.groups[(("__all__",), "__all__")]
    small = mv.groups[(("small",), "__all__")]
    assert small.rows == 50 and small.attr_rows == 50  # 30 + 20
    expected_mean = (30 * z[400:].mean(axis=0) + 20 * parent.mean) / 50
    np.testing.assert_allclose(small.mean, expected_mean)
    np.testing.assert_allclose(small.cov, parent.cov)
    own = np.stack([np.bincount(b, minlength=10) for b in bin_components(z[400:], mv.edges).T])
    shares = parent.bins / parent.bins.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(small.bins, own + 20 * shares)
    np.testing.assert_allclose(
        small.attr_mean, (30 * np.array([0.2, 0.5]) + 20 * parent.attr_mean) / 50
    )
    assert mv.groups[(("big",), "__all__")].rows == 400  # enough rows: its own
    again = ModelVectors.from_dict(mv.to_dict())
    assert again.prior == 20.0 and again.reference_of((("new",), "__all__")).rows == 20


def test_boolean_predictions_name_the_same_classes_in_the_baseline_and_the_monitor() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 4))
    mv = build_model_vectors(
        VectorSettings(components=2, min_rows=10),
        [("eu",)] * 200,
        [True, False] * 100,
        x,
        range(200),
        None,
    )
    assert mv.classes == ("false", "true")
    t = VectorTracker(VectorSettings(components=2, min_samples=5), {"m": mv}, 60.0)
    live = rng.normal(size=(20, 4)).astype(np.float32)
    t.apply([("m", "eu")] * 20, np.full(20, 1.0), [True] * 20, {"m": (np.arange(20), live)})
    t.close_before(60.0)
    assert (("eu",), "true") in t.latest["m"].decisions.keys
    assert not any(k[1] == "__other__" for k in t.latest["m"].decisions.keys)
