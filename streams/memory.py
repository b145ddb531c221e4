"""Giving the heap's freed pages back to the system: after a restore, and as it runs.

A restore decodes every unit of a partition's checkpoint (compressed chunks, binary columns,
key lists, JSON) into short-lived objects; once the state is built they are freed, but glibc's
allocator keeps the pages of its heap for later use: at 100,000 cells the process held 150 to
200 MB more after a restore than the same state built from events (``docs/scale.md``). glibc's
``malloc_trim`` returns them. Elsewhere (musl, macOS) there is nothing to call and
:func:`release_free_memory` returns False.

:func:`tune_allocator` (called by ``tilewatch run`` before any thread starts) sets two of
glibc's allocator parameters, unless the environment sets them (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_``):

- at most two malloc arenas: each thread that allocates (the Kafka client's, the checkpoint
  producer's, the scrape handlers) otherwise gets an arena of its own, whose freed pages the
  others cannot reuse;
- a fixed mmap threshold (1 MiB): glibc raises it (up to 32 MB) each time a large mapped
  block is freed, after which the large numpy temporaries of batches, refreshes and
  checkpoints come from the heap and their pages stay with the process once freed.

At 100,000 cells (``bench_scale.py --cells 100000 --steady --events 1600000``) the process
that restores and reads a pass peaked at 644 MB; with these settings 591 MB (570 MB restored,
518 MB for the first pass, was 589), at the same CPU per event (``docs/scale.md``).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

__all__ = ["ALLOCATOR", "release_free_memory", "tune_allocator"]

#: ``mallopt`` parameters ``tilewatch run`` sets, by the environment variable that overrides
#: each: (glibc's parameter number, value).
ALLOCATOR: dict[str, tuple[int, int]] = {
    "MALLOC_ARENA_MAX": (-8, 2),  # M_ARENA_MAX
    "MALLOC_MMAP_THRESHOLD_": (-3, 1024 * 1024),  # M_MMAP_THRESHOLD
}


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def _mallopt() -> Callable[[int, int], int] | None:
    if _TRIM is None:  # not glibc
        return None
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def tune_allocator(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """Set the :data:`ALLOCATOR` parameters the environment does not; what was set (glibc
    only: elsewhere nothing)."""
    mallopt = _mallopt()
    done: dict[str, int] = {}
    if mallopt is None:
        return done
    for name, (param, value) in ALLOCATOR.items():
        if name not in environ and mallopt(param, value) == 1:
            done[name] = value
    return done


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; True when some were (glibc only)."""
    return _TRIM is not None and bool(_TRIM(0))
