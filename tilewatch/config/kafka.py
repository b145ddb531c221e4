"""The ``[kafka]`` section (and ``[kafka.client]``): brokers, topics, group, polling, commits.

Maps to :class:`tilewatch.streams.settings.KafkaSettings`; reference in ``docs/configuration.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilewatch.config.base import TOPIC, TOPIC_EXPECTED, ConfigError, Table, resolve_env, show
from tilewatch.config.base import toml_key as _key
from tilewatch.streams.confluent_options import LIBRARIES, untranslatable
from tilewatch.streams.settings import RECORD_PARSERS, KafkaSettings

__all__ = ["KEYS", "parse_kafka"]

KEYS = (
    "auto_offset_reset",
    "bootstrap_servers",
    "client",
    "client_library",
    "commit_interval",
    "dead_letter_topic",
    "group_id",
    "max_poll_records",
    "poll_timeout",
    "record_parser",
    "topics",
)
#: kafka-python options that tilewatch sets itself, with the reason they may not be overridden.
_CLIENT_RESERVED = {
    "bootstrap_servers": "set [kafka].bootstrap_servers instead",
    "group_id": "set [kafka].group_id instead",
    "auto_offset_reset": "set [kafka].auto_offset_reset instead",
    "max_poll_records": "set [kafka].max_poll_records instead",
    "enable_auto_commit": "tilewatch commits offsets itself",
}


def parse_kafka(data: Mapping[str, Any], source: str) -> KafkaSettings:
    table = Table(source, "kafka", data, KEYS)
    defaults = KafkaSettings()
    servers: list[str] = []
    for where, item in table.strings("bootstrap_servers", defaults.bootstrap_servers, "string"):
        parts = item.split(",") if where == "bootstrap_servers" else [item]
        for part in parts:
            address = part.strip()
            if not address or any(char.isspace() for char in address):
                raise table.error(where, '"host:port" addresses separated by commas', item)
            servers.append(address)
    topics: list[str] = []
    for where, topic in table.strings("topics", defaults.topics, "topic name"):
        if TOPIC.fullmatch(topic) is None or topic in {".", ".."}:
            raise table.error(where, TOPIC_EXPECTED, topic)
        if topic in topics:
            raise table.error(where, "a topic not listed before", topic)
        topics.append(topic)
    dead_letter: str | None = table.data.get("dead_letter_topic", defaults.dead_letter_topic)
    if dead_letter == "":
        dead_letter = None
    elif not isinstance(dead_letter, str) or TOPIC.fullmatch(dead_letter) is None:
        raise table.error("dead_letter_topic", f'{TOPIC_EXPECTED}, or ""', dead_letter)
    elif dead_letter in topics:
        raise table.error("dead_letter_topic", "a topic not in [kafka].topics", dead_letter)
    offset_reset = table.data.get("auto_offset_reset", defaults.auto_offset_reset)
    if offset_reset not in ("earliest", "latest"):
        raise table.error("auto_offset_reset", '"earliest" or "latest"', offset_reset)
    client = table.data.get("client", {})
    library = table.data.get("client_library", defaults.client_library)
    if library not in LIBRARIES:
        raise table.error("client_library", '"kafka-python" or "confluent"', library)
    if isinstance(client, str) and client in LIBRARIES:
        # `client = "confluent"`: the library, when there is no [kafka.client] table.
        if "client_library" in table.data and library != client:
            raise table.error("client", f"{show(library)} as in [kafka].client_library", client)
        library, client = client, {}
    if not isinstance(client, Mapping):
        raise table.error(
            "client", 'a table of kafka-python options, "kafka-python" or "confluent"', client
        )
    parser = table.data.get("record_parser", defaults.record_parser)
    if parser not in RECORD_PARSERS:
        raise table.error("record_parser", '"tilewatch" or "kafka-python"', parser)
    return KafkaSettings(
        bootstrap_servers=tuple(servers),
        topics=tuple(topics),
        group_id=table.string("group_id", defaults.group_id),
        dead_letter_topic=dead_letter,
        auto_offset_reset=offset_reset,
        max_poll_records=table.integer("max_poll_records", defaults.max_poll_records, 1),
        poll_timeout_seconds=table.duration(
            "poll_timeout", defaults.poll_timeout_seconds, positive=True
        ),
        commit_interval_seconds=table.duration(
            "commit_interval", defaults.commit_interval_seconds, positive=False
        ),
        client=_parse_client(client, source, library),
        client_library=library,
        record_parser=parser,
    )


def _parse_client(data: Mapping[str, Any], source: str, library: str) -> dict[str, Any]:
    client: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{source}: [kafka.client].{_key(key)}"
        if key in _CLIENT_RESERVED:
            raise ConfigError(
                f"{where}: expected a kafka-python option tilewatch does not set itself, "
                f"got {show(key)} ({_CLIENT_RESERVED[key]})"
            )
        if library == "confluent" and (why := untranslatable(key)) is not None:
            raise ConfigError(
                f"{where}: expected a kafka-python option with a librdkafka equivalent, or a "
                f'librdkafka option (client_library = "confluent"), got {show(key)} ({why})'
            )
        client[key] = resolve_env(value, where)
    return client
