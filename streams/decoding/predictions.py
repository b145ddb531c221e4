"""Decoding and validation of prediction events: Kafka record values to columns.

Each record is decoded once with orjson and checked; a valid one adds its cell key, event time
and score to the batch's columns, an invalid one becomes a
:class:`~tilewatch.streams.decoding.record.Rejected` with a reason code from
:data:`~tilewatch.streams.decoding.record.REASONS` and a human-readable detail. Nothing a
producer sends escapes as an exception: an unexpected error inside the checks is itself a
rejection (``internal``).

Per-event work is limited to what must be done per event (parse, a few dict lookups and type
checks); statistics are computed per batch by ``aggregators``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

from tilewatch.aggregators.cells.settings import UNKNOWN
from tilewatch.streams.decoding.record import (
    MS_THRESHOLD,
    RecordLike,
    Rejected,
    dig,
    field_of,
    json_object,
    parse_timestamp,
    record_timestamp_ms,
    rejection,
    short,
    split_path,
)
from tilewatch.streams.errors import DecodeError
from tilewatch.streams.settings import EventFields

__all__ = ["OPTIONAL_COLUMNS", "DecodedBatch", "EventDecoder", "top_probability"]

#: Optional columns an :class:`EventDecoder` can collect, and the EventFields attribute
#: holding each one's path.
OPTIONAL_COLUMNS: dict[str, str] = {
    "event_id": "event_id",
    "label": "label",
    "latency": "latency",
    "model_version": "model_version",
    "class_scores": "scores",
    "prediction": "prediction",
    "embedding": "embedding",
    "attributions": "attributions",
}
_COLUMN_LISTS = {
    "class_scores": "class_scores",
    "prediction": "predictions",
    "event_id": "event_ids",
    "label": "labels",
    "latency": "latencies",
    "model_version": "model_versions",
    "embedding": "embeddings",
    "attributions": "attributions",
}


@dataclass(slots=True)
class DecodedBatch:
    """Valid events of a batch as columns, plus the rejected records."""

    keys: list[tuple[str, ...]] = field(default_factory=list)
    event_times: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: With ``capture``: each valid event's prediction value and features object (or None).
    predictions: list[Any] = field(default_factory=list)
    features: list[Any] = field(default_factory=list)
    #: Optional columns asked for with ``columns``: the raw JSON value of each valid event
    #: (None when absent); checked per batch by the stage that uses them.
    event_ids: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    latencies: list[Any] = field(default_factory=list)
    model_versions: list[Any] = field(default_factory=list)
    #: With ``[events] scores``: each valid event's raw class probabilities (None when absent),
    #: checked and vectorised per batch by :mod:`tilewatch.streams.decoding.class_scores`.
    class_scores: list[Any] = field(default_factory=list)
    #: With ``[events] embedding`` / ``attributions``: each valid event's raw vector and
    #: attributions object (None when absent), checked per batch (``docs/embeddings.md``).
    embeddings: list[Any] = field(default_factory=list)
    attributions: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


class EventDecoder:
    """Turns record values into validated event columns.

    Parameters
    ----------
    fields
        Where each part of the event lives in the JSON object, and the score range.

    Examples
    --------
    >>> from types import SimpleNamespace as Rec
    >>> dec = EventDecoder(EventFields())
    >>> ok = Rec(value=b'{"model":"m","score":0.5,"segment":"a","timestamp":1767225600}',
    ...          timestamp=None, topic="t", partition=0, offset=0, key=None, headers=[])
    >>> bad = Rec(value=b'[1, 2]', timestamp=None, topic="t", partition=0, offset=1, key=None,
    ...           headers=[])
    >>> batch = dec.decode([ok, bad])
    >>> batch.keys, batch.event_times, batch.scores
    ([('m', 'a', 'unknown')], [1767225600.0], [0.5])
    >>> [(r.reason, r.detail) for r in batch.rejected]
    [('not_object', 'expected a JSON object, got a list')]
    """

    def __init__(
        self, fields: EventFields, capture: bool = False, columns: Sequence[str] = ()
    ) -> None:
        self.fields = fields
        self.capture = capture
        unknown = set(columns) - set(OPTIONAL_COLUMNS)
        if unknown:
            raise ValueError(f"unknown optional columns {sorted(unknown)}")
        if fields.scores is not None:  # a multi-class model: always collect the vectors
            columns = (*columns, "class_scores")
        elif "class_scores" in columns:
            raise ValueError("the class_scores column needs [events] scores")
        #: Optional raw columns collected besides the cell key, time and score.
        if capture:  # the captured predictions already fill that list
            columns = tuple(c for c in columns if c != "prediction")
        self.columns = tuple(c for c in OPTIONAL_COLUMNS if c in columns)
        self._column_paths = [
            split_path(getattr(fields, OPTIONAL_COLUMNS[c])) for c in self.columns
        ]
        self._prediction = split_path(fields.prediction)
        self._features = split_path(fields.features)
        self._model = split_path(fields.model)
        self._score = split_path(fields.score)
        self._scores = None if fields.scores is None else split_path(fields.scores)
        self._timestamp = split_path(fields.timestamp)
        self._dims = [split_path(path) for path in fields.dimensions.values()]
        self._dim_names = list(fields.dimensions)
        self._lo, self._hi = float(fields.score_min), float(fields.score_max)
        self._max_bytes = fields.max_event_bytes
        self._fast, self._fast_values = self._build_fast()

    def decode(self, records: Iterable[RecordLike]) -> DecodedBatch:
        """Decode a batch; never raises for anything a producer can send."""
        out = DecodedBatch()
        extra = (out.predictions.append, out.features.append) if self.capture else (None, None)
        values = getattr(records, "values", None)  # a run that read its values already
        fast = self._fast if values is None else partial(self._fast_values, values)
        fast(
            records,
            out.keys.append,
            out.event_times.append,
            out.scores.append,
            out.rejected,
            *extra,
            *(getattr(out, _COLUMN_LISTS[c]).append for c in self.columns),
        )
        return out

    def _extras(self, value: bytes) -> tuple[Any, Any]:
        """Prediction and features of a record the full checker accepted (the rare path)."""
        obj = orjson.loads(value)
        name, parts = self._prediction
        pred = obj.get(name) if parts is None else dig(obj, parts)
        name, parts = self._features
        feats = obj.get(name) if parts is None else dig(obj, parts)
        return pred, feats if type(feats) is dict else None

    def _columns_of(self, value: bytes) -> tuple[Any, ...]:
        """The optional columns of a record the full checker accepted (the rare path)."""
        obj = orjson.loads(value)
        return tuple(
            obj.get(name) if parts is None else dig(obj, parts)
            for name, parts in self._column_paths
        )

    def _build_fast(self) -> Any:
        """Compile the batch loop for the configured field paths.

        The common shape (top-level or nested fields present, float score and epoch-second
        timestamp, non-empty string dimensions) is checked inline; anything else falls back, in
        place so the partition's order is kept, to :meth:`_decode_one`, which accepts the other
        valid forms (integer score, milliseconds, RFC 3339, absent dimension) or says exactly
        what is wrong. Paths enter the generated source only as ``repr`` literals.
        """

        def access(path: str) -> str:
            return "obj" + "".join(f"[{part!r}]" for part in path.split("."))

        def optional(path: str) -> str:
            """An absent or non-object step gives None; ``dig`` never raises."""
            parts = tuple(path.split("."))
            return f"obj.get({parts[0]!r})" if len(parts) == 1 else f"dig(obj, {parts!r})"

        if self.capture:
            extra_fast = (
                f"            add_pred({optional(self.fields.prediction)})\n"
                f"            feats = {optional(self.fields.features)}\n"
                "            add_feats(feats if type(feats) is dict else None)\n"
            )
            extra_slow = (
                "        try:\n"
                "            p, f = extras(v)\n"
                "        except Exception:\n"
                "            p, f = None, None\n"
                "        add_pred(p)\n"
                "        add_feats(f)\n"
            )
        else:
            extra_fast = extra_slow = ""
        names = [f"add_c{i}" for i in range(len(self.columns))]
        for add, column in zip(names, self.columns, strict=True):
            path = getattr(self.fields, OPTIONAL_COLUMNS[column])
            extra_fast += f"            {add}({optional(path)})\n"
        if names:
            extra_slow += (
                "        try:\n"
                "            cols = columns_of(v)\n"
                "        except Exception:\n"
                f"            cols = (None,) * {len(names)}\n"
            )
            extra_slow += "".join(f"        {add}(cols[{i}])\n" for i, add in enumerate(names))
        cargs = "".join(f", {add}=None" for add in names)

        if self.fields.scores is None:
            score_line = f"            score = {access(self.fields.score)}\n"
        else:  # absent score: the top-class probability (a bad vector goes the slow way)
            score_line = (
                f"            score = {optional(self.fields.score)}\n"
                "            if score is None:\n"
                f"                vector = {optional(self.fields.scores)}\n"
                "                score = max(vector) if type(vector) is list else top(vector)\n"
            )
        dims = list(self.fields.dimensions.values())
        dim_lines = "".join(f"            d{i} = {access(p)}\n" for i, p in enumerate(dims))
        dim_checks = "".join(f" and type(d{i}) is str and d{i}" for i in range(len(dims)))
        key = "(model" + "".join(f", d{i}" for i in range(len(dims))) + ",)"

        def body(slow_record: str) -> str:
            """The loop body; ``slow_record`` names the record where the fast path fails."""
            return f"""        try:
            obj = loads(v) if len(v) <= max_bytes else None
            model = {access(self.fields.model)}
{score_line}            ts = {access(self.fields.timestamp)}
{dim_lines}        except Exception:
            ok = False
        else:
            ok = (type(model) is str and model and type(score) is float and lo <= score <= hi
                  and type(ts) is float and 0.0 < ts < ms_threshold{dim_checks})
        if ok:
            add_key({key})
            add_time(ts)
            add_score(score)
{extra_fast}            continue
{slow_record}        try:
            k, t, s = one(v, rec.timestamp)
        except Exception as exc:  # a DecodeError's reason, or "internal" (a bug)
            rejected.append(rejection(rec, exc))
            continue
        add_key(k)
        add_time(t)
        add_score(s)
{extra_slow}"""

        src = f"""
