"""Aging signals: how long each cell has been silent, how far each model's data lags behind
real time, and how old each model's current version is.

Staleness by the wall clock mixes two different things: a replica reading a topic behind real
time (catching up after a restart, a slow consumer, a replay) makes *every* cell look stale,
though nothing is wrong with any tile. So the two are split:

- **cell silence** (:data:`SILENCE`, per cell): the model's event-time clock (the latest event
  time seen for any of its cells) minus the cell's last event time. A cell whose traffic stopped
  while the rest of its model goes on is silent; a replica that lags silences nothing.
- **pipeline lag** (:data:`PIPELINE_LAG`, per model): the wall clock minus the model's
  event-time clock. One signal per model, exported per model and alerted on per model; it is
  broadcast to the model's cells only so that a base metric can read it.

Silence needs no clock; the lag and the version age are computed against a wall-clock ``now``
at scrape time. Base metrics use them like any other per-cell statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray

__all__ = [
    "LAST_EVENT",
    "PIPELINE_LAG",
    "SILENCE",
    "VERSION_AGE",
    "aging_statistics",
    "model_clocks",
]


#: Seconds between the model's event-time clock and the cell's last event time.
SILENCE = "tilewatch_cell_silence_seconds"
#: Seconds between ``now`` and the model's event-time clock, on every cell of the model.
PIPELINE_LAG = "tilewatch_model_pipeline_lag_seconds"
#: Seconds since the model's current version was first seen, on every cell of the model.
VERSION_AGE = "tilewatch_model_version_age_seconds"
#: The statistic silence and lag are computed from.
LAST_EVENT = "tilewatch_last_event_timestamp_seconds"


def model_clocks(last_event_time: FloatArray, model_ids: IntArray, models: int) -> FloatArray:
    """Each model's event-time clock: the largest last event time of its cells (NaN: none).

    Examples
    --------
    >>> model_clocks(np.array([90.0, np.nan, 40.0, 70.0]), np.array([0, 0, 1, 0]), 3).tolist()
    [90.0, 40.0, nan]
    """
    last = np.asarray(last_event_time, dtype=np.float64)
    out = np.full(models, -np.inf)
    ok = ~np.isnan(last)
    np.maximum.at(out, np.asarray(model_ids)[ok], last[ok])
    return np.where(np.isfinite(out), out, math.nan)


def aging_statistics(
    last_event_time: FloatArray,
    model_ids: IntArray,
    model_names: Sequence[str],
    version_first_seen: Mapping[str, float],
    now: float,
) -> dict[str, FloatArray]:
    """Cell silence, the model's pipeline lag and version age, per cell.

    Parameters
    ----------
    last_event_time
        Each cell's largest event time (NaN: never).
    model_ids, model_names
        Each cell's model.
    version_first_seen
        Model name -> first event time of its current version (models without one: NaN).
    now
        The current time, epoch seconds (NaN: no lag, no version age).

    Returns
    -------
    dict
        :data:`SILENCE` always; :data:`PIPELINE_LAG` with a finite ``now``; :data:`VERSION_AGE`
        when ``version_first_seen`` is given as well.

    Examples
    --------
    >>> out = aging_statistics(np.array([90.0, np.nan, 40.0]), np.array([0, 0, 1]),
    ...                        ["a", "b"], {"a": 10.0}, now=100.0)
    >>> out["tilewatch_cell_silence_seconds"].tolist()
    [0.0, nan, 0.0]
    >>> out["tilewatch_model_pipeline_lag_seconds"].tolist()
    [10.0, 10.0, 60.0]
    >>> out["tilewatch_model_version_age_seconds"].tolist()
    [90.0, 90.0, nan]
    """
    last = np.asarray(last_event_time, dtype=np.float64)
    ids = np.asarray(model_ids)
    clocks = model_clocks(last, ids, len(model_names))
    cell_clock = clocks[ids] if len(clocks) else np.full(len(ids), math.nan)
    out = {SILENCE: np.maximum(cell_clock - last, 0.0)}
    if not math.isfinite(now):
        return out
    out[PIPELINE_LAG] = np.maximum(now - cell_clock, 0.0)
    if version_first_seen:
        first = np.array([version_first_seen.get(m, math.nan) for m in model_names], dtype=float)
        ages = np.maximum(now - first, 0.0) if len(first) else first
        out[VERSION_AGE] = ages[ids] if len(ages) else np.full(len(ids), math.nan)
    return out
