"""The class names of multi-class models: a bounded column per class name, per model.

Every multi-class statistic is a table with one column per class. A :class:`ClassVocabulary`
gives each model's class names a column, in a fixed width of ``max_classes + 1`` columns: the
configured classes (``[events] classes``) first, then, when none are configured, names in the
order first seen, up to ``max_classes``; every other name shares the last column,
:data:`OTHER_CLASS`, and its events are counted by the caller. All partitions of a replica share
one vocabulary, so their class tables line up column by column and merge by adding; a checkpoint
names classes, never columns (:meth:`ClassVocabulary.to_dict`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import IntArray
from tilewatch.aggregators.errors import StateError

__all__ = ["OTHER_CLASS", "ClassVocabulary", "class_name", "column_map", "remap_class_counts"]

#: The pooled column of the class names past ``max_classes`` (and the label value of its
#: exported rows). Configured class names may not start with ``__``.
OTHER_CLASS = "__other__"


class ClassVocabulary:
    """Column of each class name, per model, bounded by ``max_classes``.

    Parameters
    ----------
    max_classes
        Class names kept per model; the rest share column ``max_classes``.
    classes
        Configured class names (the order of list-form probability vectors). When given, they
        are every model's only classes: any other name is pooled.

    Examples
    --------
    >>> vocab = ClassVocabulary(max_classes=2)
    >>> [vocab.column("m", c) for c in ("cat", "dog", "cat", "eel")]
    [0, 1, 0, 2]
    >>> vocab.names("m"), vocab.width
    (['cat', 'dog'], 3)
    >>> ClassVocabulary(3, ("a", "b")).column("m", "c")
    3
    """

    def __init__(self, max_classes: int, classes: Sequence[str] = ()) -> None:
        if max_classes < 1 or len(classes) > max_classes:
            raise ValueError(f"need 1 <= len(classes) ({len(classes)}) <= max_classes")
        self.max_classes = max_classes
        self.classes = tuple(classes)
        #: Columns of a table over this vocabulary's classes: ``max_classes`` + the pooled one.
        self.width = max_classes + 1
        self._models: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    @property
    def other(self) -> int:
        """The pooled column."""
        return self.max_classes

    def columns(self, model: str) -> dict[str, int]:
        """The model's name -> column table (read it, do not change it)."""
        table = self._models.get(model)
        if table is None:
            with self._lock:
                table = self._models[model] = {c: i for i, c in enumerate(self.classes)}
        return table

    def column(self, model: str, name: str) -> int:
        """The column of a class name, adding it while there is room (else the pooled one)."""
        table = self.columns(model)
        found = table.get(name)
        if found is not None:
            return found
        if self.classes or len(table) >= self.max_classes or name.startswith("__"):
            return self.max_classes
        with self._lock:
            table[name] = column = len(table)
        return column

    def names(self, model: str) -> list[str]:
        """The model's class names in column order (the pooled one excluded); the configured
        classes for a model not seen yet. Never adds a model (safe from any thread)."""
        with self._lock:
            table = self._models.get(model)
            return list(self.classes) if table is None else list(table)

    def labels(self, model: str) -> list[str]:
        """One name per column of a table: the class names, empty columns as ``""``, then
        :data:`OTHER_CLASS`."""
        names = self.names(model)
        return [*names, *([""] * (self.max_classes - len(names))), OTHER_CLASS]

    def models(self) -> list[str]:
        """Models with a table, in first-seen order."""
        with self._lock:
            return list(self._models)

    def to_dict(self) -> dict[str, list[str]]:
        """Plain data: each model's class names in column order."""
        with self._lock:
            return {m: list(t) for m, t in self._models.items()}

    def load(self, data: Mapping[str, Any]) -> dict[str, list[int]]:
        """Add the class names of a checkpoint; returns, per model, the column here of each
        of its columns (a name there may have another column here, or be pooled).

        Examples
        --------
        >>> vocab = ClassVocabulary(2)
        >>> vocab.column("m", "b")
        0
        >>> vocab.load({"m": ["a", "b"]})
        {'m': [1, 0]}
        """
        if not isinstance(data, Mapping) or not all(
            isinstance(m, str) and isinstance(ns, list) and all(isinstance(n, str) for n in ns)
            for m, ns in data.items()
        ):
            raise StateError("class vocabulary: expected model -> list of class names")
        for m, ns in data.items():  # everything checked before anything is added
            if len(set(ns)) != len(ns):
                raise StateError(f"class vocabulary of {m!r}: repeated class names")
        return {m: [self.column(m, n) for n in ns] for m, ns in data.items()}


def class_name(value: Any) -> str | None:
    """A label value as a class name: a non-empty string, an integer or a boolean (as
    ``true`` / ``false``); None for anything else (a float, null, an empty string).

    Examples
    --------
    >>> [class_name(v) for v in ("buy", 3, True, 1.0, "", None)]
    ['buy', '3', 'true', None, None, None]
    """
    t = type(value)
    if t is str:
        return value or None
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    return None


def column_map(moved: Sequence[int], width: int, other: int) -> IntArray:
    """Column here of each of ``width`` columns of another class table, whose named columns
    moved to ``moved`` (from :meth:`ClassVocabulary.load`); its other columns (unnamed ones,
    and its pooled one) go to the pooled column ``other``.

    Examples
    --------
    >>> column_map([1, 0], 4, 3).tolist()
    [1, 0, 3, 3]
    """
    out = np.full(width, other, dtype=np.int64)
    k = min(len(moved), width)
    out[:k] = moved[:k]
    return out


def remap_class_counts(
    name: str, counts: Sequence[int], moved: Sequence[int], width: int, other: int
) -> list[int]:
    """A checkpointed class histogram row (``mc_class``: one count per class column;
    ``mc_confusion``: label x predicted) in the columns of this table (``width`` columns);
    other histograms are returned as they are.

    Examples
    --------
    >>> remap_class_counts("mc_class", [5, 2, 1], [1, 0], 3, 2)
    [2, 5, 1]
    >>> remap_class_counts("mc_confusion", [1, 2, 0, 3], [1], 3, 2)
    [0, 0, 0, 0, 1, 2, 0, 0, 3]
    """
    old = np.asarray(counts, dtype=np.int64)
    if name == "mc_class":
        cols = column_map(moved, len(old), other)
        out: list[int] = np.bincount(cols, weights=old, minlength=width).astype(np.int64).tolist()
        return out
    if name == "mc_confusion":
        k = math.isqrt(len(old))
        cols = column_map(moved, k, other)
        at = (cols[:, None] * width + cols[None, :]).ravel()
        out = np.bincount(at, weights=old, minlength=width * width).astype(np.int64).tolist()
        return out
    return list(counts)
