"""Kafka clients: their configuration, the factories the loop uses, and whether they connect.

Clients are created lazily, by factories: the seam that lets the loop's logic be tested with
the real broker (or a stand-in consumer) and keeps kafka-python out of the aggregators.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from tilewatch.streams.deadletter import ProducerLike
from tilewatch.streams.errors import StreamError
from tilewatch.streams.settings import KafkaSettings

__all__ = [
    "BOOTSTRAP_TIMEOUT_SECONDS",
    "ConsumerLike",
    "check_reachable",
    "connected",
    "kafka_client_config",
    "new_consumer",
    "new_producer",
    "new_restore_consumer",
]


log = logging.getLogger(__name__)

#: How long a client tries to reach the bootstrap servers before giving up (kafka-python's own
#: default is 30 s per client, a minute or more before a person learns the address is wrong).
BOOTSTRAP_TIMEOUT_SECONDS = 10.0


class ConsumerLike(Protocol):
    """The part of kafka-python's ``KafkaConsumer`` the loop uses."""

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None: ...
    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[Any, Sequence[Any]]: ...
    def commit(self, offsets: Mapping[Any, Any] | None = None) -> None: ...
    def assignment(self) -> set[Any]: ...
    def highwater(self, partition: Any) -> int | None: ...
    def pause(self, *partitions: Any) -> None: ...
    def resume(self, *partitions: Any) -> None: ...
    def seek(self, partition: Any, offset: int) -> None: ...
    def seek_to_beginning(self, *partitions: Any) -> None: ...
    def seek_to_end(self, *partitions: Any) -> None: ...
    def committed(self, partition: Any) -> int | None: ...
    def position(self, partition: Any) -> int: ...
    def close(self, autocommit: bool = True) -> None: ...


def kafka_client_config(settings: KafkaSettings, kind: str) -> dict[str, Any]:
    """kafka-python keyword arguments for a ``consumer``, ``restore`` consumer (no group),
    ``producer`` or ``admin`` client.

    The ``[kafka] client`` table is passed through, keeping only the keys the client of that
    kind accepts (so a consumer-only setting does not break the producer).
    """
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    accepted: dict[str, Any] = {
        "consumer": KafkaConsumer.DEFAULT_CONFIG,
        "restore": KafkaConsumer.DEFAULT_CONFIG,
        "producer": KafkaProducer.DEFAULT_CONFIG,
        "admin": KafkaAdminClient.DEFAULT_CONFIG,
    }[kind]
    config: dict[str, Any] = {}
    if kind == "consumer":
        config.update(
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=settings.max_poll_records,
            # Bounded so that a group join, which waits for the rebalance timeout on some
            # brokers, stays short; override in [kafka.client].
            session_timeout_ms=10_000,
            max_poll_interval_ms=30_000,
        )
    elif kind == "producer":
        # Dead-letter records keep the rejected value unchanged, including oversized ones.
        config.update(linger_ms=20, max_request_size=64 * 1024 * 1024, retries=5, acks="all")
    if "bootstrap_timeout_ms" in accepted:  # kafka-python >= 3
        config["bootstrap_timeout_ms"] = int(BOOTSTRAP_TIMEOUT_SECONDS * 1000)
    config.update({k: v for k, v in settings.client.items() if k in accepted})
    # What the delivery guarantee rests on is not overridable from [kafka.client].
    config["bootstrap_servers"] = list(settings.bootstrap_servers)
    if kind == "consumer":
        config.update(group_id=settings.group_id, enable_auto_commit=False)
    elif kind == "restore":
        config.update(group_id=None, enable_auto_commit=False)
        for key in ("session_timeout_ms", "heartbeat_interval_ms", "max_poll_interval_ms"):
            config.pop(key, None)
    return config


_C = TypeVar("_C")


def new_consumer(settings: KafkaSettings, copartitioned: bool = False) -> ConsumerLike:
    """The group consumer; ``copartitioned`` when an outcomes topic is read beside predictions."""
    if settings.client_library == "confluent":
        from tilewatch.streams.confluent_client import new_confluent_consumer

        return new_confluent_consumer(settings, copartitioned)
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    config = kafka_client_config(settings, "consumer")
    if copartitioned:
        # Co-partitioning: partition p of the predictions and the outcomes topic must go
        # to the same consumer, which the range assignor guarantees for equal counts.
        config["partition_assignment_strategy"] = (RangePartitionAssignor,)
    try:
        consumer: ConsumerLike = KafkaConsumer(**config)
    except Exception as exc:
        raise StreamError(f"cannot create the Kafka consumer: {exc}") from exc
    return _with_parser(consumer, settings)


