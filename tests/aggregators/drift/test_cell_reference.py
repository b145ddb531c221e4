"""Per-cell references: counted from the holdout, rolled up, shrunk toward the right parent."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading

import numpy as np
import pytest

from tilewatch.aggregators.cells.registry import CellKey, CellRegistry
from tilewatch.aggregators.cells.settings import ALL, CellSettings
from tilewatch.aggregators.drift.cell_counts import CellCounts
from tilewatch.aggregators.drift.cell_reference import CellReferences, count_cells
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelColumns,
    build_model_baseline,
)

RANGE = (0.0, 1.0)
DIMS = ("segment", "region")
ALPHA = 20.0


def _columns(rng: np.random.Generator) -> ModelColumns:
    """Two segments x three regions; the score depends on the segment, ``income`` on the region,
    and cell (b, z) has only 5 rows."""
    cols = ModelColumns()
    sizes = {("a", "x"): 800, ("a", "y"): 600, ("a", "z"): 400, ("b", "x"): 700,
             ("b", "y"): 500, ("b", "z"): 5}  # fmt: skip
    for (seg, reg), n in sizes.items():
        loc = {"a": 0.25, "b": 0.65}[seg]
        income = {"x": 1.0, "y": 3.0, "z": 6.0}[reg]
        for _ in range(n):
            s = float(np.clip(rng.normal(loc, 0.08), 0, 1))
            cols.scores.append(s)
            cols.labels.append(int(rng.random() < s))
            cols.predictions.append(None)
            cols.features.append({"income": float(rng.normal(income, 0.5))})
            cols.cells.append((seg, reg))
    return cols


@pytest.fixture(scope="module")
def setup() -> tuple[Baseline, ModelColumns]:
    cols = _columns(np.random.default_rng(3))
    settings = BaselineSettings(score_bins=10, feature_bins=8)
    mb = build_model_baseline(cols, settings, *RANGE)
    counts = count_cells("m", mb, RANGE, DIMS, cols.cells, cols.scores, cols.predictions,
                         cols.features, cols.labels)  # fmt: skip
    base = Baseline("t", [], RANGE, settings, {"m": dataclasses.replace(mb, cells=counts)})
    return base, cols


def _refs(base: Baseline, **cells: object) -> tuple[CellReferences, CellRegistry, DriftProfile]:
    settings = CellSettings(dimensions=DIMS, **cells)  # type: ignore[arg-type]
    profile = DriftProfile(DriftSettings(features=("income",)), RANGE, base)
    return CellReferences(profile, settings, ALPHA), CellRegistry(settings), profile


def _own(base: Baseline, name: str, key: tuple[str, str]) -> np.ndarray:
    c = base.models["m"].cells
    assert c is not None
    rows = [i for i, k in enumerate(c.keys) if k == key]
    return c.hists[name][rows].sum(axis=0).astype(float)


def test_counts_match_the_holdout_per_cell(setup: tuple[Baseline, ModelColumns]) -> None:
    base, cols = setup
    c = base.models["m"].cells
    assert c is not None and c.dimensions == DIMS
    assert len(c.keys) == 6
    i = c.keys.index(("b", "z"))
    assert c.rows[i] == 5 and c.rows.sum() == len(cols.scores)
    rows = [j for j, k in enumerate(cols.cells) if k == ("a", "y")]
    a_y = c.keys.index(("a", "y"))
    assert c.score_sum[a_y] == pytest.approx(sum(cols.scores[j] for j in rows))
    assert c.labeled[a_y] == len(rows)
    # The errors at the model's threshold, counted directly.
    t = base.models["m"].threshold
    assert t is not None
    wrong = sum(int((cols.scores[j] >= t.value) != cols.labels[j]) for j in rows)
    assert c.errors[a_y] == wrong
    # Plain data round trip.
    again = CellCounts.from_dict(json.loads(json.dumps(c.to_dict())), "cells")
    assert again.keys == c.keys and all((again.hists[k] == v).all() for k, v in c.hists.items())


def test_a_big_leaf_keeps_its_own_shares_and_borrows_alpha(
    setup: tuple[Baseline, ModelColumns],
) -> None:
    base, _ = setup
    refs, reg, _ = _refs(base)
    leaf = int(reg.index_many([("m", "a", "x")])[0])
    table = refs.table(reg.keys)
    own = _own(base, "score", ("a", "x"))
    got = table.hists["score"][leaf][: len(own)]
    # Pseudo-counts: own counts plus alpha times the parent's shares; the sum is n + alpha.
    assert got.sum() == pytest.approx(own.sum() + ALPHA)
    assert np.abs(got - own).max() <= ALPHA + 1e-9
    # Roll-ups exist in the registry after the leaf: their reference is the sum of leaves.
    whole = reg.lookup(("m", "a", ALL))
    assert whole is not None
    table = refs.table(reg.keys)
    a_rows = sum(_own(base, "score", ("a", r)) for r in "xyz")
    assert table.hists["score"][whole].sum() == pytest.approx(a_rows.sum() + ALPHA)


def test_each_signal_borrows_from_the_parent_that_keeps_what_matters(
    setup: tuple[Baseline, ModelColumns],
) -> None:
    """(b, z) has 5 rows: the score (set by the segment) borrows from (b, *), the income (set
    by the region) from (*, z)."""
    base, _ = setup
    refs, reg, _ = _refs(base)
    leaf = int(reg.index_many([("m", "b", "z")])[0])
    seg_roll, reg_roll = reg.lookup(("m", "b", ALL)), reg.lookup(("m", ALL, "z"))
    assert seg_roll is not None and reg_roll is not None
    t = refs.table(reg.keys)
    model = base.models["m"].cells
    assert model is not None

    def shares(h: np.ndarray) -> np.ndarray:
        return h / h.sum()

    score = shares(t.hists["score"][leaf])
    assert (
        np.abs(score - shares(t.hists["score"][seg_roll])).sum()
        < np.abs(score - shares(t.hists["score"][reg_roll])).sum()
    )
    income = shares(t.hists["f:income"][leaf])
    assert (
        np.abs(income - shares(t.hists["f:income"][reg_roll])).sum()
        < np.abs(income - shares(t.hists["f:income"][seg_roll])).sum()
    )
    # Exact form: own counts + alpha * the chosen parent's shrunk shares.
    own = _own(base, "f:income", ("b", "z"))
    parent = shares(t.hists["f:income"][reg_roll])
    np.testing.assert_allclose(t.hists["f:income"][leaf], own + ALPHA * parent, rtol=1e-9)


def test_a_cell_absent_from_the_reference_takes_its_parents_shares_at_size_alpha(
    setup: tuple[Baseline, ModelColumns],
) -> None:
    base, _ = setup
    refs, reg, _ = _refs(base)
    new = int(reg.index_many([("m", "c", "y")])[0])  # segment c was never in the holdout
    region = reg.lookup(("m", ALL, "y"))
    assert region is not None
    t = refs.table(reg.keys)
    assert t.hists["f:income"][new].sum() == pytest.approx(ALPHA)
    np.testing.assert_allclose(
        t.hists["f:income"][new] / ALPHA,
        t.hists["f:income"][region] / t.hists["f:income"][region].sum(),
    )
    rate, labeled = refs.errors(reg.keys)
    assert labeled[new] == ALPHA and np.isfinite(rate[new])


def test_unknown_models_have_no_reference_and_old_baselines_fall_back_to_the_model(
    setup: tuple[Baseline, ModelColumns],
) -> None:
    base, _ = setup
    old = dataclasses.replace(base, models={"m": dataclasses.replace(base.models["m"], cells=None)})
    refs, reg, profile = _refs(old)
    i = int(reg.index_many([("m", "a", "x")])[0])
    j = int(reg.index_many([("other", "a", "x")])[0])
    t = refs.table(reg.keys)
    spec = profile.spec("m")
    assert spec.score_ref is not None
    rows = old.models["m"].rows
    np.testing.assert_allclose(t.hists["score"][i][: len(spec.score_ref)], spec.score_ref * rows)
    assert t.hists["score"][j].sum() == 0 and np.isnan(t.mean[j])
    assert not refs.has_cells("m")


def test_keys_are_matched_as_the_registry_spells_them(
    setup: tuple[Baseline, ModelColumns],
) -> None:
    """Values are cut to label_max_length and reserved labels get a suffix, on both sides."""
    base, cols = setup
    cells = [(f"{s}-long-segment-name", r) for s, r in cols.cells]
    mb = base.models["m"]
    counts = count_cells("m", mb, RANGE, DIMS, cells, cols.scores, cols.predictions,
                         cols.features, cols.labels)  # fmt: skip
    long_base = dataclasses.replace(base, models={"m": dataclasses.replace(mb, cells=counts)})
    refs, reg, _ = _refs(long_base, label_max_length=10)
    i = int(reg.index_many([("m", "a-long-segment-name", "x")])[0])
    assert reg.keys[i] == ("m", "a-long-seg", "x")
    t = refs.table(reg.keys)
    assert t.hists["score"][i].sum() == pytest.approx(800 + ALPHA)


def test_the_table_grows_with_the_registry(setup: tuple[Baseline, ModelColumns]) -> None:
    base, _ = setup
    refs, reg, _ = _refs(base)
    reg.index_many([("m", "a", "x")])
    first = refs.table(reg.keys)
    n = len(reg.keys)
    reg.index_many([("m", "b", "y")])
    second = refs.table(reg.keys)
    assert len(second.mean) == len(reg.keys) > n
    np.testing.assert_array_equal(second.hists["score"][:n], first.hists["score"])


def _sizes_read_at_once(refs: CellReferences, keys: list[CellKey], threads: int) -> list[int]:
    """Row counts of the tables ``threads`` threads read at the same moment."""
    barrier = threading.Barrier(threads)
    sizes: list[int] = []

    def read() -> None:
        barrier.wait()
        t = refs.table(keys)
        sizes.extend({len(t.mean), *(len(h) for h in t.hists.values())})

    workers = [threading.Thread(target=read) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sizes


def test_threads_growing_the_table_at_once_each_get_one_row_per_key(
    setup: tuple[Baseline, ModelColumns],
) -> None:
    """The consumer thread and scrapes build snapshots at once: the cache must not grow twice
    (it once returned 2n rows for n keys and the run died on a shape mismatch)."""
    base, _ = setup
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _round in range(20):
            refs, reg, _ = _refs(base)
            reg.index_many([("m", s, r) for s in "ab" for r in "xyz"])
            keys = list(reg.keys)
            assert _sizes_read_at_once(refs, keys, 8) == [len(keys)] * 8
    finally:
        sys.setswitchinterval(interval)