def fast(records, add_key, add_time, add_score, rejected, add_pred=None, add_feats=None{cargs}):
    for rec in records:
        v = rec.value
{body("")}
def fast_values(values, records, add_key, add_time, add_score, rejected, add_pred=None,
                add_feats=None{cargs}):
    for i, v in enumerate(values):
{body("        rec = records[i]" + chr(10))}"""
        env: dict[str, Any] = {
            "loads": orjson.loads,
            "max_bytes": self._max_bytes,
            "lo": self._lo,
            "hi": self._hi,
            "ms_threshold": MS_THRESHOLD,
            "one": self._decode_one,
            "rejection": rejection,
            "extras": self._extras,
            "columns_of": self._columns_of,
            "dig": dig,
            "top": _fast_top,
        }
        exec(compile(src, f"<tilewatch decoder {self.fields.model}>", "exec"), env)
        return env["fast"], env["fast_values"]

    def _decode_one(
        self, value: bytes | None, record_ms: int | None
    ) -> tuple[tuple[str, ...], float, float]:
        """The full checker. Field lookups are inlined rather than calls to ``field_of``: this
        is the path of every event with an integer score or a millisecond timestamp."""
        obj = json_object(value, self._max_bytes)

        name, parts = self._model
        model = obj.get(name) if parts is None else dig(obj, parts)
        if type(model) is not str or not model:
            if model is None:
                raise DecodeError("missing_field", f"{name}: required field is missing")
            raise DecodeError(
                "wrong_type", f"{name}: expected a non-empty string, got {short(model)}"
            )

        name, parts = self._score
        raw_score = obj.get(name) if parts is None else dig(obj, parts)
        t = type(raw_score)
        if t is float or t is int:
            score = float(raw_score)  # type: ignore[arg-type]
        elif raw_score is None and self._scores is not None:
            score = top_probability(field_of(obj, self._scores), self._scores[0])
        elif raw_score is None:
            raise DecodeError("missing_field", f"{name}: required field is missing")
        else:
            raise DecodeError("wrong_type", f"{name}: expected a number, got {short(raw_score)}")
        if not (self._lo <= score <= self._hi) or score - score != 0.0:
            raise DecodeError(
                "bad_score",
                f"{name}: expected a finite number in [{self._lo}, {self._hi}], "
                f"got {short(raw_score)}",
            )

        name, parts = self._timestamp
        raw_ts = obj.get(name) if parts is None else dig(obj, parts)
        if raw_ts is None:
            ts = record_timestamp_ms(record_ms, name) / 1000.0
            if ts >= MS_THRESHOLD:
                raise DecodeError(
                    "bad_timestamp",
                    f"{name}: absent, and the Kafka record timestamp {record_ms} is out of range",
                )
        elif type(raw_ts) is float and 0.0 < raw_ts < MS_THRESHOLD:
            ts = raw_ts
        else:
            ts = parse_timestamp(raw_ts, name)

        key = [model]
        for (name, parts), dim in zip(self._dims, self._dim_names, strict=True):
            v = obj.get(name) if parts is None else dig(obj, parts)
            if type(v) is str:
                key.append(v or UNKNOWN)
            elif v is None:
                key.append(UNKNOWN)
            elif type(v) is int:
                key.append(str(v))
            else:
                raise DecodeError(
                    "bad_dimension",
                    f"{name}: dimension {dim!r} expected a string or an integer, got {short(v)}",
                )
        return tuple(key), ts, score


def _fast_top(vector: Any) -> Any:
    """The largest value of a probability object or list; anything odd raises or gives a
    non-float, which sends the record to the full checker."""
    return max(vector.values()) if type(vector) is dict else max(vector)


def top_probability(vector: Any, name: str) -> float:
    """The top-class probability of an event without a score, or DecodeError ``bad_scores``.

    Examples
    --------
    >>> top_probability({"a": 0.2, "b": 0.8}, "probs"), top_probability([0, 1], "probs")
    (0.8, 1.0)
    >>> top_probability({"a": "x"}, "probs")
    Traceback (most recent call last):
    ...
    tilewatch.streams.errors.DecodeError: bad_scores: probs: the score is absent and ...
    """
    values = list(vector.values()) if type(vector) is dict else vector
    if type(values) is list and values and all(type(v) in (float, int) for v in values):
        return float(max(values))
    raise DecodeError(
        "bad_scores",
        f"{name}: the score is absent and the class probabilities are not a non-empty object "
        f"or list of numbers, got {short(vector)}",
    )
