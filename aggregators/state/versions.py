"""Model versions seen per model: when each was first and last seen, and how often.

The version is an aging signal (how long the current version has served) and marks version
changes on dashboards. A model's *current* version is the one with the latest last-seen event
time (ties: the later first-seen, then the larger name), so a late event of an old version does
not flip it back unless that version is really still serving.

Tables are plain dicts ``(model, version) -> [first, last, count]`` that merge by min, max and
sum, so partitions and replicas combine exactly.
"""

from __future__ import annotations

import math
from typing import Any

from tilewatch.aggregators.arrays import FloatArray
from tilewatch.aggregators.codec import Check

__all__ = [
    "VersionTable",
    "current_versions",
    "merge_versions",
    "parse_versions",
    "update_versions",
    "version_rows",
]

#: ``(model, version) -> [first seen, last seen, events]`` (event times, epoch seconds).
VersionTable = dict[tuple[str, str], list[float]]

_MAX_VERSION = 64


def update_versions(
    table: VersionTable, models: list[str], versions: list[Any], times: FloatArray
) -> int:
    """Count a batch's ``(model, version)`` pairs into ``table``; returns the bad versions.

    A version is a non-empty string or an integer (cut to 64 characters); ``None`` (absent) is
    skipped silently, anything else is skipped and counted as bad.

    Examples
    --------
    >>> import numpy as np
    >>> t: VersionTable = {}
    >>> update_versions(t, ["m", "m", "m"], ["v1", "v2", 3.5], np.array([5.0, 7.0, 9.0]))
    1
    >>> t
    {('m', 'v1'): [5.0, 5.0, 1], ('m', 'v2'): [7.0, 7.0, 1]}
    """
    bad = 0
    if not versions:
        return 0
    first = versions[0]
    if (
        type(first) is str
        and first
        and versions.count(first) == len(versions)
        and len(set(models)) == 1
    ):
        _add(
            table,
            (models[0], first[:_MAX_VERSION]),
            float(times.min()),
            float(times.max()),
            len(versions),
        )
        return 0
    for model, version, t in zip(models, versions, times.tolist(), strict=True):
        tv = type(version)
        if tv is str and version:
            name = version[:_MAX_VERSION]
        elif tv is int:
            name = str(version)
        else:
            if version is not None:
                bad += 1
            continue
        _add(table, (model, name), t, t, 1)
    return bad


def _add(table: VersionTable, key: tuple[str, str], first: float, last: float, n: int) -> None:
    row = table.get(key)
    if row is None:
        table[key] = [first, last, n]
    else:
        row[0] = min(row[0], first)
        row[1] = max(row[1], last)
        row[2] += n


def merge_versions(tables: list[VersionTable]) -> VersionTable:
    """Merge tables (first seen: min, last seen: max, events: sum) into a new one."""
    out: VersionTable = {}
    for table in tables:
        for key, (first, last, n) in table.items():
            _add(out, key, first, last, int(n))
    return out


def current_versions(table: VersionTable) -> dict[str, tuple[str, float]]:
    """Each model's current version and when it was first seen.

    Examples
    --------
    >>> current_versions({("m", "v1"): [0.0, 50.0, 9], ("m", "v2"): [40.0, 60.0, 3]})
    {'m': ('v2', 40.0)}
    """
    best: dict[str, tuple[float, float, str]] = {}
    for (model, version), (first, last, _n) in table.items():
        cand = (last, first, version)
        if model not in best or cand > best[model]:
            best[model] = cand
    return {m: (v, first) for m, (_last, first, v) in sorted(best.items())}


def parse_versions(data: Any, check: Check, where: str = "versions") -> VersionTable:
    """Check ``[[model, version, first, last, events], ...]`` rows; raises ``check``'s error.

    Examples
    --------
    >>> parse_versions([["m", "v1", 5.0, 7.0, 2]], Check("state"))
    {('m', 'v1'): [5.0, 7.0, 2]}
    """
    out: VersionTable = {}
    for j, row in enumerate(check.array(data, where)):
        if (
            type(row) is not list
            or len(row) != 5
            or not all(type(x) is str and x for x in row[:2])
            or not all(type(x) in (int, float) and math.isfinite(x) for x in row[2:4])
            or type(row[4]) is not int
            or row[4] < 1
        ):
            raise check.fail(f"{where}[{j}]", "expected [model, version, first, last, events]")
        _add(out, (row[0], row[1]), float(row[2]), float(row[3]), row[4])
    return out


def version_rows(table: VersionTable) -> list[list[Any]]:
    """Plain JSON rows of a table (for checkpoints)."""
    return [[m, v, first, last, int(n)] for (m, v), (first, last, n) in sorted(table.items())]
