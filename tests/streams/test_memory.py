"""release_free_memory: freed heap pages go back to the system (glibc)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tilewatch.streams.memory import _TRIM, release_free_memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(_TRIM is None, reason="not glibc: nothing to trim")
def test_freed_heap_pages_are_returned() -> None:
    """200 MB of small objects (heap, not mmap) freed in an order that leaves the heap's top
    in use: the pages stay with the process until they are released."""
    release_free_memory()
    chunks = [bytearray(64 * 1024) for _ in range(3200)]  # below the mmap threshold
    keep = chunks[-1]  # the top of the heap stays in use: free() alone cannot shrink it
    del chunks
    gc.collect()
    held = _rss_mb()
    assert release_free_memory()
    assert _rss_mb() < held - 100
    assert len(keep) == 64 * 1024
