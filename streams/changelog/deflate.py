"""zlib-format compression of checkpoints: ISA-L (the ``isal`` package) when it is installed,
else the standard library's zlib.

Both write and read the same format (zlib streams, deflate inside), so a checkpoint written
by either is read by either: the choice is speed only. At level 1, ISA-L compresses a
checkpoint unit about six times faster than zlib at the same size (a round at 100,000 cells:
0.40 -> 0.07 s of the consumer's CPU, docs/scale.md) and inflates it about twice as fast.
``isal`` is a dependency; the fallback keeps tilewatch working where its wheel is missing.

Examples
--------
>>> import zlib
>>> data = b"tilewatch " * 1000
>>> zlib.decompress(compress(data)) == data  # readable by plain zlib
True
>>> inflater = decompressobj()
>>> inflater.decompress(zlib.compress(data, 1), 50_000) == data
True
>>> try:
...     decompressobj().decompress(b"not a stream")
... except Error:
...     print("refused")
refused
"""

from __future__ import annotations

import types
import zlib
from typing import Any

_impl: types.ModuleType
try:
    from isal import isal_zlib as _impl
except ImportError:  # pragma: no cover - a platform without the isal wheel
    _impl = zlib
#: What either library raises on a stream that does not inflate.
_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _impl.error)

__all__ = ["BACKEND", "LEVEL", "Error", "compress", "decompressobj"]

#: Which library compresses: "isal" or "zlib".
BACKEND = "isal" if _impl is not zlib else "zlib"
#: The level every checkpoint is written at (the fastest).
LEVEL = 1


class Error(Exception):
    """A stream that does not inflate (either library's error, re-raised as this)."""


def compress(data: bytes) -> bytes:
    """``data`` as a zlib stream at :data:`LEVEL`."""
    return bytes(_impl.compress(data, LEVEL))


class _Inflater:
    def __init__(self) -> None:
        self._inflater: Any = _impl.decompressobj()

    @property
    def unconsumed_tail(self) -> bytes:
        return bytes(self._inflater.unconsumed_tail)

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        try:
            return bytes(self._inflater.decompress(data, max_length))
        except _ERRORS as exc:
            raise Error(str(exc)) from None


def decompressobj() -> _Inflater:
    """An inflater: ``decompress(data, max_length)`` (raises :class:`Error`) and
    ``unconsumed_tail``, as zlib's."""
    return _Inflater()
