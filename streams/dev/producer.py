"""Send synthetic prediction traffic (or any records) to a Kafka topic.

Records are keyed by cell (``b"model|segment|region"``), the recommended set-up: all events of
a cell land in one partition, in order, so per-cell rolling windows and detectors are exact.

The kafka-python producer is created inside each call and always flushed and closed before the call
returns. kafka-python errors are wrapped in :class:`~tilewatch.streams.errors.StreamError`. Delivery
is at-least-once from the producer's side (kafka-python's idempotent producer retries on transient
errors); a record that fails for good makes the call raise after the flush.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec
from tilewatch.streams.errors import StreamError

__all__ = ["PRODUCER_DEFAULTS", "produce_events", "produce_traffic"]

#: kafka-python producer settings used unless ``client`` overrides them.
PRODUCER_DEFAULTS: dict[str, Any] = {"linger_ms": 20, "batch_size": 65_536}

_TICK_SECONDS = 0.1
_MAX_BATCH = 50_000


def _servers(bootstrap: str | Sequence[str]) -> list[str]:
    if isinstance(bootstrap, str):
        servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    else:
        servers = list(bootstrap)
    if not servers:
        raise ValueError("bootstrap: expected at least one host:port")
    return servers


def _open_producer(bootstrap: str | Sequence[str], client: dict[str, Any] | None) -> KafkaProducer:
    config = {**PRODUCER_DEFAULTS, **(client or {})}
    servers = _servers(bootstrap)
    # KafkaProducer.__init__ does not close its network client when the bootstrap fails;
    # keep a handle on it so a failed connection does not leak its sockets.
    make_client = config.get("kafka_client", KafkaProducer.DEFAULT_CONFIG["kafka_client"])
    created: list[Any] = []

    def tracked_client(**kwargs: Any) -> Any:
        net_client = make_client(**kwargs)
        created.append(net_client)
        return net_client

    config["kafka_client"] = tracked_client
    try:
        return KafkaProducer(bootstrap_servers=servers, **config)
    except KafkaError as exc:
        for net_client in created:
            with contextlib.suppress(Exception):
                net_client.close()
        raise StreamError(f"cannot connect a Kafka producer to {','.join(servers)}: {exc}") from exc


class _Failures:
    """Collects delivery errors reported by kafka-python's sender thread."""

    def __init__(self) -> None:
        self.first: BaseException | None = None
        self.count = 0

    def __call__(self, exc: BaseException) -> None:
        if self.first is None:
            self.first = exc
        self.count += 1

    def check(self, topic: str) -> None:
        if self.first is not None:
            raise StreamError(
                f"{self.count} record(s) could not be delivered to topic {topic!r}: {self.first}"
            ) from self.first


def _close(producer: KafkaProducer) -> None:
    try:
        producer.close(timeout=10)
    except KafkaError as exc:  # pragma: no cover - depends on broker failures at close
        raise StreamError(f"closing the Kafka producer failed: {exc}") from exc


def produce_events(
    bootstrap: str | list[str],
    topic: str,
    values: list[bytes],
    keys: list[bytes] | None = None,
    client: dict[str, Any] | None = None,
) -> None:
    """Send ``values`` (with ``keys``, if given) to ``topic``, flush and close.

    Parameters
    ----------
    bootstrap
        ``"host:port"``, a comma-separated list of them, or a list.
    topic
        Destination topic (must exist unless the broker auto-creates topics).
    values
        Record values, sent in order.
    keys
        One key per value, or ``None`` for unkeyed records.
    client
        Extra kafka-python ``KafkaProducer`` settings (security, timeouts, ...); they override
        :data:`PRODUCER_DEFAULTS`.

    Raises
    ------
    StreamError
        When the broker cannot be reached or a record cannot be delivered.
    ValueError
        When ``keys`` and ``values`` differ in length.
    """
    if keys is not None and len(keys) != len(values):
        raise ValueError(f"keys and values differ in length: {len(keys)} != {len(values)}")
    producer = _open_producer(bootstrap, client)
    failures = _Failures()
    try:
        try:
            if keys is None:
                for value in values:
                    producer.send(topic, value=value).add_errback(failures)
            else:
                for key, value in zip(keys, values, strict=True):
                    producer.send(topic, key=key, value=value).add_errback(failures)
            producer.flush()
        except KafkaError as exc:
            raise StreamError(f"sending to topic {topic!r} failed: {exc}") from exc
        failures.check(topic)
    finally:
        _close(producer)


