"""Checkpoints of :class:`tilewatch.aggregators.labels.join.LabelJoin`: the parsed form and its
validation.

:func:`parse_join` checks a join checkpoint completely (shape, types, finite numbers, cell
keys, ids unique across the pending, recent and held lists) and raises StateError naming the
place, before anything is built; ``LabelJoin.from_parsed`` then cannot fail half-way. The
check runs column-wise (about 1.5 s for a million pending predictions); only when it finds
a problem does a row-by-row pass run to name the first bad row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.codec import Check, is_key, numbers
from tilewatch.aggregators.labels.slots import SlotRing

__all__ = ["COUNTERS", "ParsedJoin", "join_to_dict", "parse_join"]


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
    #: Multi-class (a join with class columns): their width, and, when the checkpoint has
    #: them, the pending predictions' predicted columns, class rows and whether each row was
    #: valid, and the held labels' class names.
    class_width: int | None = None
    pending_predicted: IntArray | None = None
    pending_probs: FloatArray | None = None
    pending_valid: BoolArray | None = None
    held_names: list[Any] | None = None


def join_to_dict(
    counters: dict[str, int],
    p: SlotRing,
    r: SlotRing,
    h: SlotRing,
    keys: list[tuple[str, ...]],
    multiclass: bool,
) -> dict[str, Any]:
    """A join's checkpoint from its counters and its pending, recent and held rings.

    ``pending`` rows are ``[id, event time, cell key, score]``, ``recent`` rows
    ``[id, event time]`` and ``held`` rows ``[id, label, label time]``. With class columns
    (``multiclass``) pending rows add the predicted column and the class row (``[]`` when the
    vector was not valid), held rows the class name (null: none; the label is then null when
    it is not a binary one either).
    """
    po, ro, ho = p.order(), r.order(), h.order()
    key_lists: dict[int, list[str]] = {}
    pending = []
    for eid, t, cell, score in zip(
        p.ids[po].tolist(),
        p.time[po].tolist(),
        p.leaf[po].tolist(),
        p.cols["score"][po].tolist(),
        strict=True,
    ):
        key = key_lists.get(cell)
        if key is None:
            key = key_lists[cell] = list(keys[cell])
        pending.append([eid, t, key, score])
    held = [
        list(row)
        for row in zip(
            h.ids[ho].tolist(), h.cols["label"][ho].tolist(), h.time[ho].tolist(), strict=True
        )
    ]
    if multiclass:
        cols = p.cols
        for row, predicted, valid, probs in zip(
            pending,
            cols["mc_predicted"][po].astype(np.int64).tolist(),
            (cols["mc_valid"][po] > 0).tolist(),
            cols["mc_probs"][po].tolist(),
            strict=True,
        ):
            row += [predicted, probs if valid else []]
        for row, name in zip(held, h.cols["name"][ho].tolist(), strict=True):
            if row[1] != row[1]:  # NaN: JSON has none
                row[1] = None
            row.append(name)
    return {
        "counters": counters,
        "pending": pending,
        "recent": [list(row) for row in zip(r.ids[ro].tolist(), r.time[ro].tolist(), strict=True)],
        "held": held,
    }


#: The checks of a join checkpoint (``label join state is malformed: <where>: <why>``).
CHECK = Check("label join state")


def parse_join(data: Any, key_len: int, class_width: int | None = None) -> ParsedJoin:
    """Check a join checkpoint without building anything; raises StateError naming the place.

    ``class_width``: the class columns of the join being restored (None: no multi-class
    model). A checkpoint written with class columns has pending rows ``[..., predicted
    column, class row]`` and held rows ``[..., class name]``; one written without them (an
    older version, or no multi-class model) loads as binary predictions and labels. Class
    rows of another width than ``class_width`` are refused (``max_classes`` changed).
    """
    CHECK.mapping(data, "join")
    missing = [k for k in ("counters", "pending", "recent", "held") if k not in data]
    if missing:
        raise CHECK.fail("join", f"missing key {missing[0]!r}")
    extra = _class_columns(data, class_width)
    if extra is not None:
        data = {**data, "pending": extra[0], "held": extra[1]}
    counters = data["counters"]
    if type(counters) is not dict or sorted(counters) != sorted(COUNTERS):
        raise CHECK.fail("counters", f"expected an object with exactly {', '.join(COUNTERS)}")
    for name in COUNTERS:
        CHECK.integer(counters[name], f"counters.{name}")
    parsed = _columns(data, key_len, dict(counters))
    if parsed is None:
        _name_the_bad_row(data, key_len)
        raise CHECK.fail("join", "invalid entries")  # not reached: the pass above names the row
    if extra is None:
        return replace(parsed, class_width=class_width)
    columns = dict(extra[2])
    labels = parsed.held_labels.copy()
    labels[columns.pop("held_no_value")] = math.nan
    return replace(parsed, class_width=class_width, held_labels=labels, **columns)


def _class_columns(
    data: dict[str, Any], width: int | None
) -> tuple[list[Any], list[Any], dict[str, Any]] | None:
    """The rows without their class columns and the parsed class columns (None: the
    checkpoint has none); raises StateError at the first bad class column."""
    pending, held = data["pending"], data["held"]
    if type(pending) is not list or type(held) is not list:
        return None  # named by the general checks
    wide = [type(r) is list and len(r) == 6 for r in pending]
    held_wide = [type(r) is list and len(r) == 4 for r in held]
    if not any(wide) and not any(held_wide):
        return None
    if not all(wide) or not all(held_wide):
        raise CHECK.fail("join", "some rows have class columns and some not")
    predicted = np.zeros(len(pending), dtype=np.int64)
    valid = np.zeros(len(pending), dtype=np.bool_)
    probs = np.zeros((len(pending), width or 0))
    for j, row in enumerate(pending):
        col, values = row[4], row[5]
        if type(col) is not int or col < -2:
            raise CHECK.fail(f"pending[{j}]", "expected a class column (an integer >= -2)")
        predicted[j] = col
        if type(values) is not list or (values and width is not None and len(values) != width):
            raise CHECK.fail(
                f"pending[{j}]", f"expected a class row of {width} probabilities or []"
            )
        if values:
            got = numbers(values)
            if got is None:
                raise CHECK.fail(f"pending[{j}]", "class row: expected finite numbers")
            if width is not None:
                probs[j], valid[j] = got, True
    names = []
    for j, row in enumerate(held):
        name, label = row[3], row[1]
        if name is not None and (type(name) is not str or not name):
            raise CHECK.fail(f"held[{j}]", "expected a class name (a non-empty string) or null")
        if label is None and name is None:
            raise CHECK.fail(f"held[{j}]", "a label with neither a value nor a class name")
        names.append(name)
    # Labels that are only class names have no binary value (NaN, checked here as 0).
    no_value = np.array([r[1] is None for r in held], dtype=np.bool_)
    held_rows = [[r[0], 0.0 if r[1] is None else r[1], r[2]] for r in held]
    parsed = {
        "pending_predicted": predicted,
        "pending_probs": probs if width is not None else None,
        "pending_valid": valid,
        "held_names": names,
        "held_no_value": no_value,
    }
    return [r[:4] for r in pending], held_rows, parsed


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
