"""The dead-letter topic: every rejected record, unchanged, with why and where it came from.

The value, key and original headers are copied as they are; these headers are added:

========================== ==============================================================
``tilewatch.reason``       reason code (``not_json``, ``bad_score``, ...)
``tilewatch.detail``       which field was wrong and what was found
``tilewatch.source.topic`` source topic
``tilewatch.source.partition`` source partition (decimal text)
``tilewatch.source.offset``    source offset (decimal text)
``tilewatch.source.key_null``  ``true`` on a tombstone that had no key (sent with key ``b""``)
========================== ==============================================================

Records are produced asynchronously; :meth:`DeadLetterSink.flush` waits for them and is called
before the offsets that cover them are committed, so a rejected record is either in the
dead-letter topic or counted in ``tilewatch_dead_letter_failures_total`` (and logged with its
source coordinates, where it can still be read) before the consumer moves past it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from tilewatch.streams.decoding.record import Rejected

__all__ = ["DeadLetterSink", "ProducerLike", "flush_pending"]

log = logging.getLogger(__name__)


class ProducerLike(Protocol):
    """The part of kafka-python's ``KafkaProducer`` the sink uses."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Any: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


def flush_pending(
    producer: ProducerLike | None,
    pending: list[tuple[Any, Any]],
    timeout: float,
    what: str,
    fail: Callable[[Any, object], None],
) -> tuple[int, int]:
    """Wait for the ``(item, future)`` pairs produced since the last flush and empty the list:
    ``fail(item, why)`` for each record that was not acknowledged; returns (sent, failed)."""
    if not pending:
        return 0, 0
    sent = failed = 0
    try:
        assert producer is not None
        producer.flush(timeout=timeout)
    except Exception as exc:
        log.error("%s flush did not complete: %r", what, exc)
    for item, future in pending:
        if future.is_done and future.succeeded():
            sent += 1
        else:
            failed += 1
            fail(item, future.exception if future.is_done else "timed out")
    pending.clear()
    return sent, failed


class DeadLetterSink:
    """Sends rejected records to a topic and reports what failed.

    Parameters
    ----------
    topic
        The dead-letter topic, or None to only log rejects.
    producer_factory
        Builds the producer on first use (Kafka clients are created lazily).
    on_failure
        Called with the reason code of each record that could not be produced.
    """

    def __init__(
        self,
        topic: str | None,
        producer_factory: Callable[[], ProducerLike],
        on_failure: Callable[[str], None],
        timeout_seconds: float = 30.0,
    ) -> None:
        self.topic = topic
        self._factory = producer_factory
        self._producer: ProducerLike | None = None
        self._on_failure = on_failure
        self._timeout = timeout_seconds
        self._pending: list[tuple[Rejected, Any]] = []
        self.sent = 0

    def send(self, rejected: Rejected) -> None:
        """Queue one rejected record."""
        rec = rejected.record
        if self.topic is None:
            log.warning(
                "rejected %s/%d@%d (%s): %s",
                rec.topic,
                rec.partition,
                rec.offset,
                rejected.reason,
                rejected.detail,
            )
            return
        headers = [(k, v if v is not None else b"") for k, v in (rec.headers or [])]
        headers += [
            ("tilewatch.reason", rejected.reason.encode()),
            ("tilewatch.detail", rejected.detail.encode("utf-8", "replace")),
            ("tilewatch.source.topic", rec.topic.encode()),
            ("tilewatch.source.partition", str(rec.partition).encode()),
            ("tilewatch.source.offset", str(rec.offset).encode()),
        ]
        try:
            if self._producer is None:
                self._producer = self._factory()
            key = rec.key
            if key is None and rec.value is None:
                # Kafka clients refuse a record with neither key nor value: keep the tombstone
                # with an empty key, and say so.
                key = b""
                headers.append(("tilewatch.source.key_null", b"true"))
            future = self._producer.send(self.topic, value=rec.value, key=key, headers=headers)
        except Exception as exc:  # a producer error must not stop consumption
            self._fail(rejected, exc)
            return
        self._pending.append((rejected, future))

    def flush(self) -> int:
        """Wait for queued records; returns how many failed (each counted and logged)."""
        sent, failed = flush_pending(
            self._producer, self._pending, self._timeout, "dead-letter", self._fail
        )
        self.sent += sent
        return failed

    def _fail(self, rejected: Rejected, exc: object) -> None:
        rec = rejected.record
        log.error(
            "could not dead-letter %s/%d@%d (%s): %s; the record is still in its source topic",
            rec.topic,
            rec.partition,
            rec.offset,
            rejected.reason,
            exc,
        )
        self._on_failure(rejected.reason)

    def close(self) -> None:
        """Flush and close the producer."""
        self.flush()
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
