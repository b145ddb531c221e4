"""numeric_edges, bin_numeric, finite_mask, CategoryIndex and bin_counts on seeded random data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tilewatch.aggregators.stats.binning import (
    CategoryIndex,
    bin_counts,
    bin_numeric,
    finite_mask,
    numeric_edges,
)

SEEDS = [0, 1, 2, 3]


def _bin_loop(value: float, edges: np.ndarray) -> int:
    """Bin ``i`` holds ``edges[i - 1] <= v < edges[i]``, outer bins open-ended."""
    for i, e in enumerate(edges):
        if value < e:
            return i
    return len(edges)


def _check_edge_invariants(reference: np.ndarray, edges: np.ndarray, n_bins: int) -> None:
    assert edges.dtype == np.float64
    assert edges.ndim == 1
    assert np.all(np.diff(edges) > 0), "edges must be strictly increasing"
    assert len(edges) + 1 <= max(n_bins, 3 if np.ptp(reference) == 0 else 1)
    counts = np.bincount(bin_numeric(reference, edges), minlength=len(edges) + 1)
    if np.ptp(reference) > 0:
        assert np.all(counts > 0), f"a bin is empty in the reference: {counts}"


# --- finite_mask and bin_numeric -----------------------------------------------------------


def test_finite_mask() -> None:
    x = np.array([0.0, np.nan, np.inf, -np.inf, -1.5, 1e308])
    assert finite_mask(x).tolist() == [True, False, False, False, True, True]
    assert finite_mask([]).shape == (0,)


@pytest.mark.parametrize("seed", SEEDS)
def test_bin_numeric_matches_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    edges = np.sort(rng.choice(np.linspace(-3, 3, 61), size=7, replace=False))
    # Random values plus every edge exactly plus values far outside.
    values = np.concatenate([rng.normal(size=500), edges, [-1e9, 1e9]])
    got = bin_numeric(values, edges)
    assert got.dtype == np.int64
    assert got.tolist() == [_bin_loop(float(v), edges) for v in values]
    # A value equal to an edge opens the bin that starts there.
    assert bin_numeric(edges, edges).tolist() == list(range(1, len(edges) + 1))


def test_bin_numeric_shapes_and_no_edges() -> None:
    assert bin_numeric(np.ones((2, 3)), [0.5]).tolist() == [[1, 1, 1], [1, 1, 1]]
    assert bin_numeric([-1.0, 5.0], np.empty(0)).tolist() == [0, 0]
    assert bin_numeric([], [1.0]).shape == (0,)


# --- numeric_edges ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 7, 10, 99, 1000])
@pytest.mark.parametrize("n_bins", [1, 2, 4, 10, 20])
def test_numeric_edges_continuous(seed: int, n: int, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.lognormal(size=n)
    if n == 1:
        # One value is a constant reference: below / exactly / above, unless one bin is asked.
        edges = numeric_edges(ref, n_bins)
        assert len(edges) == (0 if n_bins == 1 else 2)
        return
    edges = numeric_edges(ref, n_bins)
    _check_edge_invariants(ref, edges, n_bins)
    if n >= n_bins:
        # Without ties, the bin below the j-th edge holds exactly floor(j * n / n_bins) values.
        assert len(edges) == n_bins - 1
        below = np.array([np.sum(ref < e) for e in edges])
        assert below.tolist() == [(j * n) // n_bins for j in range(1, n_bins)]
    else:
        # Fewer values than bins: every value is its own bin.
        assert len(edges) == n - 1
        assert np.array_equal(edges, np.sort(ref)[1:])


def test_numeric_edges_uniform_grid() -> None:
    assert numeric_edges(np.arange(100.0), 4).tolist() == [25.0, 50.0, 75.0]
    assert numeric_edges(np.arange(100.0)[::-1], 4).tolist() == [25.0, 50.0, 75.0]


@pytest.mark.parametrize("c", [0.0, -3.5, 1e9])
def test_numeric_edges_constant(c: float) -> None:
    edges = numeric_edges(np.full(50, c), 10)
    assert edges.tolist() == [c, np.nextafter(c, np.inf)]
    probe = np.array([c - 1.0, c, np.nextafter(c, np.inf), c + 1.0])
    assert bin_numeric(probe, edges).tolist() == [0, 1, 2, 2]
    assert numeric_edges(np.full(5, c), 1).tolist() == []


@pytest.mark.parametrize("n_bins", [2, 3, 4, 10])
@pytest.mark.parametrize("weights", [(1, 1, 1), (1, 5, 1), (10, 1, 1), (1, 1, 10)])
def test_numeric_edges_three_distinct_values(n_bins: int, weights: tuple[int, int, int]) -> None:
    ref = np.repeat([-1.0, 0.5, 2.0], np.array(weights) * 30)
    edges = numeric_edges(ref, n_bins)
    _check_edge_invariants(ref, edges, n_bins)
    if n_bins >= 3:
        # Each distinct value in its own bin.
        assert edges.tolist() == [0.5, 2.0]
        assert bin_numeric([-1.0, 0.5, 2.0], edges).tolist() == [0, 1, 2]


def test_numeric_edges_heavy_tie_at_minimum() -> None:
    rng = np.random.default_rng(7)
    ref = np.concatenate([np.zeros(900), rng.uniform(1.0, 2.0, 100)])
    edges = numeric_edges(ref, 10)
    _check_edge_invariants(ref, edges, 10)
    # Zero is alone in bin 0: the first edge is the smallest non-zero reference value.
    assert edges[0] == ref[ref > 0].min()
    assert np.all(bin_numeric(ref[ref > 0], edges) > 0)


def test_numeric_edges_heavy_tie_in_middle() -> None:
    rng = np.random.default_rng(8)
    ref = np.concatenate([rng.uniform(0.0, 1.0, 600), np.full(400, 0.5)])
    edges = numeric_edges(ref, 10)
    _check_edge_invariants(ref, edges, 10)
    b = bin_numeric([0.5], edges)[0]
    in_bin = ref[bin_numeric(ref, edges) == b]
    assert np.all(in_bin == 0.5), "the tied value must have a bin of its own"


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("n_bins", [2, 5, 10])
def test_numeric_edges_random_ties(seed: int, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    support = np.sort(rng.normal(size=rng.integers(1, 15)))
    probs = rng.dirichlet(np.full(len(support), 0.3))
    ref = rng.choice(support, size=int(rng.integers(1, 400)), p=probs)
    edges = numeric_edges(ref, n_bins)
    _check_edge_invariants(ref, edges, n_bins)
    if np.ptp(ref) == 0:
        return
    # Every edge is a reference value; a value holding >= 2 / n_bins of the mass is alone.
    assert np.isin(edges, ref).all()
    bins = bin_numeric(ref, edges)
    values, counts = np.unique(ref, return_counts=True)
    for v, c in zip(values, counts, strict=True):
        if c * n_bins >= 2 * ref.size:
            mates = ref[bins == bin_numeric([v], edges)[0]]
            assert np.all(mates == v), (v, edges)


@pytest.mark.parametrize(
    ("reference", "n_bins"),
    [([], 10), ([1.0, math.nan], 10), ([1.0, math.inf], 10), ([1.0, 2.0], 0)],
)
def test_numeric_edges_rejects(reference: list[float], n_bins: int) -> None:
    with pytest.raises(ValueError):
        numeric_edges(np.array(reference), n_bins)


# --- CategoryIndex ---------------------------------------------------------------------------


def test_category_index_top_other_unseen() -> None:
    idx = CategoryIndex(["fr", "de", "es"], known_other=frozenset({"it", "nl"}))
    assert (idx.other, idx.unseen, idx.n_bins) == (3, 4, 5)
    got = idx.index(["es", "fr", "nl", "it", "pt", "", "de", "FR"])
    assert got.dtype == np.int64
    assert got.tolist() == [2, 0, 3, 3, 4, 4, 1, 4]
    assert [idx.get(c) for c in ["de", "it", "zz"]] == [1, 3, 4]


def test_category_index_without_known_other_has_no_unseen() -> None:
    idx = CategoryIndex(["a", "b"])
    assert idx.known_other is None
    assert idx.index(["a", "b", "c", "zz"]).tolist() == [0, 1, 2, 2]


def test_category_index_empty_known_other_means_all_unseen() -> None:
    idx = CategoryIndex(["a"], known_other=frozenset())
    assert idx.index(["a", "b"]).tolist() == [0, 2]


def test_category_index_no_top() -> None:
    idx = CategoryIndex([], known_other=frozenset({"x"}))
    assert idx.n_bins == 2
    assert idx.index(["x", "y"]).tolist() == [0, 1]
    assert idx.index([]).shape == (0,)


def test_category_index_from_reference() -> None:
    ref = ["b"] * 5 + ["a"] * 3 + ["c"] * 3 + ["d"]
    idx = CategoryIndex.from_reference(iter(ref), k=2)
    assert idx.top == ("b", "a")  # "a" beats "c" on the tie by name
    assert idx.known_other == frozenset({"c", "d"})
    assert idx.index(["c", "e"]).tolist() == [2, 3]
    everything = CategoryIndex.from_reference(ref, k=10)
    assert everything.top == ("b", "a", "c", "d")
    assert everything.known_other == frozenset()
    with pytest.raises(ValueError):
        CategoryIndex.from_reference(ref, k=-1)


@pytest.mark.parametrize("known", [None, frozenset(), frozenset({"x", "y"})])
def test_category_index_round_trip_plain_data(known: frozenset[str] | None) -> None:
    idx = CategoryIndex(["b", "a"], known_other=known)
    data = json.loads(json.dumps(idx.to_dict()))
    back = CategoryIndex.from_dict(data)
    assert back == idx
    assert hash(back) == hash(idx)
    assert back.index(["a", "x", "q"]).tolist() == idx.index(["a", "x", "q"]).tolist()
    assert "CategoryIndex(" in repr(idx)


def test_category_index_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        CategoryIndex(["a", "a"])
    with pytest.raises(ValueError, match="overlaps"):
        CategoryIndex(["a", "b"], known_other=frozenset({"b", "c"}))


# --- bin_counts ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n_cells", "n_bins", "n"), [(1, 1, 10), (5, 3, 100), (300, 12, 5000)])
def test_bin_counts_matches_loop(seed: int, n_cells: int, n_bins: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, n_cells, n)
    bins = rng.integers(0, n_bins, n)
    expected = np.zeros((n_cells, n_bins), dtype=np.int64)
    for c, b in zip(cells.tolist(), bins.tolist(), strict=True):
        expected[c, b] += 1
    got = bin_counts(cells, bins, n_cells, n_bins)
    assert got.dtype == np.int64
    assert got.shape == (n_cells, n_bins)
    assert np.array_equal(got, expected)
    # Tables add: two halves of a batch sum to the whole.
    half = n // 2
    parts = bin_counts(cells[:half], bins[:half], n_cells, n_bins) + bin_counts(
        cells[half:], bins[half:], n_cells, n_bins
    )
    assert np.array_equal(parts, expected)


def test_bin_counts_empty() -> None:
    got = bin_counts(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), 3, 4)
    assert got.shape == (3, 4)
    assert got.sum() == 0


@pytest.mark.parametrize(
    ("cells", "bins"),
    [([0, 3], [0, 0]), ([-1], [0]), ([0], [4]), ([0], [-1]), ([0, 1], [0])],
)
def test_bin_counts_rejects(cells: list[int], bins: list[int]) -> None:
    with pytest.raises(ValueError):
        bin_counts(cells, bins, n_cells=3, n_bins=4)


def test_pipeline_reference_bins_all_populated() -> None:
    """Edges from a reference, binned per cell: the reference fills every bin."""
    rng = np.random.default_rng(11)
    ref = rng.gamma(2.0, size=2000)
    edges = numeric_edges(ref, 10)
    cells = rng.integers(0, 4, ref.size)
    table = bin_counts(cells, bin_numeric(ref, edges), 4, len(edges) + 1)
    assert table.sum() == ref.size
    assert np.all(table.sum(axis=0) == 200)
