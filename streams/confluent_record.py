"""The records a :class:`~tilewatch.streams.confluent_client.ConfluentConsumer` hands out.

A poll gives, per partition, a :class:`ConfluentRun`: the run's messages and their values,
read once. The decoders read the values directly (``values``, the fast path of every batch);
a record (:class:`ConfluentRecord`) is made only for what asks for one: the run's last offset,
a rejected record, the labeling queue's candidates, the restore's changelog records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import Any, overload

__all__ = ["ConfluentRecord", "ConfluentRun"]


class ConfluentRecord(tuple):  # type: ignore[type-arg]
    """A consumed message with kafka-python's record attributes (what the decoders read).

    A tuple ``(value, offset, topic, partition, message)`` built without a Python frame
    (``tuple.__new__``) and read through C-level getters: the wrapper costs a fraction of a
    microsecond per record, next to librdkafka's parsing. ``key``, ``headers`` and
    ``timestamp`` (read for rejected records only) come from the message when asked.
    """

    __slots__ = ()

    value: bytes | None = property(itemgetter(0))  # type: ignore[assignment]
    offset: int = property(itemgetter(1))  # type: ignore[assignment]
    topic: str = property(itemgetter(2))  # type: ignore[assignment]
    partition: int = property(itemgetter(3))  # type: ignore[assignment]

    @property
    def key(self) -> bytes | None:
        key: bytes | None = self[4].key()
        return key

    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]] | None:
        headers: Sequence[tuple[str, bytes | None]] | None = self[4].headers()
        return headers

    @property
    def timestamp(self) -> int | None:
        kind, ms = self[4].timestamp()
        return None if kind == 0 else int(ms)  # 0: TIMESTAMP_NOT_AVAILABLE

    def __repr__(self) -> str:
        return f"ConfluentRecord({self.topic}/{self.partition}@{self.offset})"


_new_record = tuple.__new__


class ConfluentRun(Sequence[ConfluentRecord]):
    """One partition's messages of a poll, in offset order, as a sequence of records.

    ``values`` holds each message's value (what the decoders read); ``messages`` the
    confluent-kafka messages. Records are made on first access and kept, so an index gives
    the same object every time (the labeling stage tells rejected records by identity).

    Examples
    --------
    >>> from confluent_kafka import Message
    >>> run = ConfluentRun("t", 0)
    >>> for off in (7, 8):
    ...     run.add(Message(topic="t", partition=0, offset=off, value=b"v%d" % off))
    >>> len(run), run.values, run[-1].offset, run[-1] is run[1], [r.value for r in run]
    (2, [b'v7', b'v8'], 8, True, [b'v7', b'v8'])
    """

    __slots__ = ("_made", "_records", "messages", "partition", "topic", "values")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.values: list[bytes | None] = []
        self.messages: list[Any] = []
        self._made: dict[int, ConfluentRecord] = {}
        self._records: list[ConfluentRecord] | None = None

    def add(self, message: Any) -> None:
        """Append one message (of this run's partition; the poll's grouping loop inlines it)."""
        self.messages.append(message)
        self.values.append(message.value())

    def next_offset(self) -> int:
        """The offset after the run's last message."""
        return int(self.messages[-1].offset()) + 1

    def __len__(self) -> int:
        return len(self.messages)

    def _record(self, i: int) -> ConfluentRecord:
        rec = self._made.get(i)
        if rec is None:
            msg = self.messages[i]
            rec = _new_record(
                ConfluentRecord, (self.values[i], msg.offset(), self.topic, self.partition, msg)
            )
            self._made[i] = rec
        return rec

    @property
    def records(self) -> list[ConfluentRecord]:
        """Every record of the run (made once)."""
        if self._records is None:
            self._records = [self._record(i) for i in range(len(self.messages))]
        return self._records

    @overload
    def __getitem__(self, i: int) -> ConfluentRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[ConfluentRecord]: ...

    def __getitem__(self, i: int | slice) -> ConfluentRecord | list[ConfluentRecord]:
        if self._records is not None or isinstance(i, slice):
            return self.records[i]
        n = len(self.messages)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError("ConfluentRun index out of range")
        return self._record(j)

    def __iter__(self) -> Iterator[ConfluentRecord]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"ConfluentRun({self.topic}/{self.partition}, {len(self)} records)"
