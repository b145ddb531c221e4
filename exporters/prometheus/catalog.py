"""The documentation record of an exported metric (the README tables are generated from it)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["MetricDoc"]


class MetricDoc(NamedTuple):
    """Name (as exposed), type, label names (``cell`` = model + dimensions) and help text."""

    name: str
    kind: str
    labels: str
    help: str
