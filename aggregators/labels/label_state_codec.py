"""The checkpoint of a partition's label side: its plain-data form and its complete validation.

:func:`labels_to_dict` writes a :class:`~tilewatch.aggregators.labels.label_state.PartitionLabels`
as plain JSON data, cells named by key::

    {"offset": 310, "late": 2, "label_clock": 95.0, "invalid": {"bad_label": 1},
     "totals": [[key, labeled, errors], ...],
     "open": [[window, performance rows], ...], "final": [[window, performance rows], ...],
     "join": {...} or null, "detectors": [[key, detector, detections, last time], ...]}

:func:`parse_labels` checks all of it (the performance rows with
:func:`~tilewatch.aggregators.labels.sums_codec.parse_rows`, the join with
:func:`~tilewatch.aggregators.labels.join_codec.parse_join`) before anything is built, so
``PartitionLabels.from_dict`` cannot fail half-way and bad data never creates cells. It is the
``labels`` part of a partition checkpoint (:mod:`tilewatch.aggregators.state.partition_codec`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tilewatch.aggregators.arrays import resized
from tilewatch.aggregators.codec import Check, finite_or_none
from tilewatch.aggregators.labels.join_codec import ParsedJoin, parse_join
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.labels.sums_codec import ParsedRows, parse_rows
from tilewatch.aggregators.stats.detections import DetectionRow, parse_detections

if TYPE_CHECKING:
    from tilewatch.aggregators.labels.label_state import PartitionLabels

__all__ = ["ParsedLabels", "labels_to_dict", "parse_labels"]

#: The checks of the label side, within a partition checkpoint.
CHECK = Check("partition state", within="labels")


def labels_to_dict(
    labels: PartitionLabels,
    keys: list[tuple[str, ...]],
    freeze: Callable[[list[Any]], Any] | None = None,
) -> dict[str, Any]:
    """Plain JSON data for a checkpoint; cells by key (``keys``, by cell index).

    ``freeze``: applied once to each final window's rows, the result kept on ``labels`` and
    written in their place in every later call (no label changes a final window): a caller
    that serializes the result turns them into serialized JSON once (a delta checkpoint's
    head, every round: ``tilewatch.streams.changelog.delta.frozen_json``).
    """
    n = len(keys)
    final: list[list[Any]]
    if freeze is not None:
        kept = labels.final_json
        for w in [w for w, (acc, _f) in kept.items() if labels.final.get(w) is not acc]:
            del kept[w]
        for w, acc in labels.final.items():
            if w not in kept:
                kept[w] = (acc, freeze(acc.to_rows(keys)))
        final = [[w, kept[w][1]] for w in sorted(labels.final)]
    else:
        final = [[w, acc.to_rows(keys)] for w, acc in sorted(labels.final.items())]
    labeled, errors = resized(labels.labeled_total, n), resized(labels.errors_total, n)
    at = np.flatnonzero(labeled > 0)
    totals = [
        [list(keys[i]), lab, err]
        for i, lab, err in zip(at.tolist(), labeled[at].tolist(), errors[at].tolist(), strict=True)
    ]
    return {
        "offset": labels.offset,
        "late": labels.late,
        "label_clock": finite_or_none(labels.max_label_time),
        "invalid": dict(sorted(labels.invalid.items())),
        "totals": totals,
        "open": [[w, acc.to_rows(keys)] for w, acc in sorted(labels.perf.items())],
        "final": final,
        "join": None if labels.join is None else labels.join.to_dict(keys),
        "detectors": [] if labels.detectors is None else labels.detectors.to_dict(keys),
    }


@dataclass(frozen=True, slots=True, eq=False)
class ParsedLabels:
    """A checked label-side checkpoint, cells still named by key (nothing resolved yet)."""

    offset: int | None
    late: int
    #: The label clock (``-inf``: none yet).
    label_clock: float
    invalid: dict[str, int]
    #: ``(key, labeled, errors)`` per cell.
    totals: list[tuple[tuple[str, ...], int, int]]
    #: ``"open"`` and ``"final"`` -> ``[(window, performance rows), ...]``.
    windows: dict[str, list[tuple[int, ParsedRows]]]
    #: The join (topic labels only; None otherwise).
    join: ParsedJoin | None
    detections: list[DetectionRow]


def parse_labels(
    data: Any, settings: LabelSettings, key_len: int, class_width: int | None = None
) -> ParsedLabels:
    """Check a :func:`labels_to_dict` checkpoint completely; pure, raises StateError.

    ``key_len`` is the number of parts of a cell key (model plus dimensions).
    """
    check = CHECK
    perf = settings.performance
    check.mapping(data, "")
    try:
        offset = data["offset"]
        if offset is not None:
            offset = check.integer(offset, "offset")
        late = check.integer(data["late"], "late")
        clock = check.number_or_none(data["label_clock"], "label_clock")
        invalid = {
            str(reason): check.integer(count, f"invalid.{reason}")
            for reason, count in check.mapping(data["invalid"], "invalid").items()
        }
        totals = []
        for j, row in enumerate(check.array(data["totals"], "totals")):
            at = f"totals[{j}]"
            check.row(row, at, 3, "[key, labeled, errors]")
            totals.append(
                (
                    check.key(row[0], at, key_len),
                    check.integer(row[1], at),
                    check.integer(row[2], at),
                )
            )
        windows: dict[str, list[tuple[int, ParsedRows]]] = {}
        for table in ("open", "final"):
            parsed = []
            for j, item in enumerate(check.array(data[table], table)):
                if type(item) is not list or len(item) != 2 or type(item[0]) is not int:
                    raise check.fail(f"{table}[{j}]", "expected [window, rows]")
                rows = parse_rows(item[1], perf.task, perf.calibration_bins, key_len)
                parsed.append((item[0], rows))
            windows[table] = parsed
        join_data = data["join"]
        join = None
        if settings.source == "topic" and join_data is not None:
            join = parse_join(join_data, key_len, class_width)
        detections = parse_detections(data["detectors"], check, "detectors", key_len)
    except KeyError as exc:
        raise check.fail("", f"missing key {exc}") from None
    return ParsedLabels(
        offset=offset,
        late=late,
        label_clock=-math.inf if clock is None else clock,
        invalid=invalid,
        totals=totals,
        windows=windows,
        join=join,
        detections=detections,
    )
