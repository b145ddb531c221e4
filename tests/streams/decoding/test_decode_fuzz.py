"""Property tests of tilewatch.streams.decoding.predictions: whatever a producer sends, decode never
raises and every accepted event satisfies the schema."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tilewatch.streams.decoding.predictions import EventDecoder
from tilewatch.streams.decoding.record import REASONS
from tilewatch.streams.settings import EventFields

FLAT = EventFields(max_event_bytes=4096)
NESTED = EventFields(
    model="meta.model",
    score="out.score",
    timestamp="meta.time",
    dimensions={"segment": "meta.seg", "region": "geo.region"},
    score_min=-5,
    score_max=5,
    max_event_bytes=4096,
)
DECODERS = {"flat": EventDecoder(FLAT), "nested": EventDecoder(NESTED)}

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis directory in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FIELD_NAMES = [
    "model",
    "score",
    "timestamp",
    "segment",
    "region",
    "meta",
    "out",
    "geo",
    "time",
    "seg",
    "label",
    "features",
]


def records(values: list[bytes | None], record_ms: list[int | None]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            topic="t", partition=0, offset=i, timestamp=ts, key=None, value=v, headers=None
        )
        for i, (v, ts) in enumerate(zip(values, record_ms, strict=True))
    ]


def check(decoder: EventDecoder, recs: list[SimpleNamespace]) -> None:
    """The properties every decoded batch has."""
    batch = decoder.decode(recs)
    fields = decoder.fields
    assert len(batch) + len(batch.rejected) == len(recs)
    assert len(batch.keys) == len(batch.event_times) == len(batch.scores)
    for r in batch.rejected:
        assert r.reason in REASONS
        assert r.reason != "internal", r.detail
        assert isinstance(r.detail, str) and r.detail
    rejected_offsets = [r.record.offset for r in batch.rejected]
    assert rejected_offsets == sorted(rejected_offsets)
    lo, hi = float(fields.score_min), float(fields.score_max)
    for key, ts, score in zip(batch.keys, batch.event_times, batch.scores, strict=True):
        assert type(score) is float and math.isfinite(score) and lo <= score <= hi
        assert type(ts) is float and 0.0 < ts < 1e11
        assert type(key) is tuple and len(key) == 1 + len(fields.dimensions)
        assert all(type(part) is str and part for part in key)


# Kafka record timestamps (CreateTime, set by the producer), up to year 5138: beyond that see
# test_record_timestamp_fallback_is_range_checked.
record_ms = st.one_of(st.none(), st.just(-1), st.integers(min_value=0, max_value=10**14 - 1))

# -- (a) arbitrary bytes --------------------------------------------------------------------


@FUZZ
@given(
    values=st.lists(st.one_of(st.none(), st.binary(max_size=300)), min_size=1, max_size=8),
    data=st.data(),
)
def test_arbitrary_bytes(values: list[bytes | None], data: st.DataObject) -> None:
    stamps = data.draw(st.lists(record_ms, min_size=len(values), max_size=len(values)))
    for decoder in DECODERS.values():
        check(decoder, records(values, stamps))


# -- (b) arbitrary JSON-ish values ----------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits: orjson reads a float, or refuses the number
    st.integers(min_value=0, max_value=2**64 - 1),
    st.floats(),  # nan and inf: json.dumps writes NaN/Infinity, which orjson refuses
    st.floats(min_value=-10, max_value=10),
    st.floats(min_value=1e9, max_value=2e12),
    st.text(max_size=20),
    st.sampled_from(["", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00+02:00", "2026-01-01"]),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=25,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@FUZZ
@given(values=st.lists(json_values, min_size=1, max_size=6), data=st.data())
def test_arbitrary_json(values: list[Any], data: st.DataObject) -> None:
    raw: list[bytes | None] = [dumps(v) for v in values]
    stamps = data.draw(st.lists(record_ms, min_size=len(raw), max_size=len(raw)))
    for decoder in DECODERS.values():
        check(decoder, records(raw, stamps))


@FUZZ
@given(
    obj=st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(FIELD_NAMES[:5], json_values),
    ),
    stamp=record_ms,
)
def test_arbitrary_objects_with_the_real_fields(obj: dict[str, Any], stamp: int | None) -> None:
    check(DECODERS["flat"], records([dumps(obj)], [stamp]))


# -- (c) valid events with one field changed ------------------------------------------------

valid_flat = st.fixed_dictionaries(
    {
        "model": st.text(min_size=1, max_size=10),
        "score": st.floats(min_value=0, max_value=1),
        "timestamp": st.floats(min_value=1.0, max_value=9e10),
        "segment": st.text(min_size=1, max_size=5),
        "region": st.text(min_size=1, max_size=5),
    }
)
valid_nested = st.fixed_dictionaries(
    {
        "meta": st.fixed_dictionaries(
            {
                "model": st.text(min_size=1, max_size=10),
                "time": st.floats(min_value=1.0, max_value=9e10),
                "seg": st.text(min_size=1, max_size=5),
            }
        ),
        "out": st.fixed_dictionaries({"score": st.floats(min_value=-5, max_value=5)}),
        "geo": st.fixed_dictionaries({"region": st.text(min_size=1, max_size=5)}),
    }
)
replacement = st.one_of(st.just(...), json_values)  # ``...`` removes the field


def mutate(obj: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """A deep copy of ``obj`` with the field at ``path`` replaced (or removed for ``...``)."""
    out = json.loads(json.dumps(obj))
    cur = out
    for part in path[:-1]:
        cur = cur[part]
    if value is ...:
        cur.pop(path[-1], None)
    else:
        cur[path[-1]] = value
    return out


FLAT_PATHS = [[name] for name in ["model", "score", "timestamp", "segment", "region"]]
NESTED_PATHS = [
    ["meta"],
    ["meta", "model"],
    ["meta", "time"],
    ["meta", "seg"],
    ["out"],
    ["out", "score"],
    ["geo"],
    ["geo", "region"],
]


@FUZZ
@given(
    obj=valid_flat,
    path=st.sampled_from(FLAT_PATHS),
    value=replacement,
    stamp=record_ms,
)
def test_flat_event_with_one_field_changed(
    obj: dict[str, Any], path: list[str], value: Any, stamp: int | None
) -> None:
    decoder = DECODERS["flat"]
    good = orjson.dumps(obj)
    assert len(decoder.decode(records([good], [None]))) == 1
    check(decoder, records([good, dumps(mutate(obj, path, value)), good], [None, stamp, None]))


@FUZZ
@given(
    obj=valid_nested,
    path=st.sampled_from(NESTED_PATHS),
    value=replacement,
    stamp=record_ms,
)
def test_nested_event_with_one_field_changed(
    obj: dict[str, Any], path: list[str], value: Any, stamp: int | None
) -> None:
    decoder = DECODERS["nested"]
    good = orjson.dumps(obj)
    assert len(decoder.decode(records([good], [None]))) == 1
    check(decoder, records([good, dumps(mutate(obj, path, value)), good], [None, stamp, None]))


@FUZZ
@given(obj=valid_flat, path=st.sampled_from(FLAT_PATHS), value=replacement, stamp=record_ms)
def test_fast_path_equals_full_checker(
    obj: dict[str, Any], path: list[str], value: Any, stamp: int | None
) -> None:
    decoder = DECODERS["flat"]
    values: list[bytes | None] = [orjson.dumps(obj), dumps(mutate(obj, path, value))]
    recs = records(values, [stamp, stamp])
    batch = decoder.decode(recs)
    got = iter(zip(batch.keys, batch.event_times, batch.scores, strict=True))
    rejected = iter(batch.rejected)
    for r in recs:
        try:
            expected = decoder._decode_one(r.value, r.timestamp)
        except Exception as exc:
            rej = next(rejected)
            assert (rej.record, rej.reason, rej.detail) == (r, exc.reason, exc.detail[:200])  # type: ignore[attr-defined]
        else:
            assert next(got) == expected


# -- RFC 3339 times -------------------------------------------------------------------------

aware_times = st.datetimes(
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
)


@FUZZ
@given(when=aware_times)
@example(when=datetime(9999, 12, 31, tzinfo=UTC))
def test_rfc3339_times_decode_to_their_epoch_or_are_rejected(when: datetime) -> None:
    value = orjson.dumps({"model": "m", "score": 0.5, "timestamp": when.isoformat()})
    batch = DECODERS["flat"].decode(records([value], [None]))
    expected = when.timestamp()
    if 0.0 < expected < 1e11:
        assert batch.event_times == [pytest.approx(expected, abs=1e-6)]
    else:
        assert [r.reason for r in batch.rejected] == ["bad_timestamp"]


@FUZZ
@given(stamp=st.integers(min_value=1, max_value=2**63 - 1))
@example(stamp=2**63 - 1)
def test_record_timestamp_fallback_is_range_checked(stamp: int) -> None:
    value = orjson.dumps({"model": "m", "score": 0.5})
    check(DECODERS["flat"], records([value], [stamp]))
