"""``[kafka.client]`` options for the confluent-kafka (librdkafka) client.

``[kafka.client]`` is written with kafka-python's option names whichever client runs, so one
config file works with both. With ``client_library = "confluent"`` each option is translated to
its librdkafka name (:data:`TRANSLATIONS`: ``ssl_cafile`` -> ``ssl.ca.location``,
``session_timeout_ms`` -> ``session.timeout.ms``, ...), applied only to the clients of the kinds
that take it (a consumer-only option does not reach the producer), and an option without a
librdkafka equivalent is rejected with the reason (:data:`REJECTED`, :func:`untranslatable`).
Dotted keys are librdkafka's own names and are passed through unchanged.

kafka-python's admin client still creates and checks topics under either client, and it reads
the untranslated options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tilewatch.streams.settings import KafkaSettings

__all__ = [
    "LIBRARIES",
    "REJECTED",
    "RESERVED",
    "TRANSLATIONS",
    "Translation",
    "librdkafka_config",
    "untranslatable",
]

#: The values of ``[kafka] client_library``.
LIBRARIES = ("kafka-python", "confluent")

CONSUMER = frozenset({"consumer", "restore"})
PRODUCER = frozenset({"producer"})
ALL = CONSUMER | PRODUCER


def _same(value: Any) -> Any:
    return value


def _hostname_check(value: Any) -> str:
    return "https" if value else "none"


def _kbytes(value: Any) -> int:
    return max(int(value) // 1024, 1)


def _join(value: Any) -> str:
    return value if isinstance(value, str) else ",".join(str(v) for v in value)


@dataclass(frozen=True, slots=True)
class Translation:
    """A kafka-python option's librdkafka name, the clients that take it, and the conversion."""

    name: str
    kinds: frozenset[str] = ALL
    convert: Callable[[Any], Any] = _same


#: kafka-python option -> librdkafka option.
TRANSLATIONS: dict[str, Translation] = {
    "client_id": Translation("client.id"),
    "client_rack": Translation("client.rack", CONSUMER),
    # Security.
    "security_protocol": Translation("security.protocol"),
    "ssl_cafile": Translation("ssl.ca.location"),
    "ssl_certfile": Translation("ssl.certificate.location"),
    "ssl_keyfile": Translation("ssl.key.location"),
    "ssl_password": Translation("ssl.key.password"),
    "ssl_crlfile": Translation("ssl.crl.location"),
    "ssl_ciphers": Translation("ssl.cipher.suites"),
    "ssl_check_hostname": Translation(
        "ssl.endpoint.identification.algorithm", ALL, _hostname_check
    ),
    "sasl_mechanism": Translation("sasl.mechanism"),
    "sasl_plain_username": Translation("sasl.username"),
    "sasl_plain_password": Translation("sasl.password"),
    "sasl_kerberos_service_name": Translation("sasl.kerberos.service.name"),
    # Connections.
    "request_timeout_ms": Translation("socket.timeout.ms"),
    "retry_backoff_ms": Translation("retry.backoff.ms"),
    "reconnect_backoff_ms": Translation("reconnect.backoff.ms"),
    "reconnect_backoff_max_ms": Translation("reconnect.backoff.max.ms"),
    "metadata_max_age_ms": Translation("metadata.max.age.ms"),
    "connections_max_idle_ms": Translation("connections.max.idle.ms"),
    "receive_buffer_bytes": Translation("socket.receive.buffer.bytes"),
    "send_buffer_bytes": Translation("socket.send.buffer.bytes"),
    # The group consumer.
    "session_timeout_ms": Translation("session.timeout.ms", frozenset({"consumer"})),
    "heartbeat_interval_ms": Translation("heartbeat.interval.ms", frozenset({"consumer"})),
    "max_poll_interval_ms": Translation("max.poll.interval.ms", frozenset({"consumer"})),
    "fetch_min_bytes": Translation("fetch.min.bytes", CONSUMER),
    "fetch_max_wait_ms": Translation("fetch.wait.max.ms", CONSUMER),
    "fetch_max_bytes": Translation("fetch.max.bytes", CONSUMER),
    "max_partition_fetch_bytes": Translation("max.partition.fetch.bytes", CONSUMER),
    "check_crcs": Translation("check.crcs", CONSUMER),
    "isolation_level": Translation("isolation.level", CONSUMER),
    # The producer (dead letters, checkpoints).
    "acks": Translation("acks", PRODUCER, lambda v: str(v)),
    "retries": Translation("retries", PRODUCER),
    "linger_ms": Translation("linger.ms", PRODUCER),
    "batch_size": Translation("batch.size", PRODUCER),
    "compression_type": Translation("compression.type", PRODUCER, lambda v: v or "none"),
    "max_request_size": Translation("message.max.bytes", PRODUCER),
    "buffer_memory": Translation("queue.buffering.max.kbytes", PRODUCER, _kbytes),
    "max_in_flight_requests_per_connection": Translation(
        "max.in.flight.requests.per.connection", PRODUCER
    ),
    "enable_idempotence": Translation("enable.idempotence", PRODUCER),
    "delivery_timeout_ms": Translation("delivery.timeout.ms", PRODUCER),
    "sasl_oauth_token_provider_config": Translation("sasl.oauthbearer.config", ALL, _join),
}

