"""Reading kafka-python's fetched record batches in one tight loop.

kafka-python parses each record of a v2 batch through several Python calls: a record object
and seven ``decode_varint`` calls (``DefaultRecordBatch._read_msg``), a CRC check that is
always true for v2 records, two deserializer calls and a ``ConsumerRecord``. That is 3.5 us of
the ~6 us per event kafka-python spends (``docs/throughput.md``). :class:`TightPartitionRecords`
reads the same bytes with one- and two-byte varints decoded inline and builds the same
``ConsumerRecord`` tuples: offsets, timestamps, keys, values, headers and the sizes kafka-python
reports, the same errors for a corrupt batch (``CorruptRecordError``) after the records before
the fault, the same bookkeeping (``next_fetch_offset``, ``records_read``, ``bytes_read``).

It takes over only what it reads the same way: v2 batches, without deserializers, at
``read_uncommitted``: a consumer at ``read_committed`` (the aborted-transaction filter) or
given deserializers is left to kafka-python's code, and message formats 0 and 1 are read
record by record as kafka-python reads them.
:func:`install` puts the class on one consumer's fetcher (not on kafka-python's class), and
does nothing when the fetcher is not the one this was written against (its signatures and
``ConsumerRecord`` fields). ``tests/streams/test_kafka_records.py`` compares both parsers on the
same batches; its broker-free tests pass with kafka-python 2.2.15 and 3.0.12.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord, Fetcher
from kafka.errors import CorruptRecordError
from kafka.record.util import decode_varint

__all__ = ["FIELDS", "TightPartitionRecords", "install", "installed"]

_Base: Any = getattr(Fetcher, "PartitionRecords", None)
#: kafka-python's isolation level for ``read_uncommitted`` (a constant in 2.x, an IntEnum in 3.x).
READ_UNCOMMITTED = 0
_new = tuple.__new__


#: The fields of the ``ConsumerRecord`` this module builds, in kafka-python's order.
FIELDS = (
    "topic",
    "partition",
    "leader_epoch",
    "offset",
    "timestamp",
    "timestamp_type",
    "key",
    "value",
    "headers",
    "checksum",
    "serialized_key_size",
    "serialized_value_size",
    "serialized_header_size",
)


def _usable() -> bool:
    """Whether kafka-python's fetcher has the seam this module fills, as this module knows it."""
    if _Base is None or ConsumerRecord._fields != FIELDS:
        return False
    unpack = getattr(_Base, "_unpack_records", None)
    try:
        names = tuple(inspect.signature(unpack).parameters)  # type: ignore[arg-type]
        init = inspect.signature(_Base.__init__).parameters
    except (TypeError, ValueError):
        return False
    wanted = ("self", "tp", "records", "key_deserializer", "value_deserializer")
    return names == wanted and {"check_crcs", "isolation_level", "on_drain"} <= set(init)


