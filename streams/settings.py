"""Settings of the Kafka side and of the event schema (``[kafka]`` and ``[events]``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECORD_PARSERS", "EventFields", "KafkaSettings", "LabelTopic", "StateSettings"]

#: The values of ``[kafka] record_parser``: who reads kafka-python's fetched record batches.
RECORD_PARSERS = ("tilewatch", "kafka-python")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where events come from and where rejected records go.

    ``client`` is passed through to kafka-python's consumer, producer and admin client
    (``security_protocol``, ``sasl_mechanism``, ``ssl_cafile``, ``session_timeout_ms``, ...);
    with ``client_library = "confluent"`` the consumer and producer are confluent-kafka's,
    and the options are translated to librdkafka's names
    (:mod:`tilewatch.streams.confluent_options`).
    ``record_parser`` (kafka-python only): ``"tilewatch"`` reads fetched v2 record batches with
    :mod:`tilewatch.streams.kafka_records` (the same records, 2.3 us less per record);
    ``"kafka-python"`` leaves them to kafka-python's own parser.
    ``dead_letter_topic`` of ``None`` disables the dead-letter topic (rejects are then only
    counted and logged).
    """

    bootstrap_servers: tuple[str, ...] = ("127.0.0.1:9092",)
    topics: tuple[str, ...] = ("predictions",)
    group_id: str = "tilewatch"
    dead_letter_topic: str | None = "tilewatch-dead-letter"
    auto_offset_reset: str = "earliest"
    max_poll_records: int = 5000
    poll_timeout_seconds: float = 0.5
    commit_interval_seconds: float = 1.0
    client: dict[str, Any] = field(default_factory=dict, repr=False)
    client_library: str = "kafka-python"
    record_parser: str = "tilewatch"


@dataclass(frozen=True, slots=True)
class EventFields:
    """Which JSON field holds each part of a prediction event.

    Every path is a key of the top-level JSON object or a dotted path into nested objects
    (``"meta.region"``). ``dimensions`` maps each cell dimension name to its path.

    Multi-class models: ``scores`` is the path of the class probabilities (an object class ->
    probability, or a list in the order of ``classes``; None: no multi-class model). At most
    ``max_classes`` class names are kept per model; the rest are pooled into one ``other``
    column and counted (:mod:`tilewatch.streams.decoding.class_scores`).
    """

    event_id: str = "event_id"
    timestamp: str = "timestamp"
    model: str = "model"
    model_version: str = "model_version"
    score: str = "score"
    prediction: str = "prediction"
    label: str = "label"
    latency: str = "latency_ms"
    features: str = "features"
    dimensions: dict[str, str] = field(
        default_factory=lambda: {"segment": "segment", "region": "region"}
    )
    score_min: float = 0.0
    score_max: float = 1.0
    max_event_bytes: int = 1_048_576
    scores: str | None = None
    classes: tuple[str, ...] = ()
    max_classes: int = 20
    #: Vector signals (``docs/embeddings.md``): the path of an event's embedding (a list of
    #: numbers) and of its attributions (an object feature -> number); None: not read.
    embedding: str | None = None
    attributions: str | None = None
    #: Per-class thresholds by class name (``[events] class_thresholds``; see
    #: docs/multiclass.md): a prediction whose probability of its class is below it did not
    #: clear the threshold.
    class_thresholds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Checkpoints of partition state (the ``[state]`` section).

    With ``checkpoints`` on, each partition's state and the offset it covers are written to the
    compacted ``changelog_topic`` every ``checkpoint_interval_seconds`` (and at shutdown), and
    restored when the partition is assigned. ``changelog_topic`` of ``None`` means
    ``"<group_id>-tilewatch-changelog"``.
    """

    checkpoints: bool = True
    changelog_topic: str | None = None
    checkpoint_interval_seconds: float = 10.0
    restore_timeout_seconds: float = 60.0

    def topic_for(self, group_id: str) -> str:
        """The changelog topic for a consumer group."""
        return self.changelog_topic or f"{group_id}-tilewatch-changelog"


@dataclass(frozen=True, slots=True)
class LabelTopic:
    """The outcomes topic labels arrive on, and where each part of a label record is.

    The topic must be co-partitioned with the predictions topic: the same number of
    partitions, and each label produced with the same key as its prediction, so partition
    ``p`` of both topics goes to the same consumer (the range assignor, which tilewatch uses
    when labels come from a topic) and the label meets its prediction's partition state.
    """

    topic: str
    event_id: str = "event_id"
    label: str = "label"
    timestamp: str = "timestamp"
