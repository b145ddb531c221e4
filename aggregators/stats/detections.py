"""What drift detectors found per (cell, detector): counts and last event times, as plain data.

The score detectors (:mod:`tilewatch.aggregators.drift.detectors`) and the error-stream ones
(:mod:`tilewatch.aggregators.labels.error_detectors`) keep their findings in a
:class:`DetectionLog`, so both checkpoint and export the same way. river's detectors have no
plain-data form, so only the log survives a checkpoint; the detectors restart empty.
"""

from __future__ import annotations

import math
from typing import Any

from tilewatch.aggregators.codec import Check

__all__ = ["DetectionLog", "DetectionRow", "parse_detections"]

#: A checkpointed detection: ``(cell key, detector, detections, last detection time)``.
DetectionRow = tuple[tuple[str, ...], str, int, float]


class DetectionLog:
    """Detections per (cell, detector): how many, and the event time of the last one.

    Examples
    --------
    >>> log = DetectionLog()
    >>> log._found(3, "adwin", 10.0)
    >>> log._found(3, "adwin", 25.0)
    >>> log.summary(horizon=20.0)
    {(3, 'adwin'): (2, 25.0, True)}
    >>> log.to_dict([("m", str(i)) for i in range(4)])
    [[['m', '3'], 'adwin', 2, 25.0]]
    """

    def __init__(self) -> None:
        #: (cell, detector) -> detections so far.
        self.detections: dict[tuple[int, str], int] = {}
        #: (cell, detector) -> event time of the last detection.
        self.last: dict[tuple[int, str], float] = {}

    def _found(self, cell: int, name: str, t: float) -> None:
        """Count one detection by detector ``name`` in ``cell`` at event time ``t`` (for the
        detector classes built on this log)."""
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
        """Add parsed ``(cell, detector, detections, last)`` rows (cells resolved)."""
        for cell, name, n, last in rows:
            key = (cell, name)
            self.detections[key] = self.detections.get(key, 0) + n
            self.last[key] = max(self.last.get(key, -math.inf), last)


def parse_detections(rows: Any, check: Check, where: str, key_len: int) -> list[DetectionRow]:
    """Check :meth:`DetectionLog.to_dict` rows completely; cells stay keys (nothing resolved).

    A null last time (never written) reads as ``-inf``.

    Examples
    --------
    >>> parse_detections([[["m", "a"], "adwin", 2, 25.0]], Check("state"), "detectors", 2)
    [(('m', 'a'), 'adwin', 2, 25.0)]
    >>> parse_detections([[["m", "a"], "adwin", -1, 25.0]], Check("state"), "detectors", 2)
    Traceback (most recent call last):
    tilewatch.aggregators.errors.StateError: state is malformed: detectors[0]: expected an int...
    """
    out: list[DetectionRow] = []
    for j, row in enumerate(check.array(rows, where)):
        at = f"{where}[{j}]"
        check.row(row, at, 4, "[key, detector, detections, last time]")
        last = check.number_or_none(row[3], at)
        out.append(
            (
                check.key(row[0], at, key_len),
                check.text(row[1], at),
                check.integer(row[2], at),
                -math.inf if last is None else last,
            )
        )
    return out
