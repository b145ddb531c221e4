"""Pure online statistics of tilewatch: cells, windows, rolling windows, merged snapshots.

No Kafka, no Prometheus, no I/O: ``streams`` feeds batches in, ``exporters`` reads snapshots.
"""

from __future__ import annotations

from aggregators.cells import CellKey, CellRegistry
from aggregators.errors import StateError, TilewatchError
from aggregators.moments import Moments, group_moments, merge_moments, variance
from aggregators.partition import ApplyResult, PartitionState, WindowAcc
from aggregators.replica import IngestStats, PartitionKey, ReplicaState, Snapshot
from aggregators.rolling import RollingWindows
from aggregators.settings import ALL, OTHER, UNKNOWN, CellSettings

__all__ = [
    "ALL",
    "OTHER",
    "UNKNOWN",
    "ApplyResult",
    "CellKey",
    "CellRegistry",
    "CellSettings",
    "IngestStats",
    "Moments",
    "PartitionKey",
    "PartitionState",
    "ReplicaState",
    "RollingWindows",
    "Snapshot",
    "StateError",
    "TilewatchError",
    "WindowAcc",
    "group_moments",
    "merge_moments",
    "variance",
]
