"""The labeling queue's part of a partition checkpoint: its plain data and its validation.

::

    {"version": 1,
     "windows": [[window, valid events, {reason: [[key, priority, offset, score,
                                                   threshold or null, key b64 or null,
                                                   value b64 or null], ...]}], ...],
     "selected": [[key, reason, count], ...],
     "no_threshold": count}

Cells are named by key, event bytes are base64 text; :func:`parse_queue` checks everything
before the queue is built, so a bad checkpoint adds no cells.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tilewatch.aggregators.codec import Check
from tilewatch.aggregators.labeling.settings import REASONS

if TYPE_CHECKING:
    from tilewatch.aggregators.labeling.queue import LabelingQueue

__all__ = ["CODEC_VERSION", "ParsedQueue", "parse_queue", "queue_to_dict"]

#: The version of the layout.
CODEC_VERSION = 1
#: The checks of the queue's part of a partition checkpoint.
CHECK = Check("partition state", within="labeling")

CellKey = tuple[str, ...]
#: A candidate: key, priority, offset, score, threshold, Kafka key, value.
Row = tuple[CellKey, float, int, float, float | None, bytes | None, bytes | None]


@dataclass
class ParsedQueue:
    """A checked checkpoint: windows (number, events, rows by reason), counters."""

    windows: list[tuple[int, int, dict[str, list[Row]]]] = field(default_factory=list)
    selected: list[tuple[CellKey, str, int]] = field(default_factory=list)
    no_threshold: int = 0


def queue_to_dict(queue: LabelingQueue, keys: Sequence[CellKey]) -> dict[str, Any]:
    """Plain JSON data for a checkpoint (see the module)."""

    def b64(b: bytes | None) -> str | None:
        return None if b is None else base64.b64encode(b).decode("ascii")

    windows = []
    for w in sorted(queue.events):
        rows: dict[str, list[Any]] = {}
        for reason, t in sorted(queue.tables.get(w, {}).items()):
            rows[reason] = [
                [list(keys[c]), p, o, s, None if math.isnan(th) else th, b64(k), b64(v)]
                for c, p, o, s, th, (k, v) in zip(
                    t.cell.tolist(),
                    t.prio.tolist(),
                    t.offset.tolist(),
                    t.score.tolist(),
                    t.threshold.tolist(),
                    t.payload,
                    strict=True,
                )
            ]
        windows.append([w, queue.events[w], rows])
    nz = np.argwhere(queue.selected > 0).tolist()
    return {
        "version": CODEC_VERSION,
        "windows": windows,
        "selected": [[list(keys[c]), REASONS[r], int(queue.selected[c, r])] for c, r in nz],
        "no_threshold": queue.no_threshold,
    }


def parse_queue(data: Any, key_len: int) -> ParsedQueue:
    """Check the shape and every value; pure, raises StateError naming the place."""
    check = CHECK
    fields = check.fields(data)
    version = fields.integer("version")
    if version != CODEC_VERSION:
        raise check.fail("version", f"expected {CODEC_VERSION}, got {version}")

    def b64(value: Any, where: str) -> bytes | None:
        if value is None:
            return None
        try:
            return base64.b64decode(check.text(value, where), validate=True)
        except ValueError:
            raise check.fail(where, "expected base64 text or null") from None

    out = ParsedQueue(no_threshold=fields.integer("no_threshold"))
    for j, row in enumerate(check.array(fields.get("windows")[0], "windows")):
        at = f"windows[{j}]"
        check.row(row, at, 3, "[window, events, {reason: candidates}]")
        w = check.integer(row[0], at, lo=-(2**62))
        n = check.integer(row[1], at)
        parsed: dict[str, list[Row]] = {}
        for reason, cands in check.mapping(row[2], at).items():
            if reason not in REASONS:
                raise check.fail(at, f"unknown reason {reason!r:.40}")
            rows: list[Row] = []
            for i, c in enumerate(check.array(cands, f"{at}.{reason}")):
                where = f"{at}.{reason}[{i}]"
                check.row(c, where, 7, "[key, priority, offset, score, threshold, key, value]")
                rows.append(
                    (
                        check.key(c[0], where, key_len),
                        check.number(c[1], where),
                        check.integer(c[2], where),
                        check.number(c[3], where),
                        check.number_or_none(c[4], where),
                        b64(c[5], where),
                        b64(c[6], where),
                    )
                )
            parsed[reason] = rows
        out.windows.append((w, n, parsed))
    for j, row in enumerate(check.array(fields.get("selected")[0], "selected")):
        at = f"selected[{j}]"
        check.row(row, at, 3, "[key, reason, count]")
        if row[1] not in REASONS:
            raise check.fail(at, f"unknown reason {row[1]!r:.40}")
        out.selected.append((check.key(row[0], at, key_len), row[1], check.integer(row[2], at)))
    return out
