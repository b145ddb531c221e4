"""Confidence and margin drift decisions: the shared tests, one BH family over both signals."""

from __future__ import annotations

import numpy as np
from scipy import stats

from tilewatch.aggregators.stats.class_drift import class_drift_decisions
from tilewatch.aggregators.stats.homogeneity import homogeneity_pvalue
from tilewatch.aggregators.stats.psi_bias import psi_effect


def test_decisions_equal_the_tests_and_scipy_bh() -> None:
    rng = np.random.default_rng(11)
    cells, bins = 30, 10
    shares = rng.dirichlet(np.full(bins, 3.0))
    ref = {
        name: rng.multinomial(2000, shares, cells).astype(float) for name in ("mc_top", "mc_margin")
    }
    win = {name: rng.multinomial(200, shares, cells) for name in ("mc_top", "mc_margin")}
    shifted = np.full(bins, 0.02)
    shifted[:2] = (0.5, 0.34)  # margins pile up near 0
    win["mc_margin"][:4] = rng.multinomial(200, shifted, 4)  # four cells' margins move
    win["mc_top"][5] = 0  # no events: not tested
    d = class_drift_decisions(win, ref, min_samples=30, fdr_rate=0.01, psi_alert=0.25)
    family = []
    for signal, name in (("confidence", "mc_top"), ("margin", "mc_margin")):
        tested = win[name].sum(axis=1) >= 30
        p = np.full(cells, np.nan)
        p[tested] = homogeneity_pvalue(ref[name][tested], win[name][tested])
        np.testing.assert_array_equal(d.pvalue[signal], p)
        e = np.full(cells, np.nan)
        e[tested] = psi_effect(ref[name][tested], win[name][tested])
        np.testing.assert_array_equal(d.effect[signal], e)
        family.append(p)
    stacked = np.concatenate(family)
    ok = ~np.isnan(stacked)
    rejected = np.zeros(len(stacked), dtype=bool)
    rejected[ok] = stats.false_discovery_control(stacked[ok], method="bh") <= 0.01
    for j, signal in enumerate(("confidence", "margin")):
        want = rejected[j * cells : (j + 1) * cells] & (np.nan_to_num(d.effect[signal]) > 0.25)
        assert d.flag[signal].tolist() == want.tolist()
    assert np.flatnonzero(d.flag["margin"]).tolist() == [0, 1, 2, 3]
    assert not d.flag["confidence"].any()


def test_empty_grid_and_empty_reference() -> None:
    empty = {
        "mc_top": np.zeros((0, 10), dtype=np.int64),
        "mc_margin": np.zeros((0, 10), dtype=np.int64),
    }
    d = class_drift_decisions(empty, {k: v.astype(float) for k, v in empty.items()}, 30, 0.01, 0.25)
    assert d.flag["margin"].shape == (0,)
    win = {k: np.full((2, 10), 10, dtype=np.int64) for k in ("mc_top", "mc_margin")}
    d = class_drift_decisions(win, {k: np.zeros((2, 10)) for k in win}, 30, 0.01, 0.25)
    assert np.isnan(d.pvalue["confidence"]).all() and not d.flag["margin"].any()
