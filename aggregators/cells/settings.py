"""Settings of the cell table (the ``[cells]`` section of the config)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL", "OTHER", "UNKNOWN", "CellSettings"]

#: Label value of a roll-up cell: every value of that dimension together.
ALL = "__all__"
#: Label value of the overflow cell that takes new cells once ``max_cells`` is reached.
OTHER = "__other__"
#: Label value given to an event whose dimension field is absent or null.
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CellSettings:
    """How events are grouped into cells and windows.

    Parameters
    ----------
    dimensions
        Names of the cell dimensions besides the model, e.g. ``("segment", "region")``. They are
        also the Prometheus label names.
    window_seconds
        Size of the epoch-aligned event-time tumbling windows.
    grace_seconds
        How far behind the largest event time seen (per partition) a window still accepts
        events; the watermark is ``max_event_time - grace``.
    rolling_events
        Length of the rolling window, in events, per cell.
    max_cells
        Maximum number of leaf cells (model x dimension values); new cells past it are counted
        into one ``__other__`` cell per model.
    label_max_length
        Dimension and model values longer than this are cut to it.
    """

    dimensions: tuple[str, ...] = ("segment", "region")
    window_seconds: float = 60.0
    grace_seconds: float = 30.0
    rolling_events: int = 1000
    max_cells: int = 10_000
    label_max_length: int = 64
