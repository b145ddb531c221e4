"""The class row a multi-class prediction keeps in the label join until its label comes.

A label from the outcomes topic meets its prediction later; to count it in the class
histograms of the prediction's window exactly as an inline label is
(:func:`tilewatch.aggregators.stats.multiclass_window.window_bins`), the join keeps, per
pending multi-class prediction, its normalised probabilities over the class columns, whether
its vector was valid and its predicted column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.cells.classes import column_map

__all__ = ["NOT_MULTICLASS", "ClassRows", "move_rows"]


@dataclass(frozen=True, slots=True, eq=False)
class ClassRows:
    """What a multi-class prediction keeps for its label: its normalised class
    probabilities (one row of ``width`` columns; zeros when ``valid`` is false), whether its
    vector was valid, and its predicted class column (-1: none; :data:`NOT_MULTICLASS` for an
    event without a probability vector, which joins its label the binary way)."""

    probs: FloatArray
    valid: Any
    predicted: IntArray

    def take(self, sel: Any) -> ClassRows:
        """The rows ``sel`` (an index array or a mask)."""
        return ClassRows(self.probs[sel], self.valid[sel], self.predicted[sel])

    @staticmethod
    def binary(n: int, width: int) -> ClassRows:
        """The rows of ``n`` events without a probability vector."""
        return ClassRows(
            np.zeros((n, width)),
            np.zeros(n, dtype=np.bool_),
            np.full(n, NOT_MULTICLASS, dtype=np.int64),
        )


#: The predicted column of an event without a probability vector.
NOT_MULTICLASS = -2


def move_rows(
    probs: FloatArray,
    predicted: Any,
    slots: IntArray,
    models: list[str],
    moves: dict[str, list[int]],
) -> None:
    """Move the class rows ``slots`` (in place) to the columns of another class table:
    ``moves`` gives, per model, the new column of each named column (the others pooled into
    the last column); ``models`` is each slot's model.

    Examples
    --------
    >>> probs, predicted = np.array([[0.7, 0.2, 0.1]]), np.array([0.0])
    >>> move_rows(probs, predicted, np.array([0]), ["m"], {"m": [1, 0]})
    >>> probs.tolist(), predicted.tolist()
    ([[0.2, 0.7, 0.1]], [1.0])
    """
    width = probs.shape[1]
    for s, model in zip(slots.tolist(), models, strict=True):
        if model in moves:
            cols = column_map(moves[model], width, width - 1)
            probs[s] = np.bincount(cols, weights=probs[s], minlength=width)
            if predicted[s] >= 0:
                predicted[s] = cols[int(predicted[s])]
