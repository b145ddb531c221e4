"""The record of one catalogued metric: name, type, labels and help text.

Plain data: imports nothing from tilewatch or prometheus-client.

Examples
--------
>>> MetricDoc("tilewatch_x_total", COUNTER, "cell, reason", "X.").label_names(("model", "a"))
['model', 'a', 'reason']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, NamedTuple

__all__ = ["COUNTER", "GAUGE", "MetricDoc", "MetricKind"]

MetricKind = Literal["counter", "gauge"]
COUNTER: Final = "counter"
GAUGE: Final = "gauge"


class MetricDoc(NamedTuple):
    """Name (as exposed), type, label names (``cell`` = model + dimensions) and help text."""

    name: str
    kind: MetricKind
    labels: str
    help: str

    @property
    def family(self) -> str:
        """The family name: the metric name, without ``_total`` for a counter."""
        return self.name.removesuffix("_total") if self.kind == COUNTER else self.name

    def label_names(self, cell: Sequence[str]) -> list[str]:
        """The exposed label names, with ``cell`` expanded to ``cell`` (model + dimensions)."""
        out: list[str] = []
        for part in self.labels.split(","):
            part = part.strip()
            if part == "cell":
                out.extend(cell)
            elif part:
                out.append(part)
        return out
