"""Summaries of one holdout column: the score histogram and the feature summaries a reference
keeps (:class:`ScoreBaseline`, :class:`FeatureBaseline`).

A numeric feature is summarized by reference-quantile bins and its moments and range, a
categorical one by the shares of its most frequent categories; :func:`detect_kind` decides
which a column is. :func:`tilewatch.aggregators.drift.reference.build_model_baseline` builds a
model's reference from these.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from tilewatch.aggregators.arrays import FloatArray
from tilewatch.aggregators.stats.binning import bin_numeric, numeric_edges

__all__ = [
    "FEATURE_KINDS",
    "MAX_CATEGORIES",
    "FeatureBaseline",
    "FeatureKind",
    "ScoreBaseline",
    "categorical_summary",
    "category_name",
    "detect_kind",
    "is_missing",
    "numeric_summary",
    "score_histogram",
]

#: A categorical feature with at most this many distinct values keeps the full set.
MAX_CATEGORIES = 1000
#: How a feature is summarized: reference-quantile bins, or category shares.
FeatureKind = Literal["numeric", "categorical"]
#: Values of :attr:`FeatureBaseline.kind`.
FEATURE_KINDS: tuple[FeatureKind, ...] = get_args(FeatureKind)


@dataclass(frozen=True, slots=True)
class ScoreBaseline:
    """Score histogram on fixed equal-width bins (``edges``, shares per bin) and moments."""

    count: int
    mean: float
    std: float
    edges: list[float]
    shares: list[float]


def score_histogram(
    scores: Sequence[float] | FloatArray, bins: int, lo: float, hi: float
) -> ScoreBaseline:
    """Shares of the scores in ``bins`` equal-width bins over ``[lo, hi]``, mean and std.

    Bins are closed on the left, the last one on both sides (``numpy.histogram``); ``std`` is
    the population standard deviation (ddof 0).

    Examples
    --------
    >>> h = score_histogram([0.1, 0.2, 0.6, 1.0], bins=2, lo=0.0, hi=1.0)
    >>> h.edges, h.shares, h.count, h.mean
    ([0.0, 0.5, 1.0], [0.5, 0.5], 4, 0.475)
    """
    s = np.asarray(scores, dtype=np.float64)
    counts, edges = np.histogram(s, bins=bins, range=(lo, hi))
    n = int(s.size)
    return ScoreBaseline(
        count=n,
        mean=float(s.mean()) if n else 0.0,
        std=float(s.std()) if n else 0.0,
        edges=[float(e) for e in edges],
        shares=[float(c) / n if n else 0.0 for c in counts],
    )


@dataclass(frozen=True, slots=True)
class FeatureBaseline:
    """One feature: its schema (type, range or categories, missing share) and distribution.

    ``kind`` is ``"numeric"`` (``inner_edges``/``shares`` on reference-quantile bins, ``mean``,
    ``std``, ``min``, ``max``) or ``"categorical"`` (``top``: shares of the most frequent
    categories, ``other_share``, and ``categories``: every category seen, or ``None`` when more
    than :data:`MAX_CATEGORIES` were seen). Shares are of the non-missing values.
    """

    kind: FeatureKind
    count: int
    missing_share: float
    inner_edges: list[float] | None = None
    shares: list[float] | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    top: dict[str, float] | None = None
    other_share: float | None = None
    categories: list[str] | None = None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_missing(value: object) -> bool:
    """Whether a holdout value counts as missing: None, NaN or an infinity."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def detect_kind(values: Sequence[object]) -> tuple[FeatureKind, bool]:
    """``("numeric" | "categorical", mixed)`` for a column; missing values do not count.

    Numbers are numeric; strings, booleans and anything else are categorical; a column mixing
    numbers with other values is categorical and ``mixed`` is true. A column with no value at
    all is categorical.

    Examples
    --------
    >>> detect_kind([1, 2.5, None]), detect_kind(["a", None]), detect_kind([True, False])
    (('numeric', False), ('categorical', False), ('categorical', False))
    >>> detect_kind([1, "a"])
    ('categorical', True)
    """
    numbers = others = 0
    for v in values:
        if is_missing(v):
            continue
        if _is_number(v):
            numbers += 1
        else:
            others += 1
    if numbers and not others:
        return "numeric", False
    return "categorical", bool(numbers and others)


def numeric_summary(
    values: Sequence[float] | FloatArray, bins: int, missing: int
) -> FeatureBaseline:
    """Reference-quantile bins and shares, moments and range of a numeric feature.

    ``inner_edges`` come from :func:`tilewatch.aggregators.stats.binning.numeric_edges` (at most
    ``bins`` bins, fewer with ties or few distinct values); the bins are ``(-inf, e1), [e1, e2),
    ..., [ek, +inf)`` as in :func:`tilewatch.aggregators.stats.binning.bin_numeric`, so ``shares``
    has one entry more than ``inner_edges``. ``std`` is the population standard deviation (ddof 0).

    Examples
    --------
    >>> f = numeric_summary([1.0, 2.0, 3.0, 4.0], bins=2, missing=1)
    >>> f.inner_edges, f.shares, f.missing_share, f.min, f.max
    ([3.0], [0.5, 0.5], 0.2, 1.0, 4.0)
    """
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    edges = numeric_edges(x, bins)
    counts = np.bincount(bin_numeric(x, edges), minlength=edges.size + 1)
    return FeatureBaseline(
        kind="numeric",
        count=n,
        missing_share=missing / (n + missing),
        inner_edges=[float(e) for e in edges],
        shares=[float(c) / n for c in counts],
        mean=float(x.mean()),
        std=float(x.std()),
        min=float(x.min()),
        max=float(x.max()),
    )


def category_name(value: object) -> str:
    """A value as a category: booleans as ``"true"``/``"false"``, others as their ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def categorical_summary(values: Sequence[object], top: int, missing: int) -> FeatureBaseline:
    """Shares of the ``top`` most frequent categories, the rest as ``other_share``.

    Booleans become ``"true"``/``"false"``, numbers their ``str``. Ties in frequency are broken
    by category name. ``categories`` lists every category seen (sorted) when there are at most
    :data:`MAX_CATEGORIES`.

    Examples
    --------
    >>> f = categorical_summary(["a", "b", "a", "c", True], top=2, missing=0)
    >>> f.top, f.other_share, f.categories
    ({'a': 0.4, 'b': 0.2}, 0.4, ['a', 'b', 'c', 'true'])
    """
    counts = Counter(category_name(v) for v in values)
    n = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    shares = {name: c / n for name, c in ranked}
    kept = sum(c for _, c in ranked)
    return FeatureBaseline(
        kind="categorical",
        count=n,
        missing_share=missing / (n + missing) if n + missing else 0.0,
        top=shares,
        other_share=(n - kept) / n if n else 0.0,
        categories=sorted(counts) if len(counts) <= MAX_CATEGORIES else None,
    )
