"""The vector reference of one model, fitted by ``tilewatch baseline`` on the holdout.

Embeddings: a PCA (:func:`~tilewatch.aggregators.vectors.projection.fit_projection`, top ``k``
components with their explained variance), equal-mass bin edges per component (model-wide
quantiles), and per group (cell, predicted class): the component histograms, the mean and the
covariance in component space, and a sample of projected points (first two components).
Attributions: the tracked features (the model's largest mean ``|a|``) and per group the count,
mean and variance of ``|a|`` per feature.

Groups are a leaf cell or the model-wide cell (every dimension ``__all__``), crossed with a
predicted class or ``__all__``. As for the other per-cell references
(:mod:`~tilewatch.aggregators.drift.cell_reference`), a group's **parent** is the same class
model-wide, then the model-wide group, and a group with fewer than ``min_rows`` rows borrows
from it with a prior worth ``prior_strength`` rows: its histograms become
``counts + a * parent_shares``, its mean ``(n mean + a parent_mean) / (n + a)``, its covariance
and attribution variances the parent's, and its effective size ``n + a``. A group absent from
the reference (a new segment or class) takes its parent's statistics with the effective size
``a``, so tests against it are cautious (:meth:`ModelVectors.reference_of`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import FloatArray
from tilewatch.aggregators.cells.settings import ALL
from tilewatch.aggregators.vectors.attributions import attribution_matrix, top_features
from tilewatch.aggregators.vectors.projection import Projection, bin_components, fit_projection
from tilewatch.aggregators.vectors.settings import VectorSettings

__all__ = [
    "GroupKey",
    "GroupReference",
    "ModelVectors",
    "build_model_vectors",
    "class_name",
    "group_keys",
]

#: (the cell's dimension values, the predicted class or ``__all__``)
GroupKey = tuple[tuple[str, ...], str]


@dataclass(frozen=True)
class GroupReference:
    """One group's reference: embedding statistics (``rows`` 0: none) and attribution ones
    (``attr_rows`` 0: none)."""

    rows: int = 0
    bins: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    mean: FloatArray = field(default_factory=lambda: np.zeros(0))
    cov: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    points: FloatArray = field(default_factory=lambda: np.zeros((0, 2)))
    attr_rows: int = 0
    attr_mean: FloatArray = field(default_factory=lambda: np.zeros(0))
    attr_var: FloatArray = field(default_factory=lambda: np.zeros(0))

    @functools.cached_property
    def precision(self) -> FloatArray:
        """The inverse of ``cov`` with a ridge of 1e-9 of its mean variance (a singular
        reference), computed once."""
        k = len(self.mean)
        ridge = 1e-9 * max(float(np.trace(self.cov)) / max(k, 1), 1e-300)
        return np.asarray(np.linalg.inv(self.cov + ridge * np.eye(k)), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "bins": self.bins.tolist(),
            "mean": self.mean.tolist(),
            "cov": self.cov.tolist(),
            "points": self.points.tolist(),
            "attr_rows": self.attr_rows,
            "attr_mean": self.attr_mean.tolist(),
            "attr_var": self.attr_var.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Any, k: int, bins: int, features: int, where: str) -> GroupReference:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object")
        rows, attr_rows = data.get("rows"), data.get("attr_rows")
        if type(rows) is not int or type(attr_rows) is not int or rows < 0 or attr_rows < 0:
            raise ValueError(f"{where}: rows and attr_rows must be non-negative integers")
        shapes = {
            "bins": (k, bins) if rows else None,
            "mean": (k,) if rows else None,
            "cov": (k, k) if rows else None,
            "attr_mean": (features,) if attr_rows else None,
            "attr_var": (features,) if attr_rows else None,
        }
        arrays: dict[str, FloatArray] = {}
        for name, shape in shapes.items():
            arrays[name] = _floats(data.get(name), shape, f"{where}.{name}")
        points = _floats(data.get("points"), None, f"{where}.points")
        if points.size and (points.ndim != 2 or points.shape[1] != 2):
            raise ValueError(f"{where}.points: expected a list of [x, y] pairs")
        return cls(
            rows,
            arrays["bins"],
            arrays["mean"],
            arrays["cov"],
            points.reshape(-1, 2),
            attr_rows,
            arrays["attr_mean"],
            arrays["attr_var"],
        )


@dataclass(frozen=True)
class ModelVectors:
    """One model's vector reference; see the module docstring."""

    projection: Projection | None
    edges: FloatArray
    features: tuple[str, ...]
    classes: tuple[str, ...]
    groups: dict[GroupKey, GroupReference]
    width: int
    #: Effective size of a borrowed reference (``prior_strength``).
    prior: float = 20.0
    _borrowed: dict[tuple[GroupKey, bool], GroupReference | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def dim(self) -> int | None:
        return None if self.projection is None else self.projection.dim

    def reference_of(self, key: GroupKey, embedding: bool = True) -> GroupReference | None:
        """The group's own reference, else its parent's with the effective size ``prior``
        (see the module docstring)."""
        own = self.groups.get(key)
        if own is not None and (own.rows if embedding else own.attr_rows):
            return own
        cache_key = (key, embedding)
        if cache_key in self._borrowed:
            return self._borrowed[cache_key]
        _cells, cls = key
        top = (ALL,) * self.width
        out = None
        for candidate in ((top, cls), (top, ALL)):
            ref = self.groups.get(candidate)
            if ref is not None and candidate != key and (ref.rows if embedding else ref.attr_rows):
                size = max(1, round(self.prior))
                out = dataclasses.replace(
                    ref,
                    rows=min(ref.rows, size) if ref.rows else 0,
                    attr_rows=min(ref.attr_rows, size) if ref.attr_rows else 0,
                )
                break
        self._borrowed[cache_key] = out
        return out

    def to_dict(self) -> dict[str, Any]:
        p = self.projection
        return {
            "projection": None
            if p is None
            else {
                "center": p.center.tolist(),
                "components": p.components.tolist(),
                "explained": p.explained.tolist(),
            },
            "edges": self.edges.tolist(),
            "features": list(self.features),
            "classes": list(self.classes),
            "width": self.width,
            "prior": self.prior,
            "groups": [[list(c), cls, g.to_dict()] for (c, cls), g in self.groups.items()],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "vectors") -> ModelVectors:
        """Rebuild from :meth:`to_dict` output; ValueError names the first bad field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object")
        raw = data.get("projection")
        projection = None
        if raw is not None:
            if not isinstance(raw, Mapping):
                raise ValueError(f"{where}.projection: expected an object or null")
            center = _floats(raw.get("center"), None, f"{where}.projection.center")
            comps = _floats(raw.get("components"), None, f"{where}.projection.components")
            if center.ndim != 1 or comps.ndim != 2 or comps.shape[1] != center.shape[0]:
                raise ValueError(f"{where}.projection: components must be (k, dim), center (dim,)")
            explained = _floats(
                raw.get("explained"), (comps.shape[0],), f"{where}.projection.explained"
            )
            projection = Projection(center, comps, explained)
        k = 0 if projection is None else projection.k
        edges = _floats(data.get("edges"), None, f"{where}.edges")
        if projection is not None and (edges.ndim != 2 or edges.shape[0] != k):
            raise ValueError(f"{where}.edges: expected one row of edges per component")
        bins = edges.shape[1] + 1 if edges.ndim == 2 else 0
        features, classes = data.get("features"), data.get("classes")
        width = data.get("width")
        for name, value in (("features", features), ("classes", classes)):
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ValueError(f"{where}.{name}: expected a list of strings")
        if type(width) is not int or width < 0:
            raise ValueError(f"{where}.width: expected a non-negative integer")
        groups: dict[GroupKey, GroupReference] = {}
        raw_groups = data.get("groups")
        if not isinstance(raw_groups, list):
            raise ValueError(f"{where}.groups: expected a list")
        for i, item in enumerate(raw_groups):
            if (
                not isinstance(item, list)
                or len(item) != 3
                or not isinstance(item[0], list)
                or len(item[0]) != width
                or not isinstance(item[1], str)
                or not all(isinstance(x, str) for x in item[0])
            ):
                raise ValueError(f"{where}.groups[{i}]: expected [cell values, class, stats]")
            groups[(tuple(item[0]), item[1])] = GroupReference.from_dict(
                item[2],
                k,
                bins,
                len(features),  # type: ignore[arg-type]
                f"{where}.groups[{i}]",
            )
        prior = data.get("prior", 20.0)
        if type(prior) not in (int, float) or not prior > 0:
            raise ValueError(f"{where}.prior: expected a positive number")
        return cls(
            projection,
            edges,
            tuple(features),  # type: ignore[arg-type]
            tuple(classes),  # type: ignore[arg-type]
            groups,
            width,
            float(prior),
        )


def _floats(value: Any, shape: tuple[int, ...] | None, where: str) -> FloatArray:
    try:
        arr = np.array(value if value is not None else [], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected numbers") from None
    if shape is not None and arr.size == 0 and 0 in shape:
        return arr.reshape(shape)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{where}: expected shape {list(shape)}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: expected finite numbers")
    return arr


def class_name(value: Any) -> str | None:
    """A predicted class as a group's class name: booleans as ``true`` / ``false``, numbers and
    strings as text, absent as None (the same in the baseline and the monitor).

    Examples
    --------
    >>> class_name(True), class_name(1), class_name("cat"), class_name(None)
    ('true', '1', 'cat', None)
    """
    if value is None:
        return None
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


def group_keys(
    cells: Sequence[tuple[str, ...]], classes: Sequence[str | None]
) -> list[list[GroupKey]]:
    """The four groups of each row: (leaf, class), (leaf, all), (model-wide, class), (model-wide,
    all); without a class only the two ``__all__`` ones.

    Examples
    --------
    >>> group_keys([("eu",)], ["cat"])[0]
    [(('eu',), 'cat'), (('eu',), '__all__'), (('__all__',), 'cat'), (('__all__',), '__all__')]
    """
    out = []
    for cell, cls in zip(cells, classes, strict=True):
        top = (ALL,) * len(cell)
        if cls is None:
            out.append([(cell, ALL), (top, ALL)])
        else:
            out.append([(cell, cls), (cell, ALL), (top, cls), (top, ALL)])
    return out


def build_model_vectors(
    settings: VectorSettings,
    cells: Sequence[tuple[str, ...]],
    classes: Sequence[Any],
    embeddings: npt.NDArray[np.floating] | None,
    embedding_rows: Sequence[int],
    attributions: Sequence[Any] | None,
    seed: int = 0,
) -> ModelVectors:
    """Fit one model's vector reference from its holdout rows.

    ``embeddings`` holds the rows ``embedding_rows`` of the model's rows (those with a valid
    vector); ``attributions`` one object (or None) per row.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(200, 16))
    >>> cells = [("eu",)] * 120 + [("us",)] * 80
    >>> mv = build_model_vectors(VectorSettings(components=3), cells, ["a", "b"] * 100, x,
    ...                          range(200), None)
    >>> mv.projection.k, mv.edges.shape, sorted(k for k in mv.groups if k[1] == "__all__")
    (3, (3, 9), [(('__all__',), '__all__'), (('eu',), '__all__'), (('us',), '__all__')])
    >>> mv.groups[(("eu",), "a")].rows, mv.reference_of((("us",), "a")).rows  # 40 + 20
    (60, 60)
    >>> mv.reference_of((("fr",), "a")).rows  # absent: the parent's, worth 20 rows
    20
    """
    rng = np.random.default_rng(seed)
    width = len(cells[0]) if cells else 0
    names = [class_name(c) for c in classes]
    known = sorted({c for c in names if c is not None})
    classes_t = tuple(known)
    rows_of: dict[GroupKey, list[int]] = {}
    for i, keys in enumerate(group_keys(cells, names)):
        for key in keys:
            rows_of.setdefault(key, []).append(i)

    projection, edges, z_of_row = None, np.zeros((0, 0)), None
    k = 0
    if embeddings is not None and len(embedding_rows) >= 2:
        x = np.asarray(embeddings, dtype=np.float64)
        projection = fit_projection(x, settings.components)
        k = projection.k
        z = projection.project(x)
        qs = np.linspace(0.0, 1.0, settings.bins + 1)[1:-1]
        edges = np.quantile(z, qs, axis=0).T.copy()
        z_of_row = np.full((len(cells), k), np.nan)
        z_of_row[np.asarray(list(embedding_rows), dtype=np.int64)] = z

    features: tuple[str, ...] = ()
    attr = attr_ok = None
    if attributions is not None:
        features = top_features(attributions, settings.max_features)
        if features:
            attr, attr_ok = attribution_matrix(attributions, features)

    groups: dict[GroupKey, GroupReference] = {}
    top = (ALL,) * width
    for key, rows in rows_of.items():
        needed = 2
        idx = np.asarray(rows, dtype=np.int64)
        ref = GroupReference()
        if z_of_row is not None:
            zg = z_of_row[idx]
            zg = zg[~np.isnan(zg[:, 0])]
            if len(zg) >= needed:
                hist = np.stack(
                    [
                        np.bincount(b, minlength=settings.bins)[: settings.bins]
                        for b in bin_components(zg, edges).T
                    ]
                ).astype(np.float64)
                take = rng.permutation(len(zg))[: settings.reservoir]
                ref = GroupReference(
                    rows=len(zg),
                    bins=hist,
                    mean=zg.mean(axis=0),
                    cov=np.atleast_2d(np.cov(zg, rowvar=False)),
                    points=zg[take, :2].copy()
                    if k >= 2
                    else np.column_stack([zg[take, 0], np.zeros(len(take))]),
                )
        if attr is not None and attr_ok is not None:
            ag = attr[idx][attr_ok[idx]]
            if len(ag) >= needed:
                ref = GroupReference(
                    ref.rows,
                    ref.bins,
                    ref.mean,
                    ref.cov,
                    ref.points,
                    attr_rows=len(ag),
                    attr_mean=ag.mean(axis=0),
                    attr_var=ag.var(axis=0, ddof=1),
                )
        if ref.rows or ref.attr_rows:
            groups[key] = ref
    for key, ref in list(groups.items()):  # few rows: borrow from the parent
        candidates = (groups.get((top, key[1])), groups.get((top, ALL)))
        parents = [p for p in candidates if p is not None and p is not ref]
        if key[0] != top and parents:
            groups[key] = _shrink(ref, parents, settings.min_rows, settings.prior_strength)
    return ModelVectors(
        projection, edges, features, classes_t, groups, width, settings.prior_strength
    )


def _shrink(
    own: GroupReference, parents: list[GroupReference], min_rows: int, a: float
) -> GroupReference:
    """``own`` shrunk toward the first parent with the statistic, when it has < min_rows rows."""
    out = own
    emb = next((p for p in parents if p.rows), None)
    if 0 < own.rows < min_rows and emb is not None:
        n = own.rows
        shares = emb.bins / np.maximum(emb.bins.sum(axis=1, keepdims=True), 1e-300)
        out = dataclasses.replace(
            out,
            rows=round(n + a),
            bins=own.bins + a * shares,
            mean=(n * own.mean + a * emb.mean) / (n + a),
            cov=emb.cov,
        )
    att = next((p for p in parents if p.attr_rows), None)
    if 0 < own.attr_rows < min_rows and att is not None:
        n = own.attr_rows
        out = dataclasses.replace(
            out,
            attr_rows=round(n + a),
            attr_mean=(n * own.attr_mean + a * att.attr_mean) / (n + a),
            attr_var=att.attr_var,
        )
    return out
