"""Aging signals: how stale each cell's data is, and how old each model's current version is.

Both are computed against a wall-clock ``now`` at scrape time and then used by base metrics
like any other per-cell statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray

__all__ = ["LAST_EVENT", "STALENESS", "VERSION_AGE", "aging_statistics"]


#: Seconds between ``now`` and the cell's last event time.
STALENESS = "tilewatch_cell_staleness_seconds"
#: Seconds since the model's current version was first seen, on every cell of the model.
VERSION_AGE = "tilewatch_model_version_age_seconds"
#: The statistic staleness is computed from.
LAST_EVENT = "tilewatch_last_event_timestamp_seconds"


def aging_statistics(
    last_event_time: FloatArray,
    model_ids: IntArray,
    model_names: Sequence[str],
    version_first_seen: Mapping[str, float],
    now: float,
) -> dict[str, FloatArray]:
    """Staleness per cell and the model version age broadcast to the model's cells.

    Parameters
    ----------
    last_event_time
        Each cell's largest event time (NaN: never).
    model_ids, model_names
        Each cell's model.
    version_first_seen
        Model name -> first event time of its current version (models without one: NaN).
    now
        The current time, epoch seconds.

    Returns
    -------
    dict
        :data:`STALENESS` always; :data:`VERSION_AGE` when ``version_first_seen`` is given.

    Examples
    --------
    >>> out = aging_statistics(np.array([90.0, np.nan, 40.0]), np.array([0, 0, 1]),
    ...                        ["a", "b"], {"a": 10.0}, now=100.0)
    >>> out["tilewatch_cell_staleness_seconds"].tolist()
    [10.0, nan, 60.0]
    >>> out["tilewatch_model_version_age_seconds"].tolist()
    [90.0, 90.0, nan]
    """
    out = {STALENESS: np.maximum(now - np.asarray(last_event_time, dtype=np.float64), 0.0)}
    if version_first_seen:
        first = np.array([version_first_seen.get(m, math.nan) for m in model_names], dtype=float)
        ages = np.maximum(now - first, 0.0) if len(first) else first
        out[VERSION_AGE] = ages[model_ids] if len(ages) else np.full(len(model_ids), math.nan)
    return out
