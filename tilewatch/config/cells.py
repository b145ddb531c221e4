"""The ``[cells]`` section: dimensions, windows, rolling windows and the cell bound.

Maps to :class:`tilewatch.aggregators.cells.settings.CellSettings`; ``min_samples`` of this section
is read by the drift section. Reference in ``docs/configuration.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.config import events
from tilewatch.config.base import Table

__all__ = ["KEYS", "parse_cells"]

KEYS = (
    "dimensions",
    "window",
    "grace",
    "rolling_events",
    "max_cells",
    "label_max_length",
    "min_samples",
)
_MAX_DIMENSIONS = 4
_DIMENSION = re.compile(r"[a-z_][a-z0-9_]*")


def parse_cells(data: Mapping[str, Any], source: str) -> CellSettings:
    table = Table(source, "cells", data, KEYS)
    defaults = CellSettings()
    names = table.data.get("dimensions", list(defaults.dimensions))
    if not isinstance(names, list | tuple) or len(names) > _MAX_DIMENSIONS:
        raise table.error("dimensions", f"a list of 0 to {_MAX_DIMENSIONS} dimension names", names)
    dimensions: list[str] = []
    for index, name in enumerate(names):
        where = f"dimensions[{index}]"
        if not isinstance(name, str) or _DIMENSION.fullmatch(name) is None:
            raise table.error(where, "a name matching ^[a-z_][a-z0-9_]*$", name)
        if name.startswith("__"):
            raise table.error(where, 'a name not starting with "__"', name)
        if name in events.KEYS:
            raise table.error(where, "a name other than model and the other [events] keys", name)
        if name in dimensions:
            raise table.error(where, "a name not listed before", name)
        dimensions.append(name)
    return CellSettings(
        dimensions=tuple(dimensions),
        window_seconds=table.duration("window", defaults.window_seconds, positive=True),
        grace_seconds=table.duration("grace", defaults.grace_seconds, positive=False),
        rolling_events=table.integer("rolling_events", defaults.rolling_events, 2),
        max_cells=table.integer("max_cells", defaults.max_cells, 1),
        label_max_length=table.integer("label_max_length", defaults.label_max_length, 10),
    )
