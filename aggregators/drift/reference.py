"""Reference baselines: what a model's scores, features and errors looked like on a holdout set.

A :class:`Baseline` is built once, offline, from in-memory columns (``tilewatch baseline`` reads
the files; :func:`build_model_baseline` summarizes each model with
:mod:`tilewatch.aggregators.drift.summaries`) and later compared with live traffic by the drift
and data-quality stages. It is plain data: :meth:`Baseline.to_dict` / :meth:`Baseline.from_dict`
give and take only numbers, strings, lists and dicts (never pickle), and ``from_dict`` checks
every field (with :class:`~tilewatch.aggregators.codec.Check`) so a corrupt or foreign file is
refused with the path of the bad field. The JSON layout is in ``docs/baseline.md``.

The decision threshold is chosen on labelled rows only, by
:func:`~tilewatch.aggregators.stats.threshold.choose_threshold`; without labels there is no
threshold (a static 0.5 is never assumed).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast, get_args

import numpy as np

from tilewatch.aggregators.codec import Check, is_number
from tilewatch.aggregators.drift.cell_counts import CellCounts
from tilewatch.aggregators.drift.summaries import (
    FEATURE_KINDS,
    FeatureBaseline,
    ScoreBaseline,
    categorical_summary,
    category_name,
    detect_kind,
    is_missing,
    numeric_summary,
    score_histogram,
)
from tilewatch.aggregators.stats.multiclass import class_thresholds
from tilewatch.aggregators.stats.threshold import Threshold, ThresholdRule, choose_threshold

__all__ = [
    "FORMAT",
    "PREDICTION_SOURCES",
    "VERSION",
    "Baseline",
    "BaselineSettings",
    "ModelBaseline",
    "ModelColumns",
    "PredictionSource",
    "build_model_baseline",
]

FORMAT = "tilewatch-baseline"
#: Version 2 adds each model's per-cell counts (``cells``); version 1 files are still read
#: (their models have no per-cell counts, so every cell is compared with the model).
VERSION = 2
READABLE_VERSIONS = (1, 2)
#: Where a model's predicted-class shares come from: the events' prediction field, or
#: ``score >= threshold``.
PredictionSource = Literal["field", "threshold"]
#: Values of :attr:`ModelBaseline.prediction_source` (besides None).
PREDICTION_SOURCES: tuple[PredictionSource, ...] = get_args(PredictionSource)
#: The checks of a baseline file: ``ValueError("<path>: <why>")``.
CHECK = Check(error=ValueError)


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
    threshold_rule: ThresholdRule = "max_f1"
    cost_ratio: float | None = None


@dataclass(slots=True)
class ModelColumns:
    """The valid rows of one model, as columns (``None`` where a row has no value)."""

    scores: list[float] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)
    predictions: list[object] = field(default_factory=list)
    features: list[dict[str, object]] = field(default_factory=list)
    #: Each row's cell dimension values (empty when the rows were read without dimensions).
    cells: list[tuple[str, ...]] = field(default_factory=list)
    #: Multi-class rows with a class label: the top class, its probability and the label.
    class_predictions: list[str] = field(default_factory=list)
    class_scores: list[float] = field(default_factory=list)
    class_labels: list[str] = field(default_factory=list)


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
    prediction_source: PredictionSource | None
    notes: list[str]
    #: Reference counts per leaf cell (None: built without cells, or an older file).
    cells: CellCounts | None = None
    #: Per-class thresholds of a multi-class model (by class name; None: not one, or an older
    #: file), from :func:`~tilewatch.aggregators.stats.multiclass.class_thresholds`.
    class_thresholds: dict[str, float] | None = None


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
        present = [v for v in column if not is_missing(v)]
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
    source: PredictionSource | None = None
    if given:
        counts = Counter(category_name(p) for p in given)
        predictions = {k: c / len(given) for k, c in sorted(counts.items())}
        source = "field"
    elif threshold is not None:
        positive = float(np.mean(scores >= threshold.value))
        predictions = {"0": 1.0 - positive, "1": positive}
        source = "threshold"
    per_class = None
    if columns.class_labels:
        per_class = class_thresholds(
            columns.class_predictions, columns.class_scores, columns.class_labels
        )
    return ModelBaseline(
        rows=len(columns.scores),
        labeled_rows=len(labeled),
        score=score_histogram(scores, settings.score_bins, score_min, score_max),
        features=features,
        threshold=threshold,
        predictions=predictions,
        prediction_source=source,
        notes=notes,
        class_thresholds=per_class,
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
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"format: expected {FORMAT!r}, got {data.get('format')!r}")
        if data.get("version") not in READABLE_VERSIONS:
            raise ValueError(
                f"version: expected one of {READABLE_VERSIONS} (the versions this tilewatch "
                f"reads), got {data.get('version')!r}"
            )
        top = CHECK.fields(dict(data))
        s = top.fields("settings")
        settings = BaselineSettings(
            score_bins=s.integer("score_bins"),
            feature_bins=s.integer("feature_bins"),
            top_categories=s.integer("top_categories"),
            threshold_rule=cast(ThresholdRule, s.text("threshold_rule")),
            cost_ratio=s.number_or_none("cost_ratio"),
        )
        score_range = top.floats("score_range")
        if len(score_range) != 2 or not score_range[0] < score_range[1]:
            raise ValueError(f"score_range: expected [min, max] with min < max, got {score_range}")
        models = {
            str(name): _model_from(m, f"models.{name}")
            for name, m in top.fields("models").data.items()
        }
        sources = data.get("sources")
        if not isinstance(sources, list) or not all(isinstance(x, dict) for x in sources):
            raise ValueError(f"sources: expected a list of objects, got {sources!r}")
        return cls(
            created_at=top.text("created_at"),
            sources=sources,
            score_range=(score_range[0], score_range[1]),
            settings=settings,
            models=models,
            rows_read=top.integer("rows_read"),
            rows_bad=top.integer("rows_bad"),
        )


_NUMERIC_KEYS = ("inner_edges", "shares", "mean", "std", "min", "max")
_CATEGORICAL_KEYS = ("top", "other_share", "categories")


def _model_dict(m: ModelBaseline) -> dict[str, Any]:
    out = asdict(dataclasses.replace(m, cells=None))
    out["cells"] = None if m.cells is None else m.cells.to_dict()
    for f in out["features"].values():
        for key in _CATEGORICAL_KEYS if f["kind"] == "numeric" else _NUMERIC_KEYS:
            del f[key]
    return out


def _model_from(data: Any, where: str) -> ModelBaseline:
    m = CHECK.fields(data, where)
    sc = m.fields("score")
    score = ScoreBaseline(
        count=sc.integer("count"),
        mean=sc.number("mean"),
        std=sc.number("std"),
        edges=sc.floats("edges"),
        shares=sc.floats("shares"),
    )
    if len(score.edges) != len(score.shares) + 1:
        raise CHECK.fail(f"{where}.score", "expected one more edge than shares")
    features = {
        str(name): _feature_from(f, f"{where}.features.{name}")
        for name, f in m.fields("features").data.items()
    }
    t = m.data.get("threshold")
    threshold = None
    if t is not None:
        th = CHECK.fields(t, f"{where}.threshold", "an object or null")
        values: dict[str, Any] = {}
        for fld in Threshold.__dataclass_fields__.values():
            if fld.type == "int":
                values[fld.name] = th.integer(fld.name)
            elif fld.type == "float":
                values[fld.name] = th.number(fld.name)
            else:
                values[fld.name] = th.text(fld.name)
        threshold = Threshold(**values)
    preds = m.data.get("predictions")
    if preds is not None and not (
        isinstance(preds, dict) and all(is_number(v) for v in preds.values())
    ):
        raise CHECK.fail(f"{where}.predictions", "expected an object of shares or null")
    notes = m.data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise CHECK.fail(f"{where}.notes", "expected a list of strings")
    source = m.data.get("prediction_source")
    if source is not None and source not in PREDICTION_SOURCES:
        raise CHECK.fail(f"{where}.prediction_source", "expected 'field', 'threshold' or null")
    return ModelBaseline(
        rows=m.integer("rows"),
        labeled_rows=m.integer("labeled_rows"),
        score=score,
        features=features,
        threshold=threshold,
        predictions={str(k): float(v) for k, v in preds.items()} if preds else preds,
        prediction_source=source,
        notes=notes,
        cells=None
        if m.data.get("cells") is None
        else CellCounts.from_dict(m.data["cells"], f"{where}.cells"),
        class_thresholds=_class_thresholds(m.data.get("class_thresholds"), where),
    )


def _class_thresholds(data: Any, where: str) -> dict[str, float] | None:
    """A model's optional per-class thresholds: class name -> number in (0, 1]."""
    if data is None:
        return None
    if not isinstance(data, dict) or not all(is_number(v) and 0 < v <= 1 for v in data.values()):
        raise CHECK.fail(f"{where}.class_thresholds", "expected class name -> (0, 1] or null")
    return {str(k): float(v) for k, v in data.items()}


