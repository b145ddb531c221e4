"""release_free_memory: freed heap pages go back to the system (glibc)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tilewatch.streams.memory import _TRIM, ALLOCATOR, release_free_memory, tune_allocator


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


@pytest.mark.skipif(_TRIM is None, reason="not glibc: no mallopt")
def test_the_environment_overrides_the_allocator_settings() -> None:
    """A variable glibc reads itself wins: the parameter is left as the environment set it."""
    assert set(tune_allocator({})) == set(ALLOCATOR)
    assert set(tune_allocator({"MALLOC_ARENA_MAX": "8"})) == {"MALLOC_MMAP_THRESHOLD_"}


_LARGE_BLOCKS = """
import gc, sys
from pathlib import Path
from tilewatch.streams.memory import tune_allocator

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "tuned":
    tune_allocator({})
big = bytearray(16 * 1024 * 1024)
del big
before = rss()
chunks = [bytearray(2 * 1024 * 1024) for _ in range(150)]
keep = chunks[-1]
held = rss()
del chunks
gc.collect()
print(before, held, rss(), len(keep))
"""


@pytest.mark.skipif(_TRIM is None, reason="not glibc: no mallopt")
@pytest.mark.parametrize("tuned", [True, False])
def test_large_temporaries_go_back_to_the_system_once_freed(tuned: bool) -> None:
    """With the mmap threshold fixed (1 MiB), 2 MB blocks are mapped and unmapped: freed,
    their pages leave the process without a trim. glibc's dynamic threshold rises above 2 MB
    once the 16 MB block is freed and puts them on the heap, where they stay (the last one kept
    holds the heap's top). In a fresh interpreter: in a process whose heap already has free
    space, malloc serves such blocks from it whatever the threshold."""
    out = subprocess.run(
        [sys.executable, "-c", _LARGE_BLOCKS, "tuned" if tuned else "defaults"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")},
    ).stdout.split()
    before, held, after = (float(x) for x in out[:3])
    assert held > before + 250
    if tuned:
        assert after < held - 250
    else:  # what the setting changes
        assert after > held - 50
