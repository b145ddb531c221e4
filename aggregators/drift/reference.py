"""Reference baselines: what a model's scores, features and errors looked like on a holdout set.

A :class:`Baseline` is built once, offline, from in-memory columns (``tilewatch baseline`` reads
the files) and later compared with live traffic by the drift and data-quality stages. It is
plain data: :meth:`Baseline.to_dict` / :meth:`Baseline.from_dict` give and take only numbers,
strings, lists and dicts (never pickle), and ``from_dict`` checks every field so a corrupt or
foreign file is refused with the path of the bad field. The JSON layout is in ``docs/baseline.md``.

The decision threshold is chosen on labelled rows only, by :func:`choose_threshold`; without
labels there is no threshold (a static 0.5 is never assumed).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import FloatArray
from tilewatch.aggregators.stats.binning import bin_numeric, numeric_edges
from tilewatch.aggregators.stats.threshold import THRESHOLD_RULES, Threshold, choose_threshold

__all__ = [
    "FORMAT",
    "MAX_CATEGORIES",
    "THRESHOLD_RULES",
    "VERSION",
    "Baseline",
    "BaselineSettings",
    "FeatureBaseline",
    "ModelBaseline",
    "ModelColumns",
    "ScoreBaseline",
    "Threshold",
    "build_model_baseline",
    "categorical_summary",
    "choose_threshold",
    "detect_kind",
    "numeric_summary",
    "score_histogram",
]

FORMAT = "tilewatch-baseline"
VERSION = 1
#: A categorical feature with at most this many distinct values keeps the full set.
MAX_CATEGORIES = 1000


@dataclass(frozen=True, slots=True)
class BaselineSettings:
    """The ``[baseline]`` section: where the monitor reads the baseline, and how it is built.

    ``cost_ratio`` is the cost of a false negative over the cost of a false positive; it is
    required by the ``"cost"`` rule and, when set, also used for the ``cost`` reported with any
    rule (``1.0`` otherwise).
    """

    path: str | None = None
    score_bins: int = 20
    feature_bins: int = 10
    top_categories: int = 20
    threshold_rule: str = "max_f1"
    cost_ratio: float | None = None


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

    kind: str
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


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def detect_kind(values: Sequence[object]) -> tuple[str, bool]:
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
        if _is_missing(v):
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


def _category(value: object) -> str:
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
    counts = Counter(_category(v) for v in values)
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


@dataclass(slots=True)
class ModelColumns:
    """The valid rows of one model, as columns (``None`` where a row has no value)."""

    scores: list[float] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)
    predictions: list[object] = field(default_factory=list)
    features: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ModelBaseline:
    """The baseline of one model.

    ``predictions`` holds the predicted-class shares, from the prediction field when rows have
    one (``prediction_source`` ``"field"``), else from ``score >= threshold`` (``"threshold"``),
    else ``None``. ``notes`` say what could not be computed and why.
    """

    rows: int
    labeled_rows: int
    score: ScoreBaseline
    features: dict[str, FeatureBaseline]
    threshold: Threshold | None
    predictions: dict[str, float] | None
    prediction_source: str | None
    notes: list[str]


def build_model_baseline(
    columns: ModelColumns, settings: BaselineSettings, score_min: float, score_max: float
) -> ModelBaseline:
    """Build one model's baseline from its columns.

    Examples
    --------
    >>> cols = ModelColumns(scores=[0.2, 0.9, 0.6], labels=[0, 1, None],
    ...                     predictions=[None] * 3, features=[{"plan": "pro"}, {"x": 1}, {}])
    >>> b = build_model_baseline(cols, BaselineSettings(score_bins=2), 0.0, 1.0)
    >>> b.score.shares, b.threshold.value, b.predictions, b.prediction_source
    ([0.333, 0.667], 0.9, {'0': 0.667, '1': 0.333}, 'threshold')
    >>> b.features["plan"].missing_share, b.features["x"].kind
    (0.667, 'numeric')
    """
    notes: list[str] = []
    scores = np.asarray(columns.scores, dtype=np.float64)
    features: dict[str, FeatureBaseline] = {}
    names = sorted({name for row in columns.features for name in row})
    for name in names:
        column = [row.get(name) for row in columns.features]
        present = [v for v in column if not _is_missing(v)]
        missing = len(column) - len(present)
        kind, mixed = detect_kind(present)
        if mixed:
            notes.append(f"feature {name!r} mixes numbers and other values: taken as categorical")
        if kind == "numeric":
            nums = [float(v) for v in present]  # type: ignore[arg-type]
            features[name] = numeric_summary(nums, settings.feature_bins, missing)
        else:
            features[name] = categorical_summary(present, settings.top_categories, missing)

    labeled = [(s, y) for s, y in zip(columns.scores, columns.labels, strict=True) if y is not None]
    threshold = None
    if not labeled:
        notes.append("no labels: no threshold")
    else:
        ls, ly = zip(*labeled, strict=True)
        try:
            threshold = choose_threshold(ls, ly, settings.threshold_rule, settings.cost_ratio)
        except ValueError as exc:
            notes.append(f"no threshold: {exc}")

    given = [p for p in columns.predictions if p is not None]
    predictions: dict[str, float] | None = None
    source: str | None = None
    if given:
        counts = Counter(_category(p) for p in given)
        predictions = {k: c / len(given) for k, c in sorted(counts.items())}
        source = "field"
    elif threshold is not None:
        positive = float(np.mean(scores >= threshold.value))
        predictions = {"0": 1.0 - positive, "1": positive}
        source = "threshold"
    return ModelBaseline(
        rows=len(columns.scores),
        labeled_rows=len(labeled),
        score=score_histogram(scores, settings.score_bins, score_min, score_max),
        features=features,
        threshold=threshold,
        predictions=predictions,
        prediction_source=source,
        notes=notes,
    )


@dataclass(frozen=True, slots=True)
class Baseline:
    """A versioned baseline of one or more models (the ``baseline.json`` file)."""

    created_at: str
    sources: list[dict[str, Any]]
    score_range: tuple[float, float]
    settings: BaselineSettings
    models: dict[str, ModelBaseline]
    rows_read: int = 0
    rows_bad: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: ``format``, ``version`` and every field."""
        settings = asdict(self.settings)
        del settings["path"]
        return {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "sources": [dict(s) for s in self.sources],
            "rows_read": self.rows_read,
            "rows_bad": self.rows_bad,
            "score_range": list(self.score_range),
            "settings": settings,
            "models": {name: _model_dict(m) for name, m in self.models.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        """Rebuild a baseline from :meth:`to_dict` output, checking every field.

        Raises
        ------
        ValueError
            Naming the first field that is missing or of the wrong type, a foreign ``format``
            or an unsupported ``version``.
        """
        r = _Reader()
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"format: expected {FORMAT!r}, got {data.get('format')!r}")
        if data.get("version") != VERSION:
            raise ValueError(
                f"version: expected {VERSION} (the version this tilewatch reads), "
                f"got {data.get('version')!r}"
            )
        s = r.obj(data, "settings")
        settings = BaselineSettings(
            score_bins=r.count(s, "score_bins", "settings"),
            feature_bins=r.count(s, "feature_bins", "settings"),
            top_categories=r.count(s, "top_categories", "settings"),
            threshold_rule=r.text(s, "threshold_rule", "settings"),
            cost_ratio=r.num(s, "cost_ratio", "settings", optional=True),
        )
        score_range = r.nums(data, "score_range", "")
        if len(score_range) != 2 or not score_range[0] < score_range[1]:
            raise ValueError(f"score_range: expected [min, max] with min < max, got {score_range}")
        models = {
            str(name): _model_from(r, m, f"models.{name}")
            for name, m in r.obj(data, "models").items()
        }
        sources = data.get("sources")
        if not isinstance(sources, list) or not all(isinstance(x, dict) for x in sources):
            raise ValueError(f"sources: expected a list of objects, got {sources!r}")
        return cls(
            created_at=r.text(data, "created_at", ""),
            sources=sources,
            score_range=(score_range[0], score_range[1]),
            settings=settings,
            models=models,
            rows_read=r.count(data, "rows_read", ""),
            rows_bad=r.count(data, "rows_bad", ""),
        )


_NUMERIC_KEYS = ("inner_edges", "shares", "mean", "std", "min", "max")
_CATEGORICAL_KEYS = ("top", "other_share", "categories")


def _model_dict(m: ModelBaseline) -> dict[str, Any]:
    out = asdict(m)
    for f in out["features"].values():
        for key in _CATEGORICAL_KEYS if f["kind"] == "numeric" else _NUMERIC_KEYS:
            del f[key]
    return out


def _model_from(r: _Reader, m: Any, where: str) -> ModelBaseline:
    if not isinstance(m, Mapping):
        raise ValueError(f"{where}: expected an object, got {m!r}")
    sc = r.obj(m, "score", where)
    w = f"{where}.score"
    score = ScoreBaseline(
        count=r.count(sc, "count", w),
        mean=r.num(sc, "mean", w),
        std=r.num(sc, "std", w),
        edges=r.nums(sc, "edges", w),
        shares=r.nums(sc, "shares", w),
    )
    if len(score.edges) != len(score.shares) + 1:
        raise ValueError(f"{w}: expected one more edge than shares")
    features = {}
    for name, f in r.obj(m, "features", where).items():
        fw = f"{where}.features.{name}"
        kind = r.text(f, "kind", fw)
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"{fw}.kind: expected 'numeric' or 'categorical', got {kind!r}")
        num = kind == "numeric"
        top = f.get("top") if not num else None
        if not num and (not isinstance(top, dict) or not all(_is_number(v) for v in top.values())):
            raise ValueError(f"{fw}.top: expected an object of shares, got {top!r}")
        cats = f.get("categories")
        if cats is not None and not (
            isinstance(cats, list) and all(isinstance(c, str) for c in cats)
        ):
            raise ValueError(f"{fw}.categories: expected a list of strings or null")
        features[str(name)] = FeatureBaseline(
            kind=kind,
            count=r.count(f, "count", fw),
            missing_share=r.num(f, "missing_share", fw),
            inner_edges=r.nums(f, "inner_edges", fw) if num else None,
            shares=r.nums(f, "shares", fw) if num else None,
            mean=r.num(f, "mean", fw) if num else None,
            std=r.num(f, "std", fw) if num else None,
            min=r.num(f, "min", fw) if num else None,
            max=r.num(f, "max", fw) if num else None,
            top={str(k): float(v) for k, v in top.items()} if top is not None else None,
            other_share=None if num else r.num(f, "other_share", fw),
            categories=cats,
        )
        edges, shares = features[str(name)].inner_edges, features[str(name)].shares
        if edges is not None and shares is not None and len(shares) != len(edges) + 1:
            raise ValueError(f"{fw}: expected one more share than inner_edges")
    t = m.get("threshold")
    threshold = None
    if t is not None:
        tw = f"{where}.threshold"
        if not isinstance(t, Mapping):
            raise ValueError(f"{tw}: expected an object or null, got {t!r}")
        values: dict[str, Any] = {}
        for fld in Threshold.__dataclass_fields__.values():
            if fld.type == "int":
                values[fld.name] = r.count(t, fld.name, tw)
            elif fld.type == "str":
                values[fld.name] = r.text(t, fld.name, tw)
            else:
                values[fld.name] = r.num(t, fld.name, tw)
        threshold = Threshold(**values)
    preds = m.get("predictions")
    if preds is not None and not (
        isinstance(preds, dict) and all(_is_number(v) for v in preds.values())
    ):
        raise ValueError(f"{where}.predictions: expected an object of shares or null")
    notes = m.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ValueError(f"{where}.notes: expected a list of strings")
    source = m.get("prediction_source")
    if source not in (None, "field", "threshold"):
        raise ValueError(f"{where}.prediction_source: expected 'field', 'threshold' or null")
    return ModelBaseline(
        rows=r.count(m, "rows", where),
        labeled_rows=r.count(m, "labeled_rows", where),
        score=score,
        features=features,
        threshold=threshold,
        predictions={str(k): float(v) for k, v in preds.items()} if preds else preds,
        prediction_source=source,
        notes=notes,
    )


