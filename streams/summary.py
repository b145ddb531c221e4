"""What one run of the loop did: records read and committed offsets, returned to callers."""

from __future__ import annotations

from dataclasses import dataclass, field

from tilewatch.aggregators.state.snapshot import PartitionKey

__all__ = ["RunSummary"]


@dataclass
class RunSummary:
    """What one run did, printed on exit and returned to tests.

    ``committed`` holds the offsets the group has committed (or that a restore found durable)
    per partition; ``restored`` the offset each assigned partition's state was restored up to
    (None: it started empty).
    """

    read: int = 0
    valid: int = 0
    late: int = 0
    invalid: int = 0
    committed: dict[PartitionKey, int] = field(default_factory=dict)
    restored: dict[PartitionKey, int | None] = field(default_factory=dict)
