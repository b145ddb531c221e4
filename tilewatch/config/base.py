"""Shared pieces of config parsing: the error type, durations, and typed TOML table readers.

Section parsers (one module of :mod:`tilewatch.config` per section) read their tables with
:class:`Table`, so every error names the file, the key, what was expected and what was found.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tilewatch.aggregators.errors import TilewatchError

__all__ = [
    "TOPIC",
    "TOPIC_EXPECTED",
    "ConfigError",
    "Table",
    "parse_duration",
    "resolve_env",
    "show",
    "toml_key",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_EXPECTED = 'a duration like "1m"'
_PATH = re.compile(r"[^.]+(?:\.[^.]+)*")
_PATH_EXPECTED = 'a JSON path of dot-separated non-empty parts like "meta.region"'
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
#: A Kafka topic name, and how errors describe it.
TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
TOPIC_EXPECTED = "a topic name of 1 to 249 characters from A-Z a-z 0-9 . _ -"


class ConfigError(TilewatchError):
    """A config file that cannot be read or does not validate."""


def parse_duration(text: str | float) -> float:
    """Parse a duration into seconds.

    Parameters
    ----------
    text
        A number followed by one unit, ``ms``, ``s``, ``m``, ``h`` or ``d`` (``"500ms"``,
        ``"1.5h"``), or a plain int or float meaning seconds. Combinations such as
        ``"1m30s"`` are not accepted.

    Returns
    -------
    float
        The duration in seconds, finite and >= 0.

    Raises
    ------
    ConfigError
        If ``text`` is not a duration (booleans are not numbers here), or is negative or
        not finite.

    Examples
    --------
    >>> parse_duration("500ms")
    0.5
    >>> parse_duration("1m"), parse_duration("1h"), parse_duration("1d")
    (60.0, 3600.0, 86400.0)
    >>> parse_duration(30)
    30.0
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ...
    tilewatch.config.base.ConfigError: expected a duration like "1m", got "soon"
    """
    if isinstance(text, str):
        match = _DURATION.fullmatch(text.strip())
        if match is None:
            raise ConfigError(f"expected {_DURATION_EXPECTED}, got {show(text)}")
        seconds = float(match[1]) * _UNITS[match[2]]
    elif isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raise ConfigError(f"expected {_DURATION_EXPECTED}, got {show(text)}")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"expected a finite duration >= 0, got {show(text)}")
    return seconds


class Table:
    """One TOML table being read: typed getters with defaults, errors that name the key."""

    def __init__(
        self, source: str, name: str, data: Mapping[str, Any], allowed: Sequence[str]
    ) -> None:
        self.source = source
        self.name = name
        self.data = data
        for key in data:
            if key not in allowed:
                raise ConfigError(
                    f"{self.where(toml_key(key))}: unknown key, expected one of "
                    + ", ".join(sorted(allowed))
                )

    def where(self, key: str) -> str:
        return f"{self.source}: [{self.name}].{key}"

    def error(self, key: str, expected: str, found: Any) -> ConfigError:
        return ConfigError(f"{self.where(key)}: expected {expected}, got {show(found)}")

    def string(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "a non-empty string", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"an integer >= {minimum}", value)
        return value

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.error(key, "a finite number", value)
        return float(value)

    def duration(self, key: str, default: float, *, positive: bool) -> float:
        if key not in self.data:
            return default
        value = self.data[key]
        try:
            seconds = parse_duration(value)
        except ConfigError as exc:
            raise ConfigError(f"{self.where(key)}: {exc}") from None
        if positive and seconds <= 0:
            raise self.error(key, "a duration > 0", value)
        return seconds

    def path(self, key: str, default: str) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or _PATH.fullmatch(value) is None:
            raise self.error(key, _PATH_EXPECTED, value)
        return value

    def strings(self, key: str, default: tuple[str, ...], what: str) -> list[tuple[str, str]]:
        """A string or a non-empty list of strings, as ``(location, item)`` pairs."""
        value = self.data.get(key, default)
        if isinstance(value, str):
            return [(key, value)]
        if not isinstance(value, list | tuple) or not value:
            raise self.error(key, f"a {what} or a non-empty list of them", value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{index}]", f"a {what}", item)
        return [(f"{key}[{index}]", item) for index, item in enumerate(value)]


def toml_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, quoted otherwise."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def show(value: Any) -> str:
    """A found value as it would look in TOML (strings in double quotes)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "a table"
    return str(value)


def resolve_env(value: Any, where: str) -> Any:
    """Replace every string of the form ``${env:NAME}`` in ``value`` by that variable.

    Error messages name the variable, never the value of any option or variable.
    """
    if isinstance(value, str):
        if not value.startswith("${env:"):
            return value
        match = _ENV.fullmatch(value)
        if match is None:
            raise ConfigError(
                f"{where}: expected a reference like ${{env:NAME}} with NAME made of "
                "A-Z a-z 0-9 _, got a malformed ${env:...} reference"
            )
        name = match[1]
        if name not in os.environ:
            raise ConfigError(
                f"{where}: expected the environment variable {name} to be set, got it unset"
            )
        return os.environ[name]
    if isinstance(value, list):
        return [resolve_env(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {key: resolve_env(item, f"{where}.{toml_key(key)}") for key, item in value.items()}
    return value