def _feature_from(data: Any, where: str) -> FeatureBaseline:
    f = CHECK.fields(data, where)
    kind = f.text("kind")
    if kind not in FEATURE_KINDS:
        raise CHECK.fail(f"{where}.kind", f"expected 'numeric' or 'categorical', got {kind!r:.40}")
    num = kind == "numeric"
    top = f.data.get("top") if not num else None
    if not num and (not isinstance(top, dict) or not all(is_number(v) for v in top.values())):
        raise CHECK.fail(f"{where}.top", f"expected an object of shares, got {top!r:.40}")
    cats = f.data.get("categories")
    if cats is not None and not (isinstance(cats, list) and all(isinstance(c, str) for c in cats)):
        raise CHECK.fail(f"{where}.categories", "expected a list of strings or null")
    out = FeatureBaseline(
        kind=kind,
        count=f.integer("count"),
        missing_share=f.number("missing_share"),
        inner_edges=f.floats("inner_edges") if num else None,
        shares=f.floats("shares") if num else None,
        mean=f.number("mean") if num else None,
        std=f.number("std") if num else None,
        min=f.number("min") if num else None,
        max=f.number("max") if num else None,
        top={str(k): float(v) for k, v in top.items()} if top is not None else None,
        other_share=None if num else f.number("other_share"),
        categories=cats,
    )
    edges, shares = out.inner_edges, out.shares
    if edges is not None and shares is not None and len(shares) != len(edges) + 1:
        raise CHECK.fail(where, "expected one more share than inner_edges")
    return out
