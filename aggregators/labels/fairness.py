"""Performance gaps between the values of one dimension: the worst and best segment, region...

For each model and each dimension ``d``, the cells compared are those whose key has a real
value on ``d`` and ``__all__`` on every other dimension (the one-dimensional roll-ups, e.g.
``(model, "retail", "__all__")``), with at least ``min_samples`` labeled events and a finite
metric. Overflow values (``__other__``, a mix of many values) take no part. With two or more
such cells the gap is ``max - min`` of the metric; the worst cell is the one with the lowest
accuracy (highest error). Ties are broken by label value, so the result is deterministic and
the worst and best cells always differ: among equally worst cells the smallest label is the
worst, among equally best cells the largest label is the best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.cells.settings import ALL, OTHER

__all__ = ["Gap", "GapMetric", "performance_gaps"]

#: The metrics whose gaps are measured (the ``metric`` label): lower accuracy is worse, higher
#: error is worse.
GapMetric = Literal["accuracy", "error"]


@dataclass(frozen=True, slots=True)
class Gap:
    """The spread of one metric across the values of one dimension, for one model.

    ``metric`` is ``"accuracy"`` (worst = lowest) or ``"error"`` (worst = highest);
    ``cells`` is how many values were compared.
    """

    model: str
    dimension: str
    metric: GapMetric
    gap: float
    worst: str
    best: str
    worst_value: float
    best_value: float
    cells: int


def performance_gaps(
    keys: list[tuple[str, ...]],
    dimensions: tuple[str, ...],
    labeled: IntArray,
    accuracy: FloatArray,
    error: FloatArray,
    min_samples: int,
) -> list[Gap]:
    """The accuracy and error gaps per model and dimension, ordered by model, dimension, metric.

    Parameters
    ----------
    keys : list of tuple of str
        Cell keys ``(model, value of dimension 1, ...)``, by cell index.
    dimensions : tuple of str
        Dimension names, in key order.
    labeled : numpy.ndarray of int, shape (cells,)
        Labeled events per cell.
    accuracy, error : numpy.ndarray of float, shape (cells,)
        The metrics per cell (NaN cells take no part; for regression ``accuracy`` is all NaN
        and ``error`` may be any error measure, e.g. the MAE).
    min_samples : int
        Labeled events a cell needs to take part.

    Returns
    -------
    list of Gap
        One per (model, dimension, metric) with at least two qualifying cells.

    Examples
    --------
    >>> import numpy as np
    >>> keys = [("m", "a", "__all__"), ("m", "b", "__all__"), ("m", "c", "__all__"),
    ...         ("m", "a", "x"), ("m", "__all__", "x")]
    >>> acc = np.array([0.9, 0.7, 0.2, 0.1, 0.8])
    >>> gaps = performance_gaps(keys, ("segment", "region"), np.array([50, 40, 5, 50, 90]),
    ...                         acc, 1 - acc, min_samples=30)
    >>> [(g.metric, round(g.gap, 6), g.worst, g.best, g.cells) for g in gaps]
    [('accuracy', 0.2, 'b', 'a', 2), ('error', 0.2, 'b', 'a', 2)]
    """
    n = len(keys)
    if not len(labeled) == len(accuracy) == len(error) == n:
        raise ValueError("keys, labeled, accuracy and error must have one entry per cell")
    d = len(dimensions)
    groups: dict[tuple[str, int], list[int]] = {}
    counts = labeled.tolist()
    for i, key in enumerate(keys):
        if len(key) != d + 1:
            raise ValueError(f"cell key {key!r} must have {d + 1} parts")
        if counts[i] < min_samples:
            continue
        real = [j for j in range(d) if key[1 + j] != ALL]
        if len(real) == 1 and key[1 + real[0]] != OTHER:
            groups.setdefault((key[0], real[0]), []).append(i)
    out = []
    metrics: tuple[tuple[GapMetric, list[float], float], ...] = (
        ("accuracy", accuracy.tolist(), 1.0),
        ("error", error.tolist(), -1.0),
    )
    for model, j in sorted(groups):
        cells = groups[(model, j)]
        for metric, values, sign in metrics:
            # (value as "goodness", label): the worst is the smallest, the best the largest.
            found = [(sign * values[i], keys[i][1 + j]) for i in cells if math.isfinite(values[i])]
            if len(found) < 2:
                continue
            found.sort()
            worst, best = found[0], found[-1]
            worst_value, best_value = sign * worst[0], sign * best[0]
            out.append(
                Gap(
                    model=model,
                    dimension=dimensions[j],
                    metric=metric,
                    gap=abs(best_value - worst_value),
                    worst=worst[1],
                    best=best[1],
                    worst_value=worst_value,
                    best_value=best_value,
                    cells=len(found),
                )
            )
    return out
