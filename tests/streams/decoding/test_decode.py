"""Tests of tilewatch.streams.decoding.predictions: reason codes, timestamps, scores, dimensions,
dotted paths, and the fast path agreeing with the full checker."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from confluent_kafka import Message

from tilewatch.aggregators.cells.settings import UNKNOWN
from tilewatch.streams.confluent_record import ConfluentRun
from tilewatch.streams.decoding.predictions import DecodedBatch, EventDecoder
from tilewatch.streams.decoding.record import REASONS
from tilewatch.streams.errors import DecodeError
from tilewatch.streams.settings import EventFields

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
BASE: dict[str, Any] = {
    "model": "m",
    "score": 0.5,
    "segment": "a",
    "region": "eu",
    "timestamp": T0,
}


def rec(
    value: bytes | None,
    *,
    offset: int = 0,
    timestamp: int | None = None,
    key: bytes | None = None,
) -> SimpleNamespace:
    return SimpleNamespace(
        topic="t",
        partition=0,
        offset=offset,
        timestamp=timestamp,
        key=key,
        value=value,
        headers=[],
    )


def event(**changes: Any) -> bytes:
    """``BASE`` with ``changes``; a change to ``...`` removes the field."""
    obj = {**BASE, **changes}
    return orjson.dumps({k: v for k, v in obj.items() if v is not ...})


def decode_one(
    value: bytes | None, record_ms: int | None = None, fields: EventFields | None = None
) -> DecodedBatch:
    """Decode one record through the public batch API."""
    dec = EventDecoder(fields or EventFields())
    return dec.decode([rec(value, timestamp=record_ms)])


def accepted(
    value: bytes | None, record_ms: int | None = None, fields: EventFields | None = None
) -> tuple[tuple[str, ...], float, float]:
    batch = decode_one(value, record_ms, fields)
    assert not batch.rejected, [(r.reason, r.detail) for r in batch.rejected]
    assert len(batch) == 1
    return batch.keys[0], batch.event_times[0], batch.scores[0]


def rejected(
    value: bytes | None, record_ms: int | None = None, fields: EventFields | None = None
) -> tuple[str, str]:
    batch = decode_one(value, record_ms, fields)
    assert len(batch) == 0, (batch.keys, batch.event_times, batch.scores)
    assert len(batch.rejected) == 1
    return batch.rejected[0].reason, batch.rejected[0].detail


# -- every reason code ----------------------------------------------------------------------

REASON_CASES: list[tuple[str, bytes | None, str]] = [
    ("empty_value", None, "no value"),
    ("too_large", b'{"model": "' + b"x" * 2_000_000 + b'"}', "bytes"),
    ("not_json", b"{not json", "JSON"),
    ("not_object", b"[1, 2, 3]", "list"),
    ("missing_field", event(model=...), "model"),
    ("missing_field", event(score=...), "score"),
    ("missing_field", event(model=None), "model"),
    ("wrong_type", event(model=5), "model"),
    ("wrong_type", event(model=""), "model"),
    ("wrong_type", event(score="0.5"), "score"),
    ("wrong_type", event(timestamp=[1]), "timestamp"),
    ("bad_score", event(score=1.5), "score"),
    ("bad_timestamp", event(timestamp=-1.0), "timestamp"),
    ("bad_dimension", event(segment=1.5), "segment"),
]


@pytest.mark.parametrize(
    ("reason", "value", "named"),
    REASON_CASES,
    ids=[f"{r}-{i}" for i, (r, _v, _n) in enumerate(REASON_CASES)],
)
def test_reason_codes(reason: str, value: bytes | None, named: str) -> None:
    got, detail = rejected(value)
    assert got == reason
    assert named in detail
    assert len(detail) <= 200


def test_every_reason_but_internal_is_reachable() -> None:
    # bad_label is a reason of label records only (tests/streams/test_label_decode.py);
    # bad_scores needs [events] scores (tests/streams/decoding/test_class_scores.py).
    expected = set(REASONS) - {"internal", "bad_label", "bad_scores"}
    assert {r for r, _v, _n in REASON_CASES} == expected


def test_internal_error_becomes_a_rejection() -> None:
    dec = EventDecoder(EventFields())

    def boom(value: bytes | None, record_ms: int | None) -> Any:
        raise ZeroDivisionError("bug")

    dec._decode_one = boom  # type: ignore[method-assign]
    dec._fast, dec._fast_values = dec._build_fast()  # the loops bind _decode_one at build
    batch = dec.decode([rec(b"[]"), rec(event())])
    assert len(batch) == 1  # the fast path does not need _decode_one
    assert [(r.reason, r.detail) for r in batch.rejected] == [
        ("internal", "ZeroDivisionError('bug')")
    ]


def test_decode_error_is_raised_by_decode_one_with_reason_and_detail() -> None:
    dec = EventDecoder(EventFields())
    with pytest.raises(DecodeError) as info:
        dec._decode_one(event(score=2.0), None)
    assert info.value.reason == "bad_score"
    assert "score" in info.value.detail
    assert str(info.value).startswith("bad_score: score:")


def test_long_detail_is_cut() -> None:
    reason, detail = rejected(event(model=["x" * 1000]))
    assert reason == "wrong_type"
    assert len(detail) <= 200


# -- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (T0 + 0.25, T0 + 0.25),  # epoch seconds, float
        (int(T0), T0),  # epoch seconds, int
        (int(T0 * 1000) + 500, T0 + 0.5),  # epoch milliseconds, int
        (T0 * 1000 + 500.0, T0 + 0.5),  # epoch milliseconds, float
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01T00:00:00.250Z", T0 + 0.25),
        ("2026-01-01T02:00:00+02:00", T0),
        ("2026-01-01T00:00:00+02:00", T0 - 7200),
        ("2025-12-31T19:00:00-05:00", T0),
    ],
)
def test_timestamp_forms(raw: Any, expected: float) -> None:
    _key, ts, _score = accepted(event(timestamp=raw))
    assert ts == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("raw", "reason", "fragment"),
    [
        ("2026-01-01T00:00:00", "bad_timestamp", "needs a UTC offset"),
        ("2026-01-01", "bad_timestamp", "needs a UTC offset"),
        ("yesterday", "bad_timestamp", "expected an RFC 3339 time"),
        ("", "bad_timestamp", "expected an RFC 3339 time"),
        ("2026-01-01T25:00:00Z", "bad_timestamp", "expected an RFC 3339 time"),
        ("1969-12-31T23:59:59Z", "bad_timestamp", ""),  # the detail wording is free here
        (0, "bad_timestamp", "expected epoch seconds"),
        (-5, "bad_timestamp", "expected epoch seconds"),
        (1.5e300, "bad_timestamp", "expected epoch seconds"),
        (2**64 - 1, "bad_timestamp", "expected epoch seconds"),  # largest int orjson keeps
        (True, "wrong_type", "expected a number or an RFC 3339 string"),
        ({"s": 1}, "wrong_type", "expected a number or an RFC 3339 string"),
    ],
)
def test_bad_timestamps(raw: Any, reason: str, fragment: str) -> None:
    got, detail = rejected(event(timestamp=raw))
    assert got == reason
    assert detail.startswith("timestamp: ")
    assert fragment in detail


def test_rfc3339_after_year_5138_is_not_read_as_milliseconds() -> None:
    # 9999-12-31T00:00:00Z is 253402214400 s; it comes out as 253402214.4 s (1978-01-12).
    reason, detail = rejected(event(timestamp="9999-12-31T00:00:00Z"))
    assert reason == "bad_timestamp"
    assert "timestamp" in detail


def test_absent_timestamp_falls_back_to_the_record_timestamp() -> None:
    _key, ts, _score = accepted(event(timestamp=...), record_ms=1767225600123)
    assert ts == pytest.approx(1767225600.123)
    _key, ts, _score = accepted(event(timestamp=None), record_ms=1767225600000)
    assert ts == T0


@pytest.mark.parametrize("record_ms", [None, -1, 0])
def test_absent_timestamp_without_record_timestamp_is_rejected(record_ms: int | None) -> None:
    reason, detail = rejected(event(timestamp=...), record_ms=record_ms)
    assert reason == "bad_timestamp"
    assert detail == "timestamp: absent, and the Kafka record has no timestamp"


@pytest.mark.parametrize("record_ms", [10**14, 2**63 - 1])
def test_absent_timestamp_with_out_of_range_record_timestamp_is_rejected(record_ms: int) -> None:
    # 2**63 - 1 ms is 9.2e15 s, about 292 million years from now.
    reason, detail = rejected(event(timestamp=...), record_ms=record_ms)
    assert reason == "bad_timestamp"
    assert detail.startswith("timestamp: ")


def test_present_timestamp_wins_over_the_record_timestamp() -> None:
    _key, ts, _score = accepted(event(timestamp=T0 + 5), record_ms=1_000_000)
    assert ts == T0 + 5


# -- scores ---------------------------------------------------------------------------------


def test_int_score_is_accepted_as_float() -> None:
    _key, _ts, score = accepted(event(score=1))
    assert score == 1.0
    assert type(score) is float
    _key, _ts, score = accepted(event(score=0))
    assert score == 0.0


@pytest.mark.parametrize("raw", [True, False])
def test_bool_score_is_wrong_type(raw: bool) -> None:
    reason, detail = rejected(event(score=raw))
    assert reason == "wrong_type"
    assert detail.startswith("score: ")


@pytest.mark.parametrize("literal", [b"1e999", b"-1e999", b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_score_literals_are_not_json(literal: bytes) -> None:
    # orjson refuses NaN/Infinity literals and numbers that overflow a double (1e999 -> inf),
    # so a non-finite score can never reach the range check: the record is not JSON.
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(literal)
    value = event(score=0.123456).replace(b"0.123456", literal)
    reason, detail = rejected(value)
    assert reason == "not_json"
    assert detail.startswith("not valid JSON: ")


@pytest.mark.parametrize("raw", [-0.001, 1.000001, 2, -1, 1e308, 2**64 - 1])
def test_out_of_range_score(raw: float) -> None:
    reason, detail = rejected(event(score=raw))
    assert reason == "bad_score"
    assert detail.startswith("score: expected a finite number in [0.0, 1.0]")


def test_score_range_bounds_are_inclusive() -> None:
    assert accepted(event(score=0.0))[2] == 0.0
    assert accepted(event(score=1.0))[2] == 1.0


def test_custom_score_range() -> None:
    fields = EventFields(score_min=-5, score_max=5)
    for raw in (-5, -4.5, 0, 3.25, 5):
        assert accepted(event(score=raw), fields=fields)[2] == float(raw)
    for raw in (-5.01, 5.5, 100):
        reason, detail = rejected(event(score=raw), fields=fields)
        assert reason == "bad_score"
        assert "[-5.0, 5.0]" in detail


# -- dimensions -----------------------------------------------------------------------------


def test_missing_null_and_empty_dimension_are_unknown() -> None:
    assert accepted(event(segment=...))[0] == ("m", UNKNOWN, "eu")
    assert accepted(event(segment=None))[0] == ("m", UNKNOWN, "eu")
    assert accepted(event(segment=""))[0] == ("m", UNKNOWN, "eu")
    assert accepted(event(segment=..., region=...))[0] == ("m", UNKNOWN, UNKNOWN)


@pytest.mark.parametrize(
    ("raw", "text"), [(7, "7"), (-3, "-3"), (0, "0"), (2**64 - 1, str(2**64 - 1))]
)
def test_int_dimension_becomes_text(raw: int, text: str) -> None:
    assert accepted(event(region=raw))[0] == ("m", "a", text)


@pytest.mark.parametrize("raw", [1.5, 2.0, [1], {"a": 1}, True, False])
def test_other_dimension_types_are_bad_dimension(raw: Any) -> None:
    reason, detail = rejected(event(region=raw))
    assert reason == "bad_dimension"
    assert detail.startswith("region: dimension 'region' expected a string or an integer")


def test_no_dimensions() -> None:
    fields = EventFields(dimensions={})
    assert accepted(event(), fields=fields)[0] == ("m",)


# -- dotted paths ---------------------------------------------------------------------------

NESTED = EventFields(
    model="meta.model",
    score="out.score",
    timestamp="meta.time",
    dimensions={"segment": "meta.seg", "region": "geo.region"},
)


def nested(**changes: Any) -> bytes:
    obj: dict[str, Any] = {
        "meta": {"model": "m", "seg": "s", "time": T0},
        "out": {"score": 0.25},
        "geo": {"region": "eu"},
    }
    for path, value in changes.items():
        head, _, tail = path.partition("__")
        if tail:
            if value is ...:
                obj[head].pop(tail)
            else:
                obj[head][tail] = value
        elif value is ...:
            obj.pop(head)
        else:
            obj[head] = value
    return orjson.dumps(obj)


def test_dotted_paths() -> None:
    assert accepted(nested(), fields=NESTED) == (("m", "s", "eu"), T0, 0.25)
    assert accepted(nested(meta__seg=3), fields=NESTED)[0] == ("m", "3", "eu")


def test_dotted_paths_missing_intermediate_objects() -> None:
    assert accepted(nested(geo=...), fields=NESTED)[0] == ("m", "s", UNKNOWN)
    assert accepted(nested(geo=None), fields=NESTED)[0] == ("m", "s", UNKNOWN)
    assert accepted(nested(geo={}), fields=NESTED)[0] == ("m", "s", UNKNOWN)
    assert rejected(nested(out=...), fields=NESTED) == (
        "missing_field",
        "out.score: required field is missing",
    )
    assert rejected(nested(meta=...), fields=NESTED) == (
        "missing_field",
        "meta.model: required field is missing",
    )
    _key, ts, _score = accepted(nested(meta__time=...), record_ms=1_767_225_601_000, fields=NESTED)
    assert ts == T0 + 1


@pytest.mark.parametrize("intermediate", ["text", 5, 1.5, [1, 2], True])
def test_dotted_paths_non_dict_intermediates(intermediate: Any) -> None:
    # A non-object where an object is expected reads as an absent field.
    assert accepted(nested(geo=intermediate), fields=NESTED)[0] == ("m", "s", UNKNOWN)
    assert rejected(nested(out=intermediate), fields=NESTED)[0] == "missing_field"
    assert rejected(nested(meta=intermediate), fields=NESTED)[0] == "missing_field"


def test_flat_key_containing_a_dot_is_not_read_by_a_dotted_path() -> None:
    value = orjson.dumps({"meta.model": "m", "out.score": 0.5, "meta.time": T0})
    assert rejected(value, fields=NESTED) == (
        "missing_field",
        "meta.model: required field is missing",
    )


def test_paths_with_quotes_do_not_break_the_generated_decoder() -> None:
    fields = EventFields(
        model="m'o\"del",
        score="sc\\ore",
        dimensions={"segment": "a.'b'", "region": "x)\n]"},
    )
    value = orjson.dumps(
        {"m'o\"del": "m", "sc\\ore": 0.5, "timestamp": T0, "a": {"'b'": "s"}, "x)\n]": "r"}
    )
    assert accepted(value, fields=fields) == (("m", "s", "r"), T0, 0.5)


# -- the fast path agrees with the full checker ---------------------------------------------


def _full(
    dec: EventDecoder, records: list[SimpleNamespace]
) -> tuple[list[tuple[str, ...]], list[float], list[float], list[tuple[int, str, str]]]:
    """What ``decode`` must return: ``_decode_one`` per record, in order."""
    keys: list[tuple[str, ...]] = []
    times: list[float] = []
    scores: list[float] = []
    rejects: list[tuple[int, str, str]] = []
    for r in records:
        try:
            k, t, s = dec._decode_one(r.value, r.timestamp)
        except DecodeError as exc:
            rejects.append((r.offset, exc.reason, exc.detail[:200]))
            continue
        keys.append(k)
        times.append(t)
        scores.append(s)
    return keys, times, scores, rejects


_VARIANTS: dict[str, list[Any]] = {
    "model": ["m", "other", "", 5, None, ..., ["m"], "ünïcode"],
    "score": [0.5, 0.0, 1.0, 1, 0, 0.999, 1.5, -0.1, True, "0.5", None, ..., 2**64 - 1],
    "timestamp": [
        T0,
        T0 + 0.5,
        int(T0),
        int(T0 * 1000),
        T0 * 1000,
        "2026-01-01T00:00:00Z",
        "2026-01-01T03:00:00+03:00",
        "2026-01-01T00:00:00",
        None,
        ...,
        0.0,
        -1.0,
        1e11,
        1e20,
        False,
    ],
    "segment": ["a", "b", "", None, ..., 3, 1.5, True, {"x": 1}],
    "region": ["eu", "us", "", None, ..., -1, [1]],
}


def _generated_events(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        obj = dict(BASE)
        obj["score"] = round(rng.random(), 6)
        obj["timestamp"] = T0 + rng.random() * 3600
        obj["segment"] = rng.choice("abc")
        if i % 3:  # two thirds near-valid: one to three fields changed
            for name in rng.sample(sorted(_VARIANTS), rng.randint(1, 3)):
                obj[name] = rng.choice(_VARIANTS[name])
        obj = {k: v for k, v in obj.items() if v is not ...}
        if rng.random() < 0.2:
            obj["extra"] = {"nested": [1, 2, {"deep": None}]}
        out.append(orjson.dumps(obj))
    out += [b"", b"[]", b"null", b'"str"', b"{", b"\xff", b"1e999"]
    return out


@pytest.mark.parametrize("fields", [EventFields(), NESTED], ids=["flat", "nested"])
def test_fast_path_agrees_with_decode_one(fields: EventFields) -> None:
    rng = random.Random(20260101)
    values = _generated_events(rng, 3000)
    if fields is NESTED:
        # Re-shape the flat events into the nested layout (non-objects stay as they are).
        reshaped: list[bytes] = []
        for v in values:
            try:
                obj = orjson.loads(v)
            except orjson.JSONDecodeError:
                reshaped.append(v)
                continue
            if type(obj) is not dict:
                reshaped.append(v)
                continue
            meta = {
                k2: obj[k1]
                for k1, k2 in [("model", "model"), ("segment", "seg"), ("timestamp", "time")]
                if k1 in obj
            }
            new: dict[str, Any] = {"meta": meta, "out": {}, "geo": {}}
            if "score" in obj:
                new["out"]["score"] = obj["score"]
            if "region" in obj:
                new["geo"]["region"] = obj["region"]
            reshaped.append(orjson.dumps(new))
        values = reshaped
    values.append(None)  # a tombstone
    rng.shuffle(values)
    records = [
        rec(v, offset=i, timestamp=rng.choice([None, -1, 1767225600000 + i]))
        for i, v in enumerate(values)
    ]
    dec = EventDecoder(fields)
    keys, times, scores, rejects = _full(dec, records)
    # Count what the generated loop hands to the full checker and what it accepts inline.
    slow_valid = 0
    full_checker = dec._decode_one

    def counting(value: bytes | None, record_ms: int | None) -> Any:
        nonlocal slow_valid
        result = full_checker(value, record_ms)
        slow_valid += 1
        return result

    dec._decode_one = counting  # type: ignore[method-assign]
    dec._fast, dec._fast_values = dec._build_fast()
    batch = dec.decode(records)

    assert batch.keys == keys
    assert batch.event_times == times
    assert batch.scores == scores
    assert [(r.record.offset, r.reason, r.detail) for r in batch.rejected] == rejects
    assert all(r.record is records[r.record.offset] for r in batch.rejected)
    # The mix really has fast-path valid, full-checker valid and rejected records.
    assert len(batch.rejected) > 500
    assert slow_valid > 300
    assert len(batch) - slow_valid > 300

    # The same records as confluent-kafka hands them out: a run whose values the decoder
    # reads directly, making a record only for what fails the fast path.
    run = ConfluentRun("t", 0)
    for r in records:
        stamp = (0, 0) if r.timestamp is None else (1, r.timestamp)
        run.add(Message(topic="t", partition=0, offset=r.offset, value=r.value, timestamp=stamp))
    from_run = EventDecoder(fields).decode(run)
    assert from_run.keys == keys
    assert from_run.event_times == times
    assert from_run.scores == scores
    assert [(r.record.offset, r.reason, r.detail) for r in from_run.rejected] == rejects
    assert all(r.record is run[r.record.offset] for r in from_run.rejected)
    assert len(run._made) == len(from_run.rejected) + slow_valid  # no record for the rest


def test_mixed_fast_and_slow_records_keep_partition_order() -> None:
    values = [
        event(score=0.1),  # fast
        event(score=1, segment="b"),  # slow: int score
        event(score=0.3, timestamp="2026-01-01T00:00:01Z"),  # slow: RFC 3339
        b"[]",  # rejected
        event(score=0.4, segment=...),  # slow: absent dimension
        event(score=0.5),  # fast
        event(score=0.6, timestamp=int(T0 * 1000) + 2000),  # slow: milliseconds
    ]
    batch = EventDecoder(EventFields()).decode([rec(v, offset=i) for i, v in enumerate(values)])
    assert batch.scores == [0.1, 1.0, 0.3, 0.4, 0.5, 0.6]
    assert batch.event_times == [T0, T0, T0 + 1, T0, T0, T0 + 2]
    assert batch.keys == [
        ("m", "a", "eu"),
        ("m", "b", "eu"),
        ("m", "a", "eu"),
        ("m", UNKNOWN, "eu"),
        ("m", "a", "eu"),
        ("m", "a", "eu"),
    ]
    assert [(r.record.offset, r.reason) for r in batch.rejected] == [(3, "not_object")]


def test_empty_batch() -> None:
    batch = EventDecoder(EventFields()).decode([])
    assert (batch.keys, batch.event_times, batch.scores, batch.rejected) == ([], [], [], [])


# -- hostile values -------------------------------------------------------------------------


def test_too_large_is_checked_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    dec = EventDecoder(EventFields())  # max_event_bytes = 1 MiB
    big = b'{"model": "m", "score": 0.5, "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    calls: list[int] = []
    real = orjson.loads

    def spy(value: bytes) -> Any:
        calls.append(len(value))
        return real(value)

    monkeypatch.setattr(orjson, "loads", spy)
    with pytest.raises(DecodeError) as info:
        dec._decode_one(big, None)
    assert info.value.reason == "too_large"
    assert info.value.detail == f"value has {len(big)} bytes, more than the 1048576 allowed"
    assert calls == []  # never parsed
    # And through the batch API (its fast loop bound orjson.loads at build time).
    batch = dec.decode([rec(big)])
    assert [(r.reason, r.detail) for r in batch.rejected] == [("too_large", info.value.detail)]


def test_value_of_exactly_max_bytes_is_parsed() -> None:
    value = event()
    fields = EventFields(max_event_bytes=len(value))
    accepted(value, fields=fields)
    assert rejected(value, fields=EventFields(max_event_bytes=len(value) - 1))[0] == "too_large"


def test_tombstone_is_empty_value() -> None:
    assert rejected(None) == ("empty_value", "the record has no value")


@pytest.mark.parametrize(
    "value",
    [b"\xff\xfe\xfd", b'{"model": "\xc3\x28", "score": 0.5}', b'{"model": "\\ud800"}', b""],
)
def test_not_utf8_or_empty_bytes_are_not_json(value: bytes) -> None:
    reason, detail = rejected(value)
    assert reason == "not_json"
    assert detail.startswith("not valid JSON: ")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"[1, 2]", "list"),
        (b'"text"', "str"),
        (b"42", "int"),
        (b"4.5", "float"),
        (b"true", "bool"),
        (b"null", "NoneType"),
    ],
)
def test_json_non_objects(value: bytes, kind: str) -> None:
    assert rejected(value) == ("not_object", f"expected a JSON object, got a {kind}")


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"[" * 10_000,
        b'{"model": "m", "score": 0.5, "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    ],
    ids=["lists", "objects", "unclosed", "inside-an-event"],
)
def test_deeply_nested_garbage(value: bytes) -> None:
    reason, _detail = rejected(value)
    assert reason in ("not_json", "not_object")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"model": "m", "score": 0.5, "timestamp": ' + b"9" * 400 + b"}", "not_json"),
        (b'{"model": "m", "score": ' + b"1" * 400 + b"}", "not_json"),
        (b'{"model": "m", "score": 0.5, "timestamp": ' + b"9" * 30 + b"}", "bad_timestamp"),
        (b'{"model": "m", "score": ' + b"1" * 30 + b"}", "bad_score"),
        (b'{"model": "m", "score": 0.5, "segment": ' + b"1" * 400 + b"}", "not_json"),
        # Beyond 64 bits orjson returns a float, which is then out of range.
        (b'{"model": "m", "score": 18446744073709551616}', "bad_score"),
        (b'{"model": "m", "score": -9223372036854775809}', "bad_score"),
        (b'{"model": "m", "score": 0.5, "timestamp": 18446744073709551616}', "bad_timestamp"),
        (
            b'{"model": "m", "score": 0.5, "timestamp": 1.0, "segment": 18446744073709551616}',
            "bad_dimension",
        ),
    ],
)
def test_huge_integers(text: bytes, reason: str) -> None:
    assert rejected(text)[0] == reason


def test_hostile_values_never_raise_from_decode() -> None:
    values: list[bytes | None] = [
        None,
        b"",
        b"\x00" * 100,
        b"[" * 100_000,
        json.dumps({"model": "m", "score": float("nan")}).encode(),
        json.dumps({"model": "m", "score": float("inf")}).encode(),
        b'{"model": "m", "score": 0.5, "timestamp": "\\u0000"}',
        event(timestamp="0001-01-01T00:00:00+01:00"),
        event(timestamp="9999-12-31T23:59:59-01:00"),
    ]
    batch = EventDecoder(EventFields()).decode([rec(v, offset=i) for i, v in enumerate(values)])
    assert len(batch) + len(batch.rejected) == len(values)
    assert all(r.reason in REASONS and r.reason != "internal" for r in batch.rejected)
