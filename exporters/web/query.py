"""Query parameters of the tile page's JSON API, checked before anything is read.

Every parameter is checked against a closed vocabulary or a bound; a bad one raises
:class:`QueryError`, which the API answers with ``400`` and ``{"error": reason}``. Values that
name cells (model, dimension values) are matched exactly against the snapshot's keys and never
interpreted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from tilewatch.aggregators.errors import TilewatchError

__all__ = [
    "HEALTH",
    "MAX_PAGE_SIZE",
    "NORMS",
    "Params",
    "QueryError",
    "parse_query",
]

#: The pseudo-statistic of the worst component status (green / amber / red).
HEALTH = "health"
#: Normalisations of the page: the value, its z against the cell's earlier windows, its change
#: against the previous window.
NORMS = ("raw", "z", "change")
#: Largest page of one request: cells of ``/api/cells``, rows of ``/api/timeline``, rows and
#: columns (each) of ``/api/grid``.
MAX_PAGE_SIZE = 100
#: Longest accepted parameter value (names are cut to ``label_max_length`` by the registry).
MAX_VALUE_LENGTH = 512


class QueryError(TilewatchError):
    """A bad query parameter: the reason is sent back with status 400."""


@dataclass(frozen=True)
class Params:
    """The parsed query string: one value per name (a repeated name is an error)."""

    values: Mapping[str, str]

    def text(self, name: str, default: str | None = None) -> str:
        """A required parameter (or ``default``); QueryError when missing."""
        value = self.values.get(name, default)
        if value is None:
            raise QueryError(f"missing query parameter {name!r}")
        return value

    def choice(self, name: str, choices: Sequence[str], default: str | None = None) -> str:
        """A parameter from a closed vocabulary."""
        value = self.text(name, default)
        if value not in choices:
            raise QueryError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer parameter within ``[low, high]``."""
        raw = self.values.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or len(raw) > 9:
            raise QueryError(f"{name}: expected an integer from {low} to {high}, got {raw!r}")
        value = int(raw)
        if not low <= value <= high:
            raise QueryError(f"{name}: expected an integer from {low} to {high}, got {value}")
        return value

    def page(self, default_size: int) -> tuple[int, int]:
        """``(page, page_size)``, page numbered from 0."""
        size = self.integer("page_size", default_size, 1, MAX_PAGE_SIZE)
        return self.integer("page", 0, 0, 10**8), size

    def only(self, allowed: Sequence[str]) -> None:
        """QueryError naming the first parameter this endpoint does not know."""
        for name in self.values:
            if name not in allowed:
                raise QueryError(
                    f"unknown query parameter {name!r}; this endpoint takes " + ", ".join(allowed)
                )


def parse_query(query: str) -> Params:
    """Parse a query string; QueryError on a repeated or over-long parameter.

    Examples
    --------
    >>> parse_query("model=churn&segment=%3Cimg%3E").values
    {'model': 'churn', 'segment': '<img>'}
    >>> parse_query("page=1&page=2")
    Traceback (most recent call last):
    ...
    tilewatch.exporters.web.query.QueryError: query parameter 'page' given more than once
    """
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=64)
    except ValueError as exc:
        raise QueryError(f"unreadable query string: {exc}") from exc
    values: dict[str, str] = {}
    for name, found in parsed.items():
        if len(found) != 1:
            raise QueryError(f"query parameter {name[:64]!r} given more than once")
        if len(found[0]) > MAX_VALUE_LENGTH or len(name) > 64:
            raise QueryError(f"query parameter {name[:64]!r} is too long")
        values[name] = found[0]
    return Params(values)
