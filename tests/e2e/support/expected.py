"""What a scrape must show for an e2e stream: per-cell counts, rolling windows and the last
closed window of each model, computed with numpy from the events alone (plus the partition
each landed in). The statistics themselves (mean, variance) are in ``tests.oracles``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from tests.e2e.support.events import Event
from tests.e2e.support.layout import MODELS, ROLLING_EVENTS, WINDOW_SECONDS, Cell, rollups


@dataclass
class Expected:
    """numpy statistics per cell (leaf and roll-up) of a list of events."""

    events: dict[Cell, int] = field(default_factory=dict)
    rolling: dict[Cell, np.ndarray] = field(default_factory=dict)
    window_end: dict[str, float] = field(default_factory=dict)
    window: dict[Cell, np.ndarray] = field(default_factory=dict)


def rolling_window(seen: int, size: int = ROLLING_EVENTS) -> int:
    """Events in a rolling window after ``seen`` events (docs/architecture.md): blocks of
    ``b = size // 20`` events (at least 1); the newest block (``c`` events) plus the whole
    blocks before it that fit in ``size``."""
    if seen <= size:
        return seen
    block = max(1, size // 20)
    newest = (seen - 1) % block + 1
    return newest + (size - newest) // block * block


def expected_stats(
    events: Iterable[Event], partition_of: dict[str, int], data_events: Iterable[Event]
) -> Expected:
    """Counts, rolling windows (per partition, the last :func:`rolling_window` events, merged)
    and the last closed window of each model, which is the last window holding
    ``data_events``."""
    out = Expected()
    per_partition: dict[tuple[int, Cell], list[float]] = defaultdict(list)
    for e in events:  # in partition order (produce order within each partition)
        part = partition_of[e.event_id]
        for cell in rollups(e.cell):
            out.events[cell] = out.events.get(cell, 0) + 1
            per_partition[(part, cell)].append(e.score)
    merged: dict[Cell, list[float]] = defaultdict(list)
    for (_part, cell), scores in per_partition.items():
        merged[cell].extend(scores[-rolling_window(len(scores)) :])
    out.rolling = {cell: np.array(v) for cell, v in merged.items()}
    data = list(data_events)
    for model in MODELS:
        windows = [math.floor(e.time / WINDOW_SECONDS) for e in data if e.cell[0] == model]
        last = max(windows)
        out.window_end[model] = (last + 1) * WINDOW_SECONDS
    in_window: dict[Cell, list[float]] = defaultdict(list)
    for e in data:
        end = out.window_end[e.cell[0]]
        if end - WINDOW_SECONDS <= e.time < end:
            for cell in rollups(e.cell):
                in_window[cell].append(e.score)
    out.window = {cell: np.array(in_window.get(cell, [])) for cell in out.events}
    return out
