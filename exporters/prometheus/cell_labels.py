"""Each cell's label set as text (``model="m",segment="s",...``, escaped), formatted once.

A cell's label set never changes, so :class:`CellLabels` formats it the first time a family
writes the cell and keeps it for every later scrape
(:class:`~tilewatch.exporters.prometheus.exposition.CellFamily` reads them);
:func:`label_strings` formats many at once.

Examples
--------
>>> labels = CellLabels(["model", "segment"])
>>> strings = labels.strings([("m", "a"), ("m", 'q"x')])
>>> strings.take([1, 0])
['model="m",segment="q\\\\"x"', 'model="m",segment="a"']
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import chain
from typing import overload

__all__ = ["CellLabels", "LabelStrings", "escape", "label_string", "label_strings"]


def escape(value: str) -> str:
    """A label value escaped for the text format (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_string(names: Sequence[str], values: Sequence[str]) -> str:
    """``name="value",...`` for the text format."""
    return ",".join(f'{n}="{escape(str(v))}"' for n, v in zip(names, values, strict=True))


def label_strings(names: Sequence[str], keys: Sequence[Sequence[str]]) -> list[str]:
    """:func:`label_string` of each key, in bulk: one template for all, values escaped only
    when some value of ``keys`` needs it (or is not a string)."""
    if not set(map(len, keys)) <= {len(names)}:
        raise ValueError(f"label values do not match the names {list(names)}")
    braced = (n.replace("{", "{{").replace("}", "}}") for n in names)
    template = ",".join(f'{n}="{{}}"' for n in braced).format
    try:
        joined = "\x00".join(chain.from_iterable(keys))
    except TypeError:  # a value that is not a string
        return [label_string(names, key) for key in keys]
    if "\\" in joined or "\n" in joined or '"' in joined:
        return [template(*map(escape, key)) for key in keys]
    return [template(*key) for key in keys]


class CellLabels:
    """Each cell's label string, formatted when first written and kept across scrapes.

    Parameters
    ----------
    names
        The cell's label names: ``model`` and the dimensions.

    Cells are only ever appended to a replica's registry, so the strings are kept by cell
    index. A string is formatted the first time a family writes its cell: with the series
    budget (``[exporter] max_exported_cells``) a scrape of 100,000 cells writes about 10,000
    of them, and the others never cost their string (about 190 bytes a cell).
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        # "" until formatted (a label set is never empty: ``model`` at least). Not None: a
        # list is searched for "" at C speed, for None through two failed comparisons each.
        self._strings: list[str] = []
        self._keys: list[tuple[str, ...]] = []
        self._lock = threading.Lock()  # scrapes run on concurrent request threads

    def strings(self, keys: Sequence[tuple[str, ...]]) -> Sequence[str]:
        """The label strings of ``keys`` (the registry's key list), by cell index (each
        formatted when first read)."""
        with self._lock:
            self._extend(keys)
            return LabelStrings(self.names, self._strings, self._keys)

    def _extend(self, keys: Sequence[tuple[str, ...]]) -> None:
        done = len(self._strings)
        if done > len(keys) or (done and keys[done - 1] is not self._keys[done - 1]):
            done = 0  # another registry: start again
            self._strings, self._keys = [], []
        new = keys[done:]
        self._keys.extend(new)
        self._strings.extend([""] * len(new))


class LabelStrings(Sequence[str]):
    """The label strings of a :class:`CellLabels`, formatted on first read (two scrapes
    formatting one string at once both write the same text: harmless)."""

    __slots__ = ("_keys", "_names", "_strings")

    def __init__(self, names: list[str], strings: list[str], keys: list[tuple[str, ...]]) -> None:
        self._names, self._strings, self._keys = names, strings, keys

    def __len__(self) -> int:
        return len(self._strings)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        s = self._strings[i]
        if not s:
            s = self._strings[i] = label_string(self._names, self._keys[i])
        return s

    def take(self, rows: list[int]) -> list[str]:
        """The strings of ``rows``, in bulk (what ``[self[r] for r in rows]`` gives)."""
        strings = self._strings
        out = [strings[r] for r in rows]
        if "" in out:
            missing = sorted({r for r, s in zip(rows, out, strict=True) if not s})
            keys = self._keys
            for r, s in zip(
                missing, label_strings(self._names, [keys[r] for r in missing]), strict=True
            ):
                strings[r] = s
            out = [strings[r] for r in rows]
        return out

    def __eq__(self, other: object) -> bool:
        return list(self) == other if isinstance(other, (list, LabelStrings)) else NotImplemented

    __hash__ = None  # type: ignore[assignment]
