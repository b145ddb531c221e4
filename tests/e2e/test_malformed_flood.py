"""A flood of malformed records through the broker: the monitor survives and accounts for all.

100 000 records, about half valid events and half produced by a seeded fuzzer (random bytes,
truncated JSON, JSON arrays / strings / numbers / literals, objects with wrong field types, NaN-ish
strings and bare NaN tokens, huge numbers, nesting 2 000 levels deep, tombstones and empty values, 2
MB values, random and invalid UTF-8, valid JSON missing required fields) go to a ``tilewatch run``.
The expected verdict of every record is computed offline with the same
:class:`~tilewatch.streams.decoding.predictions.EventDecoder` on the same bytes, so the test checks
the pipeline (Kafka, runtime, dead-letter sink, counters) rather than re-deriving the decoder's
rules. Then:

- the process is alive after reading everything and exits 0 on SIGTERM;
- ``tilewatch_read_events_total`` == 100 000 == valid (sum of leaf ``events_total``) + late +
  invalid, with valid and invalid per reason exactly as the offline decoder says;
- the dead-letter topic holds exactly one record per invalid record: a ``tilewatch.reason``
  header in the documented set (equal to the offline reason), source topic / partition /
  offset headers that point at distinct records of the source topic, and the source record's
  key and value unchanged.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.e2e.conftest import kafka_clients
from tests.e2e.support.layout import ALL
from tests.e2e.support.process import TilewatchProcess, parse_summary
from tests.e2e.support.scrape import series, value
from tests.helpers import consume_all
from tilewatch.config import load_config
from tilewatch.streams.decoding.predictions import EventDecoder
from tilewatch.streams.decoding.record import REASONS
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.settings import EventFields

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

SEED = 404
N = 100_000
PARTITIONS = 3
VALID_SHARE = 0.5
#: Positions of the 2 MB values (above the default max_event_bytes of 1 MiB).
HUGE_AT = (1_234, 33_333, 66_666, 99_000)
HUGE_BYTES = 2 * 1024 * 1024
DEPTH = 2_000
#: The reject reasons documented in docs/events.md (the ``tilewatch.reason`` header values).
DOCUMENTED_REASONS = frozenset(
    {
        "empty_value",
        "too_large",
        "not_json",
        "not_object",
        "missing_field",
        "wrong_type",
        "bad_score",
        "bad_scores",  # multi-class models ([events] scores) only
        "bad_timestamp",
        "bad_dimension",
        "bad_label",  # label records of the outcomes topic only
        "internal",
    }
)
MODELS = ("alpha", "beta")
SEGMENTS = ("s0", "s1", "s2", "s3")
REGIONS = ("eu", "us", "ap")


# -- the fuzzer --------------------------------------------------------------------------------


class Fuzzer:
    """Seeded malformed record values; ``make(i)`` returns ``(kind, value)``."""

    def __init__(self, rng: np.random.Generator, start: float) -> None:
        self.rng = rng
        self.start = start
        self.kinds: list[tuple[str, Callable[[int], bytes | None]]] = [
            ("random_bytes", self.random_bytes),
            ("truncated_json", self.truncated_json),
            ("json_array", self.json_array),
            ("json_scalar", self.json_scalar),
            ("wrong_type", self.wrong_type),
            ("nan_ish", self.nan_ish),
            ("huge_number", self.huge_number),
            ("deep_nesting", self.deep_nesting),
            ("tombstone", lambda i: None),
            ("empty_value", lambda i: b""),
            ("utf8_garbage", self.utf8_garbage),
            ("missing_field", self.missing_field),
        ]

    def pick(self, seq: Any) -> Any:
        return seq[int(self.rng.integers(0, len(seq)))]

    def event(self, i: int) -> dict[str, Any]:
        """A valid event (the base every structured fuzz value mutates)."""
        return {
            "event_id": f"f{i}",
            "model": self.pick(MODELS),
            "segment": self.pick(SEGMENTS),
            "region": self.pick(REGIONS),
            "score": round(float(self.rng.random()), 6),
            "timestamp": self.start + i * 60.0 / N,  # rising in every partition: none late
            "latency_ms": 3.5,
        }

    def make(self, i: int) -> tuple[str, bytes | None]:
        if i in HUGE_AT:
            return "huge_value", self.huge_value(i)
        kind, build = self.pick(self.kinds)
        return kind, build(i)

    def random_bytes(self, i: int) -> bytes:
        return self.rng.bytes(int(self.rng.integers(1, 300)))

    def truncated_json(self, i: int) -> bytes:
        full = orjson.dumps(self.event(i))
        return full[: int(self.rng.integers(1, len(full)))]

    def json_array(self, i: int) -> bytes:
        return self.pick(
            [orjson.dumps([self.event(i)]), orjson.dumps([i, "x", 0.5]), b"[]", b"[null]"]
        )

    def json_scalar(self, i: int) -> bytes:
        return self.pick(
            [f'"event {i}"'.encode(), str(self.rng.normal()).encode(), b"true", b"null", b"0"]
        )

    def wrong_type(self, i: int) -> bytes:
        field, bad = self.pick(
            [
                ("model", 7),
                ("model", ["alpha"]),
                ("model", {"name": "alpha"}),
                ("model", True),
                ("model", ""),
                ("score", "0.5"),
                ("score", True),
                ("score", [0.5]),
                ("score", {"v": 0.5}),
                ("timestamp", [1]),
                ("timestamp", {"s": 1}),
                ("timestamp", True),
                ("timestamp", "yesterday"),
                ("timestamp", "2026-01-01T00:00:00"),
                ("segment", 1.5),
                ("segment", True),
                ("segment", ["s0"]),
                ("region", {"r": "eu"}),
            ]
        )
        obj = self.event(i)
        obj[field] = bad
        return orjson.dumps(obj)

    def nan_ish(self, i: int) -> bytes:
        obj = self.event(i)
        token = self.pick(["NaN", "nan", "Infinity", "-Infinity", "inf", "1e999"])
        if self.rng.random() < 0.5:
            obj["score"] = token  # a string
            return orjson.dumps(obj)
        # A bare token: not JSON at all.
        return orjson.dumps(obj).replace(b'"score":', b'"score":' + token.encode() + b",_:", 1)

    def huge_number(self, i: int) -> bytes:
        obj = self.event(i)
        field, text = self.pick(
            [
                ("score", "1e308"),
                ("score", "-1e308"),
                ("score", "1e400"),
                ("score", "18446744073709551616"),
                ("score", "123456789012345678901234567890"),
                ("timestamp", "1e300"),
                ("timestamp", "-1"),
                ("timestamp", "0"),
                ("timestamp", "9223372036854775807"),
                ("segment", "18446744073709551616"),
            ]
        )
        obj[field] = "@@"
        return orjson.dumps(obj).replace(b'"@@"', text.encode())

    def deep_nesting(self, i: int) -> bytes:
        shape = int(self.rng.integers(0, 3))
        if shape == 0:
            return b"[" * DEPTH + b"]" * DEPTH
        if shape == 1:
            return b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
        obj = self.event(i)
        obj["features"] = "@@"
        return orjson.dumps(obj).replace(b'"@@"', b"[" * DEPTH + b"]" * DEPTH)

    def utf8_garbage(self, i: int) -> bytes:
        shape = int(self.rng.integers(0, 4))
        if shape == 0:  # valid UTF-8, random code points (no surrogates)
            points = self.rng.integers(0x20, 0x2FFFF, int(self.rng.integers(1, 80)))
            return "".join(chr(p) for p in points.tolist() if not 0xD800 <= p < 0xE000).encode()
        if shape == 1:  # invalid UTF-8 sequences
            return self.pick([b"\xff\xfe\xfd", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80abc"])
        if shape == 2:  # invalid UTF-8 inside an otherwise valid object
            return orjson.dumps(self.event(i)).replace(b'"model":"', b'"model":"\xff\xfe', 1)
        # A lone surrogate escape inside a string.
        return orjson.dumps(self.event(i)).replace(b'"model":"', b'"model":"\\ud800', 1)

    def missing_field(self, i: int) -> bytes:
        obj = self.event(i)
        field = self.pick(["model", "score"])
        if self.rng.random() < 0.5:
            del obj[field]
        else:
            obj[field] = None
        return orjson.dumps(obj)

    def huge_value(self, i: int) -> bytes:
        obj = self.event(i)
        obj["padding"] = "x" * HUGE_BYTES
        return orjson.dumps(obj)


def make_records(start: float) -> tuple[list[bytes | None], list[str]]:
    """Values and the fuzz kind of each (``"valid"`` for the generated valid events)."""
    rng = np.random.default_rng(SEED)
    fuzzer = Fuzzer(rng, start)
    values: list[bytes | None] = []
    kinds: list[str] = []
    for i in range(N):
        if i not in HUGE_AT and rng.random() < VALID_SHARE:
            kinds.append("valid")
            values.append(orjson.dumps(fuzzer.event(i)))
        else:
            kind, v = fuzzer.make(i)
            kinds.append(kind)
            values.append(v)
    return values, kinds


def offline_reasons(values: list[bytes | None], max_event_bytes: int) -> list[str | None]:
    """The reject reason of each value (None: valid), from the decoder itself, without Kafka."""
    decoder = EventDecoder(EventFields(max_event_bytes=max_event_bytes))
    records = [
        SimpleNamespace(
            value=v, key=None, headers=[], topic="offline", partition=0, offset=i, timestamp=None
        )
        for i, v in enumerate(values)
    ]
    batch = decoder.decode(records)
    out: list[str | None] = [None] * len(values)
    for rejected in batch.rejected:
        out[rejected.record.offset] = rejected.reason
    assert len(batch) + len(batch.rejected) == len(values)
    return out


# -- Kafka -------------------------------------------------------------------------------------


def _key(i: int) -> bytes:
    return f"f{i}".encode()


def _produce(bootstrap: str, topic: str, values: list[bytes | None], kinds: list[str]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, max_request_size=8 << 20
    )
    failures: list[BaseException] = []
    try:
        for i, v in enumerate(values):
            headers = [("fuzz.kind", kinds[i].encode())] if kinds[i] != "valid" else None
            producer.send(topic, key=_key(i), value=v, headers=headers).add_errback(failures.append)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    assert not failures, f"{len(failures)} records not delivered: {failures[0]!r}"


def _read_exactly(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """Every record of a one-partition topic; fails unless there are exactly ``expected``.

    Reads until ``expected`` records arrived, then polls a little longer and compares with the
    high watermark known after a fetch (Tansu's ``end_offsets()`` can answer too low).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while not consumer.partitions_for_topic(topic):
            assert time.monotonic() < deadline, f"no partitions for {topic}"
            time.sleep(0.05)
        assert consumer.partitions_for_topic(topic) == {0}
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        settle = None
        while True:
            batch = consumer.poll(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
            now = time.monotonic()
            if len(records) >= expected:
                settle = settle or now + 1.0
                if now >= settle:
                    break
            assert now < deadline, f"read {len(records)} of {expected} records from {topic}"
        assert consumer.highwater(tp) == len(records)
    finally:
        consumer.close(autocommit=False)
    assert len(records) == expected, f"{topic} holds {len(records)} records, expected {expected}"
    return records


# -- the test ----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", kafka_clients(slow=True))
def test_monitor_survives_a_malformed_flood_and_dead_letters_every_reject(
    client: str,
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    t_start = time.monotonic()
    topic = make_topic(PARTITIONS)
    config = tilewatch_config(topic, state={"checkpoints": False})
    max_event_bytes = load_config(config).events.max_event_bytes
    assert max_event_bytes < HUGE_BYTES, "the 2 MB values must exceed max_event_bytes"

    values, kinds = make_records(time.time() - 600.0)
    expected = offline_reasons(values, max_event_bytes)
    expected_invalid = Counter(r for r in expected if r is not None)
    expected_valid = sum(1 for r in expected if r is None)
    assert set(expected_invalid) <= set(REASONS) == DOCUMENTED_REASONS
    assert "internal" not in expected_invalid, "the decoder failed on a fuzz value (a bug)"
    assert expected_valid == kinds.count("valid"), "the fuzzer made a valid event"
    assert 0.45 * N < expected_valid < 0.55 * N
    kinds_made = set(kinds)
    assert {"huge_value", "deep_nesting", "tombstone", "utf8_garbage"} <= kinds_made

    monitor = start_tilewatch(config, name="flood")
    _produce(broker.bootstrap, topic, values, kinds)
    n_invalid = sum(expected_invalid.values())
    metrics = monitor.wait_until(
        f"{N} records read and {n_invalid} dead-lettered",
        lambda m: (
            value(m, "tilewatch_read_events_total") == N
            and value(m, "tilewatch_dead_letter_events_total") == n_invalid
        ),
        timeout=90,
    )
    assert monitor.process is not None and monitor.process.poll() is None, monitor.describe()

    # -- counters ------------------------------------------------------------------------------
    leaves = {
        labels: v
        for labels, v in series(metrics, "tilewatch_events_total").items()
        if ALL not in dict(labels).values()
    }
    valid = sum(leaves.values())
    late = sum(series(metrics, "tilewatch_late_events_total").values())
    invalid = {
        dict(labels)["reason"]: v
        for labels, v in series(metrics, "tilewatch_invalid_events_total").items()
    }
    assert valid + late + sum(invalid.values()) == N
    assert (valid, late) == (expected_valid, 0)
    assert invalid == {reason: float(n) for reason, n in expected_invalid.items()}
    assert not series(metrics, "tilewatch_dead_letter_failures_total")

    # -- graceful stop -------------------------------------------------------------------------
    monitor.signal(signal.SIGTERM)
    assert monitor.wait_exit(30) == 0, monitor.describe()
    summary = parse_summary(monitor.stdout())
    assert (summary.read, summary.valid, summary.late, summary.invalid) == (
        N,
        expected_valid,
        0,
        n_invalid,
    )

    # -- the dead-letter topic -----------------------------------------------------------------
    dead = _read_exactly(broker.bootstrap, monitor.dead_letter_topic, n_invalid)
    source = {(r.partition, r.offset): r for r in consume_all(broker.bootstrap, topic, N)}
    assert len(source) == N
    seen: set[tuple[int, int]] = set()
    reasons_seen: Counter[str] = Counter()
    for rec in dead:
        headers = dict(rec.headers)
        reason = headers["tilewatch.reason"].decode()
        assert reason in DOCUMENTED_REASONS, reason
        assert headers["tilewatch.source.topic"].decode() == topic
        coords = (
            int(headers["tilewatch.source.partition"]),
            int(headers["tilewatch.source.offset"]),
        )
        assert coords not in seen, f"two dead letters point at {coords}"
        seen.add(coords)
        original = source[coords]
        index = int(original.key.decode()[1:])
        assert expected[index] == reason, (index, kinds[index], reason, expected[index])
        assert rec.value == original.value, f"record {index} ({kinds[index]}) changed"
        assert rec.key == original.key
        assert headers["fuzz.kind"] == kinds[index].encode()  # original headers kept
        assert headers["tilewatch.detail"], f"record {index} has no detail"
        reasons_seen[reason] += 1
    assert reasons_seen == expected_invalid
    invalid_indices = {i for i, r in enumerate(expected) if r is not None}
    assert {int(source[c].key.decode()[1:]) for c in seen} == invalid_indices

    elapsed = time.monotonic() - t_start
    print(f"\nmalformed flood: {dict(expected_invalid)}; {elapsed:.1f} s")
    assert elapsed < 60.0, f"the flood test took {elapsed:.1f} s"
