"""LabelDecoder: outcome-topic records to label columns, every bad record a reason."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from tilewatch.streams.decoding.outcomes import LabelDecoder
from tilewatch.streams.decoding.record import REASONS
from tilewatch.streams.settings import LabelTopic


def rec(value: bytes | None, ts: int | None = 1767225600000, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        value=value,
        timestamp=ts,
        topic="outcomes",
        partition=0,
        offset=offset,
        key=None,
        headers=[],
    )


def j(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_valid_labels_in_order_with_times() -> None:
    dec = LabelDecoder(LabelTopic("outcomes"), classification=True)
    batch = dec.decode(
        [
            rec(j(event_id="a", label=1, timestamp=1767229200.5)),
            rec(j(event_id=7, label=False)),
            rec(j(event_id="c", label=0.0, timestamp="2026-01-01T01:00:00+00:00")),
        ]
    )
    assert batch.event_ids == ["a", "7", "c"]
    assert batch.labels == [1.0, 0.0, 0.0]
    assert batch.times == [1767229200.5, 1767225600.0, 1767229200.0]
    assert batch.rejected == []


def test_nested_paths() -> None:
    fields = LabelTopic("o", event_id="meta.id", label="outcome.churned", timestamp="meta.t")
    dec = LabelDecoder(fields, classification=True)
    batch = dec.decode([rec(j(meta={"id": "x", "t": 1767225601}, outcome={"churned": True}))])
    assert (batch.event_ids, batch.labels, batch.times) == (["x"], [1.0], [1767225601.0])


def test_regression_labels_are_any_finite_number() -> None:
    dec = LabelDecoder(LabelTopic("o"), classification=False)
    batch = dec.decode([rec(j(event_id="a", label=12.5)), rec(j(event_id="b", label=True))])
    assert batch.labels == [12.5]
    assert [r.reason for r in batch.rejected] == ["bad_label"]


CASES = [
    (None, "empty_value"),
    (b"x" * 2000, "too_large"),
    (b"{nope", "not_json"),
    (b"[1]", "not_object"),
    (j(label=1), "missing_field"),
    (j(event_id="a"), "missing_field"),
    (j(event_id=["a"], label=1), "wrong_type"),
    (j(event_id="", label=1), "wrong_type"),
    (j(event_id="a" * 300, label=1), "wrong_type"),
    (j(event_id="a", label=2), "bad_label"),
    (j(event_id="a", label="1"), "bad_label"),
    (j(event_id="a", label=1, timestamp="yesterday"), "bad_timestamp"),
    (j(event_id="a", label=1, timestamp=-5), "bad_timestamp"),
]


@pytest.mark.parametrize(("value", "reason"), CASES)
def test_bad_records_are_rejected_with_a_reason(value: bytes | None, reason: str) -> None:
    dec = LabelDecoder(LabelTopic("o"), classification=True, max_bytes=1000)
    batch = dec.decode([rec(value), rec(j(event_id="ok", label=1), offset=1)])
    assert batch.event_ids == ["ok"]  # the good record after it is kept
    assert [r.reason for r in batch.rejected] == [reason]
    assert reason in REASONS
    assert batch.rejected[0].detail


def test_absent_time_without_record_timestamp_is_rejected() -> None:
    dec = LabelDecoder(LabelTopic("o"))
    batch = dec.decode([rec(j(event_id="a", label=1), ts=None)])
    assert [r.reason for r in batch.rejected] == ["bad_timestamp"]
