"""Business indicators of a model from its leaf cells: traffic in red cells, money at risk.

Pure numeric functions on per-cell arrays; :func:`tilewatch.aggregators.health.evaluate.evaluate`
calls them once per indicator with ``leaves`` = the leaf cell indices of each model, and turns the
returned driver cells into drivers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray

__all__ = ["pick_worst", "red_traffic_share", "revenue_at_risk"]


def pick_worst(values: FloatArray, rows: IntArray) -> int:
    """The index among ``rows`` with the highest non-NaN value (ties: the first); -1 if none.

    Examples
    --------
    >>> pick_worst(np.array([0.2, np.nan, 0.7, 0.7]), np.array([0, 1, 2, 3]))
    2
    >>> pick_worst(np.array([np.nan]), np.array([0]))
    -1
    """
    if len(rows) == 0:
        return -1
    v = values[rows]
    ok = ~np.isnan(v)
    if not ok.any():
        return -1
    return int(rows[int(np.argmax(np.where(ok, v, -np.inf)))])


def red_traffic_share(
    volume: FloatArray, red: BoolArray, risk: FloatArray, leaves: Sequence[IntArray]
) -> tuple[FloatArray, IntArray]:
    """Per model, the share of its volume in red cells, and the cell that drives it.

    Parameters
    ----------
    volume
        Traffic per cell (NaN counts as 0).
    red
        Whether each cell is red.
    risk
        Each cell's highest component risk (NaN: no verdict), for the driver without red cells.
    leaves
        Per model, the indices of its leaf cells.

    Returns
    -------
    tuple
        Shares (NaN for a model without volume) and driver cells: the red cell with the most
        volume, or without red cells the cell with the highest risk (-1: none).

    Examples
    --------
    >>> share, driver = red_traffic_share(np.array([10.0, 30.0, 60.0, 5.0]),
    ...     np.array([True, True, False, False]), np.array([1.0, 1.0, 0.2, 0.6]),
    ...     [np.array([0, 1, 2]), np.array([3])])
    >>> share.tolist(), driver.tolist()
    ([0.4, 0.0], [1, 3])
    """
    volume = np.nan_to_num(np.asarray(volume, dtype=np.float64))
    values = np.full(len(leaves), math.nan)
    drivers = np.full(len(leaves), -1, dtype=np.int64)
    for m, rows in enumerate(leaves):
        total = float(volume[rows].sum())
        if total > 0:
            values[m] = float(volume[rows][red[rows]].sum()) / total
        red_rows = rows[red[rows]]
        drivers[m] = pick_worst(volume, red_rows) if len(red_rows) else pick_worst(risk, rows)
    return values, drivers


def revenue_at_risk(
    volume: FloatArray,
    error: FloatArray,
    verdict: BoolArray,
    target: float,
    value_per_error: float,
    leaves: Sequence[IntArray],
) -> tuple[FloatArray, IntArray]:
    """Per model, ``sum(volume x max(0, error - target) x value_per_error)`` over the cells
    with an error verdict, and the cell contributing the most (all zero: the highest error).

    Returns NaN and driver -1 for a model without any cell with a verdict.

    Examples
    --------
    >>> money, driver = revenue_at_risk(np.array([100.0, 300.0, 600.0]),
    ...     np.array([0.1, 0.3, 0.9]), np.array([True, True, False]), 0.12, 5.0,
    ...     [np.array([0, 1, 2])])
    >>> money.round(6).tolist(), driver.tolist()
    ([270.0], [1])
    """
    volume = np.nan_to_num(np.asarray(volume, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        excess = np.maximum(np.asarray(error, dtype=np.float64) - target, 0.0)
    money = np.where(verdict, volume * excess * value_per_error, math.nan)
    values = np.full(len(leaves), math.nan)
    drivers = np.full(len(leaves), -1, dtype=np.int64)
    for m, rows in enumerate(leaves):
        ok = rows[verdict[rows]]
        if len(ok) == 0:
            continue
        values[m] = float(money[ok].sum())
        cell = pick_worst(money, ok)
        if money[cell] <= 0:
            cell = pick_worst(np.where(verdict, error, math.nan), ok)
        drivers[m] = cell
    return values, drivers
