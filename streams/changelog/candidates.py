"""A partition's checkpoints found on the changelog, checked and decoded one at a time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from tilewatch.aggregators.state.snapshot import PartitionKey
from tilewatch.streams.changelog.delta import decode_delta
from tilewatch.streams.changelog.records import Checkpoint, Refusal, decode_slot

if TYPE_CHECKING:
    from tilewatch.streams.changelog.store import ChangelogStore

__all__ = ["Candidates"]


class Candidates:
    """A partition's checkpoints on the changelog, newest first; iterating checks and decodes
    them one at a time (a refused one is counted, logged and skipped), so a restore that
    succeeds with the newest never decodes the others."""

    def __init__(
        self,
        store: ChangelogStore,
        source: PartitionKey,
        order: list[tuple[int, str, str]],
        latest: Mapping[bytes, bytes | None],
    ) -> None:
        self._store = store
        self._source = source
        self._order = order
        self._latest = latest
        self._decoded: list[Checkpoint] = []
        self._next = 0

    def __iter__(self) -> Iterator[Checkpoint]:
        i = 0
        while True:
            if i < len(self._decoded):
                yield self._decoded[i]
                i += 1
                continue
            if self._next >= len(self._order):
                return
            _seq, kind, slot = self._order[self._next]
            self._next += 1
            decode = decode_slot if kind == "full" else decode_delta
            result = decode(self._source, slot, self._latest, self._store.fingerprint)
            if isinstance(result, Refusal):
                self._store.refuse(result)
            elif result is not None:
                self._decoded.append(result)

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, list | Candidates) else False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Candidates({self._source}, {[(k, s, q) for q, k, s in self._order]})"
