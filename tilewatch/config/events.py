"""The ``[events]`` section: where each field of a prediction event is in its JSON.

Maps to :class:`tilewatch.streams.settings.EventFields`; reference in ``docs/configuration.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tilewatch.config.base import Table
from tilewatch.streams.settings import EventFields

__all__ = ["KEYS", "MAX_CLASSES", "PATHS", "parse_events"]

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
#: Upper bound of ``max_classes``: a window keeps ``(max_classes + 1)^2`` confusion counts per
#: cell, and the ``class`` label of the multi-class metrics takes ``max_classes + 1`` values.
MAX_CLASSES = 50
#: Multi-class keys: the optional path of the class probabilities and the class names.
MULTICLASS_KEYS = ("scores", "classes", "max_classes")
#: Vector keys: the optional paths of an event's embedding and attributions.
VECTOR_KEYS = ("embedding", "attributions")
KEYS = (*PATHS, "score_min", "score_max", "max_event_bytes", *MULTICLASS_KEYS, *VECTOR_KEYS)


def parse_events(data: Mapping[str, Any], source: str, dimensions: Sequence[str]) -> EventFields:
    table = Table(source, "events", data, (*KEYS, *dimensions))
    defaults = EventFields()
    paths = {key: table.path(key, getattr(defaults, key)) for key in PATHS}
    score_min = table.number("score_min", defaults.score_min)
    score_max = table.number("score_max", defaults.score_max)
    if score_max <= score_min:
        found = table.data.get("score_max", defaults.score_max)
        raise table.error("score_max", f"a number > score_min ({score_min!r})", found)
    scores = table.path("scores", "") if "scores" in table.data else None
    max_classes = table.integer("max_classes", defaults.max_classes, 2)
    if max_classes > MAX_CLASSES:
        raise table.error("max_classes", f"an integer in 2..{MAX_CLASSES}", max_classes)
    classes = _classes(table, max_classes)
    if classes and scores is None:
        raise table.error("classes", "no class names without [events].scores", list(classes))
    return EventFields(
        **paths,
        dimensions={name: table.path(name, name) for name in dimensions},
        score_min=score_min,
        score_max=score_max,
        max_event_bytes=table.integer("max_event_bytes", defaults.max_event_bytes, 1),
        scores=scores,
        classes=classes,
        max_classes=max_classes,
        embedding=table.path("embedding", "") if "embedding" in table.data else None,
        attributions=table.path("attributions", "") if "attributions" in table.data else None,
    )


def _classes(table: Table, max_classes: int) -> tuple[str, ...]:
    """``classes``: distinct non-empty names, at most ``max_classes``, none starting ``__``."""
    value = table.data.get("classes", [])
    if not isinstance(value, list):
        raise table.error("classes", "a list of class names", value)
    seen: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or item.startswith("__") or item in seen:
            raise table.error(
                f"classes[{index}]", "a distinct non-empty string not starting with __", item
            )
        seen.add(item)
    if len(value) > max_classes:
        raise table.error("classes", f"at most max_classes = {max_classes} names", len(value))
    return tuple(value)