class TightPartitionRecords(_Base or object):  # type: ignore[misc]
    """kafka-python's ``Fetcher.PartitionRecords`` with its v2 record loop rewritten."""

    def _unpack_records(
        self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
    ) -> Iterator[Any]:
        if (
            key_deserializer is not None
            or value_deserializer is not None
            or self.isolation_level != READ_UNCOMMITTED
        ):
            yield from super()._unpack_records(tp, records, key_deserializer, value_deserializer)
            return
        try:
            batch = records.next_batch()
            last_batch = None
            while batch is not None:
                last_batch = batch
                if self.check_crcs and not batch.validate_crc():
                    raise CorruptRecordError(
                        f"Record batch for partition {self.topic_partition} at offset "
                        f"{batch.base_offset} failed crc check"
                    )
                if batch.magic == 2:
                    self.leader_epoch = batch.leader_epoch
                    if batch.is_control_batch:
                        self.next_fetch_offset = batch.next_offset
                    else:
                        yield from self._v2(tp, batch)
                else:
                    yield from self._legacy(tp, batch)
                batch = records.next_batch()
            else:
                if last_batch and last_batch.magic == 2:
                    self.next_fetch_offset = last_batch.next_offset
                self.drain()
        except StopIteration:  # as kafka-python: a StopIteration must not end the generator
            raise RuntimeError("StopIteration raised unpacking messageset") from None

    def _v2(self, tp: Any, batch: Any) -> Iterator[Any]:
        """The records of one v2 batch (``DefaultRecordBatch._read_msg``, inlined).

        The five varint blocks repeat on purpose: a helper call per field is the cost this
        loop removes (``decode_varint`` stays for the three-byte and longer ones).
        """
        batch._maybe_uncompress()
        buf = batch._buffer
        pos = batch._pos
        end = len(buf)
        base_offset = batch.base_offset
        ts_type = batch.timestamp_type
        append_time = batch.max_timestamp if ts_type else None
        first_ts = batch.first_timestamp
        topic, partition, epoch = tp.topic, tp.partition, self.leader_epoch
        cls, varint = ConsumerRecord, decode_varint
        for _ in range(batch._num_records):
            try:
                b = buf[pos]
                if b < 0x80:
                    length = (b >> 1) ^ -(b & 1)
                    pos += 1
                elif buf[pos + 1] < 0x80:
                    b = (b & 0x7F) | (buf[pos + 1] << 7)
                    length = (b >> 1) ^ -(b & 1)
                    pos += 2
                else:
                    length, pos = varint(buf, pos)
                start = pos
                if buf[pos] < 0x80:  # attributes: unused, as in kafka-python
                    pos += 1
                else:
                    _, pos = varint(buf, pos)
                b = buf[pos]
                if b < 0x80:
                    ts_delta = (b >> 1) ^ -(b & 1)
                    pos += 1
                elif buf[pos + 1] < 0x80:
                    b = (b & 0x7F) | (buf[pos + 1] << 7)
                    ts_delta = (b >> 1) ^ -(b & 1)
                    pos += 2
                else:
                    ts_delta, pos = varint(buf, pos)
                b = buf[pos]
                if b < 0x80:
                    offset_delta = (b >> 1) ^ -(b & 1)
                    pos += 1
                elif buf[pos + 1] < 0x80:
                    b = (b & 0x7F) | (buf[pos + 1] << 7)
                    offset_delta = (b >> 1) ^ -(b & 1)
                    pos += 2
                else:
                    offset_delta, pos = varint(buf, pos)
                b = buf[pos]
                if b < 0x80:
                    key_len = (b >> 1) ^ -(b & 1)
                    pos += 1
                elif buf[pos + 1] < 0x80:
                    b = (b & 0x7F) | (buf[pos + 1] << 7)
                    key_len = (b >> 1) ^ -(b & 1)
                    pos += 2
                else:
                    key_len, pos = varint(buf, pos)
                if key_len >= 0:
                    key: bytes | None = bytes(buf[pos : pos + key_len])
                    pos += key_len
                else:
                    key = None
                b = buf[pos]
                if b < 0x80:
                    value_len = (b >> 1) ^ -(b & 1)
                    pos += 1
                elif buf[pos + 1] < 0x80:
                    b = (b & 0x7F) | (buf[pos + 1] << 7)
                    value_len = (b >> 1) ^ -(b & 1)
                    pos += 2
                else:
                    value_len, pos = varint(buf, pos)
                if value_len >= 0:
                    value: bytes | None = bytes(buf[pos : pos + value_len])
                    pos += value_len
                else:
                    value = None
                b = buf[pos]
                if b == 0:
                    headers: list[tuple[str, bytes | None]] = []
                    header_size = -1
                    pos += 1
                else:
                    headers, header_size, pos = _headers(buf, pos)
            except (ValueError, IndexError) as err:
                raise CorruptRecordError(f"Found invalid record structure: {err!r}") from None
            if pos - start != length:
                raise CorruptRecordError(
                    f"Invalid record size: expected to read {length} bytes in record "
                    f"payload, but instead read {pos - start}"
                )
            offset = base_offset + offset_delta
            self.records_read += 1
            self.bytes_read += length
            self.next_fetch_offset = offset + 1
            yield _new(
                cls,
                (
                    topic,
                    partition,
                    epoch,
                    offset,
                    append_time if ts_type else first_ts + ts_delta,
                    ts_type,
                    key,
                    value,
                    headers,
                    None,
                    -1 if key is None else key_len,
                    -1 if value is None else value_len,
                    header_size,
                ),
            )
        if pos != end:
            raise CorruptRecordError(f"{end - pos} unconsumed bytes after all records consumed")

    def _legacy(self, tp: Any, batch: Any) -> Iterator[Any]:
        """Message formats 0 and 1, as kafka-python reads them."""
        for record in batch:
            if self.check_crcs and not record.validate_crc():
                raise CorruptRecordError(
                    f"Record for partition {self.topic_partition} at offset {record.offset} "
                    "failed crc check"
                )
            key, value = record.key, record.value
            self.records_read += 1
            self.bytes_read += record.size_in_bytes
            self.next_fetch_offset = record.offset + 1
            yield ConsumerRecord(
                tp.topic,
                tp.partition,
                self.leader_epoch,
                record.offset,
                record.timestamp,
                record.timestamp_type,
                key,
                value,
                record.headers,
                record.checksum,
                len(key) if key is not None else -1,
                len(value) if value is not None else -1,
                -1,
            )


def _headers(buf: bytearray, pos: int) -> tuple[list[tuple[str, bytes | None]], int, int]:
    """A record's headers from ``pos``: (headers, their size as kafka-python reports it, end)."""
    count, pos = decode_varint(buf, pos)
    if count < 0:
        raise CorruptRecordError(f"Found invalid number of record headers {count}")
    headers: list[tuple[str, bytes | None]] = []
    size = 0
    while count:
        key_len, pos = decode_varint(buf, pos)
        if key_len < 0:
            raise CorruptRecordError(f"Invalid negative header key size {key_len}")
        key = buf[pos : pos + key_len].decode("utf-8")
        pos += key_len
        value_len, pos = decode_varint(buf, pos)
        value: bytes | None = None
        if value_len >= 0:
            value = bytes(buf[pos : pos + value_len])
            pos += value_len
        headers.append((key, value))
        size += len(key.encode("utf-8")) + (len(value) if value is not None else 0)
        count -= 1
    return headers, (size if headers else -1), pos


def install(consumer: Any) -> bool:
    """Read ``consumer``'s fetched batches with :class:`TightPartitionRecords`; whether it did."""
    fetcher: Any = getattr(consumer, "_fetcher", None)
    if not _usable() or type(fetcher) is not Fetcher:
        return False
    fetcher.PartitionRecords = TightPartitionRecords
    return True


def installed(consumer: Any) -> bool:
    """Whether ``consumer`` reads through :class:`TightPartitionRecords`."""
    fetcher = getattr(consumer, "_fetcher", None)
    return getattr(fetcher, "PartitionRecords", None) is TightPartitionRecords
