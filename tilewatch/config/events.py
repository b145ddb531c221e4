"""The ``[events]`` section: where each field of a prediction event is in its JSON.

Maps to :class:`tilewatch.streams.settings.EventFields`; reference in ``docs/configuration.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tilewatch.config.base import Table
from tilewatch.streams.settings import EventFields

__all__ = ["KEYS", "PATHS", "parse_events"]

#: [events] keys holding a JSON path, besides one key per cell dimension.
PATHS = (
    "event_id",
    "timestamp",
    "model",
    "model_version",
    "score",
    "prediction",
    "label",
    "latency",
    "features",
)
KEYS = (*PATHS, "score_min", "score_max", "max_event_bytes")


def parse_events(data: Mapping[str, Any], source: str, dimensions: Sequence[str]) -> EventFields:
    table = Table(source, "events", data, (*KEYS, *dimensions))
    defaults = EventFields()
    paths = {key: table.path(key, getattr(defaults, key)) for key in PATHS}
    score_min = table.number("score_min", defaults.score_min)
    score_max = table.number("score_max", defaults.score_max)
    if score_max <= score_min:
        found = table.data.get("score_max", defaults.score_max)
        raise table.error("score_max", f"a number > score_min ({score_min!r})", found)
    return EventFields(
        **paths,
        dimensions={name: table.path(name, name) for name in dimensions},
        score_min=score_min,
        score_max=score_max,
        max_event_bytes=table.integer("max_event_bytes", defaults.max_event_bytes, 1),
    )
