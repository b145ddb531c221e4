"""The forecast families: each cell's forecast of a window statistic, ``horizon`` windows ahead.

``tilewatch_forecast_<statistic>{cell..., horizon="1".."H"}`` with ``_lower`` and ``_upper``,
the ends of the prediction interval, for the statistics the snapshot forecasts
(:mod:`tilewatch.aggregators.state.forecasts`); a cell without a forecast yet (fewer than three
windows with a value) has no sample. Names, types and help are in
:data:`~tilewatch.exporters.prometheus.catalog.METRICS`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from prometheus_client.core import Metric

from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.families import CellRows, family

__all__ = ["forecast_families"]


def forecast_families(snap: Snapshot, rows: CellRows) -> Iterator[Metric]:
    """The forecast families of a snapshot (none when it keeps no forecasts)."""
    if snap.forecasts is None:
        return
    present = np.zeros(len(snap.keys), dtype=bool)
    present[rows.present] = True
    for stat, arrays in sorted(snap.forecasts.items()):
        mean = arrays[0]
        cells = np.flatnonzero(present[: mean.shape[1]] & np.isfinite(mean[0]))
        for suffix, values in zip(("", "_lower", "_upper"), arrays, strict=True):
            fam = family(f"tilewatch_forecast_{stat}{suffix}", rows.labels)
            for h in range(values.shape[0]):
                rows.add(fam, values[h], str(h + 1), cells=cells)
            # The view's arrays are replaced when a window is recorded or cells are added:
            # the text is formatted once per forecast update.
            yield rows.keep(fam, values)
