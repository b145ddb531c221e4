"""The record prelude both decoders share: from a Kafka record to a JSON object and its fields.

Every record a decoder reads goes through the same first steps, each with its reason code
(:data:`REASONS`): a value must be present (``empty_value``), at most the size limit
(``too_large``), valid JSON (``not_json``) and an object (``not_object``); fields are found by
dotted paths; times are epoch seconds, epoch milliseconds or RFC 3339 (``bad_timestamp``), and
a record that fails becomes a :class:`Rejected` with its reason and a short detail. The
decoders' inline fast paths (``events``, ``labels``) check the common shape without these
functions and hand everything else to their full checkers, which use them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from tilewatch.streams.errors import DecodeError

__all__ = [
    "MAX_DETAIL",
    "MS_THRESHOLD",
    "REASONS",
    "FieldPath",
    "RecordLike",
    "Rejected",
    "dig",
    "field_of",
    "json_object",
    "parse_timestamp",
    "record_timestamp_ms",
    "rejection",
    "short",
    "split_path",
]

#: Every reason code a record can be rejected with (the ``reason`` label of
#: ``tilewatch_invalid_events_total``).
REASONS: dict[str, str] = {
    "empty_value": "the record has no value (a tombstone)",
    "too_large": "the value is larger than [events].max_event_bytes",
    "not_json": "the value is not valid UTF-8 JSON",
    "not_object": "the JSON value is not an object",
    "missing_field": "a required field (model, score) is absent or null",
    "wrong_type": "a field has the wrong JSON type",
    "bad_score": "the score is not finite or outside [score_min, score_max]",
    "bad_timestamp": "the timestamp is not epoch seconds/milliseconds or RFC 3339 with offset",
    "bad_dimension": "a dimension value is not a string or an integer",
    "bad_scores": "the score is absent and the class probabilities ([events] scores) are not a "
    "non-empty object or list of numbers to take the top-class probability from",
    "bad_label": "a label record's label is not 0/1 (classification) or a finite number",
    "internal": "an unexpected error while checking the event (a bug: please report it)",
}

#: Numbers above this are epoch milliseconds, below it epoch seconds (1e11 s is year 5138).
MS_THRESHOLD = 1e11
#: Longest ``detail`` kept in a :class:`Rejected`.
MAX_DETAIL = 200

#: A field's dotted path, and its parts when it is nested (None for a top-level key).
FieldPath = tuple[str, tuple[str, ...] | None]


class RecordLike(Protocol):
    """The part of a Kafka consumer record the decoders read (kafka-python's fits)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]] | None: ...


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that is not a valid event, with why."""

    record: RecordLike
    reason: str
    detail: str


def rejection(record: RecordLike, exc: Exception) -> Rejected:
    """The rejection of a record whose full checker raised ``exc``.

    A :class:`~tilewatch.streams.errors.DecodeError` gives its reason; anything else is a bug
    in the checks, counted as ``internal`` rather than stopping the consumer.
    """
    if isinstance(exc, DecodeError):
        return Rejected(record, exc.reason, exc.detail[:MAX_DETAIL])
    return Rejected(record, "internal", repr(exc)[:MAX_DETAIL])


def short(value: Any) -> str:
    """A value as JSON (what the producer sent), cut to 60 characters for a rejection's detail.

    >>> short(True), short("0.7"), short(None), short({"a": [1, 2.5]}), short(float("nan"))
    ('true', '"0.7"', 'null', '{"a": [1, 2.5]}', 'NaN')
    """
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:  # a circular structure: cannot come from JSON, but never fail here
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def split_path(path: str) -> FieldPath:
    """A dotted field path, split once so each record's lookup is a dict get or a dig."""
    parts = tuple(path.split("."))
    return (path, None) if len(parts) == 1 else (path, parts)


def dig(obj: dict[str, Any], parts: tuple[str, ...]) -> Any:
    """The value at nested ``parts``; None where a step is absent or not an object."""
    cur: Any = obj
    for part in parts:
        if type(cur) is not dict:
            return None
        cur = cur.get(part)
    return cur


def field_of(obj: dict[str, Any], path: FieldPath) -> Any:
    """The value of a field (None when absent).

    Examples
    --------
    >>> obj = {"model": "m", "meta": {"region": "eu"}}
    >>> field_of(obj, split_path("model")), field_of(obj, split_path("meta.region"))
    ('m', 'eu')
    >>> field_of(obj, split_path("model.name")) is None
    True
    """
    name, parts = path
    return obj.get(name) if parts is None else dig(obj, parts)


def json_object(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    """A record's value parsed as a JSON object, or DecodeError with the first failed step.

    Examples
    --------
    >>> json_object(b'{"a": 1}', 100)
    {'a': 1}
    >>> json_object(b"[1]", 100)
    Traceback (most recent call last):
    ...
    tilewatch.streams.errors.DecodeError: not_object: expected a JSON object, got a list
    """
    if value is None:
        raise DecodeError("empty_value", "the record has no value")
    if len(value) > max_bytes:
        raise DecodeError(
            "too_large", f"value has {len(value)} bytes, more than the {max_bytes} allowed"
        )
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("not_json", f"not valid JSON: {exc}") from None
    if type(obj) is not dict:
        raise DecodeError("not_object", f"expected a JSON object, got a {type(obj).__name__}")
    return obj


def record_timestamp_ms(record_ms: int | None, name: str) -> int:
    """The Kafka record's timestamp, for a record whose time field ``name`` is absent."""
    if record_ms is None or record_ms <= 0:
        raise DecodeError("bad_timestamp", f"{name}: absent, and the Kafka record has no timestamp")
    return record_ms


def parse_timestamp(value: Any, name: str = "timestamp") -> float:
    """Epoch seconds from epoch seconds, epoch milliseconds or an RFC 3339 string.

    Examples
    --------
    >>> parse_timestamp(1767225600.5), parse_timestamp(1767225600500)
    (1767225600.5, 1767225600.5)
    >>> parse_timestamp("2026-01-01T00:00:00Z")
    1767225600.0
    >>> parse_timestamp("2026-01-01T00:00:00")
    Traceback (most recent call last):
    ...
    tilewatch.streams.errors.DecodeError: bad_timestamp: timestamp: RFC 3339 time needs a UTC ...
    """
    t = type(value)
    if t is float or t is int:
        ts = float(value)
        if ts >= MS_THRESHOLD:
            ts /= 1000.0
        if not (0.0 < ts < MS_THRESHOLD):
            raise DecodeError(
                "bad_timestamp",
                f"{name}: expected epoch seconds or milliseconds, got {short(value)}",
            )
        return ts
    if t is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise DecodeError(
                "bad_timestamp", f"{name}: expected an RFC 3339 time, got {short(value)}"
            ) from None
        if parsed.tzinfo is None:
            raise DecodeError(
                "bad_timestamp", f"{name}: RFC 3339 time needs a UTC offset, got {short(value)}"
            )
        ts = parsed.timestamp()
        if not (0.0 < ts < MS_THRESHOLD):
            raise DecodeError(
                "bad_timestamp", f"{name}: RFC 3339 time out of range, got {short(value)}"
            )
        return ts
    raise DecodeError(
        "wrong_type", f"{name}: expected a number or an RFC 3339 string, got {short(value)}"
    )
