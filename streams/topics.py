"""Topics: which partitions belong together, and the topics the loop needs created and checked.

Labels read from an outcomes topic are joined per partition: partition ``p`` of the outcomes
topic feeds the state of partition ``p`` of the (single) predictions topic (:class:`Routing`).
:func:`ensure_topics` creates the dead-letter and changelog topics when missing and checks that
the outcomes topic is co-partitioned with the predictions topic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.snapshot import PartitionKey
from tilewatch.streams.clients import kafka_client_config
from tilewatch.streams.errors import StreamError
from tilewatch.streams.settings import KafkaSettings

__all__ = ["Routing", "ensure_topics"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Routing:
    """Which state a partition feeds: its own (predictions) or its owner's (outcomes).

    Examples
    --------
    >>> r = Routing(("predictions",), "outcomes")
    >>> r.is_outcomes(("outcomes", 2)), r.owner(("outcomes", 2)), r.outcomes_of(("predictions", 2))
    (True, ('predictions', 2), ('outcomes', 2))
    >>> Routing(("predictions",), None).is_outcomes(("outcomes", 2))
    False
    """

    #: The predictions topics (exactly one when labels come from a topic).
    topics: tuple[str, ...]
    #: The outcomes topic labels arrive on (None: inline labels or none).
    outcomes: str | None = None

    def is_outcomes(self, key: PartitionKey) -> bool:
        """Whether ``key`` is a partition of the outcomes topic."""
        return self.outcomes is not None and key[0] == self.outcomes

    def owner(self, outcomes_key: PartitionKey) -> PartitionKey:
        """The predictions partition whose state the outcomes partition feeds."""
        return (self.topics[0], outcomes_key[1])

    def outcomes_of(self, key: PartitionKey) -> PartitionKey:
        """The outcomes partition co-partitioned with the predictions partition ``key``."""
        assert self.outcomes is not None
        return (self.outcomes, key[1])

    def label_offset(
        self, partitions: Mapping[PartitionKey, PartitionState], outcomes_key: PartitionKey
    ) -> int | None:
        """The outcomes partition's processed offset (kept by its predictions partition)."""
        part = partitions.get(self.owner(outcomes_key))
        if part is None or part.labels is None:
            return None
        return part.labels.offset


def ensure_topics(
    kafka: KafkaSettings,
    changelog_topic: str | None,
    outcomes_topic: str | None,
    queue_topics: Sequence[str] = (),
) -> None:
    """Create the dead-letter, labeling queue and changelog topics if missing (best effort).

    The changelog is compacted and gets as many partitions as the largest source topic. With
    an ``outcomes_topic``, raise StreamError unless it is co-partitioned with the predictions
    topic (a missing one is created with the predictions topic's partition count).
    """
    wanted: dict[str, dict[str, Any]] = {}
    if kafka.dead_letter_topic is not None:
        wanted[kafka.dead_letter_topic] = {"num_partitions": 1, "replication_factor": 1}
    for topic in queue_topics:
        wanted[topic] = {"num_partitions": 1, "replication_factor": 1}
    if changelog_topic is None and not wanted and outcomes_topic is None:
        return
    from kafka import KafkaAdminClient, errors
    from kafka.errors import TopicAlreadyExistsError

    # kafka-python 3 raises KafkaTimeoutError when it cannot bootstrap, 2.x NoBrokersAvailable.
    unreachable = tuple(
        getattr(errors, name)
        for name in ("KafkaTimeoutError", "NoBrokersAvailable")
        if hasattr(errors, name)
    )
    config = kafka_client_config(kafka, "admin")
    try:
        admin = KafkaAdminClient(**config)
    except unreachable as exc:
        # The consumer would fail the same way, after as long again.
        servers = ", ".join(kafka.bootstrap_servers)
        within = config.get("bootstrap_timeout_ms")
        raise StreamError(
            f"cannot bootstrap a Kafka client from {servers}"
            + ("" if within is None else f" within {within / 1000:g} s")
            + f" ({exc}); the address accepts TCP connections: is it a Kafka listener, and do "
            "[kafka.client] security_protocol, TLS and SASL settings match it?"
        ) from exc
    except Exception as exc:
        log.warning("cannot check the dead-letter and changelog topics: %s", exc)
        return
    try:
        existing = set(admin.list_topics())
        if outcomes_topic is not None:
            _check_copartitioned(admin, kafka.topics[0], outcomes_topic, existing, wanted)
        if changelog_topic is not None and changelog_topic not in existing:
            partitions = 1
            for topic in admin.describe_topics(list(kafka.topics)):
                partitions = max(partitions, len(topic.get("partitions") or []))
            wanted[changelog_topic] = {
                "num_partitions": partitions,
                "replication_factor": 1,
                "configs": {"cleanup.policy": "compact"},
            }
        for name, spec in wanted.items():
            if name in existing:
                continue
            try:
                admin.create_topics({name: spec})
                log.info("created topic %r (%d partitions)", name, spec["num_partitions"])
            except TopicAlreadyExistsError:
                pass
    except StreamError:
        raise
    except Exception as exc:
        log.warning("cannot create the dead-letter or changelog topic: %s", exc)
    finally:
        admin.close()


def _check_copartitioned(
    admin: Any,
    predictions: str,
    outcomes: str,
    existing: set[str],
    wanted: dict[str, dict[str, Any]],
) -> None:
    """Raise StreamError unless the outcomes topic has the predictions topic's partitions.

    A missing outcomes topic is added to ``wanted`` with the predictions topic's count.
    """
    names = [t for t in (predictions, outcomes) if t in existing]
    counts = {t["name"]: len(t.get("partitions") or []) for t in admin.describe_topics(names)}
    if predictions not in counts:
        return  # not created yet: checked again at the next start
    if outcomes not in counts:
        wanted[outcomes] = {"num_partitions": counts[predictions], "replication_factor": 1}
        return
    if counts[outcomes] != counts[predictions]:
        raise StreamError(
            f"the outcomes topic {outcomes!r} has {counts[outcomes]} partitions and the "
            f"predictions topic {predictions!r} {counts[predictions]}: labels are joined per "
            "partition, so both need the same count (and labels the same key as their "
            "predictions)"
        )
