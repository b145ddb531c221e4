"""CellRegistry: dense indices, roll-ups, the max_cells bound, label capping, reserved values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tilewatch.aggregators import ALL, OTHER, CellRegistry, CellSettings

DIMS = {0: (), 1: ("segment",), 2: ("segment", "region"), 3: ("segment", "region", "tier")}


def _reg(ndims: int = 2, **kw: object) -> CellRegistry:
    return CellRegistry(CellSettings(dimensions=DIMS[ndims], **kw))  # type: ignore[arg-type]


def test_indices_are_dense_and_stable() -> None:
    reg = _reg(1)
    first = reg.index_many([("m", "a"), ("m", "b"), ("m", "a"), ("n", "a")]).tolist()
    assert first[0] == first[2]
    assert len(set(first)) == 3
    assert sorted(range(len(reg))) == list(range(len(reg.keys)))
    for i, key in enumerate(reg.keys):
        assert reg.lookup(key) == i
    assert reg.index_many([("n", "a"), ("m", "b")]).tolist() == [first[3], first[1]]
    assert reg.lookup(("zz", "a")) is None
    assert reg.index_many([]).tolist() == []


@pytest.mark.parametrize("ndims", [0, 1, 2, 3])
def test_rollup_variants(ndims: int) -> None:
    reg = _reg(ndims)
    leaves = [
        (f"m{j}" if ndims == 0 else "m", *(f"v{d}{j}" for d in range(ndims))) for j in range(3)
    ]
    idx = reg.index_many(leaves)
    assert reg.rollups.shape == (len(reg), 2**ndims)
    for key, i in zip(leaves, idx.tolist(), strict=True):
        variants = reg.rollups[i].tolist()
        assert variants[0] == i
        assert len(set(variants)) == 2**ndims
        expected = {
            (key[0], *(ALL if mask[d] else key[1 + d] for d in range(ndims)))
            for mask in itertools.product([False, True], repeat=ndims)
        }
        assert {reg.keys[v] for v in variants} == expected
    # 3 leaves with pairwise distinct values: every roll-up with at least one ALL but not
    # all is per leaf, the full roll-up is shared.
    expected_cells = 3 * (2**ndims - 1) + 1 if ndims else 3
    assert len(reg) == expected_cells
    mask = reg.is_leaf
    assert mask.sum() == 3
    for i, key in enumerate(reg.keys):
        assert mask[i] == (ALL not in key[1:])
        if not mask[i]:  # a roll-up cell rolls up to itself only
            assert set(reg.rollups[i].tolist()) == {i}


def test_rollups_shared_between_leaves() -> None:
    reg = _reg(2)
    a, b = reg.index_many([("m", "a", "x"), ("m", "b", "x")]).tolist()
    shared = set(reg.rollups[a].tolist()) & set(reg.rollups[b].tolist())
    assert {reg.keys[i] for i in shared} == {("m", ALL, "x"), ("m", ALL, ALL)}


def test_model_ids() -> None:
    reg = _reg(1)
    reg.index_many([("m1", "a"), ("m2", "a"), ("m1", "b")])
    assert reg.model_names == ["m1", "m2"]
    ids = reg.model_ids
    assert ids.dtype == np.int64 and len(ids) == len(reg)
    for i, key in enumerate(reg.keys):
        assert reg.model_names[ids[i]] == key[0]


def test_wrong_key_length_raises() -> None:
    reg = _reg(2)
    with pytest.raises(ValueError):
        reg.index_many([("m", "a")])
    with pytest.raises(ValueError):
        reg.ensure(("m", "a", "b", "c"))


@pytest.mark.parametrize("ndims", [1, 2, 3])
def test_max_cells_overflow(ndims: int) -> None:
    reg = _reg(ndims, max_cells=2)
    pad = ("x",) * (ndims - 1)
    kept = reg.index_many([("m", "a", *pad), ("n", "a", *pad)]).tolist()
    assert reg.leaf_count == 2
    over = reg.index_many([("m", "b", *pad), ("m", "c", *pad), ("new", "a", *pad)]).tolist()
    assert reg.keys[over[0]] == ("m", *(OTHER,) * ndims)
    assert over[0] == over[1]
    assert reg.keys[over[2]] == (OTHER, *(OTHER,) * ndims)
    assert reg.overflow == {"m": 2, OTHER: 1}
    # Known cells still map to themselves, and are not counted as overflow.
    assert reg.index_many([("m", "a", *pad), ("n", "a", *pad)]).tolist() == kept
    assert reg.overflow == {"m": 2, OTHER: 1}
    # The overflow cells are leaves with the usual roll-ups.
    assert reg.is_leaf[over[0]]
    assert {reg.keys[i] for i in reg.rollups[over[0]].tolist()} >= {("m", *(ALL,) * ndims)}
    assert "new" not in reg.model_names
    n = len(reg)
    reg.index_many([("n", f"v{i}", *pad) for i in range(50)])
    assert reg.overflow["n"] == 50
    assert len(reg) == n + 2**ndims - 1  # one more overflow cell plus its own roll-ups


def test_label_max_length_cuts() -> None:
    reg = _reg(1, label_max_length=8)
    a, b = reg.index_many([("model-long-name", "abcdefgh-1"), ("model-long-name", "abcdefgh-2")])
    assert a == b
    assert reg.keys[int(a)] == ("model-lo", "abcdefgh")
    assert reg.model_names == ["model-lo"]
    assert reg.index_many([("model-lo", "abcdefgh")]).tolist() == [a]


def test_flood_of_long_values_does_not_grow_registry() -> None:
    reg = _reg(2, max_cells=20, label_max_length=16)
    rng = np.random.default_rng(0)
    reg.index_many([("m", f"s{i}", "r") for i in range(20)])
    size = len(reg)
    batch = 10_000
    for start in range(0, 100_000, batch):
        keys = [
            ("m", f"{'x' * 20}-{start + i}-{rng.integers(1 << 30)}", "r" * 40) for i in range(batch)
        ]
        idx = reg.index_many(keys)
        assert len(set(idx.tolist())) == 1  # all the same cut value
    # The long values cut to one value, which is a cell past max_cells: one overflow cell.
    assert len(reg) <= size + 4
    assert int(reg._direct.sum()) <= 20 and len(reg._index) == len(reg)
    assert len(reg._values) <= 2 + 20 + 1  # the strings of the cells' keys only
    assert reg.overflow == {"m": 100_000}


def test_flood_of_distinct_values_past_max_cells_bounded() -> None:
    reg = _reg(1, max_cells=10)
    for start in range(0, 100_000, 20_000):
        reg.index_many([("m", f"value-{start + i}") for i in range(20_000)])
    assert reg.leaf_count == 11  # 10 cells and the model's overflow cell
    assert len(reg) == 10 + 1 + 1  # leaves, the overflow cell, and the shared roll-up
    assert reg.overflow == {"m": 100_000 - 10}


@pytest.mark.parametrize("reserved", [ALL, OTHER])
@pytest.mark.parametrize("ndims", [1, 2])
def test_reserved_values_get_suffix(reserved: str, ndims: int) -> None:
    reg = _reg(ndims)
    pad = ("x",) * (ndims - 1)
    i = int(reg.index_many([("m", reserved, *pad)])[0])
    assert reg.keys[i] == ("m", reserved + "_", *pad)
    assert reg.is_leaf[i]
    j = int(reg.index_many([(reserved, "a", *pad)])[0])
    assert reg.keys[j][0] == reserved + "_"
    # A real roll-up cell of another leaf is never reached by a reserved value.
    k = int(reg.index_many([("m", "a", *pad)])[0])
    rollups = set(reg.rollups[k].tolist()) - {k}
    again = reg.index_many([("m", reserved, *pad), ("m", ALL, *(ALL,) * (ndims - 1))])
    assert not rollups & set(again.tolist())
    assert all(reg.is_leaf[again])


def test_keys_share_their_strings() -> None:
    """Each leaf key keeps the registry's one copy of each value, not the strings of the
    event that created it (a decoder makes new ones for every event)."""
    reg = _reg(2)
    fresh = [("".join(["m"]), "".join(["s", "1"]), "".join(["r", str(i)])) for i in range(3)]
    idx = reg.index_many(fresh).tolist()
    assert fresh[0][1] is not fresh[1][1]
    keys = [reg.keys[i] for i in idx]
    assert keys[0][1] is keys[1][1] is keys[2][1] and keys[0][0] is keys[2][0]
    assert reg.index_many([("m", "s1", "r2")]).tolist() == [idx[2]]


def test_reserved_value_cut_then_suffixed() -> None:
    reg = _reg(1, label_max_length=7)
    i = int(reg.index_many([("m", "__all__and_more")])[0])
    assert reg.keys[i] == ("m", "__all___")


@pytest.mark.parametrize("ndims", [1, 2])
def test_reserved_values_never_reach_overflow_cell(ndims: int) -> None:
    reg = _reg(ndims, max_cells=1)
    pad = ("x",) * (ndims - 1)
    reg.index_many([("m", "a", *pad)])
    over = int(reg.index_many([("m", "b", *pad)])[0])
    assert reg.keys[over] == ("m", *(OTHER,) * ndims)
    raw = ("m", *(OTHER,) * ndims)
    got = int(reg.index_many([raw])[0])
    # Canonical key ("m", "__other___", ...) is a new cell past max_cells: overflow, counted.
    assert reg.overflow["m"] == 2
    assert got == over  # (same cell, but via the counted overflow path)
    assert reg.index_many([(OTHER, *(OTHER,) * ndims)]).tolist() != [over]


def test_ensure_leaf_rollup_overflow() -> None:
    reg = _reg(2, max_cells=4)
    # A roll-up key on its own, before any of its leaves.
    r = reg.ensure(("m", ALL, "x"))
    assert reg.keys[r] == ("m", ALL, "x") and not reg.is_leaf[r]
    assert reg.ensure(("m", ALL, "x")) == r
    # Its leaf later finds it.
    leaf = reg.ensure(("m", "a", "x"))
    assert reg.is_leaf[leaf]
    assert r in reg.rollups[leaf].tolist()
    assert reg.ensure(("m", "a", "x")) == leaf
    assert reg.index_many([("m", "a", "x")]).tolist() == [leaf]
    # An overflow key is taken as it is (no suffix, not counted as overflow).
    o = reg.ensure(("m", OTHER, OTHER))
    assert reg.keys[o] == ("m", OTHER, OTHER) and reg.is_leaf[o]
    assert reg.overflow == {}
    assert reg.ensure(("m", OTHER, OTHER)) == o
    # Overflow for a model never seen.
    oo = reg.ensure((OTHER, OTHER, OTHER))
    assert reg.keys[oo] == (OTHER, OTHER, OTHER)
    # A leaf past max_cells goes to its model's overflow cell.
    reg.ensure(("m", "b", "y"))
    assert reg.leaf_count == 4  # overflow cells created by ensure count as leaves too
    assert reg.ensure(("m", "c", "z")) == o
    assert reg.overflow == {"m": 1}


def test_ensure_zero_dimensions() -> None:
    reg = _reg(0)
    i = reg.ensure(("m",))
    assert reg.keys[i] == ("m",) and reg.rollups[i].tolist() == [i]
    assert reg.index_many([("m",)]).tolist() == [i]
