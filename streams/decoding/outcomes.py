"""Decoding of label records from the outcomes topic.

A label record is a JSON object with the prediction's event id, the label and optionally the
time the outcome was known::

    {"event_id": "m1-000000123", "label": 1, "timestamp": 1767229200.0}

A record that is not a valid label becomes a :class:`~tilewatch.streams.decoding.record.Rejected`
with a reason from :data:`tilewatch.streams.decoding.record.REASONS`, is dead-lettered like a bad
prediction and counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tilewatch.streams.decoding.record import (
    MS_THRESHOLD,
    RecordLike,
    Rejected,
    field_of,
    json_object,
    parse_timestamp,
    record_timestamp_ms,
    rejection,
    short,
    split_path,
)
from tilewatch.streams.errors import DecodeError
from tilewatch.streams.settings import LabelTopic

__all__ = ["LabelBatch", "LabelDecoder"]

_MAX_ID = 256


@dataclass(slots=True)
class LabelBatch:
    """Valid labels of a batch as columns, plus the rejected records."""

    event_ids: list[str] = field(default_factory=list)
    #: Floats; with class names on, a class name's raw value (a string, integer or boolean).
    labels: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.event_ids)


class LabelDecoder:
    """Turns outcome-topic record values into label columns.

    Parameters
    ----------
    fields
        Where the event id, the label and the time are in the record.
    classification
        Labels must be 0/1 (or true/false); otherwise any finite number.
    max_bytes
        Larger values are rejected as ``too_large``.
    class_names
        Multi-class models share the topic: a label may also be a class name (a non-empty
        string of at most 256 characters, an integer or a boolean), kept as it is; whether it
        fits its prediction is known at the join.

    Examples
    --------
    >>> from types import SimpleNamespace as Rec
    >>> dec = LabelDecoder(LabelTopic("outcomes"), classification=True)
    >>> def rec(v, off): return Rec(value=v, timestamp=1767225600000, topic="o", partition=0,
    ...                           offset=off, key=None, headers=[])
    >>> batch = dec.decode([rec(b'{"event_id":"a","label":1}', 0),
    ...                     rec(b'{"event_id":"b","label":3}', 1)])
    >>> batch.event_ids, batch.labels, batch.times
    (['a'], [1.0], [1767225600.0])
    >>> [(r.reason, r.detail) for r in batch.rejected]
    [('bad_label', 'label: expected 0, 1, true or false, got 3')]
    """

    def __init__(
        self,
        fields: LabelTopic,
        classification: bool = True,
        max_bytes: int = 1_048_576,
        class_names: bool = False,
    ) -> None:
        self.fields = fields
        self.classification = classification
        self.max_bytes = max_bytes
        self.class_names = class_names
        self._id = split_path(fields.event_id)
        self._label = split_path(fields.label)
        self._time = split_path(fields.timestamp)

    def decode(self, records: Iterable[RecordLike]) -> LabelBatch:
        """Decode a batch; never raises for anything a producer can send.

        The common shape (top-level fields, a string id, a 0/1 or finite label, a float
        epoch-seconds time) is accepted inline; anything else goes, in place, through the
        full checker, which accepts the other valid forms or names the reason.
        """
        out = LabelBatch()
        add_id, add_label, add_time = out.event_ids.append, out.labels.append, out.times.append
        loads, max_bytes, classification = orjson.loads, self.max_bytes, self.classification
        id_name, label_name, time_name = self._id[0], self._label[0], self._time[0]
        flat = self._id[1] is None and self._label[1] is None and self._time[1] is None
        flat = flat and not self.class_names  # class names: always the full checker
        seq = records if isinstance(records, Sequence) else list(records)
        values = getattr(seq, "values", None)  # a run that read its values already
        if values is None:
            values = [rec.value for rec in seq]
        v: Any  # None or too large: an exception, then the full checker
        for i, v in enumerate(values):
            if flat:
                try:
                    obj: Any = loads(v) if len(v) <= max_bytes else None
                    event_id = obj.get(id_name)
                    raw = obj.get(label_name)
                    t = obj.get(time_name)
                    kind = type(raw)
                    ok = (
                        type(event_id) is str
                        and 0 < len(event_id) <= _MAX_ID
                        and type(t) is float
                        and 0.0 < t < MS_THRESHOLD
                        and (
                            (kind is int or kind is float or kind is bool)
                            and (raw == 0 or raw == 1)
                            if classification
                            else (kind is int or kind is float) and raw - raw == 0
                        )
                    )
                    label = float(raw) if ok else 0.0
                except Exception:
                    ok = False
                if ok:
                    add_id(event_id)
                    add_label(label)
                    add_time(t)
                    continue
            rec = seq[i]
            try:
                event_id, label, t = self._one(v, rec.timestamp)
            except Exception as exc:  # a DecodeError's reason, or "internal" (a bug)
                out.rejected.append(rejection(rec, exc))
                continue
            add_id(event_id)
            add_label(label)
            add_time(t)
        return out

    def _one(self, value: bytes | None, record_ms: int | None) -> tuple[str, Any, float]:
        obj = json_object(value, self.max_bytes)
        name = self._id[0]
        raw_id = field_of(obj, self._id)
        if raw_id is None:
            raise DecodeError("missing_field", f"{name}: required field is missing")
        if type(raw_id) is int:
            event_id = str(raw_id)
        elif type(raw_id) is str and raw_id and len(raw_id) <= _MAX_ID:
            event_id = raw_id
        else:
            raise DecodeError(
                "wrong_type",
                f"{name}: expected a non-empty string of at most {_MAX_ID} characters or an "
                f"integer, got {short(raw_id)}",
            )
        name = self._label[0]
        raw = field_of(obj, self._label)
        if raw is None:
            raise DecodeError("missing_field", f"{name}: required field is missing")
        label: Any
        if self.class_names and (
            (type(raw) is str and 0 < len(raw) <= _MAX_ID) or type(raw) in (int, bool)
        ):
            label = raw  # a class name (or a binary label spelled as one)
        else:
            label = _label(raw, name, self.classification, self.class_names)
        name = self._time[0]
        raw_t = field_of(obj, self._time)
        if raw_t is None:
            # Read like a time field (a number below MS_THRESHOLD counts as seconds); the
            # prediction decoder always reads the record's timestamp as milliseconds.
            t = parse_timestamp(record_timestamp_ms(record_ms, name), name)
        else:
            t = parse_timestamp(raw_t, name)
        return event_id, label, t


def _label(raw: Any, name: str, classification: bool, class_names: bool = False) -> float:
    t = type(raw)
    if classification:
        if t is bool or ((t is int or t is float) and raw in (0, 1)):
            return float(raw)
        expected = "a class name, 0, 1, true or false" if class_names else "0, 1, true or false"
        raise DecodeError("bad_label", f"{name}: expected {expected}, got {short(raw)}")
    if (t is int or t is float) and math.isfinite(raw):
        return float(raw)
    raise DecodeError("bad_label", f"{name}: expected a finite number, got {short(raw)}")
