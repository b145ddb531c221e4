"""river's binary drift detectors per leaf cell, on the stream of a model's errors (0/1).

Once predictions are joined with their labels, each pair gives an error bit (1: the prediction was
wrong). :class:`ErrorDetectors` feeds every bit of a leaf cell, in the partition's order, to that
cell's detector of one kind (river's ``drift.binary`` DDM, HDDM_A or HDDM_W) and counts detections
in a :class:`~tilewatch.aggregators.stats.detections.DetectionLog`, as the score detectors do:
per ``(cell, kind)`` the number of detections and the event time of the last one. Those are plain
data and survive checkpoints; the detectors' internals do not (river's detectors have no
plain-data form), so they restart empty after a restore.

HDDM_A, the default, runs on a lean implementation of river's one-sided ``HDDMA``
(:class:`_LeanHDDMA`: the same running means, bounds and tests, in the same floating-point
order, without copying ``stats.Mean`` objects), exact against river's on seeded streams
(``tests/aggregators/labels/test_error_detectors.py``). Cost per update, measured with river
0.26: DDM about 0.4 µs, river's HDDM_A about 4 µs, the lean one about 0.6 µs, HDDM_W about
3.5 µs, plus about 0.1 µs here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.stats.detections import DetectionLog

__all__ = ["ERROR_DETECTORS", "PARAMETERS", "ErrorDetector", "ErrorDetectors"]


#: Error detector kinds (the ``detector`` label).
ErrorDetector = Literal["ddm", "hddm_a", "hddm_w"]
#: Each error detector kind and what it is.
ERROR_DETECTORS: dict[ErrorDetector, str] = {
    "ddm": "DDM (river.drift.binary.DDM): error rate plus its deviation above the minimum seen",
    "hddm_a": "HDDM_A (river.drift.binary.HDDMA): Hoeffding bound on the mean error rate",
    "hddm_w": "HDDM_W (river.drift.binary.HDDMW): McDiarmid bound on a weighted error rate",
}

_CLASSES: dict[ErrorDetector, str] = {"ddm": "DDM", "hddm_a": "HDDMA", "hddm_w": "HDDMW"}
#: Parameters other than river's defaults. HDDM_A (the default detector) at a drift confidence
#: of 1e-4 instead of 1e-3: on stable streams at a 40 % error rate its false alarms fall from
#: 0.1 to 0.025 per 10,000 labels, and it finds a 25 % relative rise as fast
#: (``tests/bench/bench_detectors.py``; docs/performance.md).
PARAMETERS: dict[ErrorDetector, dict[str, float]] = {"hddm_a": {"drift_confidence": 1e-4}}


class ErrorDetectors(DetectionLog):
    """One binary drift detector per leaf cell on its error stream, and what they found.

    Parameters
    ----------
    kind
        A key of :data:`ERROR_DETECTORS`; the detectors use river's default parameters but
        for :data:`PARAMETERS`.

    Examples
    --------
    >>> import numpy as np
    >>> det = ErrorDetectors("ddm")
    >>> rng = np.random.default_rng(7)
    >>> errors = np.r_[rng.random(3000) < 0.05, rng.random(3000) < 0.4]
    >>> det.update(np.zeros(6000, dtype=np.int64), errors, np.arange(6000.0))
    >>> det.detections, det.last
    ({(0, 'ddm'): 1}, {(0, 'ddm'): 3060.0})
    """

    def __init__(self, kind: ErrorDetector) -> None:
        if kind not in ERROR_DETECTORS:
            raise ValueError(
                f"unknown error detector {kind!r}; expected one of {', '.join(ERROR_DETECTORS)}"
            )
        # Imported here: river.drift imports river.datasets, which imports urllib.request for
        # its download helpers; importing aggregators must not pull in networking modules.
        from river.drift import binary

        super().__init__()
        self.kind = kind
        cls = getattr(binary, _CLASSES[kind])
        params = PARAMETERS.get(kind, {})
        if kind == "hddm_a":
            confidence = params.get("drift_confidence", 0.001)
            self._make: Callable[[], Any] = lambda: _LeanHDDMA(confidence)
        else:
            self._make = lambda: cls(**params)
        self._detectors: dict[int, Any] = {}

    def update(self, leaf: IntArray, errors: IntArray | BoolArray, times: FloatArray) -> None:
        """Feed each error bit to its leaf cell's detector, in order (non-zero means error)."""
        detectors = self._detectors
        make = self._make
        bits = (np.asarray(errors) != 0).tolist()
        for cell, bit, t in zip(leaf.tolist(), bits, times.tolist(), strict=True):
            det = detectors.get(cell)
            if det is None:
                det = detectors[cell] = make()
            det.update(bit)
            if det.drift_detected:
                self._found(cell, self.kind, t)


class _LeanHDDMA:
    """river's ``HDDMA`` (one-sided: error increases), drift only, on plain floats.

    River keeps three ``stats.Mean`` objects and clones them on most updates; only the global
    mean ``z`` and the cut point ``x_min`` decide a one-sided drift, so this keeps their counts
    and means as floats, updated with ``Mean.update``'s formula and compared with the same
    expressions (``_hoeffding_bound``, ``_mean_incr``), so it detects at the same indices.

    Examples
    --------
    >>> from river.drift.binary import HDDMA
    >>> rng = np.random.default_rng(3)
    >>> bits = (np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.3]).tolist()
    >>> lean, ref = _LeanHDDMA(0.001), HDDMA()
    >>> hits = []
    >>> for i, b in enumerate(bits):
    ...     ref.update(b)
    ...     if lean.update(b) != ref.drift_detected:
    ...         raise AssertionError(i)
    ...     if ref.drift_detected:
    ...         hits.append(i)
    >>> hits
    [2171]
    """

    __slots__ = ("_bound", "_incr", "drift_detected", "x_mean", "x_n", "z_mean", "z_n")

    def __init__(self, drift_confidence: float) -> None:
        self._bound = math.log(1.0 / drift_confidence)
        self._incr = math.log(2.0 / drift_confidence)
        self.z_n = self.z_mean = self.x_n = self.x_mean = 0.0
        self.drift_detected = False

    def update(self, x: bool) -> bool:
        """Add one bit (True: an error); True when a drift is detected (then reset)."""
        if self.drift_detected:
            self.z_n = self.z_mean = self.x_n = self.x_mean = 0.0
        zn = self.z_n + 1.0
        zm = self.z_mean + (1.0 / zn) * (x - self.z_mean)
        self.z_n, self.z_mean = zn, zm
        xn, xm = self.x_n, self.x_mean
        if xn == 0:
            xn, xm = zn, zm
        eps_z = math.sqrt(1.0 / (2 * zn) * self._bound)
        eps_x = math.sqrt(1.0 / (2 * xn) * self._bound)
        if xm + eps_x >= zm + eps_z:
            xn, xm = zn, zm
        self.x_n, self.x_mean = xn, xm
        if xn == zn:
            self.drift_detected = False
        else:
            m = (zn - xn) / xn * (1.0 / zn)
            self.drift_detected = zm - xm >= math.sqrt(m / 2 * self._incr)
        return self.drift_detected
