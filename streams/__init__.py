"""Kafka in and out for tilewatch: decoding, validation, dead letters, the runtime loop.

Turns Kafka records into validated event columns and hands them, a batch at a time, to
``aggregators``. Kafka clients are created lazily, inside the functions that need them.
"""

from __future__ import annotations

from tilewatch.streams.deadletter import DeadLetterSink, ProducerLike
from tilewatch.streams.decoding.events import DecodedBatch, EventDecoder
from tilewatch.streams.decoding.record import REASONS, RecordLike, Rejected
from tilewatch.streams.errors import DecodeError, StreamError
from tilewatch.streams.loop import ConsumerLike, Monitor, RunSummary, kafka_client_config
from tilewatch.streams.settings import EventFields, KafkaSettings

__all__ = [
    "REASONS",
    "ConsumerLike",
    "DeadLetterSink",
    "DecodeError",
    "DecodedBatch",
    "EventDecoder",
    "EventFields",
    "KafkaSettings",
    "Monitor",
    "ProducerLike",
    "RecordLike",
    "Rejected",
    "RunSummary",
    "StreamError",
    "kafka_client_config",
]
