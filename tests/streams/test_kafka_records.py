"""tilewatch's reading of kafka-python's fetched batches against kafka-python's own.

Both parsers read the same bytes; everything the consumer sees must be equal: the records
(every field of ``ConsumerRecord``), the order, where an error is raised and what it says, and
the fetcher's bookkeeping (next fetch offset, records and bytes read). The last test does the
same through the embedded broker.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.consumer.fetcher import Fetcher
from kafka.record._crc32c import crc as crc32c
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.structs import TopicPartition

from tilewatch.streams.clients import new_consumer, new_restore_consumer
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.kafka_records import TightPartitionRecords, install, installed
from tilewatch.streams.settings import KafkaSettings

TP = TopicPartition("predictions", 3)


def _batch(
    records: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
    magic: int = 2,
    compression: int = 0,
    offset: int = 0,
) -> bytes:
    """One batch (one message set for magic 0 and 1) of (timestamp, key, value, headers)."""
    builder = MemoryRecordsBuilder(magic, compression, 1 << 24, offset=offset)
    for timestamp, key, value, headers in records:
        builder.append(timestamp=timestamp, key=key, value=value, headers=headers)
    builder.close()
    return bytes(builder.buffer())


def _with_attributes(batch: bytes, bits: int) -> bytes:
    """``batch`` (v2) with attribute ``bits`` set and its CRC computed again."""
    data = bytearray(batch)
    at = DefaultRecordBatch.ATTRIBUTES_OFFSET
    (attributes,) = struct.unpack_from(">h", data, at)
    struct.pack_into(">h", data, at, attributes | bits)
    struct.pack_into(">I", data, DefaultRecordBatch.CRC_OFFSET, crc32c(bytes(data[at:])))
    return bytes(data)


def _read(cls: Any, data: bytes, fetch_offset: int = 0, **options: Any) -> dict[str, Any]:
    """What a consumer gets from ``data`` through ``cls``: each ``take`` (records, or the
    error raised) until it is drained or gives nothing, then the bookkeeping."""
    records = cls(fetch_offset, TP, MemoryRecords(data), **options)
    takes: list[Any] = []
    for _ in range(3000):
        if not records:  # drained: the fetcher takes no more from it
            break
        try:
            got = records.take(7)
        except Exception as exc:  # the error itself is what is compared
            takes.append((type(exc).__name__, str(exc)))
            continue
        if not got:
            break
        takes.append(got)
    return {
        "takes": takes,
        "next_fetch_offset": records.next_fetch_offset,
        "records_read": records.records_read,
        "bytes_read": records.bytes_read,
        "leader_epoch": records.leader_epoch,
        "drained": records.record_iterator is None,
    }


def _same(data: bytes, fetch_offset: int = 0, **options: Any) -> dict[str, Any]:
    theirs = _read(Fetcher.PartitionRecords, data, fetch_offset, **options)
    ours = _read(TightPartitionRecords, data, fetch_offset, **options)
    assert ours == theirs
    return ours


def _records(n: int, start: int = 1_700_000_000_000) -> list[Any]:
    return [(start + i * 37, f"key-{i}".encode(), b'{"score": %d}' % i, []) for i in range(n)]


def test_plain_batches_give_the_same_records_and_bookkeeping() -> None:
    data = _batch(_records(40)) + _batch(_records(25), offset=40)
    got = _same(data)
    flat = [r for take in got["takes"] for r in take]
    assert [r.offset for r in flat] == list(range(65))
    assert flat[3].value == b'{"score": 3}' and flat[3].key == b"key-3"
    assert got["records_read"] == 65 and got["next_fetch_offset"] == 65 and got["drained"]


@pytest.mark.parametrize("size", [0, 1, 63, 64, 127, 128, 8191, 8192, 300_000])
def test_every_varint_width_of_lengths_offsets_and_timestamps(size: int) -> None:
    """Values and keys around each varint width (one, two and three bytes, zig-zag), offset
    deltas past 63 and 8191, and timestamp deltas both ways."""
    value = b"v" * size
    records = [
        (1_700_000_000_000 + delta, b"k" * (size % 200), value, [])
        for delta in (0, 63, 64, -1, -64, -65, 8191, 8192, -8193, 10**9, -(10**9))
    ]
    records += _records(9000)[: 70 if size > 8192 else 9000]
    _same(_batch(records))


def test_null_keys_null_values_and_headers() -> None:
    records = [
        (1, None, None, []),
        (2, b"", b"", []),
        (3, None, b"x", [("h", b"1"), ("ünï", None), ("", b"")]),
        (4, b"k", None, [("trace", b"t" * 300)] * 70),
    ]
    got = _same(_batch(records))
    flat = [r for take in got["takes"] for r in take]
    assert flat[0].key is None and flat[0].value is None and flat[0].serialized_value_size == -1
    assert flat[2].headers == [("h", b"1"), ("ünï", None), ("", b"")]
    assert flat[2].serialized_header_size == 1 + 1 + len("ünï".encode())


def test_compressed_batches() -> None:
    _same(_batch(_records(500), compression=1))  # gzip: the codec kafka-python needs nothing for


def test_a_fetch_from_the_middle_of_a_batch_skips_the_records_before() -> None:
    got = _same(_batch(_records(30)), fetch_offset=12)
    assert [r.offset for take in got["takes"] for r in take] == list(range(12, 30))


def test_log_append_time_and_control_batches() -> None:
    append_time = _with_attributes(_batch(_records(5)), DefaultRecordBatch.TIMESTAMP_TYPE_MASK)
    control = _with_attributes(
        _batch([(9, b"\x00\x00\x00\x01", b"", [])], offset=5), DefaultRecordBatch.CONTROL_MASK
    )
    got = _same(append_time + control + _batch(_records(3), offset=6))
    flat = [r for take in got["takes"] for r in take]
    assert [r.offset for r in flat] == [0, 1, 2, 3, 4, 6, 7, 8]
    assert {r.timestamp_type for r in flat[:5]} == {1}
    assert len({r.timestamp for r in flat[:5]}) == 1


@pytest.mark.parametrize("magic", [0, 1])
def test_older_message_formats_read_as_kafka_python_reads_them(magic: int) -> None:
    _same(_batch(_records(20), magic=magic) + _batch(_records(5), magic=magic, offset=20))


def test_read_committed_and_deserializers_stay_with_kafka_python() -> None:
    data = _batch(_records(10))
    _same(data, isolation_level=1)
    _same(data, value_deserializer=lambda value: value[::-1])


def _counting(data: bytes, more: int) -> bytes:
    """``data`` (one v2 batch) declaring ``more`` records than it holds, CRC fixed."""
    raw = bytearray(data)
    at = DefaultRecordBatch.HEADER_STRUCT.size - 4
    (count,) = struct.unpack_from(">i", raw, at)
    struct.pack_into(">i", raw, at, count + more)
    return _with_attributes(bytes(raw), 0)


def _corrupt(data: bytes, at: int, byte: int) -> bytes:
    """``data`` (one v2 batch) with the byte at ``at`` of its records replaced, CRC fixed."""
    raw = bytearray(data)
    raw[DefaultRecordBatch.HEADER_STRUCT.size + at] = byte
    return _with_attributes(bytes(raw), 0)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: _corrupt(d, 0, 0x7E),  # first record's length too large
        lambda d: _corrupt(d, 0, 0x02),  # first record's length too small
        lambda d: _counting(d, 1),  # one record more than the batch holds
        lambda d: _counting(d, -1),  # one less: bytes left over
        lambda d: _corrupt(
            d, len(d) - DefaultRecordBatch.HEADER_STRUCT.size - 1, 0x01
        ),  # headers: -1
        lambda d: d[:-3] + b"\xff\xff\xff",  # CRC no longer matches
    ],
)
def test_a_corrupt_batch_fails_the_same_way_after_the_same_records(
    damage: Callable[[bytes], bytes],
) -> None:
    data = damage(_batch(_records(12)))
    got = _same(data)
    assert any(isinstance(take, tuple) for take in got["takes"])


def test_install_replaces_the_parser_of_one_consumer_only() -> None:
    class NotAConsumer:
        pass

    assert not install(NotAConsumer())
    assert Fetcher.PartitionRecords is not TightPartitionRecords


@pytest.mark.broker
@pytest.mark.timeout(60)
def test_through_the_broker_both_parsers_read_the_same_records(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    """Records with and without keys and headers, in batches of several sizes, read by a
    tilewatch consumer (the default parser) and by one left to kafka-python."""
    topic = make_topic(1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    for i in range(3000):
        producer.send(
            topic,
            value=b'{"i": %d, "pad": "%s"}' % (i, b"x" * (i % 400)),
            key=None if i % 3 else f"k{i}".encode(),
            headers=[("n", str(i).encode())] if i % 5 == 0 else [],
        )
    producer.flush()
    producer.close()
    read: dict[str, list[Any]] = {}
    for parser in ("tilewatch", "kafka-python"):
        settings = KafkaSettings(
            bootstrap_servers=(broker.bootstrap,),
            group_id=f"g-{uuid.uuid4().hex[:8]}",
            record_parser=parser,
        )
        consumer = new_restore_consumer(settings)
        assert installed(consumer) == (parser == "tilewatch")
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got: list[Any] = []
        while len(got) < 3000:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
        consumer.close()
        read[parser] = got
    assert len(read["tilewatch"]) == 3000
    assert read["tilewatch"] == read["kafka-python"]
    group = new_consumer(KafkaSettings(bootstrap_servers=(broker.bootstrap,)))
    try:
        assert installed(group)
    finally:
        group.close()
