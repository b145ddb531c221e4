"""Tests of "no change" for binned drift signals, valid at every sample size.

A drift statistic of one cell's window is a decision only together with its sample sizes: the
PSI of ``n`` events over ``B`` bins is about ``(B - 1) / n`` by chance alone (20 bins, 130 events:
0.15; 20 events: 2.5 with the ``eps`` smoothing of empty bins), and the expected calibration
error of 150 calibrated events over 10 bins is 0.07 to 0.24. This module gives every binned
signal a p-value under "no change" at the window's and the reference's counts, and an effect
size with its chance part removed, so that a fixed threshold (``psi_alert``) keeps one meaning.
Everything is vectorized over rows (cells); Python loops run over bins or over the terms of a
tail sum, never over cells. Undefined results are NaN, never an exception.

The reference side of each row is either a count histogram (a cell's holdout rows, possibly
pseudo-counts after shrinkage toward a parent, so floats are accepted) with total ``n_r``, or
fixed shares (``reference_total=None``: an infinite reference, e.g. a legacy per-model baseline).
``reference_total="sum"`` (the default) takes ``n_r`` as the row sums of the reference counts;
a number or an array of numbers rescales the reference shares to that effective size.

This module holds the tests: :func:`homogeneity_pvalue` for a histogram and
:func:`proportion_pvalue` for a share (missing values, errors). The debiased effect size is
:mod:`tilewatch.aggregators.stats.psi_bias`, the calibration test
:mod:`tilewatch.aggregators.stats.calibration_error`. The numbers below come from
``tests/bench/calibration_study.py``.

:func:`homogeneity_pvalue`
    Two-sample test of homogeneity on the 2 x k table (window row, reference row) after
    **pooling adjacent bins** until every cell of the table has an expected count of at least
    ``min_expected`` under "no change". Bins are pooled left to right (they are ordered numeric
    bins, or categories with ``other``/``unseen`` last), a short tail joins the last group.

    - Infinite reference: pooling is decided from the reference shares and ``n_w`` only, so it
      cannot adapt to the window. Goodness of fit, ``df = groups - 1``.
    - Finite reference: pooling is decided from the table's **column margins** (reference plus
      window counts per bin) and ``min(n_w, n_r)``. Under "no change", given the margins,
      which of the pooled events are window events is a random draw (the permutation argument
      behind the conditional test), so a pooling that depends on the margins only keeps the
      null valid. Pooling from the reference counts alone does not: the reference is then
      selected for bins where it happened to be high, and the test over-rejects (a 0.001 bin
      with ``n_r = 2000``, ``n_w = 5000``: 35% rejections at alpha 0.05; Dirichlet(0.5) shares
      over 20 bins, ``n_r = 200``, ``n_w = 5000``: 9%).

    The statistic is Cressie and Read's power divergence with ``lambda_ = 2/3`` (their
    recommendation for small expected counts). Pearson's X^2 (``lambda_ = 1``) over-rejects in
    the far upper tail when one group is expected to hold about 5 events (Poisson skew): at
    alpha 0.001 and 1e-4, 0.0018 and 0.0004 for shares (0.001, 0.4995, 0.4995) and 5,000 events,
    0.0021 and 0.0004 for (0.005, 0.005, 0.01, 0.3, 0.68) and 1,000 events, where the power
    divergence with 2/3 gives 0.0014 and 0.0002, 0.0013 and 0.0002; elsewhere both are within
    simulation error of nominal. Rows with exactly two pooled groups (df = 1, the worst case:
    Pearson gives 0.0019 and 0.0007 for shares 0.001 / 0.999 and 5,000 events) use an exact
    test instead: the binomial test against the reference share (infinite reference) or
    Fisher's exact test (finite reference, counts rounded to integers), two-sided by doubling
    the smaller tail; conservative through discreteness, never anti-conservative.

    Null calibration (``calibration_study.py``, 240 configurations: ``n_w`` in 20, 50, 130,
    500, 5000; ``n_r`` in 200, 2000, 50000, inf; 2, 5, 10, 20 bins; uniform, Dirichlet(0.5) and
    one-bin-at-0.001 shares; 100,000 clean rows each, 25,000 at ``n_w = 5000``): the largest
    rejection rate is 0.056 at alpha 0.05, 0.0015 at 0.001 and 0.0003 at 1e-4 (tolerance: at
    most 1.2 x alpha at 0.05 and 1.5 x alpha at 0.001, i.e. within about 3 standard errors of
    nominal); two-group rows are conservative (0.02 to 0.045 at 0.05).

:func:`proportion_pvalue`
    One-sided Fisher's exact test (hypergeometric tail, summed term by term with numpy over
    the rows), or the exact binomial test against a known rate. Both are exact, conservative
    through discreteness.

Cost: 10,000 rows x 20 bins, ``homogeneity_pvalue`` 17 ms, Fisher's ``proportion_pvalue`` 18 ms
(known rate 3 ms) on the 2-core development machine (``calibration_study.py --part timing``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from tilewatch.aggregators.arrays import FloatArray, as_floats
from tilewatch.aggregators.stats.contingency import (
    CR_LAMBDA,
    ReferenceTotal,
    group_ends,
    group_sums,
    hypergeom_tail,
    power_terms,
    tables,
)

__all__ = ["homogeneity_pvalue", "proportion_pvalue"]


def homogeneity_pvalue(
    reference_counts: npt.ArrayLike,
    window_counts: npt.ArrayLike,
    reference_total: ReferenceTotal = "sum",
    min_expected: float = 5.0,
    lambda_: float = CR_LAMBDA,
) -> FloatArray:
    """P-value of "the window's histogram comes from the reference's distribution", per row.

    The two-sample test of homogeneity of the 2 x k table (window counts, reference counts),
    after pooling adjacent bins so that every cell of the table expects at least
    ``min_expected`` events under "no change" (the module docstring says how pooling keeps the
    null valid). On ``g >= 3`` pooled groups the p-value is the chi-square tail on ``g - 1``
    degrees of freedom of the power divergence statistic (``lambda_``; 1 is Pearson's X^2, as
    ``scipy.stats.chi2_contingency(table, correction=False, lambda_=lambda_)`` on the pooled
    table); on 2 groups it is exact (Fisher, or binomial for an infinite reference, two-sided
    by doubling the smaller tail).

    Parameters
    ----------
    reference_counts : array_like, shape (bins,) or (cells, bins)
        The reference histogram per cell: counts, pseudo-counts (floats) or, with
        ``reference_total=None``, shares.
    window_counts : array_like, shape (bins,) or (cells, bins)
        The window's counts per bin.
    reference_total : "sum", array_like or None, default "sum"
        The reference's sample size: the row sums of ``reference_counts`` ("sum"), an
        effective size per cell (the reference shares are rescaled to it), or None for a
        reference known without error (goodness of fit against fixed shares).
    min_expected : float, default 5.0
        Smallest expected count of a cell of the pooled table.
    lambda_ : float, default 2/3
        Power of the divergence statistic (Cressie-Read), used on three or more groups.

    Returns
    -------
    numpy.ndarray of float64, shape (cells,)
        NaN for rows with no window events, an empty reference, or fewer than 2 groups.

    Examples
    --------
    >>> ref = [400, 300, 200, 100]
    >>> homogeneity_pvalue(ref, [[40, 30, 20, 10], [10, 20, 30, 40], [0, 0, 0, 0]]).tolist()
    [1.0, 8.07...e-19, nan]
    >>> homogeneity_pvalue([0.5, 0.5], [12, 8], reference_total=None).tolist()  # binomial
    0.503...
    """
    if not min_expected > 0:
        raise ValueError(f"min_expected must be > 0, got {min_expected!r}")
    p, o, n_w, n_r, shape = tables(reference_counts, window_counts, reference_total)
    rows = p.shape[0]
    out = np.full(rows, np.nan)
    finite = np.isfinite(n_r)
    ok = (n_w > 0) & (n_r > 0) & np.isfinite(p).all(axis=1)
    if not ok.any():
        return out.reshape(shape)
    p, o, n_w, n_r, finite = p[ok], o[ok], n_w[ok], n_r[ok], finite[ok]
    # Reference counts on the effective scale, and the share each bin has in the table's margin.
    r = np.where(finite[:, None], p * np.where(finite, n_r, 0.0)[:, None], 0.0)
    n_tab = np.where(finite, n_w + np.where(finite, n_r, 0.0), 1.0)
    margin = np.where(finite[:, None], (r + o) / n_tab[:, None], p)
    smaller = np.where(finite, np.minimum(n_w, n_r), n_w)
    ends = group_ends([margin], min_expected / smaller)
    row, groups, (o_g, m_g, r_g) = group_sums(ends, o, margin, r)
    nw_g = n_w[row]
    e_w = nw_g * m_g
    stat_terms = power_terms(o_g, e_w, lambda_)
    fin_g = finite[row]
    nr_g = np.where(fin_g, n_r[row], 0.0)
    stat_terms += np.where(fin_g, power_terms(r_g, nr_g * m_g, lambda_), 0.0)
    stat = np.bincount(row, weights=stat_terms, minlength=groups.size)
    df = groups - 1
    with np.errstate(invalid="ignore"):
        pvalue = special.chdtrc(np.maximum(df, 1), np.maximum(stat, 0.0))
    pvalue = np.where(df >= 1, pvalue, np.nan)
    two = np.flatnonzero(groups == 2)
    if two.size:
        # The first group of each two-group row: its window count against the rest.
        first_group = np.searchsorted(row, two)
        x = o_g[first_group]
        nw2 = n_w[two]
        inf2 = ~finite[two]
        exact = np.empty(two.size)
        if inf2.any():
            share = m_g[first_group][inf2]
            trials = np.rint(nw2[inf2]).astype(np.int64)  # scipy wants an integer n
            up = special.bdtrc(x[inf2] - 1.0, trials, share)
            lo = special.bdtr(x[inf2], trials, share)
            exact[inf2] = np.minimum(1.0, 2.0 * np.minimum(up, lo))
        fin2 = ~inf2
        if fin2.any():
            xr = np.rint(x[fin2])
            nw_i = np.rint(nw2[fin2])
            nr_i = np.rint(n_r[two][fin2])
            hits = xr + np.rint(r_g[first_group][fin2])
            up = hypergeom_tail(xr, nw_i, hits, nw_i + nr_i, upper=True)
            lo = hypergeom_tail(xr, nw_i, hits, nw_i + nr_i, upper=False)
            exact[fin2] = np.minimum(1.0, 2.0 * np.minimum(up, lo))
        pvalue[two] = exact
    out[ok] = pvalue
    return out.reshape(shape)


def proportion_pvalue(
    reference_hits: npt.ArrayLike,
    reference_total: npt.ArrayLike | None,
    window_hits: npt.ArrayLike,
    window_total: npt.ArrayLike,
    alternative: Literal["greater", "less"] = "greater",
) -> FloatArray:
    """One-sided exact p-value of "the window's share differs from the reference's", per row.

    With a finite reference, Fisher's exact test of the 2 x 2 table ``[[window_hits,
    window_total - window_hits], [reference_hits, reference_total - reference_hits]]``:
    ``scipy.stats.fisher_exact(table, alternative).pvalue``. Pseudo-counts are rounded to
    integers first. With ``reference_total=None``, ``reference_hits`` is a known rate and the
    test is the exact binomial test, ``scipy.stats.binomtest(window_hits, window_total, rate,
    alternative).pvalue``. Both are valid at any count (conservative through discreteness).

    Parameters
    ----------
    reference_hits : array_like, shape (cells,)
        Reference events with the property (e.g. feature missing, prediction wrong); with
        ``reference_total=None`` the reference rate in ``[0, 1]``.
    reference_total : array_like or None
        Reference events per cell, or None for a known rate.
    window_hits, window_total : array_like, shape (cells,)
        The window's events with the property, and all its events.
    alternative : {"greater", "less"}, default "greater"
        "greater": the window's share is higher than the reference's.

    Returns
    -------
    numpy.ndarray of float64, shape (cells,)
        NaN where ``window_total == 0`` or the reference is empty.

    Examples
    --------
    >>> proportion_pvalue([2, 2, 0], [1000, 1000, 0], [3, 0, 1], [130, 130, 50]).tolist()
    [0.0125..., 1.0, nan]
    >>> proportion_pvalue(0.01, None, [5, 1], [130, 130]).tolist()  # known rate 1%
    [0.0102..., 0.729...]
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f'alternative must be "greater" or "less", got {alternative!r}')
    upper = alternative == "greater"
    x, n = np.broadcast_arrays(np.rint(as_floats(window_hits)), np.rint(as_floats(window_total)))
    if reference_total is None:
        rate, x, n = np.broadcast_arrays(as_floats(reference_hits), x, n)
        ok = (n > 0) & (rate >= 0) & (rate <= 1) & (x >= 0) & (x <= n)
        rate = np.where(ok, rate, 0.5)
        x = np.where(ok, x, 0.0)
        trials = np.where(ok, n, 1.0).astype(np.int64)  # scipy wants an integer n
        with np.errstate(invalid="ignore"):
            p = special.bdtrc(x - 1.0, trials, rate) if upper else special.bdtr(x, trials, rate)
        return np.where(ok, p, np.nan)
    kr, nr, x, n = np.broadcast_arrays(
        np.rint(as_floats(reference_hits)), np.rint(as_floats(reference_total)), x, n
    )
    shape = x.shape
    kr, nr, x, n = (a.reshape(-1).astype(np.float64) for a in (kr, nr, x, n))
    ok = (n > 0) & (nr > 0) & (x >= 0) & (x <= n) & (kr >= 0) & (kr <= nr)
    out = np.full(x.shape, np.nan)
    if ok.any():
        out[ok] = hypergeom_tail(x[ok], n[ok], (x + kr)[ok], (n + nr)[ok], upper=upper)
    return out.reshape(shape)
