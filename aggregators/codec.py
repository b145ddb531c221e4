"""Checks of decoded JSON, shared by every plain-data reader: checkpoints and baseline files.

State is written as plain data (numbers, strings, lists, objects; never pickle) and read back
only after every value has been checked, so bad data is refused before anything is built. A
reader makes one :class:`Check` naming what it reads, and every refusal then reads the same
way, ``<subject> is malformed: <where>: <why>`` (``<where>: <why>`` without a subject)::

    partition state is malformed: cells[3]: expected an integer >= 0, got -1

Refusals are :class:`~tilewatch.aggregators.errors.StateError` unless the reader names another
error (baseline files raise ``ValueError``); values in messages are cut to 40 characters.
Integers must lie below ``2**63`` (they go into int64 arrays) and numbers must be finite
(JSON has no NaN); ``bool`` is never a number.

May import: numpy, and the basic modules ``tilewatch.aggregators.errors`` and ``arrays``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray
from tilewatch.aggregators.errors import StateError

__all__ = [
    "LIMIT",
    "Check",
    "Fields",
    "finite_or_none",
    "is_count",
    "is_key",
    "is_number",
    "numbers",
]

#: Integers in plain data lie strictly between ``-LIMIT`` and ``LIMIT``.
LIMIT = 2**63


def finite_or_none(value: float) -> float | None:
    """``value`` as written to plain data: null for an infinity or NaN (JSON has neither).

    Examples
    --------
    >>> finite_or_none(1.5), finite_or_none(float("-inf"))
    (1.5, None)
    """
    return value if math.isfinite(value) else None


def is_count(value: Any, lo: int = 0) -> bool:
    """Whether ``value`` is an ``int`` (not a bool) in ``[lo, 2**63)``.

    Examples
    --------
    >>> is_count(3), is_count(-1), is_count(True), is_count(3.0), is_count(2**63)
    (True, False, False, False, False)
    """
    return type(value) is int and lo <= value < LIMIT


def is_number(value: Any) -> bool:
    """Whether ``value`` is an ``int`` below ``2**63`` in size or a finite ``float``.

    Examples
    --------
    >>> is_number(1), is_number(0.5), is_number(float("nan")), is_number(True), is_number("1")
    (True, True, False, False, False)
    """
    kind = type(value)
    return (kind is int and -LIMIT < value < LIMIT) or (kind is float and math.isfinite(value))


def is_key(value: Any, key_len: int) -> bool:
    """Whether ``value`` is a cell key as written: a list of ``key_len`` non-empty strings."""
    return (
        type(value) is list and len(value) == key_len and all(type(x) is str and x for x in value)
    )


def numbers(values: Sequence[Any]) -> FloatArray | None:
    """``values`` as a float array if every one passes :func:`is_number`, else None.

    Checked column-wise (a type set and one ``isfinite``), for long columns.

    Examples
    --------
    >>> numbers((1, 2.5)).tolist(), numbers((1, "2")), numbers((float("inf"),))
    ([1.0, 2.5], None, None)
    """
    kinds = set(map(type, values))
    if not kinds <= {int, float}:
        return None
    if int in kinds and not all(-LIMIT < v < LIMIT for v in values if type(v) is int):
        return None
    out = np.array(values, dtype=np.float64)
    return out if bool(np.isfinite(out).all()) else None


class Check:
    """The checks of one reader; every failure names the reader, the place and the reason.

    Parameters
    ----------
    subject
        What is read (``"partition state"``); messages start ``<subject> is malformed: ``.
    error
        The exception type raised (:class:`~tilewatch.aggregators.errors.StateError`).
    within
        A path prefix for every place (``"labels"``: ``offset`` becomes ``labels.offset``).

    Examples
    --------
    >>> check = Check("partition state")
    >>> check.integer(3, "offset")
    3
    >>> check.key(["m", ""], "cells[0]", 2)
    Traceback (most recent call last):
    tilewatch.aggregators.errors.StateError: partition state is malformed: cells[0]: expected a...
    >>> Check(error=ValueError).number(*Check().get({"mean": "x"}, "mean", "score"))
    Traceback (most recent call last):
    ValueError: score.mean: expected a finite number, got 'x'
    """

    __slots__ = ("_error", "_prefix", "_within")

    def __init__(
        self,
        subject: str = "",
        error: Callable[[str], Exception] = StateError,
        within: str = "",
    ) -> None:
        self._prefix = f"{subject} is malformed: " if subject else ""
        self._error = error
        self._within = within

    def fail(self, where: str, why: str) -> Exception:
        """The error to raise for ``where`` (a path such as ``cells[3]``) and ``why``."""
        if self._within:
            where = f"{self._within}.{where}" if where else self._within
        return self._error(f"{self._prefix}{where}: {why}")

    def get(self, mapping: Mapping[str, Any], key: str, where: str = "") -> tuple[Any, str]:
        """``(mapping[key], path)`` with ``path`` = ``where.key``; refuses a missing key."""
        path = f"{where}.{key}" if where else key
        if key not in mapping:
            raise self.fail(path, "missing")
        return mapping[key], path

    def fields(self, value: Any, where: str = "", what: str = "an object") -> Fields:
        """The fields of an object (checked to be one), read by name (:class:`Fields`)."""
        return Fields(self, self.mapping(value, where, what), where)

    def integer(self, value: Any, where: str, lo: int = 0) -> int:
        """An integer in ``[lo, 2**63)``."""
        if not is_count(value, lo):
            raise self.fail(where, f"expected an integer >= {lo}, got {value!r:.40}")
        return int(value)

    def number(self, value: Any, where: str) -> float:
        """A finite number, as a float."""
        if not is_number(value):
            raise self.fail(where, f"expected a finite number, got {value!r:.40}")
        return float(value)

    def number_or_none(self, value: Any, where: str) -> float | None:
        """A finite number as a float, or None for null."""
        if value is None:
            return None
        if not is_number(value):
            raise self.fail(where, f"expected a finite number or null, got {value!r:.40}")
        return float(value)

    def text(self, value: Any, where: str) -> str:
        """A string."""
        if type(value) is not str:
            raise self.fail(where, f"expected a string, got {value!r:.40}")
        return value

    def key(self, value: Any, where: str, key_len: int) -> tuple[str, ...]:
        """A cell key: ``key_len`` non-empty strings."""
        if not is_key(value, key_len):
            raise self.fail(where, f"expected a cell key of {key_len} non-empty strings")
        return tuple(value)

    def array(self, value: Any, where: str, what: str = "a list") -> list[Any]:
        """A list (``what`` says which, in the message)."""
        if type(value) is not list:
            raise self.fail(where, f"expected {what}, got {value!r:.40}")
        return value

    def mapping(self, value: Any, where: str, what: str = "an object") -> dict[str, Any]:
        """An object (``what`` says which, in the message)."""
        if type(value) is not dict:
            raise self.fail(where, f"expected {what}, got {value!r:.40}")
        return value

    def row(self, value: Any, where: str, widths: int | tuple[int, ...], shape: str) -> list[Any]:
        """A list of one of the ``widths``, described as ``shape`` (``"[key, count]"``)."""
        allowed = (widths,) if isinstance(widths, int) else widths
        if type(value) is not list or len(value) not in allowed:
            raise self.fail(where, f"expected {shape}")
        return value

    def ints(self, value: Any, where: str, length: int) -> list[int]:
        """A list of exactly ``length`` integers ``>= 0``."""
        if type(value) is not list or len(value) != length:
            raise self.fail(where, f"expected a list of {length} integers")
        for x in value:
            if not is_count(x):
                raise self.fail(where, f"expected integers >= 0, got {x!r:.40}")
        return value

    def floats(self, value: Any, where: str, length: int | None = None) -> list[float]:
        """A list of finite numbers (exactly ``length`` of them when given), as floats."""
        if type(value) is not list or (length is not None and len(value) != length):
            what = "finite numbers" if length is None else f"{length} numbers"
            raise self.fail(where, f"expected a list of {what}, got {value!r:.40}")
        column = numbers(value)
        if column is None:
            bad = next(x for x in value if not is_number(x))
            raise self.fail(where, f"expected finite numbers, got {bad!r:.40}")
        return column.tolist()  # type: ignore[no-any-return]


class Fields:
    """The fields of one object, each read by name and checked at its path (``where.key``).

    Made by :meth:`Check.fields`; a missing field is refused as ``<where.key>: missing``.

    Examples
    --------
    >>> score = Check(error=ValueError).fields({"count": 3, "edges": [0, 1]}, "models.m.score")
    >>> score.integer("count"), score.floats("edges")
    (3, [0.0, 1.0])
    >>> score.number("mean")
    Traceback (most recent call last):
    ValueError: models.m.score.mean: missing
    """

    __slots__ = ("_check", "_where", "data")

    def __init__(self, check: Check, data: dict[str, Any], where: str) -> None:
        self._check = check
        self._where = where
        #: The object read.
        self.data = data

    def get(self, key: str) -> tuple[Any, str]:
        """``(value, path)`` of field ``key``; refuses a missing field."""
        return self._check.get(self.data, key, self._where)

    def integer(self, key: str, lo: int = 0) -> int:
        """Field ``key``: an integer in ``[lo, 2**63)``."""
        value, path = self.get(key)
        return self._check.integer(value, path, lo)

    def number(self, key: str) -> float:
        """Field ``key``: a finite number."""
        return self._check.number(*self.get(key))

    def number_or_none(self, key: str) -> float | None:
        """Field ``key``: a finite number or null."""
        return self._check.number_or_none(*self.get(key))

    def text(self, key: str) -> str:
        """Field ``key``: a string."""
        return self._check.text(*self.get(key))

    def floats(self, key: str) -> list[float]:
        """Field ``key``: a list of finite numbers."""
        return self._check.floats(*self.get(key))

    def fields(self, key: str) -> Fields:
        """Field ``key``: an object, read by name in turn."""
        return self._check.fields(*self.get(key))
