"""What the drift and data-quality stages watch, compiled once from the settings and baseline.

A :class:`DriftProfile` fixes, for every model, the histograms a window keeps per cell:

- ``score``: the score on ``score_bins`` equal-width bins over ``[score_min, score_max]`` (the
  baseline's edges when there is a baseline);
- ``class``: the predicted class, on the baseline's classes (default ``0`` and ``1``) plus one
  bin for any other value;
- ``f:<feature>`` for each monitored feature: numeric features on the baseline's
  reference-quantile edges, categorical ones on its top categories plus ``other`` and
  ``unseen``; without a baseline only presence is tracked. The last bin of every feature
  histogram counts events where the feature is missing.

:meth:`DriftProfile.encode` turns a batch of decoded events into one bin index per event per
histogram with a few list comprehensions and numpy calls, and counts schema violations by
feature and kind (:data:`VIOLATION_KINDS`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal, get_args

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.drift.reference import Baseline
from tilewatch.aggregators.drift.summaries import FeatureBaseline
from tilewatch.aggregators.stats.binning import CategoryIndex

__all__ = [
    "REFERENCE_MODES",
    "VIOLATION_KINDS",
    "BinKind",
    "DriftProfile",
    "DriftSettings",
    "FeatureSpec",
    "ReferenceMode",
    "ScoreDetector",
    "ViolationKind",
]

#: Schema violation kinds (the ``kind`` label of ``tilewatch_schema_violations_total``).
ViolationKind = Literal["absent", "wrong_type", "out_of_range", "unseen_category"]
#: Each schema violation kind and what it means.
VIOLATION_KINDS: dict[ViolationKind, str] = {
    "absent": "the feature is missing from the event (or null)",
    "wrong_type": "a number where the baseline has categories, or the other way round",
    "out_of_range": "a number outside the baseline's [min, max]",
    "unseen_category": "a category the baseline never saw",
}


#: River detectors run per cell on scores (the ``detector`` label; see
#: :data:`tilewatch.aggregators.drift.detectors.DETECTORS`).
ScoreDetector = Literal["adwin", "page_hinkley"]
#: How a feature is binned: on reference-quantile edges, on top categories, or (without a
#: baseline) only whether it is present.
BinKind = Literal["numeric", "categorical", "presence"]
#: What each cell's window is compared with (``[drift] reference``).
ReferenceMode = Literal["baseline", "trailing"]
REFERENCE_MODES: tuple[ReferenceMode, ...] = get_args(ReferenceMode)


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """The ``[drift]`` section (and ``[cells] min_samples``).

    Parameters
    ----------
    features
        Features to monitor; empty means the baseline's features (sorted by name), at most
        ``max_features`` of them. This bounds the feature x cell label cardinality.
    max_features
        Upper bound on monitored features.
    min_samples
        Below this many events in a window, window statistics are exported as NaN.
    fdr_rate
        Benjamini-Hochberg false discovery rate over all of a window's tests (every tested cell
        and signal): a flag needs its p-value rejected at this rate.
    psi_alert, class_alert, missing_alert
        Effect sizes a flag also needs: the debiased PSI of the score or a feature above
        ``psi_alert``, that of the predicted-class shares above ``class_alert``, a missing share
        above ``missing_alert`` (:mod:`tilewatch.aggregators.drift.flags`).
    reference
        What each cell is compared with: ``"baseline"`` (its own rows in the baseline, shrunk
        toward its parent when few) or ``"trailing"`` (its own previous ``trailing_windows``
        windows, ending ``trailing_gap`` windows before the window).
    prior_strength
        Rows' worth of its parent's shares that a cell's baseline reference borrows.
    score_bins
        Equal-width score bins when there is no baseline.
    detectors
        Per-cell river detectors: ``"adwin"`` (on every score) and ``"page_hinkley"`` (on
        each closed window's mean).
    """

    features: tuple[str, ...] = ()
    max_features: int = 10
    min_samples: int = 30
    fdr_rate: float = 0.01
    psi_alert: float = 0.25
    class_alert: float = 0.05
    missing_alert: float = 0.5
    reference: ReferenceMode = "baseline"
    trailing_windows: int = 10
    trailing_gap: int = 1
    prior_strength: float = 20.0
    score_bins: int = 20
    detectors: tuple[str, ...] = ("adwin", "page_hinkley")  # ScoreDetector names
    adwin_delta: float = 0.002
    ph_threshold: float = 10.0
    ph_delta: float = 0.5


@dataclass(frozen=True)
class FeatureSpec:
    """How one feature of one model is binned."""

    name: str
    kind: BinKind
    n_bins: int  # value bins, the missing bin excluded
    edges: FloatArray | None = None
    lo: float = -math.inf
    hi: float = math.inf
    categories: CategoryIndex | None = None
    ref_shares: FloatArray | None = None  # over the value bins
    ref_missing: float | None = None


@dataclass
class _ModelSpec:
    score_edges: FloatArray
    score_ref: FloatArray | None
    score_mean: float | None
    score_std: float | None
    classes: dict[str, int]
    class_ref: FloatArray | None
    features: list[FeatureSpec] = field(default_factory=list)


class DriftProfile:
    """Histogram layout and reference shares per model, and the batch encoder.

    Parameters
    ----------
    settings
        The drift settings.
    score_range
        ``(score_min, score_max)`` of the event schema.
    baseline
        The reference baseline, or None (then only presence, score and class histograms are
        kept, and no statistic against a reference is computed).
    classes
        The predicted classes of a model the baseline gives none for (``[events] classes`` of
        multi-class models); default ``0`` and ``1``.

    Examples
    --------
    >>> profile = DriftProfile(DriftSettings(features=("plan",), score_bins=4), (0.0, 1.0))
    >>> profile.hist_bins
    {'score': 4, 'class': 3, 'f:plan': 2}
    >>> bins, violations = profile.encode(
    ...     ["m", "m"], np.array([0.1, 0.9]), [1, None], [{"plan": "pro"}, {}])
    >>> {k: v.tolist() for k, v in bins.items()}
    {'score': [0, 3], 'class': [1, -1], 'f:plan': [0, 1]}
    >>> violations
    {('m', 'plan', 'absent'): 1}
    """

    def __init__(
        self,
        settings: DriftSettings,
        score_range: tuple[float, float],
        baseline: Baseline | None = None,
        classes: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.default_classes = sorted(classes) if classes else ["0", "1"]
        self.score_range = score_range
        self.baseline = baseline
        if settings.features:
            names = list(settings.features)
        elif baseline is not None:
            names = sorted({f for m in baseline.models.values() for f in m.features})
        else:
            names = []
        #: The monitored features, in a fixed order.
        self.features: list[str] = names[: settings.max_features]
        self._models: dict[str, _ModelSpec] = {}
        self._lookups: dict[tuple[str, str], dict[str | None, int]] = {}
        default = self._model_spec(None)
        self._default = default
        #: Value bins + 1 (missing) per histogram, the widest over all models.
        specs = self._all_specs()
        self.hist_bins: dict[str, int] = {
            "score": max(len(m.score_edges) - 1 for m in specs),
            "class": max(len(m.classes) + 1 for m in specs),
        }
        for name in self.features:
            widest = max(spec.n_bins for m in specs for spec in m.features if spec.name == name)
            self.hist_bins[f"f:{name}"] = widest + 1

    def _all_specs(self) -> list[_ModelSpec]:
        specs = [self._default]
        if self.baseline is not None:
            specs += [self.spec(m) for m in self.baseline.models]
        return specs

    def spec(self, model: str) -> _ModelSpec:
        """The spec of a model (the baseline's, or the default one for unknown models)."""
        found = self._models.get(model)
        if found is None:
            ref = self.baseline.models.get(model) if self.baseline is not None else None
            found = self._default if ref is None and model != "" else self._model_spec(model)
            self._models[model] = found
        return found

    def _model_spec(self, model: str | None) -> _ModelSpec:
        lo, hi = self.score_range
        ref = None
        if model is not None and self.baseline is not None:
            ref = self.baseline.models.get(model)
        if ref is not None:
            edges = np.asarray(ref.score.edges, dtype=np.float64)
            score_ref: FloatArray | None = np.asarray(ref.score.shares, dtype=np.float64)
            mean, std = ref.score.mean, ref.score.std
        else:
            edges = np.linspace(lo, hi, self.settings.score_bins + 1)
            score_ref, mean, std = None, None, None
        classes = (
            sorted(ref.predictions)
            if ref is not None and ref.predictions
            else list(self.default_classes)
        )
        class_index = {c: i for i, c in enumerate(classes)}
        class_ref = None
        if ref is not None and ref.predictions:
            class_ref = np.array([ref.predictions[c] for c in classes] + [0.0])
        spec = _ModelSpec(edges, score_ref, mean, std, class_index, class_ref)
        for name in self.features:
            fb = ref.features.get(name) if ref is not None else None
            spec.features.append(_feature_spec(name, fb))
        return spec

    def encode(
        self,
        models: Sequence[str],
        scores: FloatArray,
        predictions: Sequence[Any],
        features: Sequence[dict[str, Any] | None],
    ) -> tuple[dict[str, IntArray], dict[tuple[str, str, str], int]]:
        """Bin index per event per histogram (-1: not counted), and schema violations."""
        n = len(models)
        out: dict[str, IntArray] = {}
        violations: dict[tuple[str, str, str], int] = {}
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(models):
            groups.setdefault(m, []).append(i)
        single = len(groups) == 1
        score_bins = np.empty(n, dtype=np.int64)
        class_bins = np.empty(n, dtype=np.int64)
        feature_bins = {name: np.empty(n, dtype=np.int64) for name in self.features}
        for model, rows in groups.items():
            spec = self.spec(model)
            idx = slice(None) if single else np.array(rows, dtype=np.int64)
            sub_scores = scores[idx]
            inner = spec.score_edges[1:-1]
            score_bins[idx] = np.searchsorted(inner, sub_scores, side="right")
            preds = predictions if single else [predictions[i] for i in rows]
            get_class = spec.classes.get
            other = len(spec.classes)
            class_bins[idx] = np.array(
                [
                    -1
                    if p is None
                    # Class names as the baseline spells them: booleans "true" / "false".
                    else get_class(("true" if p else "false") if type(p) is bool else str(p), other)
                    for p in preds
                ],
                dtype=np.int64,
            )
            feats = features if single else [features[i] for i in rows]
            for fspec in spec.features:
                try:  # every event has a features object: the common case, at C speed
                    col = list(map(_DICT_GET, feats, repeat(fspec.name)))
                except TypeError:
                    col = [d.get(fspec.name) if type(d) is dict else None for d in feats]
                # The missing bin is the histogram's last column, whatever this model's width.
                missing_bin = self.hist_bins[f"f:{fspec.name}"] - 1
                lookup = self._lookups.get((model, fspec.name))
                if lookup is None and fspec.categories is not None:
                    lookup = self._lookups[(model, fspec.name)] = _category_lookup(
                        fspec.categories, missing_bin
                    )
                bins, counts = _encode_feature(fspec, col, missing_bin, lookup)
                feature_bins[fspec.name][idx] = bins
                for kind, count in counts.items():
                    if count:
                        key = (model, fspec.name, kind)
                        violations[key] = violations.get(key, 0) + count
        out["score"] = score_bins
        out["class"] = class_bins
        for name, bins in feature_bins.items():
            out[f"f:{name}"] = bins
        return out, violations


def _feature_spec(name: str, fb: FeatureBaseline | None) -> FeatureSpec:
    if fb is None:
        return FeatureSpec(name, "presence", n_bins=1)
    if fb.kind == "numeric":
        edges = np.asarray(fb.inner_edges or [], dtype=np.float64)
        return FeatureSpec(
            name,
            "numeric",
            n_bins=len(edges) + 1,
            edges=edges,
            lo=-math.inf if fb.min is None else fb.min,
            hi=math.inf if fb.max is None else fb.max,
            ref_shares=np.asarray(fb.shares or [], dtype=np.float64),
            ref_missing=fb.missing_share,
        )
    top = list((fb.top or {}).keys())
    known = frozenset(fb.categories) - frozenset(top) if fb.categories is not None else None
    index = CategoryIndex(top, known)
    shares = [*(fb.top or {}).values(), fb.other_share or 0.0, 0.0]
    return FeatureSpec(
        name,
        "categorical",
        n_bins=index.n_bins,
        categories=index,
        ref_shares=np.asarray(shares, dtype=np.float64),
        ref_missing=fb.missing_share,
    )


_NONE = type(None)
#: ``dict.get`` as a plain callable, for ``map`` over the events' feature objects.
_DICT_GET: Any = dict.get
_NUMERIC_TYPES = frozenset({float, int, _NONE})
_CATEGORY_TYPES = frozenset({str, _NONE})


def _category_lookup(index: CategoryIndex, missing_bin: int) -> dict[str | None, int]:
    """Bin per known category string, and ``None`` -> the missing bin."""
    lookup: dict[str | None, int] = {c: index.get(c) for c in index.top}
    for c in index.known_other or ():
        lookup[c] = index.other
    lookup[None] = missing_bin
    return lookup


def _encode_feature(
    spec: FeatureSpec,
    col: list[Any],
    missing_bin: int,
    lookup: dict[str | None, int] | None = None,
) -> tuple[IntArray, dict[str, int]]:
    """Bin index per value (``missing_bin`` = missing) and violation counts by kind.

    Columns of the expected types (numbers or None; strings or None) take a vectorized path;
    anything else the general one below, which gives the same bins for them.
    """
    n = len(col)
    types = set(map(type, col))
    if spec.kind == "numeric" and types <= _NUMERIC_TYPES:
        values = np.array(col, dtype=np.float64)  # None becomes NaN
        absent = np.isnan(values)
        assert spec.edges is not None
        bins = np.searchsorted(spec.edges, values, side="right")
        out_of_range = int(((values < spec.lo) | (values > spec.hi)).sum())
        counts = {"absent": int(absent.sum()), "wrong_type": 0, "out_of_range": out_of_range}
        return np.where(absent, missing_bin, bins).astype(np.int64), counts
    if spec.kind == "categorical" and lookup is not None and types <= _CATEGORY_TYPES:
        assert spec.categories is not None
        index = spec.categories
        default = index.other if index.known_other is None else index.unseen
        bins = np.fromiter(map(lookup.get, col, repeat(default)), dtype=np.int64, count=n)
        counts = {
            "absent": int((bins == missing_bin).sum()),
            "wrong_type": 0,
            "unseen_category": int((bins == index.unseen).sum()),
        }
        return bins, counts
    return _encode_feature_general(spec, col, missing_bin)


def _encode_feature_general(
    spec: FeatureSpec, col: list[Any], missing_bin: int
) -> tuple[IntArray, dict[str, int]]:
    n = len(col)
    absent = np.fromiter((v is None for v in col), dtype=bool, count=n)
    counts = {"absent": int(absent.sum())}
    if spec.kind == "presence":
        return np.where(absent, missing_bin, 0).astype(np.int64), counts
    if spec.kind == "numeric":
        values = np.fromiter(
            (v if type(v) is float else float(v) if type(v) is int else math.nan for v in col),
            dtype=np.float64,
            count=n,
        )
        bad = ~absent & np.isnan(values)
        assert spec.edges is not None
        bins = np.searchsorted(spec.edges, values, side="right").astype(np.int64)
        finite = ~np.isnan(values)
        counts["wrong_type"] = int(bad.sum())
        counts["out_of_range"] = int(((values < spec.lo) | (values > spec.hi))[finite].sum())
        return np.where(finite, bins, missing_bin).astype(np.int64), counts
    assert spec.categories is not None
    get = spec.categories.get
    unseen = spec.categories.unseen
    # Booleans as the baseline spells them ("true"/"false"); other non-strings are wrong_type.
    bins_list = [
        missing_bin
        if v is None
        else get(v)
        if type(v) is str
        else get("true" if v else "false")
        if type(v) is bool
        else -2
        for v in col
    ]
    bins = np.array(bins_list, dtype=np.int64)
    wrong = bins == -2
    counts["wrong_type"] = int(wrong.sum())
    counts["unseen_category"] = int((bins == unseen).sum())
    return np.where(wrong, missing_bin, bins), counts
