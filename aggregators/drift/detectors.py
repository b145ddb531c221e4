"""river drift detectors per cell: ADWIN on the score stream, PageHinkley on window means.

``adwin`` sees every score of a leaf cell, in the partition's order (about half a microsecond
per update). ``page_hinkley`` sees each closed window's mean score of every cell (leaf and
roll-up) that has at least ``min_samples`` events in it, so a slow drift of the mean is
caught without per-event cost. Detectors whose update costs more (KSWIN runs a scipy test per
call) are never run per event.

Per (cell, detector) the state keeps the number of detections, the event time of the last one,
and whether the cell is in a drifted state: a detection within the last window length of event
time. Those are plain data and survive checkpoints; the detectors' internal windows do not (they
restart empty after a restore, which only delays the next detection).
"""

from __future__ import annotations

from typing import Any

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.drift.profile import DriftSettings, ScoreDetector
from tilewatch.aggregators.stats.detections import DetectionLog

__all__ = ["DETECTORS", "CellDetectors"]


#: Detector names (the ``detector`` label) and what they watch.
DETECTORS: dict[ScoreDetector, str] = {
    "adwin": "ADWIN on every score of the cell (leaf cells)",
    "page_hinkley": "PageHinkley on each closed window's mean score of the cell",
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

    def update_windows(self, cells: IntArray, means: FloatArray, end: float) -> None:
        """Feed one closed window's mean of each cell to its PageHinkley."""
        if "page_hinkley" not in self.settings.detectors:
            return
        s = self.settings
        for cell, mean in zip(cells.tolist(), means.tolist(), strict=True):
            det = self._ph.get(cell)
            if det is None:
                det = self._ph[cell] = self._drift.PageHinkley(
                    min_instances=3, delta=s.ph_delta, threshold=s.ph_threshold
                )
            det.update(mean)
            if det.drift_detected:
                self._found(cell, "page_hinkley", end)
