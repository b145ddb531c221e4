"""The PSI of a window against its reference with its chance part removed (an effect size).

:func:`psi_effect`
    The PSI of :func:`tilewatch.aggregators.stats.divergence.psi` (same ``eps`` smoothing) minus
    its expectation under "no change", computed bin by bin: the PSI is a sum of one term per
    bin, each a function of that bin's count, so its expectation is a sum of binomial
    expectations: up to 64 events, exact binomial sums (tabulated once per ``eps`` over a
    dense grid of ``p``, interpolated: within 0.6%); above, while ``lambda = n p < 64``, the
    Poisson expectation (tabulated on a log grid of ``lambda`` and ``c = n eps``) times
    ``1 - p`` (within 1.2% of the exact binomial one); beyond, a Taylor expansion with the
    binomial moments (within 0.02%). With a finite reference the reference's own sampling
    error adds the same kind of term (the PSI is symmetric in its arguments, and the two
    samples are independent, so the two terms add exactly), both evaluated at the pooled
    shares. This replaces the textbook ``(k - 1)(1/n_w + 1/n_r)``, which holds only when no bin
    is sparse: with the ``eps`` smoothing an empty bin costs ``p ln(p / eps)``, so at 20 events
    over 20 bins the raw PSI averages 2.6, not 0.95. Measured on clean data (same study), the
    mean corrected PSI is within 0.004 of 0 for ``n_w`` from 20 to 5000 against reference
    shares or 50,000 reference events, within 0.015 with 2,000; with 200 reference events it is
    up to +0.04 (``n_w >= 50``) and +0.10 at 20 events over 20 bins (raw 2.66): where both
    samples are sparse, evaluating the expectation at estimated shares (Jensen) leaves part of
    the bias.

Cost: 10,000 rows x 20 bins, 19 ms with reference shares and 29 ms with reference counts
(``divergence.psi``: 2.4 ms); the lookup tables are built once per process (about 50 ms).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from scipy import special

from tilewatch.aggregators.arrays import FloatArray, as_floats
from tilewatch.aggregators.stats.contingency import ReferenceTotal, tables

__all__ = ["psi_effect"]

IntArray = npt.NDArray[np.intp]

#: Above this many expected events in a bin, the PSI bias uses the Taylor expansion.
_TAYLOR_LAMBDA = 64.0


@functools.cache
def _poisson_psi_table() -> tuple[FloatArray, FloatArray, FloatArray]:
    """``G(lam, c) = E[(O - lam) ln((O + c) / (lam + c))]``, ``O ~ Poisson(lam)``, as the ratio
    to its leading term ``lam / (lam + c)``, on a grid of log10(lam) x log10(c)."""
    log_lam = np.linspace(-4.0, np.log10(_TAYLOR_LAMBDA) + 0.05, 180)
    log_c = np.linspace(-8.0, 4.0, 241)
    lam = 10.0 ** log_lam[:, None]
    c = 10.0 ** log_c[None, :]
    total = np.zeros((lam.shape[0], c.shape[1]))
    o_max = int(_TAYLOR_LAMBDA * 1.2 + 12.0 * np.sqrt(_TAYLOR_LAMBDA) + 30.0)
    log_pmf = -lam  # log P(O = 0)
    for o in range(o_max + 1):
        if o:
            log_pmf = log_pmf + np.log(lam) - np.log(o)
        total += np.exp(log_pmf) * (o - lam) * (np.log(o + c) - np.log(lam + c))
    return log_lam, log_c, total / (lam / (lam + c))


def _interp2(log_lam: FloatArray, log_c: FloatArray) -> FloatArray:
    """Bilinear interpolation of the tabulated ratio at (log10 lam, log10 c), clamped."""
    gx, gy, table = _poisson_psi_table()
    fx = np.clip((log_lam - gx[0]) / (gx[1] - gx[0]), 0.0, gx.size - 1.000001)
    fy = np.clip((log_c - gy[0]) / (gy[1] - gy[0]), 0.0, gy.size - 1.000001)
    ix = fx.astype(np.intp)
    iy = fy.astype(np.intp)
    tx = fx - ix
    ty = fy - iy
    flat = table.ravel()
    at = ix * table.shape[1] + iy
    below = flat.take(at) * (1.0 - ty) + flat.take(at + 1) * ty
    above = flat.take(at + table.shape[1]) * (1.0 - ty) + flat.take(at + table.shape[1] + 1) * ty
    out: FloatArray = below * (1.0 - tx) + above * tx
    return out


#: Up to this many events, the PSI bias of a bin is interpolated from exact binomial sums.
_EXACT_N = 64


@functools.cache
def _binomial_psi_table(eps: float) -> tuple[FloatArray, FloatArray]:
    """``E[(q - p) ln((q + eps) / (p + eps))]``, ``q = O / n``, ``O ~ Binomial(n, p)``, exactly,
    for ``n = 1 .. _EXACT_N`` (rows) on a grid of ``p`` (dense near 0 and 1)."""
    tail = np.logspace(-9.0, np.log10(0.5), 200)
    p = np.unique(np.concatenate([[0.0], tail, 1.0 - tail, [1.0]]))
    table = np.zeros((_EXACT_N + 1, p.size))
    inner = p[1:-1]
    for n in range(1, _EXACT_N + 1):
        o = np.arange(n + 1, dtype=np.float64)[:, None]
        log_pmf = (
            special.gammaln(n + 1.0)
            - special.gammaln(o + 1.0)
            - special.gammaln(n - o + 1.0)
            + o * np.log(inner)
            + (n - o) * np.log1p(-inner)
        )
        q = o / n
        terms = np.exp(log_pmf) * (q - inner) * np.log((q + eps) / (inner + eps))
        table[n, 1:-1] = terms.sum(axis=0)
    return p, table


def _exact_small_n(n: FloatArray, p: FloatArray, eps: float) -> FloatArray:
    """The exact table at ``n <= _EXACT_N`` (linear in ``p``, and in ``n`` between integers)."""
    grid, table = _binomial_psi_table(eps)
    i = np.clip(np.searchsorted(grid, p, side="right") - 1, 0, grid.size - 2)
    w = (p - grid[i]) / (grid[i + 1] - grid[i])
    lo_n = np.clip(np.floor(n).astype(np.intp), 1, _EXACT_N)
    hi_n = np.minimum(lo_n + 1, _EXACT_N)
    wn = np.clip(n - lo_n, 0.0, 1.0)

    def at(rows: IntArray) -> FloatArray:
        return table[rows, i] * (1.0 - w) + table[rows, i + 1] * w

    return at(lo_n) * (1.0 - wn) + at(hi_n) * wn


def _psi_bin_bias(n: FloatArray, p: FloatArray, eps: float) -> FloatArray:
    """``E[(q - p) ln((q + eps) / (p + eps))]`` for ``q = O / n``, ``O ~ Binomial(n, p)``.

    Exact (tabulated) up to ``_EXACT_N`` events; above, the Poisson table times ``1 - p``
    while ``n p < _TAYLOR_LAMBDA``, else a Taylor expansion with the binomial moments.
    ``n`` may be inf (no sampling error: 0). Shapes broadcast.
    """
    n, p = np.broadcast_arrays(as_floats(n), as_floats(p))
    out = np.zeros(n.shape)
    live = np.isfinite(n) & (n > 0) & (p > 0) & (p < 1)
    if not live.any():
        return out
    nn, pp = n[live], p[live]
    lam = nn * pp
    res = np.empty(nn.shape)
    exact = nn <= _EXACT_N
    big = ~exact & (lam >= _TAYLOR_LAMBDA)
    mid = ~exact & ~big
    if exact.any():
        res[exact] = _exact_small_n(nn[exact], pp[exact], eps)
    if big.any():
        nb, pb = nn[big], pp[big]
        a = pb + eps
        v = pb * (1.0 - pb)
        m2 = v / nb
        m3 = v * (1.0 - 2.0 * pb) / nb**2
        m4 = v * (1.0 + 3.0 * (nb - 2.0) * v) / nb**3
        res[big] = m2 / a - m3 / (2.0 * a**2) + m4 / (3.0 * a**3)
    if mid.any():
        ns, ps = nn[mid], pp[mid]
        ls = ns * ps
        c = ns * eps
        ratio = _interp2(np.log10(ls), np.log10(c))
        res[mid] = (1.0 - ps) * ratio * ls / (ls + c) / ns
    out[live] = res
    return out


def psi_effect(
    reference_counts: npt.ArrayLike,
    window_counts: npt.ArrayLike,
    reference_total: ReferenceTotal = "sum",
    eps: float = 1e-4,
    clip: bool = True,
) -> FloatArray:
    """PSI of the window against the reference, with its expectation under "no change" removed.

    The raw value is :func:`tilewatch.aggregators.stats.divergence.psi` (the same ``eps``
    smoothing of both distributions). Its expectation when the window and the reference come
    from the same distribution is computed bin by bin at the pooled shares (the module
    docstring says how) and subtracted; the result is clipped at 0 unless ``clip=False``, so
    ``psi_effect > psi_alert`` means "a shift of about that PSI", whatever the counts.

    Parameters
    ----------
    reference_counts : array_like, shape (bins,) or (cells, bins)
        Reference counts (or pseudo-counts, or shares with ``reference_total=None``).
    window_counts : array_like, shape (bins,) or (cells, bins)
        Window counts per bin.
    reference_total : "sum", array_like or None, default "sum"
        As in :func:`homogeneity_pvalue`; None: the reference shares are exact.
    eps : float, default 1e-4
        Additive smoothing of both distributions, as in ``psi``.
    clip : bool, default True
        Clip the corrected value at 0 (False: keep the signed estimate, centred on 0 on clean
        data).

    Returns
    -------
    numpy.ndarray of float64, shape (cells,)
        NaN for rows without window events or with an empty reference.

    Examples
    --------
    >>> ref = np.full(20, 50.0)  # 1,000 reference events over 20 equal bins
    >>> clean = [7, 6, 8, 5, 9, 6, 7, 4, 8, 7, 6, 5, 7, 8, 6, 7, 5, 6, 7, 6]  # 130 events
    >>> shifted = [0] * 10 + [13] * 10
    >>> psi_effect(ref, [clean, shifted]).round(3).tolist()  # raw PSI 0.035 and 3.447
    [0.0, 3.262]
    >>> psi_effect(ref, clean, clip=False).round(3).tolist()  # 0.035 - 0.185 by chance
    -0.149
    """
    p, o, n_w, n_r, shape = tables(reference_counts, window_counts, reference_total)
    k = p.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = o / n_w[:, None]
        ps = (p + eps) / (1.0 + k * eps)
        qs = (q + eps) / (1.0 + k * eps)
        raw = np.sum((qs - ps) * np.log(qs / ps), axis=1)
        finite = np.isfinite(n_r)
        n_rf = np.where(finite, n_r, 0.0)
        pooled = np.where(finite[:, None], (p * n_rf[:, None] + o) / (n_rf + n_w)[:, None], p)
    pooled = np.nan_to_num(pooled, nan=0.0)
    bias = _psi_bin_bias(n_w[:, None], pooled, eps) + _psi_bin_bias(n_r[:, None], pooled, eps)
    out = raw - bias.sum(axis=1) / (1.0 + k * eps)
    if clip:
        out = np.maximum(out, 0.0)
    bad = (n_w <= 0) | (n_r <= 0) | ~np.isfinite(p).all(axis=1)
    return np.where(bad, np.nan, out).reshape(shape)
