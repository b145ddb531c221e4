"""Reference counts per leaf cell: the per-cell part of a model's baseline.

Segments differ by nature (incomes by region, product mixes by segment), so each cell is
compared with its own reference, not the model-wide one. ``tilewatch baseline`` counts, for
every leaf cell present in the holdout set, its rows on the model's drift bins: the score bins,
the predicted classes (plus ``other``), and each feature's value bins with a last column for
"missing", exactly as the monitor bins live events (the counting reuses
:meth:`tilewatch.aggregators.drift.profile.DriftProfile.encode`). With counts rather than shares
the reference's sample size is known, so every decision can account for it. Roll-ups are sums
of their leaves and are not stored; :mod:`tilewatch.aggregators.drift.cell_reference` derives
them, and the shrinkage of small cells toward their parents, when the monitor loads the file.

Plain data only: :meth:`CellCounts.to_dict` and :meth:`CellCounts.from_dict` (which checks every
field) give and take numbers, strings and lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.codec import Check

__all__ = ["CellCounts"]

#: The checks of a baseline file: ``ValueError("<path>: <why>")``.
CHECK = Check(error=ValueError)


@dataclass(frozen=True)
class CellCounts:
    """Reference rows of one model's leaf cells, counted on the model's drift bins.

    Parameters
    ----------
    dimensions
        The cell dimensions the keys follow (``[cells] dimensions`` when the baseline was built).
    keys
        One tuple of dimension values per leaf cell, as the holdout rows spell them.
    hists
        Histogram name (``"score"``, ``"class"``, ``"f:<feature>"``) -> ``(leaves, bins)`` counts;
        a feature's last column counts rows where the feature is missing.
    score_sum, score_sq
        Per leaf, the sum and the sum of squares of the scores (the reference mean and spread).
    labeled, errors
        Per leaf, labelled rows and, at the model's threshold, wrong predictions among them
        (zero where the model has no threshold).

    Examples
    --------
    >>> c = CellCounts(("region",), [("eu",), ("us",)], {"score": np.array([[3, 1], [0, 2]])},
    ...                np.array([1.2, 1.5]), np.array([0.6, 1.13]), np.array([4, 2]),
    ...                np.array([1, 0]))
    >>> c.rows.tolist()
    [4, 2]
    >>> CellCounts.from_dict(c.to_dict(), "cells").keys
    [('eu',), ('us',)]
    """

    dimensions: tuple[str, ...]
    keys: list[tuple[str, ...]]
    hists: dict[str, IntArray]
    score_sum: FloatArray
    score_sq: FloatArray
    labeled: IntArray
    errors: IntArray

    @property
    def rows(self) -> IntArray:
        """Reference rows per leaf (the score histogram's row sums)."""
        return np.asarray(self.hists["score"].sum(axis=1), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the baseline file (counts as lists of integers)."""
        return {
            "dimensions": list(self.dimensions),
            "keys": [list(k) for k in self.keys],
            "hists": {name: h.tolist() for name, h in self.hists.items()},
            "score_sum": self.score_sum.tolist(),
            "score_sq": self.score_sq.tolist(),
            "labeled": self.labeled.tolist(),
            "errors": self.errors.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> CellCounts:
        """Rebuild from :meth:`to_dict` output, checking every field.

        Raises
        ------
        ValueError
            Naming the first field that is missing, of the wrong type or shape.
        """
        f = CHECK.fields(dict(data) if isinstance(data, Mapping) else data, where)
        dims = CHECK.array(f.data.get("dimensions"), f"{where}.dimensions")
        if not all(isinstance(d, str) and d for d in dims):
            raise CHECK.fail(f"{where}.dimensions", "expected a list of names")
        raw_keys = CHECK.array(f.data.get("keys"), f"{where}.keys")
        keys = []
        for i, key in enumerate(raw_keys):
            if not (
                isinstance(key, list)
                and len(key) == len(dims)
                and all(isinstance(v, str) for v in key)
            ):
                raise CHECK.fail(f"{where}.keys[{i}]", f"expected {len(dims)} strings")
            keys.append(tuple(key))
        n = len(keys)
        hists: dict[str, IntArray] = {}
        for name, rows in CHECK.mapping(f.data.get("hists"), f"{where}.hists").items():
            hists[str(name)] = _counts(rows, f"{where}.hists.{name}", n)
        if "score" not in hists:
            raise CHECK.fail(f"{where}.hists", "expected a 'score' histogram")

        def column(name: str, integer: bool) -> Any:
            values = CHECK.array(f.data.get(name), f"{where}.{name}")
            if len(values) != n:
                raise CHECK.fail(f"{where}.{name}", f"expected {n} values, got {len(values)}")
            if integer:
                return np.asarray(CHECK.ints(values, f"{where}.{name}", n), dtype=np.int64)
            return np.asarray(CHECK.floats(values, f"{where}.{name}", n), dtype=np.float64)

        out = cls(
            dimensions=tuple(dims),
            keys=keys,
            hists=hists,
            score_sum=column("score_sum", False),
            score_sq=column("score_sq", False),
            labeled=column("labeled", True),
            errors=column("errors", True),
        )
        if (out.errors > out.labeled).any() or (out.labeled > out.rows).any():
            raise CHECK.fail(where, "expected errors <= labeled <= rows in every cell")
        return out


def _counts(rows: Any, where: str, n: int) -> IntArray:
    """A ``(n, bins)`` matrix of integer counts >= 0 (checked as a whole, not value by value)."""
    rows = CHECK.array(rows, where)
    try:
        arr = np.asarray(rows) if n else np.zeros((0, 0), dtype=np.int64)
    except ValueError:  # ragged rows
        arr = np.asarray([], dtype=object)
    if arr.ndim != 2 or arr.shape[0] != n or arr.dtype.kind not in "iu" or (arr < 0).any():
        raise CHECK.fail(where, f"expected {n} rows of equal length of integers >= 0")
    return arr.astype(np.int64)