def new_restore_consumer(settings: KafkaSettings) -> Any:
    """A consumer outside the group, for reading the changelog."""
    if settings.client_library == "confluent":
        from tilewatch.streams.confluent_client import new_confluent_restore_consumer

        return new_confluent_restore_consumer(settings)
    from kafka import KafkaConsumer

    return _with_parser(KafkaConsumer(**kafka_client_config(settings, "restore")), settings)


def _with_parser(consumer: _C, settings: KafkaSettings) -> _C:
    """``consumer``, reading its record batches as ``[kafka] record_parser`` says."""
    if settings.record_parser == "tilewatch":
        from tilewatch.streams.kafka_records import install

        install(consumer)
    return consumer


def new_producer(settings: KafkaSettings) -> ProducerLike:
    """A producer for dead letters and checkpoints."""
    if settings.client_library == "confluent":
        from tilewatch.streams.confluent_producer import new_confluent_producer

        return new_confluent_producer(settings)
    from kafka import KafkaProducer

    producer: ProducerLike = KafkaProducer(**kafka_client_config(settings, "producer"))
    return producer


def connected(consumer: ConsumerLike, last_records: float = -math.inf) -> bool:
    """Whether the consumer reaches the brokers.

    A paused or partitioned broker keeps TCP connections open, so "connected" alone stays true
    for minutes. Instead: records delivered recently, or a recent heartbeat to the group
    coordinator (heartbeats run every ``heartbeat_interval_ms`` on kafka-python's IO thread,
    even while the loop is busy). More than two intervals (plus a second) without either means
    the broker is not answering. ``last_records`` is the ``time.monotonic()`` of the last
    non-empty poll. A consumer with its own ``is_connected(last_records)`` (confluent-kafka's
    adapter, which reads librdkafka's statistics) answers for itself.
    """
    own = getattr(consumer, "is_connected", None)
    if callable(own):
        return bool(own(last_records))
    try:
        interval = consumer.config["heartbeat_interval_ms"] / 1000.0  # type: ignore[attr-defined]
        metrics = consumer.metrics()  # type: ignore[attr-defined]
    except AttributeError:
        return True  # not a kafka-python consumer (a test double): nothing to say
    except Exception:
        return False
    limit = 2 * interval + 1.0
    if time.monotonic() - last_records <= limit:
        return True
    try:
        ago = metrics["consumer-coordinator-metrics"]["last-heartbeat-seconds-ago"]
    except (KeyError, TypeError):
        return False
    return bool(ago <= limit)


def _split(server: str) -> tuple[str, int]:
    host, sep, port = server.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise StreamError(f"bootstrap server {server!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _describe(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"the name does not resolve ({exc.strerror})"
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return "no answer (timed out)"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    return exc.strerror or str(exc)


def check_reachable(
    servers: Sequence[str],
    timeout: float = BOOTSTRAP_TIMEOUT_SECONDS,
    interval: float = 0.5,
    stop: threading.Event | None = None,
) -> None:
    """Return once a TCP connection to one of ``servers`` succeeds; raise a StreamError naming
    each address and why it failed after trying for ``timeout`` seconds.

    A plain TCP connect, before kafka-python is involved: a wrong address fails in seconds with
    one line, not after a minute of retries and a page of kafka-python log lines. It proves
    reachability only; the Kafka handshake (TLS, SASL) is the client's to check. Returns early
    when ``stop`` is set (Ctrl-C while waiting).
    """
    targets = [_split(s) for s in servers]
    if not targets:
        raise StreamError("no bootstrap servers to connect to")
    deadline = time.monotonic() + timeout
    attempts = 0
    last: dict[str, str] = {}
    while True:
        for (host, port), server in zip(targets, servers, strict=True):
            attempts += 1
            left = max(deadline - time.monotonic(), 0.1)
            try:
                with socket.create_connection((host, port), timeout=min(left, 3.0)):
                    return
            except OSError as exc:
                last[server.strip()] = _describe(exc)
        if time.monotonic() + interval >= deadline:
            break
        if attempts == len(targets):
            log.warning(
                "cannot reach Kafka at %s yet (%s); trying for %g s",
                ", ".join(last),
                "; ".join(last.values()),
                timeout,
            )
        if stop is None:
            time.sleep(interval)
        elif stop.wait(interval):
            return
    why = "; ".join(f"{server}: {reason}" for server, reason in last.items())
    raise StreamError(
        f"cannot reach Kafka at {', '.join(last)} ({why}; {attempts} TCP connection attempts "
        f"over {timeout:g} s)"
    )
