"""The label fast paths accept and reject exactly what the full checkers do.

``LabelDecoder.decode`` accepts the common record shape inline and ``label_values`` checks
float labels vectorized; both must give the same columns, counts and reasons as the per-record
checkers they bypass, on valid and invalid input alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from tilewatch.aggregators.labels.label_state import label_values
from tilewatch.streams.confluent_record import ConfluentRun
from tilewatch.streams.decoding.outcomes import LabelDecoder
from tilewatch.streams.decoding.record import MAX_DETAIL, Rejected
from tilewatch.streams.errors import DecodeError
from tilewatch.streams.settings import LabelTopic


def rec(value: bytes | None, offset: int, ts: int | None = 1767225600000) -> SimpleNamespace:
    return SimpleNamespace(
        value=value, timestamp=ts, topic="o", partition=0, offset=offset, key=None, headers=[]
    )


def slow_decode(dec: LabelDecoder, records: list[Any]) -> tuple[list[Any], list[Any]]:
    """Every record through the full checker (what decode did before the fast path)."""
    ok, rejected = [], []
    for r in records:
        try:
            ok.append(dec._one(r.value, r.timestamp))
        except DecodeError as exc:
            rejected.append((r.offset, exc.reason, exc.detail[:MAX_DETAIL]))
        except Exception as exc:
            rejected.append((r.offset, "internal", repr(exc)[:MAX_DETAIL]))
    return ok, rejected


def fast_decode(dec: LabelDecoder, records: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    batch = dec.decode(records)
    assert all(isinstance(x, Rejected) for x in batch.rejected)
    ok = list(zip(batch.event_ids, batch.labels, batch.times, strict=True))
    return ok, [(x.record.offset, x.reason, x.detail) for x in batch.rejected]


IDS = st.one_of(
    st.text(min_size=1, max_size=5),
    st.text(max_size=5),
    st.just("x" * 256),
    st.just("x" * 257),
    st.integers(-5, 10**30),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
)
LABELS = st.one_of(
    st.sampled_from([0, 1, 0.0, 1.0, True, False, 2, -1, 0.5, "1", None, math.inf, -0.0]),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=False),
)
TIMES = st.one_of(
    st.floats(min_value=-1e12, max_value=2e12, allow_nan=False),
    st.sampled_from([1767225600.5, 0.0, 1e11, 99999999999.0, 1767225600000.0]),
    st.integers(0, 2 * 10**12),
    st.just("2026-01-01T00:00:00Z"),
    st.just("soon"),
    st.none(),
)
OBJECTS = st.one_of(
    st.fixed_dictionaries({"event_id": IDS, "label": LABELS, "timestamp": TIMES}),
    st.fixed_dictionaries(
        {}, optional={"event_id": IDS, "label": LABELS, "timestamp": TIMES, "other": st.integers()}
    ),
)


def encode(obj: dict[str, Any]) -> bytes:
    """JSON text; json writes integers orjson cannot (> 64 bits) and inf as Infinity."""
    return json.dumps(obj).encode()


VALUES = st.one_of(
    OBJECTS.map(encode),
    st.sampled_from([b"", b"[1,2]", b'"s"', b"{bad", b"null", b"\xff"]),
    st.none(),
)


GRID_IDS: list[Any] = ["a", "evt-000000001", "", "x" * 256, "x" * 257, 7, None, True, [1]]
GRID_LABELS: list[Any] = [0, 1, 0.0, 1.0, -0.0, True, False, 2, -1, 0.5, 1e308, "1", None, [1]]
GRID_LABELS += [10**30]
GRID_TIMES: list[Any] = [1767225600.5, 1767225600, 1767225600000.0, 99999999999.0, 1e11]
GRID_TIMES += [0.0, -1.0, 1e13, "2026-01-01T00:00:00Z", "soon", None, True]


@pytest.mark.parametrize("classification", [True, False])
def test_decode_fast_path_matches_on_a_grid_of_edge_values(classification: bool) -> None:
    """Every combination of interesting ids, labels and times, with and without each key."""
    dec = LabelDecoder(LabelTopic("o"), classification=classification)
    values = [
        encode({k: v for k, v in (("event_id", i), ("label", y), ("timestamp", t)) if v != "-"})
        for i in [*GRID_IDS, "-"]
        for y in [*GRID_LABELS, "-"]
        for t in [*GRID_TIMES, "-"]
    ]
    values += [b"", b"[1,2]", b'"s"', b"{bad", b"null", b"\xff", None, b"x" * 2_000_000]
    records = [rec(v, i) for i, v in enumerate(values)]
    fast, slow = fast_decode(dec, records), slow_decode(dec, records)
    assert fast == slow
    assert len(fast[0]) > 100 and len(fast[1]) > 100  # both outcomes are exercised
    # The same records as confluent-kafka hands them out (the decoder reads the run's
    # values) and as a one-pass iterable: the same columns and rejections.
    run = ConfluentRun("o", 0)
    for r in records:
        run.add(
            Message(
                topic="o", partition=0, offset=r.offset, value=r.value, timestamp=(1, r.timestamp)
            )
        )
    assert fast_decode(dec, run) == slow
    assert all(x.record is run[x.record.offset] for x in dec.decode(run).rejected)
    assert fast_decode(dec, iter(records)) == slow  # type: ignore[arg-type]


@pytest.mark.parametrize("classification", [True, False])
@settings(max_examples=400, deadline=None)
@given(values=st.lists(VALUES, max_size=12))
def test_decode_fast_path_matches_the_full_checker(
    classification: bool, values: list[bytes | None]
) -> None:
    dec = LabelDecoder(LabelTopic("o"), classification=classification, max_bytes=120)
    records = [rec(v, i) for i, v in enumerate(values)]
    fast, slow = fast_decode(dec, records), slow_decode(dec, records)
    assert fast[1] == slow[1]
    assert len(fast[0]) == len(slow[0])
    for (fi, fl, ft), (si, sl, st_) in zip(fast[0], slow[0], strict=True):
        assert (fi, fl, ft) == (si, sl, st_)
        assert type(fi) is str and type(fl) is float and type(ft) is float


def test_decode_fast_path_keeps_the_partition_order() -> None:
    dec = LabelDecoder(LabelTopic("o"))
    values = [
        b'{"event_id":"a","label":1,"timestamp":1767225600.5}',
        b'{"event_id":7,"label":false}',  # full checker: integer id, record time
        b'{"event_id":"c","label":3,"timestamp":1767225600.5}',  # bad_label
        b'{"event_id":"d","label":0.0,"timestamp":1767225601.5}',
    ]
    batch = dec.decode([rec(v, i) for i, v in enumerate(values)])
    assert batch.event_ids == ["a", "7", "d"]
    assert batch.labels == [1.0, 0.0, 0.0]
    assert batch.times == [1767225600.5, 1767225600.0, 1767225601.5]
    assert [(r.record.offset, r.reason) for r in batch.rejected] == [(2, "bad_label")]


def test_nested_paths_use_the_full_checker() -> None:
    dec = LabelDecoder(LabelTopic("o", event_id="meta.id", label="y", timestamp="meta.t"))
    batch = dec.decode([rec(b'{"meta":{"id":"a","t":1767225600.5},"y":true}', 0)])
    assert (batch.event_ids, batch.labels, batch.times) == (["a"], [1.0], [1767225600.5])


def loop_label_values(raw: list[Any], classification: bool) -> tuple[list[float], int]:
    """label_values' per-value loop, for lists the vectorized path does not take."""
    values, bad = label_values([*raw, None], classification)  # None: never the fast path
    return values[:-1].tolist(), bad


@pytest.mark.parametrize("classification", [True, False])
@settings(max_examples=300, deadline=None)
@given(raw=st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0])))
def test_label_values_float_path_matches_the_loop(classification: bool, raw: list[float]) -> None:
    values, bad = label_values(raw, classification)
    expected, expected_bad = loop_label_values(raw, classification)
    assert bad == expected_bad
    assert values.tolist() == pytest.approx(expected, nan_ok=True)
    assert [math.isnan(v) for v in values.tolist()] == [math.isnan(v) for v in expected]


def test_label_values_float_path_counts_bad_labels() -> None:
    values, bad = label_values([1.0, 0.0, 0.5, math.nan, -0.0], classification=True)
    assert bad == 2
    assert [v if v == v else "nan" for v in values.tolist()] == [1.0, 0.0, "nan", "nan", 0.0]
    values, bad = label_values([2.5, math.inf, -math.inf], classification=False)
    assert (bad, values[0]) == (2, 2.5)
