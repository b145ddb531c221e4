"""The confluent-kafka (librdkafka) producer behind the seam of dead letters and checkpoints.

:class:`ConfluentProducer` speaks the part of kafka-python's ``KafkaProducer`` that
:class:`~tilewatch.streams.deadletter.DeadLetterSink` and
:class:`~tilewatch.streams.changelog.store.ChangelogStore` use: ``send`` returns a
:class:`DeliveryFuture` that the delivery callback completes (served by ``poll``/``flush``),
``flush`` raises StreamError when records are still unacknowledged at its timeout, and
``partitions_for`` reads the topic's metadata.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from tilewatch.streams.confluent_options import librdkafka_config
from tilewatch.streams.errors import StreamError
from tilewatch.streams.settings import KafkaSettings

__all__ = [
    "LIBRDKAFKA_LOGGER",
    "STATS_INTERVAL_SECONDS",
    "ConfluentProducer",
    "DeliveryFuture",
    "load_library",
    "new_confluent_producer",
]

log = logging.getLogger(__name__)

#: The Python logger librdkafka's own log lines go to (instead of the process's stderr).
LIBRDKAFKA_LOGGER = "tilewatch.streams.librdkafka"
#: Seconds between librdkafka statistics (liveness) and between repeated error log lines.
STATS_INTERVAL_SECONDS = 1.0


def load_library() -> Any:
    """The confluent_kafka module, or StreamError saying how to install it."""
    try:
        import confluent_kafka
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise StreamError(
            '[kafka] client_library = "confluent" needs confluent-kafka: '
            "pip install 'tilewatch[confluent]'"
        ) from exc
    return confluent_kafka


class DeliveryFuture:
    """The outcome of one produced record (kafka-python's ``FutureRecordMetadata`` subset)."""

    __slots__ = ("exception", "is_done")

    def __init__(self) -> None:
        self.is_done = False
        self.exception: Exception | None = None

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.exception = StreamError(f"delivery failed: {err.str()}")
        self.is_done = True

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None

    def get(self, timeout: float | None = None) -> None:
        """Raise StreamError unless the record was delivered (the producer was flushed)."""
        if not self.is_done:
            raise StreamError("the record was not acknowledged in time")
        if self.exception is not None:
            raise self.exception


class ConfluentProducer:
    """A confluent-kafka ``Producer`` with the kafka-python methods the sinks call."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        ck = load_library()
        self._ck = ck
        config = dict(config)
        config["error_cb"] = self._on_error
        config.setdefault("logger", logging.getLogger(LIBRDKAFKA_LOGGER))
        try:
            self._producer = ck.Producer(config)
        except (ck.KafkaException, ValueError, TypeError) as exc:
            raise StreamError(f"cannot create the confluent-kafka producer: {exc}") from exc
        self._last_error_log = -1e9

    def _on_error(self, err: Any) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= STATS_INTERVAL_SECONDS:
            self._last_error_log = now
            log.warning("Kafka producer error (librdkafka): %s", err.str())

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> DeliveryFuture:
        """Queue one record; a full local queue is drained (up to 30 s) before giving up."""
        future = DeliveryFuture()
        kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": future._delivered}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError as exc:
                if time.monotonic() > deadline:
                    raise StreamError(f"the producer queue stayed full: {exc}") from exc
                self._producer.poll(0.1)
            except self._ck.KafkaException as exc:
                raise StreamError(f"cannot produce to {topic!r}: {exc}") from exc
        self._producer.poll(0)
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every queued record; StreamError if some are still queued at ``timeout``."""
        left = self._producer.flush(-1 if timeout is None else timeout)
        if left:
            raise StreamError(f"{left} records not acknowledged within {timeout} s")

    def partitions_for(self, topic: str) -> set[int]:
        try:
            metadata = self._producer.list_topics(topic, timeout=10.0)
        except self._ck.KafkaException as exc:
            raise StreamError(f"cannot read the partitions of {topic!r}: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return set()
        return set(found.partitions)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (up to ``timeout``)."""
        left = self._producer.flush(-1 if timeout is None else timeout)
        if left:
            log.error("closing the producer with %d records not acknowledged", left)


def new_confluent_producer(settings: KafkaSettings) -> ConfluentProducer:
    """The producer of dead letters and checkpoints."""
    return ConfluentProducer(librdkafka_config(settings, "producer"))
