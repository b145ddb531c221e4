"""Settings of the labeling queue (the ``[labeling]`` section)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LABEL_REASONS", "REASONS", "THRESHOLD_REASONS", "LabelingSettings"]

#: Every selection reason, in the order budgets are split and records are produced.
REASONS = (
    "least_confident",
    "threshold_margin",
    "most_confident",
    "confident_wrong",
    "unsure_but_right",
)
#: Reasons that need each event's label (inline labels).
LABEL_REASONS = frozenset({"confident_wrong", "unsure_but_right"})
#: Reasons that need a binary model's decision threshold (all of them: the confidence of a
#: binary score is its distance from the threshold).
THRESHOLD_REASONS = frozenset(REASONS)


@dataclass(frozen=True, slots=True)
class LabelingSettings:
    """What the labeling queue selects and how much (see ``docs/labeling.md``).

    Parameters
    ----------
    reasons
        The selection reasons in use (a subset of :data:`REASONS`, kept in that order).
    topic
        The queue topic (None: ``<predictions topic>.labeling``).
    threshold
        Decision threshold for binary models; None: the model's threshold from ``[labels]`` or
        the baseline. Never assumed: a binary event without one is not a candidate (counted).
    margin
        ``threshold_margin`` selects events whose margin is at most this; it also separates
        "unsure" from "confident" for ``confident_wrong`` / ``unsure_but_right`` of binary
        models.
    confidence
        Multi-class models: the top-class probability at which a prediction counts as
        confident (None: ``threshold``).
    rate
        At most this fraction of a window's valid events (per partition) is selected.
    max_per_window
        And at most this many records per window and partition, all reasons together.
    cell_share, flagged_cell_share
        One cell takes at most this share of a reason's window budget; cells amber or red in
        some health component take up to ``flagged_cell_share``.
    """

    reasons: tuple[str, ...] = ("least_confident",)
    topic: str | None = None
    threshold: float | None = None
    margin: float = 0.05
    confidence: float | None = None
    rate: float = 0.01
    max_per_window: int = 200
    cell_share: float = 0.05
    flagged_cell_share: float = 0.2

    def __post_init__(self) -> None:
        bad = [r for r in self.reasons if r not in REASONS]
        if bad or not self.reasons or len(set(self.reasons)) != len(self.reasons):
            raise ValueError(f"reasons must be distinct names from {REASONS}, got {self.reasons}")
        object.__setattr__(self, "reasons", tuple(r for r in REASONS if r in self.reasons))
        if not (0.0 < self.rate <= 1.0):
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")
        if self.max_per_window < 1:
            raise ValueError(f"max_per_window must be at least 1, got {self.max_per_window}")
        for name in ("cell_share", "flagged_cell_share"):
            v = getattr(self, name)
            if not (0.0 < v <= 1.0):
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        if self.flagged_cell_share < self.cell_share:
            raise ValueError("flagged_cell_share must be at least cell_share")
        if not (self.margin >= 0.0 and math.isfinite(self.margin)):
            raise ValueError(f"margin must be a finite number >= 0, got {self.margin}")

    @property
    def reason_budget_max(self) -> int:
        """The largest budget one reason can get in one window."""
        return -(-self.max_per_window // len(self.reasons))

    @property
    def cell_capacity(self) -> int:
        """Candidates kept per cell, reason and window: the most any cell can be granted."""
        return max(1, math.floor(self.flagged_cell_share * self.reason_budget_max))

    def window_budget(self, events: int) -> int:
        """Records a window of ``events`` valid events may yield (all reasons)."""
        return min(self.max_per_window, math.ceil(self.rate * events))

    def reason_budgets(self, events: int) -> list[int]:
        """The window budget split over :attr:`reasons` (the remainder to the first ones)."""
        total, n = self.window_budget(events), len(self.reasons)
        return [total // n + (1 if i < total % n else 0) for i in range(n)]

    def cell_quota(self, budget: int, flagged: bool) -> int:
        """Most records one cell may take of a reason's ``budget`` (at least 1 if any)."""
        if budget <= 0:
            return 0
        share = self.flagged_cell_share if flagged else self.cell_share
        return max(1, math.floor(share * budget))
