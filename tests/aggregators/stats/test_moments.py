"""Moments, group_moments, merge_moments and variance against numpy on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewatch.aggregators import Moments, group_moments, merge_moments, variance

SIZES = [2, 3, 10, 257, 5000]
# (offset, scale, rtol on the variance): the large offset with small noise catches the
# cancellation of the sum-of-squares formula, which would be off by orders of magnitude.
SCALES = [
    (0.0, 1.0, 1e-9),
    (0.0, 1e-6, 1e-9),
    (1e3, 1e3, 1e-9),
    (1e6, 1e-3, 1e-6),
    (1e6, 1.0, 1e-9),
]


def _data(seed: int, n: int, offset: float, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return offset + scale * rng.standard_normal(n)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(("offset", "scale", "rtol"), SCALES)
def test_update_matches_numpy(n: int, offset: float, scale: float, rtol: float) -> None:
    x = _data(n, n, offset, scale)
    m = Moments()
    for v in x:
        m.update(float(v))
    assert m.count == n
    assert m.mean == pytest.approx(np.mean(x), rel=1e-12, abs=1e-15)
    assert m.get() == pytest.approx(np.var(x, ddof=1), rel=rtol)


@pytest.mark.parametrize("n", [10, 257, 2000])
@pytest.mark.parametrize(("offset", "scale", "rtol"), SCALES)
def test_revert_matches_numpy(n: int, offset: float, scale: float, rtol: float) -> None:
    x = _data(n + 1, n, offset, scale)
    m = Moments()
    for v in x:
        m.update(float(v))
    k = n // 3
    for v in x[:k]:
        m.revert(float(v))
    rest = x[k:]
    assert m.count == len(rest)
    assert m.mean == pytest.approx(np.mean(rest), rel=1e-10, abs=1e-12 * scale)
    assert m.get() == pytest.approx(np.var(rest, ddof=1), rel=max(rtol, 1e-7))


def test_revert_to_empty_and_one() -> None:
    m = Moments()
    m.update(3.0)
    m.update(5.0)
    m.revert(3.0)
    assert (m.count, m.mean, m.get()) == (1, 5.0, None)
    m.revert(5.0)
    assert (m.count, m.mean, m.m2) == (0, 0.0, 0.0)
    m.revert(1.0)  # reverting past empty stays empty
    assert m.count == 0


def test_update_weight() -> None:
    a, b = Moments(), Moments()
    a.update(2.0, w=3)
    for _ in range(3):
        b.update(2.0)
    assert (a.count, a.mean, a.m2) == (b.count, b.mean, b.m2)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("offset", "scale", "rtol"), SCALES)
def test_iadd_matches_whole(seed: int, offset: float, scale: float, rtol: float) -> None:
    x = _data(seed, 1000, offset, scale)
    cut = np.random.default_rng(seed).integers(0, 1001)
    a, b = Moments(), Moments()
    for v in x[:cut]:
        a.update(float(v))
    for v in x[cut:]:
        b.update(float(v))
    a += b
    assert a.count == 1000
    assert a.mean == pytest.approx(np.mean(x), rel=1e-12)
    assert a.get() == pytest.approx(np.var(x, ddof=1), rel=rtol)


@pytest.mark.parametrize("ddof", [0, 1, 2])
def test_get_none_until_more_than_ddof(ddof: int) -> None:
    m = Moments(ddof=ddof)
    for i in range(ddof + 1):
        assert m.get() is None
        m.update(float(i))
    x = np.arange(ddof + 1, dtype=float)
    assert m.get() == pytest.approx(np.var(x, ddof=ddof))


def test_to_dict_from_dict_round_trip() -> None:
    m = Moments(ddof=0)
    for v in _data(1, 50, 3.0, 2.0):
        m.update(float(v))
    back = Moments.from_dict(m.to_dict())
    assert (back.count, back.mean, back.m2, back.ddof) == (m.count, m.mean, m.m2, m.ddof)
    assert Moments.from_dict(Moments().to_dict()).get() is None


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_groups", [1, 2, 7, 50])
@pytest.mark.parametrize(("offset", "scale", "rtol"), SCALES)
def test_group_moments_vs_numpy(
    seed: int, n_groups: int, offset: float, scale: float, rtol: float
) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    groups = rng.integers(0, n_groups, n)
    values = offset + scale * rng.standard_normal(n)
    c, m, s = group_moments(groups, values, n_groups + 1)  # last group always empty
    assert c.dtype == np.int64
    assert (c[-1], m[-1], s[-1]) == (0, 0.0, 0.0)
    var = variance(c, s)
    for g in range(n_groups):
        x = values[groups == g]
        assert c[g] == len(x)
        if len(x) == 0:
            assert (m[g], s[g]) == (0.0, 0.0)
            continue
        assert m[g] == pytest.approx(np.mean(x), rel=1e-12)
        if len(x) > 1:
            assert var[g] == pytest.approx(np.var(x, ddof=1), rel=rtol, abs=1e-300)
        else:
            assert math.isnan(var[g])


@settings(max_examples=75, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=0, max_size=60
    ),
    data=st.data(),
)
def test_merge_of_random_split_equals_whole(values: list[float], data: st.DataObject) -> None:
    n_groups = 3
    x = np.array(values, dtype=np.float64)
    groups = np.array(
        data.draw(st.lists(st.integers(0, n_groups - 1), min_size=len(x), max_size=len(x))),
        dtype=np.int64,
    )
    side = np.array(
        data.draw(st.lists(st.booleans(), min_size=len(x), max_size=len(x))), dtype=bool
    )
    whole = group_moments(groups, x, n_groups)
    a = group_moments(groups[side], x[side], n_groups)
    b = group_moments(groups[~side], x[~side], n_groups)
    c, m, s = merge_moments(*a, *b)
    np.testing.assert_array_equal(c, whole[0])
    span = float(np.max(np.abs(x))) if len(x) else 0.0
    np.testing.assert_allclose(m, whole[1], rtol=1e-9, atol=1e-9 * span + 1e-12)
    np.testing.assert_allclose(s, whole[2], rtol=1e-7, atol=1e-9 * span * span + 1e-9)
    # Merging with an empty set is the identity, from either side.
    empty = group_moments(np.zeros(0, dtype=np.int64), np.zeros(0), n_groups)
    for got in (merge_moments(*whole, *empty), merge_moments(*empty, *whole)):
        np.testing.assert_array_equal(got[0], whole[0])
        np.testing.assert_allclose(got[1], whole[1], rtol=1e-12, atol=1e-12 * span)
        np.testing.assert_allclose(got[2], whole[2], rtol=1e-12)


def test_merge_moments_empty_is_zero_not_nan() -> None:
    z = np.zeros(2, dtype=np.int64)
    c, m, s = merge_moments(z, np.zeros(2), np.zeros(2), z, np.zeros(2), np.zeros(2))
    assert c.tolist() == [0, 0] and m.tolist() == [0.0, 0.0] and s.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("ddof", [0, 1, 2])
def test_variance_nan_rules(ddof: int) -> None:
    count = np.array([0, 1, 2, 3, 10], dtype=np.int64)
    m2 = np.array([0.0, 0.0, 2.0, 4.0, 9.0])
    out = variance(count, m2, ddof=ddof)
    for c, s, v in zip(count, m2, out, strict=True):
        if c <= ddof:
            assert math.isnan(v)
        else:
            assert v == pytest.approx(s / (c - ddof))


def test_variance_empty() -> None:
    assert variance(np.zeros(0, dtype=np.int64), np.zeros(0)).shape == (0,)
