"""Partition checkpoints on a compacted changelog topic: the record format and the store.

``codec`` encodes a checkpoint into records and checks a slot (pure); ``store`` writes and
restores them through Kafka and remembers what each partition's last checkpoint covers.

May import: ``tilewatch.streams.errors``, ``tilewatch.aggregators``.
"""

from __future__ import annotations

from tilewatch.streams.changelog.records import (
    CHUNK_BYTES,
    FORMAT,
    MAX_STATE_BYTES,
    REFUSALS,
    VERSION,
    Checkpoint,
    Refusal,
    decode_slot,
    encode_checkpoint,
    settings_fingerprint,
    slot_seq,
)
from tilewatch.streams.changelog.store import ChangelogStore, Covered

__all__ = [
    "CHUNK_BYTES",
    "FORMAT",
    "MAX_STATE_BYTES",
    "REFUSALS",
    "VERSION",
    "ChangelogStore",
    "Checkpoint",
    "Covered",
    "Refusal",
    "decode_slot",
    "encode_checkpoint",
    "settings_fingerprint",
    "slot_seq",
]
