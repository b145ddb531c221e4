"""Giving the heap's freed pages back to the system after a restore.

A restore decodes every unit of a partition's checkpoint (compressed chunks, binary columns,
key lists, JSON) into short-lived objects; once the state is built they are freed, but glibc's
allocator keeps the pages of its heap for later use: at 100,000 cells the process held 150 to
200 MB more after a restore than the same state built from events (``docs/scale.md``). glibc's
``malloc_trim`` returns them. Elsewhere (musl, macOS) there is nothing to call and
:func:`release_free_memory` returns False.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["release_free_memory"]


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


def release_free_memory() -> bool:
    """Return the heap's free pages to the system; True when some were (glibc only)."""
    return _TRIM is not None and bool(_TRIM(0))
