"""The e2e stream's layout: its cells, event times and window settings.

The stream is built so that every expected number can be computed with numpy from the events
alone, plus the partition each record landed in (read back from the topic): event times rise
with a jitter smaller than the grace, so no event of the main stream is late.
"""

from __future__ import annotations

ALL = "__all__"

#: Start of the event-time range: 2026-01-01T00:00:00Z, a multiple of every window size used.
T0 = 1_767_225_600.0
WINDOW_SECONDS = 10.0
GRACE_SECONDS = 1.0
JITTER_SECONDS = 0.4  # < GRACE_SECONDS / 2, so the main stream has no late event
ROLLING_EVENTS = 100

MODELS = ("alpha", "beta")
SEGMENTS = ("s0", "s1", "s2", "s3")
REGIONS = ("eu", "us", "ap")

Cell = tuple[str, str, str]


def leaf_cells() -> list[Cell]:
    return [(m, s, r) for m in MODELS for s in SEGMENTS for r in REGIONS]


def rollups(cell: Cell) -> list[Cell]:
    """The cell and the three roll-ups it counts in."""
    model, segment, region = cell
    return [
        (model, segment, region),
        (model, ALL, region),
        (model, segment, ALL),
        (model, ALL, ALL),
    ]


def cell_labels(cell: Cell) -> frozenset[tuple[str, str]]:
    model, segment, region = cell
    return frozenset({("model", model), ("segment", segment), ("region", region)})
