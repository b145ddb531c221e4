"""A principal-component projection fitted with numpy's SVD, and the per-component bin index.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(500, 6)) * [5.0, 2.0, 1.0, 0.5, 0.1, 0.1]
>>> p = fit_projection(x, 2)
>>> p.components.shape, p.explained.round(2).tolist()
((2, 6), [0.83, 0.12])
>>> z = p.project(x.astype(np.float32))
>>> np.allclose(z.mean(axis=0), 0.0, atol=1e-5), z.shape
(True, (500, 2))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import FloatArray, IntArray

__all__ = ["Projection", "bin_components", "fit_projection"]


@dataclass(frozen=True)
class Projection:
    """``z = (x - center) @ components.T``; ``explained`` is each component's share of the
    reference's total variance."""

    center: FloatArray
    components: FloatArray
    explained: FloatArray

    def __post_init__(self) -> None:
        # float32 copies for the per-batch product (embeddings arrive as float32).
        object.__setattr__(self, "_c32", np.ascontiguousarray(self.components.T, np.float32))
        object.__setattr__(self, "_shift", self.center @ self.components.T)

    @property
    def dim(self) -> int:
        """The embedding dimension the projection takes."""
        return int(self.center.shape[0])

    @property
    def k(self) -> int:
        """The number of components."""
        return int(self.components.shape[0])

    def project(self, x: npt.NDArray[np.floating]) -> FloatArray:
        """Rows of ``x`` (n, dim) in component space (n, k), float64."""
        c32: npt.NDArray[np.float32] = self._c32  # type: ignore[attr-defined]
        shift: FloatArray = self._shift  # type: ignore[attr-defined]
        z = np.asarray(x, dtype=np.float32) @ c32
        return np.asarray(z, dtype=np.float64) - shift


def fit_projection(x: npt.ArrayLike, k: int) -> Projection:
    """The top ``k`` principal components of the rows of ``x`` (at most rank-many).

    Signs are fixed so that each component's largest loading is positive, which makes the fit
    deterministic across platforms.
    """
    data = np.asarray(x, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError(f"expected at least 2 rows of vectors, got shape {data.shape}")
    center = data.mean(axis=0)
    _, s, vt = np.linalg.svd(data - center, full_matrices=False)
    k = max(1, min(k, vt.shape[0]))
    comps = vt[:k].copy()
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    var = s**2
    total = var.sum()
    explained = var[:k] / total if total > 0 else np.zeros(k)
    return Projection(center, comps, explained)


def bin_components(z: FloatArray, edges: FloatArray) -> IntArray:
    """The bin of each projected value, per component: ``edges`` are (k, bins - 1) interior
    edges; values equal to an edge go to the bin above it.

    Examples
    --------
    >>> bin_components(np.array([[0.0, 5.0], [2.0, -1.0]]), np.array([[1.0], [0.0]])).tolist()
    [[0, 1], [1, 0]]
    """
    out = np.empty(z.shape, dtype=np.int64)
    for j in range(z.shape[1]):
        out[:, j] = np.searchsorted(edges[j], z[:, j], side="right")
    return out