def produce_traffic(
    bootstrap: str | list[str],
    topic: str,
    *,
    spec: TrafficSpec,
    rate: float = 2000.0,
    duration: float | None = None,
    total: int | None = None,
    stop: threading.Event | None = None,
    client: dict[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
    labels_topic: str | None = None,
    label_delay: float = 0.0,
) -> int:
    """Send synthetic traffic to ``topic`` at ``rate`` events per second, keyed by cell.

    Event time follows the wall clock: every 100 ms the events due since the previous tick are
    generated with timestamps spread over that interval and sent. The degrade clock of ``spec``
    starts when this call starts. Runs until ``duration`` seconds have passed, ``total`` events
    have been sent, or ``stop`` is set, whichever comes first (forever if none is given).

    Parameters
    ----------
    bootstrap
        ``"host:port"``, a comma-separated list of them, or a list.
    topic
        Destination topic.
    spec
        What the traffic looks like (see :class:`~tilewatch.streams.dev.traffic.TrafficSpec`).
    rate
        Target events per second (average; a late tick catches up).
    duration
        Seconds to run for.
    total
        Number of events to send.
    stop
        Set it from another thread to stop early.
    client
        Extra kafka-python ``KafkaProducer`` settings; they override :data:`PRODUCER_DEFAULTS`.
    on_progress
        Called with the running count after each tick's batch is handed to the producer.
    labels_topic
        Send the labels to this outcomes topic instead of inline (the predictions then carry
        ``"label": null``): one ``{"event_id", "label", "timestamp"}`` record per labeled
        event, keyed like its prediction, sent ``label_delay`` seconds after it (those still
        waiting when the call ends are sent before it returns).
    label_delay
        Seconds between a prediction and its label, in event time and on the wall clock.

    Returns
    -------
    int
        The number of prediction records sent (all flushed to the broker, as are the labels).

    Raises
    ------
    StreamError
        When the broker cannot be reached or a record cannot be delivered.
    """
    if not rate > 0.0:
        raise ValueError(f"rate must be > 0 events/s, got {rate!r}")
    if total is not None and total < 0:
        raise ValueError(f"total must be >= 0, got {total!r}")
    if duration is not None and duration < 0:
        raise ValueError(f"duration must be >= 0 seconds, got {duration!r}")
    if not label_delay >= 0.0:
        raise ValueError(f"label_delay must be >= 0 seconds, got {label_delay!r}")
    producer = _open_producer(bootstrap, client)
    failures = _Failures()
    sent = 0
    # Outcome records waiting for their send time (monotonic), oldest first.
    waiting: deque[tuple[float, list[tuple[bytes, bytes]]]] = deque()

    def send_outcomes(until: float) -> None:
        assert labels_topic is not None
        while waiting and waiting[0][0] <= until:
            for key, value in waiting.popleft()[1]:
                producer.send(labels_topic, key=key, value=value).add_errback(failures)

    try:
        wall0, mono0 = time.time(), time.monotonic()
        generator = TrafficGenerator(spec, start_time=wall0)
        last_event_time = wall0
        deadline = None if duration is None else mono0 + duration
        while total is None or sent < total:
            if stop is not None and stop.is_set():
                break
            tick_start = time.monotonic()
            now = tick_start if deadline is None else min(tick_start, deadline)
            due = min(int(rate * (now - mono0)) - sent, _MAX_BATCH)
            if total is not None:
                due = min(due, total - sent)
            if due > 0:
                event_time = wall0 + (now - mono0)
                spread = max(event_time - last_event_time, 1e-6)
                if labels_topic is None:
                    keys, values = generator.keyed_batch(due, last_event_time, spread)
                else:
                    keys, values, outcomes = generator.outcome_batch(
                        due, last_event_time, spread, label_delay
                    )
                    waiting.append((tick_start + label_delay, outcomes))
                last_event_time = event_time
                try:
                    for key, value in zip(keys, values, strict=True):
                        producer.send(topic, key=key, value=value).add_errback(failures)
                except KafkaError as exc:
                    raise StreamError(f"sending to topic {topic!r} failed: {exc}") from exc
                sent += due
                failures.check(topic)
                if on_progress is not None:
                    on_progress(sent)
            if labels_topic is not None:
                try:
                    send_outcomes(time.monotonic())
                except KafkaError as exc:
                    raise StreamError(f"sending to topic {labels_topic!r} failed: {exc}") from exc
                failures.check(labels_topic)
            if deadline is not None and tick_start >= deadline:
                break
            if total is not None and sent >= total:
                break
            pause = _TICK_SECONDS - (time.monotonic() - tick_start)
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            if pause > 0:
                if stop is not None:
                    stop.wait(pause)
                else:
                    time.sleep(pause)
        try:
            if labels_topic is not None:
                send_outcomes(math.inf)
            producer.flush()
        except KafkaError as exc:
            raise StreamError(f"flushing to topic {topic!r} failed: {exc}") from exc
        failures.check(topic if labels_topic is None else f"{topic} or {labels_topic}")
    finally:
        _close(producer)
    return sent
