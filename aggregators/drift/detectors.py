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

import math
from typing import Any

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.drift.profile import DriftSettings

__all__ = ["DETECTORS", "CellDetectors", "DetectionLog"]


#: Detector names (the ``detector`` label) and what they watch.
DETECTORS: dict[str, str] = {
    "adwin": "ADWIN on every score of the cell (leaf cells)",
    "page_hinkley": "PageHinkley on each closed window's mean score of the cell",
}


class DetectionLog:
    """What detectors found per (cell, detector): counts and last event times, as plain data.

    Shared by the score detectors here and the error-stream ones
    (:mod:`tilewatch.aggregators.labels.error_detectors`), so both checkpoint and export the same
    way.
    """

    def __init__(self) -> None:
        #: (cell, detector) -> detections so far.
        self.detections: dict[tuple[int, str], int] = {}
        #: (cell, detector) -> event time of the last detection.
        self.last: dict[tuple[int, str], float] = {}

    def _found(self, cell: int, name: str, t: float) -> None:
        key = (cell, name)
        self.detections[key] = self.detections.get(key, 0) + 1
        self.last[key] = max(self.last.get(key, -math.inf), t)

    def summary(self, horizon: float) -> dict[tuple[int, str], tuple[int, float, bool]]:
        """(cell, detector) -> (detections, last time, active: last time >= ``horizon``)."""
        last = self.last
        return {key: (n, last[key], last[key] >= horizon) for key, n in self.detections.items()}

    def to_dict(self, keys: list[tuple[str, ...]]) -> list[list[Any]]:
        """Plain data: ``[key, detector, detections, last time]`` rows."""
        return [
            [list(keys[cell]), name, n, self.last.get((cell, name))]
            for (cell, name), n in sorted(self.detections.items())
        ]

    def load(self, rows: list[tuple[int, str, int, float]]) -> None:
        """Add parsed ``(cell, detector, detections, last)`` rows."""
        for cell, name, n, last in rows:
            key = (cell, name)
            self.detections[key] = self.detections.get(key, 0) + n
            self.last[key] = max(self.last.get(key, -math.inf), last)


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
