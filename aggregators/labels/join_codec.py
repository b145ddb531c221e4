"""Checkpoints of :class:`tilewatch.aggregators.labels.join.LabelJoin`: the parsed form and its
validation.

:func:`parse_join` checks a join checkpoint completely (shape, types, finite numbers, cell
keys, ids unique across the pending, recent and held lists) and raises StateError naming the
place, before anything is built; ``LabelJoin.from_parsed`` then cannot fail half-way. The
check runs column-wise (about 1.5 s for a million pending predictions); only when it finds
a problem does a row-by-row pass run to name the first bad row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tilewatch.aggregators.arrays import FloatArray
from tilewatch.aggregators.codec import Check, is_key, numbers

__all__ = ["COUNTERS", "ParsedJoin", "parse_join"]


#: The counters of a join, in checkpoint order.
COUNTERS = (
    "joined",
    "expired",
    "evicted",
    "orphaned",
    "duplicate_predictions",
    "duplicate_labels",
    "missing_id",
)

_SECTIONS = (
    ("pending", 4, "[id, event time, cell key, score]"),
    ("recent", 2, "[id, event time]"),
    ("held", 3, "[id, label, label time]"),
)


@dataclass(frozen=True, slots=True, eq=False)
class ParsedJoin:
    """A validated join checkpoint as columns, not yet bound to a cell registry.

    Made by :func:`parse_join` (``LabelJoin.parse``); each list is in arrival order:
    pending predictions (id, event time, cell key, score), recently joined ids (id, event
    time) and held labels (id, label, label time).
    """

    counters: dict[str, int]
    pending_ids: list[str]
    pending_times: FloatArray
    pending_keys: list[tuple[str, ...]]
    pending_scores: FloatArray
    recent_ids: list[str]
    recent_times: FloatArray
    held_ids: list[str]
    held_labels: FloatArray
    held_times: FloatArray


#: The checks of a join checkpoint (``label join state is malformed: <where>: <why>``).
CHECK = Check("label join state")


def parse_join(data: Any, key_len: int) -> ParsedJoin:
    """Check a join checkpoint without building anything; raises StateError naming the place."""
    CHECK.mapping(data, "join")
    missing = [k for k in ("counters", "pending", "recent", "held") if k not in data]
    if missing:
        raise CHECK.fail("join", f"missing key {missing[0]!r}")
    counters = data["counters"]
    if type(counters) is not dict or sorted(counters) != sorted(COUNTERS):
        raise CHECK.fail("counters", f"expected an object with exactly {', '.join(COUNTERS)}")
    for name in COUNTERS:
        CHECK.integer(counters[name], f"counters.{name}")
    parsed = _columns(data, key_len, dict(counters))
    if parsed is None:
        _name_the_bad_row(data, key_len)
        raise CHECK.fail("join", "invalid entries")  # not reached: the pass above names the row
    return parsed


def _columns(data: dict[str, Any], key_len: int, counters: dict[str, int]) -> ParsedJoin | None:
    """The checkpoint as columns if every row is valid, else None (checked column-wise)."""
    cols: dict[str, list[tuple[Any, ...]]] = {}
    for name, width, _what in _SECTIONS:
        rows = data[name]
        if type(rows) is not list:
            return None
        if not all(type(r) is list and len(r) == width for r in rows):
            return None
        cols[name] = list(zip(*rows, strict=True)) if rows else [()] * width
        if not set(map(type, cols[name][0])) <= {str}:
            return None
    ids = [eid for name, _w, _x in _SECTIONS for eid in cols[name][0]]
    if len(set(ids)) != len(ids):
        return None
    floats = {
        (name, i): numbers(cols[name][i])
        for name, width, _what in _SECTIONS
        for i in range(1, width)
        if (name, i) != ("pending", 2)
    }
    checked = {k: v for k, v in floats.items() if v is not None}
    if len(checked) != len(floats):
        return None
    keys: dict[tuple[str, ...], tuple[str, ...]] = {}
    pending_keys = []
    for key in cols["pending"][2]:
        if type(key) is not list:
            return None
        t = tuple(key)
        found = keys.get(t)
        if found is None:
            if not is_key(key, key_len):
                return None
            found = keys[t] = t
        pending_keys.append(found)
    return ParsedJoin(
        counters=counters,
        pending_ids=list(cols["pending"][0]),
        pending_times=checked[("pending", 1)],
        pending_keys=pending_keys,
        pending_scores=checked[("pending", 3)],
        recent_ids=list(cols["recent"][0]),
        recent_times=checked[("recent", 1)],
        held_ids=list(cols["held"][0]),
        held_labels=checked[("held", 1)],
        held_times=checked[("held", 2)],
    )


def _name_the_bad_row(data: dict[str, Any], key_len: int) -> None:
    """Walk the rows in order and raise StateError at the first bad one."""
    seen: dict[str, str] = {}
    for name, width, what in _SECTIONS:
        rows = data[name]
        if type(rows) is not list:
            raise CHECK.fail(name, "expected a list")
        for j, row in enumerate(rows):
            at = f"{name}[{j}]"
            if type(row) is not list or len(row) != width or type(row[0]) is not str:
                raise CHECK.fail(at, f"expected {what}")
            first = seen.setdefault(row[0], at)
            if first != at:
                raise CHECK.fail(at, f"id {row[0]!r:.60} already appears at {first}")
            for i in range(1, width):
                if name == "pending" and i == 2:
                    CHECK.key(row[2], at, key_len)
                else:
                    CHECK.number(row[i], at)
