"""river drift detectors per cell: ADWIN on the score stream, PageHinkley on window means.

``adwin`` sees every score of a leaf cell, in the partition's order (about half a microsecond
per update). ``page_hinkley`` sees each closed window of every cell (leaf and roll-up) that has
at least ``min_samples`` events in it, **standardized**: the window's mean minus the mean of the
cell's earlier windows (since its last detection), over its standard error,
``z = (mean - mean_past) / (s_past sqrt(1/n + 1/n_past))``. Under no change ``z`` is about
N(0, 1) whatever the cell's size, so one threshold (``ph_threshold``, with ``ph_delta`` the
tolerated shift, both in standard errors) has the same false-alarm rate in a cell of 20 events
per window as in one of 5,000; on raw means a fixed threshold alarms on noise in small cells
and misses real shifts in large ones. Detectors whose update costs more (KSWIN runs a scipy
test per call) are never run per event. False-alarm rates and delays per detector are measured
by ``tests/bench/bench_detectors.py`` (docs/performance.md).

Per (cell, detector) the state keeps the number of detections, the event time of the last one,
and whether the cell is in a drifted state: a detection within the last window length of event
time. Those are plain data and survive checkpoints; the detectors' internal windows do not (they
restart empty after a restore, which only delays the next detection).
"""

from __future__ import annotations

import math
from typing import Any

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.drift.profile import DriftSettings, ScoreDetector
from tilewatch.aggregators.stats.detections import DetectionLog

__all__ = ["DETECTORS", "CellDetectors"]


#: Detector names (the ``detector`` label) and what they watch.
DETECTORS: dict[ScoreDetector, str] = {
    "adwin": "ADWIN on every score of the cell (leaf cells)",
    "page_hinkley": "PageHinkley on each closed window's standardized mean score of the cell",
}


class CellDetectors(DetectionLog):
    """Detectors of one partition's cells, and what they found.

    Examples
    --------
    >>> import numpy as np
    >>> det = CellDetectors(DriftSettings(detectors=("adwin",)))
    >>> rng = np.random.default_rng(0)
    >>> scores = np.r_[rng.normal(0.2, 0.05, 2000), rng.normal(0.8, 0.05, 2000)]
    >>> det.update_scores(np.zeros(4000, dtype=np.int64), scores, np.arange(4000.0))
    >>> det.detections[(0, "adwin")] >= 1
    True
    """

    def __init__(self, settings: DriftSettings) -> None:
        # Imported here: river.drift imports river.datasets, which imports urllib.request for
        # its download helpers; importing aggregators must not pull in networking modules.
        from river import drift

        super().__init__()
        self._drift = drift
        self.settings = settings
        self._adwin: dict[int, Any] = {}
        self._ph: dict[int, Any] = {}
        # Per cell: (events, mean, M2) of its windows since its last detection.
        self._past: dict[int, tuple[float, float, float]] = {}

    def update_scores(self, leaf: IntArray, scores: FloatArray, times: FloatArray) -> None:
        """Feed every score to its leaf cell's ADWIN, in order."""
        if "adwin" not in self.settings.detectors:
            return
        adwin = self._adwin
        delta = self.settings.adwin_delta
        for cell, x, t in zip(leaf.tolist(), scores.tolist(), times.tolist(), strict=True):
            det = adwin.get(cell)
            if det is None:
                det = adwin[cell] = self._drift.ADWIN(delta=delta)  # type: ignore[no-untyped-call]
            det.update(x)
            if det.drift_detected:
                self._found(cell, "adwin", t)

    def update_windows(
        self, cells: IntArray, counts: IntArray, means: FloatArray, m2: FloatArray, end: float
    ) -> None:
        """Feed one closed window of each cell (events, mean, M2 of its scores) to its
        PageHinkley, standardized against the cell's earlier windows (module docstring)."""
        if "page_hinkley" not in self.settings.detectors:
            return
        s = self.settings
        past = self._past
        rows = zip(cells.tolist(), counts.tolist(), means.tolist(), m2.tolist(), strict=True)
        for cell, n, mean, sq in rows:
            if n < 1:
                continue
            have = past.get(cell)
            if have is None or have[0] < 2:
                past[cell] = _merged(have, n, mean, sq)
                continue
            big_n, mu, big_m2 = have
            var = big_m2 / (big_n - 1.0)
            if not var > 0:
                past[cell] = _merged(have, n, mean, sq)
                continue
            z = (mean - mu) / math.sqrt(var * (1.0 / n + 1.0 / big_n))
            det = self._ph.get(cell)
            if det is None:
                det = self._ph[cell] = self._drift.PageHinkley(
                    min_instances=3, delta=s.ph_delta, threshold=s.ph_threshold
                )
            det.update(z)
            if det.drift_detected:
                self._found(cell, "page_hinkley", end)
                past[cell] = (float(n), mean, sq)  # the new normal starts here
            else:
                past[cell] = _merged(have, n, mean, sq)


def _merged(
    have: tuple[float, float, float] | None, n: float, mean: float, m2: float
) -> tuple[float, float, float]:
    """Chan et al.'s merge of (events, mean, M2) with one more window's."""
    if have is None:
        return float(n), mean, m2
    na, ma, sa = have
    total = na + n
    delta = mean - ma
    return total, ma + delta * n / total, sa + m2 + delta * delta * na * n / total
