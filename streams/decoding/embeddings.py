"""Embeddings of a batch, checked and turned into one float32 matrix per model.

With ``[events] embedding`` the decoder collects each valid event's raw vector (None when
absent). :meth:`EmbeddingEncoder.encode` groups a batch's vectors by model, builds each model's
matrix with one ``numpy.array`` call on the common batch (every vector a list of numbers of the
model's dimension), and checks the rest row by row. A bad vector is counted by reason
(:data:`BAD_EMBEDDING_REASONS`) and dropped; its event is kept without it.

A model's dimension is its vector reference's (the baseline's PCA); a model without one takes
the length of its first valid vector, and keeps it while the monitor runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import IntArray

__all__ = ["BAD_EMBEDDING_REASONS", "EmbeddingEncoder", "Embeddings"]

#: Why an embedding is dropped (the ``reason`` label of ``tilewatch_bad_embeddings_total``).
BAD_EMBEDDING_REASONS: dict[str, str] = {
    "wrong_type": "the embedding is not a list",
    "dimension": "a list whose length is not the model's dimension",
    "not_number": "an element that is not a number",
    "not_finite": "an element too large for float32",
}

_NUMBER = frozenset({float, int})


@dataclass(frozen=True)
class Embeddings:
    """A batch's valid vectors per model: (batch rows, float32 matrix), and the bad ones by
    (model, reason)."""

    by_model: dict[str, tuple[IntArray, npt.NDArray[np.float32]]] = field(default_factory=dict)
    bad: dict[tuple[str, str], int] = field(default_factory=dict)


class EmbeddingEncoder:
    """Checks and stacks a batch's embeddings; see the module docstring.

    Examples
    --------
    >>> enc = EmbeddingEncoder({"m": 2})
    >>> out = enc.encode(["m", "m", "m", "n", "m"],
    ...                  [[0.5, 1.0], [1, 2, 3], None, [1.0, 2.0, 3.0], "x"])
    >>> rows, x = out.by_model["m"]
    >>> rows.tolist(), x.tolist(), x.dtype
    ([0], [[0.5, 1.0]], dtype('float32'))
    >>> out.by_model["n"][0].tolist(), sorted(out.bad.items()), enc.dims
    ([3], [(('m', 'dimension'), 1), (('m', 'wrong_type'), 1)], {'m': 2, 'n': 3})
    """

    def __init__(self, dims: Mapping[str, int] | None = None) -> None:
        #: The dimension of each model's vectors.
        self.dims: dict[str, int] = dict(dims or {})

    def encode(self, models: Sequence[str], vectors: Sequence[Any]) -> Embeddings:
        """Group, check and stack one batch (``vectors[i]`` is event ``i``'s raw value)."""
        rows_of: dict[str, list[int]] = {}
        for i, (model, v) in enumerate(zip(models, vectors, strict=True)):
            if v is not None:
                rows_of.setdefault(model, []).append(i)
        out = Embeddings()
        for model, rows in rows_of.items():
            values = [vectors[i] for i in rows]
            dim = self.dims.get(model)
            if dim is None:
                first = next((v for v in values if type(v) is list and v and _numbers(v)), None)
                if first is None:
                    self._bad_rows(out, model, values, 0)
                    continue
                dim = self.dims[model] = len(first)
            matrix = _dense(values, dim)
            if matrix is None:  # an odd batch: check row by row
                good = [j for j, v in enumerate(values) if self._reason(v, dim) is None]
                self._bad_rows(out, model, values, dim)
                with np.errstate(over="ignore"):  # too large for float32: not_finite below
                    matrix = np.array([values[j] for j in good], dtype=np.float64)
                    matrix = matrix.astype(np.float32).reshape(-1, dim)
                kept = np.asarray([rows[j] for j in good], dtype=np.int64)
            else:
                kept = np.asarray(rows, dtype=np.int64)
            with np.errstate(over="ignore"):
                finite = np.isfinite(matrix).all(axis=1)
            if not finite.all():
                out.bad[(model, "not_finite")] = int((~finite).sum())
                matrix, kept = matrix[finite], kept[finite]
            if len(kept):
                out.by_model[model] = (kept, matrix)
        return out

    @staticmethod
    def _reason(v: Any, dim: int) -> str | None:
        if type(v) is not list:
            return "wrong_type"
        if len(v) != dim or not dim:
            return "dimension"
        if not _numbers(v):
            return "not_number"
        return None

    def _bad_rows(self, out: Embeddings, model: str, values: list[Any], dim: int) -> None:
        for v in values:
            reason = (
                self._reason(v, dim)
                if dim
                else ("wrong_type" if type(v) is not list else "not_number" if v else "dimension")
            )
            if reason is not None:
                out.bad[(model, reason)] = out.bad.get((model, reason), 0) + 1


def _numbers(v: list[Any]) -> bool:
    return set(map(type, v)) <= _NUMBER


def _dense(values: list[Any], dim: int) -> npt.NDArray[np.float32] | None:
    """The matrix of the common batch at C speed, or None when any vector is odd (not a list,
    of another length, or holding a non-number). numpy infers a float or integer array only
    when every element is a number (a boolean among numbers reads as 0 or 1: the one laxity
    of this path)."""
    if set(map(type, values)) != {list} or set(map(len, values)) != {dim}:
        return None
    try:
        arr = np.array(values)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.dtype.kind not in "fi" or arr.shape != (len(values), dim):
        return None
    with np.errstate(over="ignore"):  # too large for float32: not_finite
        return arr.astype(np.float32)