#: kafka-python options with no librdkafka equivalent, and what to do instead.
REJECTED: dict[str, str] = {
    "ssl_context": "librdkafka cannot take a Python SSLContext: use ssl_cafile, ssl_certfile, "
    "ssl_keyfile and ssl_password (or librdkafka's ssl.* options)",
    "sasl_oauth_token_provider": "librdkafka cannot call a Python token provider: use "
    "librdkafka's sasl.oauthbearer.* options",
    "sasl_kerberos_domain_name": "librdkafka has no such option: set "
    "sasl.kerberos.principal or sasl.kerberos.kinit.cmd instead",
    "api_version": "librdkafka negotiates the API version itself (see its "
    "broker.version.fallback option for brokers older than 0.10)",
    "api_version_auto_timeout_ms": "librdkafka negotiates the API version itself",
    "partition_assignment_strategy": "a kafka-python class: use librdkafka's "
    "partition.assignment.strategy (tilewatch sets range when labels come from a topic)",
    "bootstrap_timeout_ms": "kafka-python only; librdkafka keeps retrying the brokers in the "
    "background",
    "consumer_timeout_ms": "kafka-python's iterator timeout; tilewatch polls with "
    "[kafka] poll_timeout",
    "auto_commit_interval_ms": "tilewatch commits offsets itself",
    "default_offset_commit_callback": "tilewatch commits offsets itself",
    "key_deserializer": "tilewatch decodes record bytes itself",
    "value_deserializer": "tilewatch decodes record bytes itself",
    "key_serializer": "tilewatch produces bytes itself",
    "value_serializer": "tilewatch produces bytes itself",
    "partitioner": "librdkafka's partitioner option takes a name (partitioner = ...), "
    "not a kafka-python callable",
    "selector": "kafka-python's I/O selector; librdkafka has its own threads",
    "socket_options": "use librdkafka's socket.* options",
    "sock_chunk_bytes": "kafka-python only",
    "sock_chunk_buffer_count": "kafka-python only",
    "metric_reporters": "kafka-python only; librdkafka reports statistics.interval.ms JSON",
    "metrics_num_samples": "kafka-python only",
    "metrics_sample_window_ms": "kafka-python only",
    "exclude_internal_topics": "tilewatch subscribes to named topics only",
    "allow_auto_create_topics": "use librdkafka's allow.auto.create.topics",
    "transactional_id": "tilewatch does not produce transactionally",
    "transaction_timeout_ms": "tilewatch does not produce transactionally",
    "kafka_client": "kafka-python only",
}

#: librdkafka options tilewatch sets itself (as ``_CLIENT_RESERVED`` for kafka-python's).
RESERVED: dict[str, str] = {
    "bootstrap.servers": "set [kafka].bootstrap_servers instead",
    "metadata.broker.list": "set [kafka].bootstrap_servers instead",
    "group.id": "set [kafka].group_id instead",
    "auto.offset.reset": "set [kafka].auto_offset_reset instead",
    "enable.auto.commit": "tilewatch commits offsets itself",
    "enable.auto.offset.store": "tilewatch commits offsets itself",
    "enable.partition.eof": "tilewatch reads partition ends itself",
    "on_delivery": "tilewatch waits for deliveries itself",
    "error_cb": "tilewatch handles client errors itself",
    "stats_cb": "tilewatch reads the statistics itself",
}


