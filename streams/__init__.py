"""Kafka in and out for tilewatch: decoding, validation, dead letters, checkpoints, the loop.

Turns Kafka records into validated event columns and hands them, a batch at a time, to
``aggregators``. Kafka clients are created lazily, by factories (``clients``).

- ``loop``: the runtime loop (:class:`Monitor`): poll, decode, apply, then checkpoint and
  commit through ``commit``; ``assignment`` (rebalances, restore, seeks), ``pacing`` (lag and
  event-time pacing of the outcomes topic), ``topics`` (co-partitioning, topic creation),
  ``clients`` (Kafka client config and factories), ``summary`` (what a run did).
- ``decoding/``: record values to event and label columns; ``deadletter``: rejected records.
- ``changelog/``: partition checkpoints on a compacted topic (record format and store).
- ``dev/``: the embedded broker, synthetic traffic and the demo producer (not used at run time).
- ``settings``, ``errors``: the ``[kafka]``, ``[events]``, ``[state]`` settings and errors.

May import: ``tilewatch.aggregators``; never ``tilewatch.exporters`` or the ``tilewatch`` CLI
and config modules.
"""

from __future__ import annotations

from tilewatch.streams.clients import ConsumerLike, kafka_client_config
from tilewatch.streams.deadletter import DeadLetterSink, ProducerLike
from tilewatch.streams.decoding.outcomes import LabelBatch, LabelDecoder
from tilewatch.streams.decoding.predictions import DecodedBatch, EventDecoder
from tilewatch.streams.decoding.record import REASONS, RecordLike, Rejected
from tilewatch.streams.errors import DecodeError, StreamError
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings, LabelTopic, StateSettings
from tilewatch.streams.summary import RunSummary

__all__ = [
    "REASONS",
    "ConsumerLike",
    "DeadLetterSink",
    "DecodeError",
    "DecodedBatch",
    "EventDecoder",
    "EventFields",
    "KafkaSettings",
    "LabelBatch",
    "LabelDecoder",
    "LabelTopic",
    "Monitor",
    "ProducerLike",
    "RecordLike",
    "Rejected",
    "RunSummary",
    "StateSettings",
    "StreamError",
    "kafka_client_config",
]
