"""EventDecoder(capture=True): predictions and features columns aligned with the keys."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tilewatch.streams.decoding.predictions import EventDecoder
from tilewatch.streams.settings import EventFields

T = 1767225600.0


def rec(value: bytes | None, offset: int = 0, timestamp: int | None = None) -> Any:
    return SimpleNamespace(
        value=value,
        timestamp=timestamp,
        topic="t",
        partition=0,
        offset=offset,
        key=None,
        headers=[],
    )


def enc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def base(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "score": 0.5, "segment": "a", "region": "r", "timestamp": T, **extra}


def test_fast_and_slow_path_columns_align() -> None:
    dec = EventDecoder(EventFields(), capture=True)
    records = [
        rec(enc(base(prediction=1, features={"x": 1.5}))),  # fast path
        rec(enc(base(score=1, prediction="yes", features={"y": "a"}))),  # int score: slow
        rec(enc(base(timestamp=int(T * 1000), features={"z": None}))),  # ms timestamp: slow
        rec(b"not json"),  # rejected: no column entry
        rec(enc({"model": "m", "score": 0.25, "timestamp": T, "features": {"a": 1}})),  # no dims
        rec(enc(base(features=[1, 2], prediction=None))),  # features not an object
        rec(enc(base(score=0, features="x"))),  # slow path, features not an object
        rec(enc(base(score=2.0))),  # rejected: bad score
        rec(enc(base())),  # no prediction, no features
    ]
    batch = dec.decode(records)
    assert len(batch) == 7
    assert len(batch.predictions) == len(batch.features) == len(batch.keys)
    assert len(batch.event_times) == len(batch.scores) == len(batch.keys)
    assert batch.keys == [
        ("m", "a", "r"),
        ("m", "a", "r"),
        ("m", "a", "r"),
        ("m", "unknown", "unknown"),
        ("m", "a", "r"),
        ("m", "a", "r"),
        ("m", "a", "r"),
    ]
    assert batch.scores == [0.5, 1.0, 0.5, 0.25, 0.5, 0.0, 0.5]
    assert batch.event_times == [T] * 7
    assert batch.predictions == [1, "yes", None, None, None, None, None]
    assert batch.features == [{"x": 1.5}, {"y": "a"}, {"z": None}, {"a": 1}, None, None, None]
    assert [r.reason for r in batch.rejected] == ["not_json", "bad_score"]


def test_nested_feature_path() -> None:
    fields = EventFields(features="meta.features", prediction="out.label")
    dec = EventDecoder(fields, capture=True)
    batch = dec.decode(
        [
            rec(enc(base(meta={"features": {"x": 1}}, out={"label": "a"}))),  # fast
            rec(enc(base(score=1, meta={"features": {"x": 2}}, out={"label": 3}))),  # slow
            rec(enc(base(meta={"other": 1}))),  # fast, path absent
            rec(enc(base(score=0, meta={}))),  # slow, path absent
            rec(enc(base(meta={"features": 5}))),  # fast, not an object
        ]
    )
    assert batch.features == [{"x": 1}, {"x": 2}, None, None, None]
    assert batch.predictions == ["a", 3, None, None, None]


@pytest.mark.parametrize("meta", [None, 5, "x", [1]])
def test_nested_path_through_non_object_never_raises(meta: Any) -> None:
    dec = EventDecoder(EventFields(features="meta.features"), capture=True)
    batch = dec.decode([rec(enc(base(meta=meta)))])
    assert batch.features == [None] and len(batch.keys) == 1


def test_nested_path_through_non_object_on_slow_path() -> None:
    dec = EventDecoder(EventFields(features="meta.features"), capture=True)
    batch = dec.decode([rec(enc(base(score=1, meta=meta))) for meta in (None, 5, "x", [1])])
    assert batch.features == [None] * 4 and len(batch.keys) == 4


def test_capture_off_leaves_columns_empty() -> None:
    dec = EventDecoder(EventFields())
    batch = dec.decode(
        [rec(enc(base(prediction=1, features={"x": 1}))), rec(enc(base(score=1, features={})))]
    )
    assert len(batch) == 2
    assert batch.predictions == [] and batch.features == []


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    obj: dict[str, Any] = {}
    for key, strat in (
        ("model", st.sampled_from(["m", "", 3, None])),
        ("score", st.sampled_from([0.5, 1, 0, 2.0, "x", None])),
        ("timestamp", st.sampled_from([T, int(T), int(T * 1000), "2026-01-01T00:00:00Z", None])),
        ("segment", st.sampled_from(["a", "", 3, None, 1.5])),
        ("prediction", JSON),
        ("features", JSON | st.dictionaries(st.text(max_size=3), JSON, max_size=4)),
    ):
        if draw(st.booleans()) or key in ("model", "score"):
            obj[key] = draw(strat)
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=20))
    return json.dumps(obj).encode()


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(records(), max_size=8), st.booleans())
def test_fuzz_capture_never_raises_and_columns_align(values: list[bytes], capture: bool) -> None:
    dec = EventDecoder(EventFields(dimensions={"segment": "segment"}), capture=capture)
    batch = dec.decode([rec(v, offset=i, timestamp=1) for i, v in enumerate(values)])
    assert len(batch.keys) + len(batch.rejected) == len(values)
    assert len(batch.event_times) == len(batch.scores) == len(batch.keys)
    if capture:
        assert len(batch.predictions) == len(batch.features) == len(batch.keys)
        assert all(f is None or type(f) is dict for f in batch.features)
    else:
        assert batch.predictions == [] and batch.features == []