def untranslatable(key: str) -> str | None:
    """Why a ``[kafka.client]`` option cannot reach librdkafka (None: it can).

    Examples
    --------
    >>> untranslatable("ssl_cafile") is None, untranslatable("fetch.wait.max.ms") is None
    (True, True)
    >>> print(untranslatable("ssl_context"))
    librdkafka cannot take a Python SSLContext: ...
    >>> untranslatable("group.id")
    'set [kafka].group_id instead'
    >>> untranslatable("no_such_option")
    'not a kafka-python option tilewatch can translate (librdkafka options have dotted names)'
    """
    if key in TRANSLATIONS:
        return None
    if key in REJECTED:
        return REJECTED[key]
    if key in RESERVED:
        return RESERVED[key]
    if "." in key:
        return None
    return (
        "not a kafka-python option tilewatch can translate (librdkafka options have dotted names)"
    )


#: librdkafka's prefetch, as tilewatch sets it for its consumers. librdkafka stops fetching a
#: partition whose queue holds ``queued.min.messages`` (100,000) and then waits
#: ``fetch.queue.backoff.ms`` (1,000 ms by default) before it looks again: a consumer that
#: empties the queue in less than that second waits on its own client. Reading a backlog of
#: 400,000 records on the embedded broker, confluent-kafka + orjson read 140,000 records/s
#: with the defaults, 650,000-690,000 with these (``docs/confluent.md``); the queue is bounded
#: by size instead (16 MiB, librdkafka's default is 64 MiB).
FETCH_QUEUE: dict[str, Any] = {
    "fetch.queue.backoff.ms": 10,
    "queued.max.messages.kbytes": 16 * 1024,
}


def librdkafka_config(settings: KafkaSettings, kind: str) -> dict[str, Any]:
    """librdkafka configuration of a ``consumer`` (the group), ``restore`` consumer (no group
    join: it is assigned partitions) or ``producer``.

    The defaults match kafka-python's clients
    (:func:`tilewatch.streams.clients.kafka_client_config`); ``[kafka.client]`` options are
    translated, those of other kinds are left out, and what the delivery guarantee rests on
    is set last.

    Examples
    --------
    >>> s = KafkaSettings(client={"ssl_cafile": "/ca.pem", "session_timeout_ms": 6000})
    >>> c = librdkafka_config(s, "consumer")
    >>> c["ssl.ca.location"], c["session.timeout.ms"], c["enable.auto.commit"]
    ('/ca.pem', 6000, False)
    >>> "session.timeout.ms" in librdkafka_config(s, "producer")
    False
    """
    config: dict[str, Any] = {}
    if kind in CONSUMER:
        config.update(FETCH_QUEUE)
    if kind == "consumer":
        config.update(
            {
                "auto.offset.reset": settings.auto_offset_reset,
                "session.timeout.ms": 10_000,
                "max.poll.interval.ms": 30_000,
            }
        )
    elif kind == "producer":
        config.update(
            {
                "linger.ms": 20,
                "message.max.bytes": 64 * 1024 * 1024,
                "retries": 5,
                "acks": "all",
                # kafka-python's (and Java's) key hashing, so keyed records land alike.
                "partitioner": "murmur2_random",
            }
        )
    config.update(_translated(settings.client, kind))
    config["bootstrap.servers"] = ",".join(settings.bootstrap_servers)
    if kind in CONSUMER:
        config.update(
            {
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # End-of-partition events tell where a partition ends (restore, lag).
                "enable.partition.eof": True,
            }
        )
    if kind == "consumer":
        config["group.id"] = settings.group_id
    elif kind == "restore":
        # librdkafka wants a group id; an assigned consumer never joins or commits to it.
        config["group.id"] = f"{settings.group_id}-restore"
        config["auto.offset.reset"] = "earliest"
    return config


def _translated(client: Mapping[str, Any], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in client.items():
        if "." in key:
            if key not in RESERVED:
                out[key] = value
            continue
        translation = TRANSLATIONS.get(key)
        if translation is not None and kind in translation.kinds:
            out[translation.name] = translation.convert(value)
    return out