class _Reader:
    """Typed getters for :meth:`Baseline.from_dict`, with errors naming the field path."""

    @staticmethod
    def _get(d: Mapping[str, Any], key: str, where: str) -> tuple[Any, str]:
        path = f"{where}.{key}" if where else key
        if key not in d:
            raise ValueError(f"{path}: missing")
        return d[key], path

    def obj(self, d: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        value, path = self._get(d, key, where)
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: expected an object, got {value!r}")
        return value

    def text(self, d: Mapping[str, Any], key: str, where: str) -> str:
        value, path = self._get(d, key, where)
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {value!r}")
        return value

    def count(self, d: Mapping[str, Any], key: str, where: str) -> int:
        value, path = self._get(d, key, where)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{path}: expected an integer >= 0, got {value!r}")
        return value

    def num(self, d: Mapping[str, Any], key: str, where: str, optional: bool = False) -> Any:
        value, path = self._get(d, key, where)
        if optional and value is None:
            return None
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"{path}: expected a finite number, got {value!r}")
        return float(value)

    def nums(self, d: Mapping[str, Any], key: str, where: str) -> list[float]:
        value, path = self._get(d, key, where)
        if not isinstance(value, list) or not all(
            _is_number(v) and math.isfinite(v) for v in value
        ):
            raise ValueError(f"{path}: expected a list of finite numbers, got {value!r}")
        return [float(v) for v in value]
