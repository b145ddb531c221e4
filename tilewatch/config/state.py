"""The ``[state]`` section: checkpoints, the changelog topic and restore.

Maps to :class:`tilewatch.streams.settings.StateSettings`; reference in ``docs/configuration.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilewatch.config.base import TOPIC, Table
from tilewatch.streams.settings import StateSettings

__all__ = ["KEYS", "parse_state"]

KEYS = ("changelog_topic", "checkpoint_interval", "checkpoints", "restore_timeout")


def parse_state(data: Mapping[str, Any], source: str) -> StateSettings:
    table = Table(source, "state", data, KEYS)
    defaults = StateSettings()
    topic = table.data.get("changelog_topic", "")
    if not isinstance(topic, str) or (topic and TOPIC.fullmatch(topic) is None):
        raise table.error("changelog_topic", 'a Kafka topic name or ""', topic)
    return StateSettings(
        checkpoints=table.boolean("checkpoints", defaults.checkpoints),
        changelog_topic=topic or None,
        checkpoint_interval_seconds=table.duration(
            "checkpoint_interval", defaults.checkpoint_interval_seconds, positive=True
        ),
        restore_timeout_seconds=table.duration(
            "restore_timeout", defaults.restore_timeout_seconds, positive=True
        ),
    )
