"""Each cell's own reference: counted from the holdout, rolled up, and shrunk toward its parent.

Building (``tilewatch baseline``): :func:`count_cells` counts every leaf cell's holdout rows on
the model's drift bins with the monitor's own encoder, so live and reference histograms agree
bin for bin.

Reading (the monitor): :class:`CellReferences` gives every cell of the registry, leaf or roll-up,
a reference histogram per signal, as pseudo-counts whose row sums are the reference's effective
size:

- a roll-up's counts are the sums of its leaves (exact);
- a cell with few reference rows **borrows from its parent**: its shares are shrunk toward the
  parent's (already shrunk) shares with a prior worth ``prior_strength`` rows,
  ``p = (counts + a * p_parent) / (n + a)``, and its effective size is ``n + a``;
- a cell absent from the reference (a new segment, an overflow cell) takes its parent's shares
  with the effective size ``a``, so tests against it are cautious;
- **which parent**: per signal, dimensions are dropped in order of how little they matter for
  that signal in the reference (the rows-weighted PSI between each leaf and the parent without
  that dimension, over leaves with at least :data:`MIN_ROWS_FOR_ORDER` rows): a feature that
  depends on the region by nature borrows from the region's roll-up, not the segment's.

A baseline without per-cell counts (an older file) gives every cell of a model the model's
shares with the model's row count as effective size: the behaviour before per-cell references.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.cells.registry import CellKey, canonical_value
from tilewatch.aggregators.cells.settings import ALL, CellSettings
from tilewatch.aggregators.drift.cell_counts import CellCounts
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.aggregators.drift.reference import Baseline, BaselineSettings, ModelBaseline
from tilewatch.aggregators.drift.window import Reference
from tilewatch.aggregators.stats.divergence import psi

__all__ = ["MIN_ROWS_FOR_ORDER", "CellReferences", "count_cells"]

#: Leaves with at least this many reference rows decide which dimensions matter per signal.
MIN_ROWS_FOR_ORDER = 30


def _model_widths(profile: DriftProfile, model: str) -> dict[str, int]:
    """Columns of each histogram for one model: its own bins (features: values + missing)."""
    spec = profile.spec(model)
    widths = {"score": len(spec.score_edges) - 1, "class": len(spec.classes) + 1}
    for fspec in spec.features:
        widths[f"f:{fspec.name}"] = fspec.n_bins + 1
    return widths


def _narrow(h: IntArray | FloatArray, width: int, feature: bool) -> FloatArray:
    """Cut or pad a histogram to ``width`` columns; a feature's last (missing) column stays last."""
    rows, have = h.shape
    out = np.zeros((rows, width), dtype=np.float64)
    if feature:
        n_values = min(have, width) - 1
        out[:, :n_values] = h[:, :n_values]
        out[:, -1] = h[:, -1]
    else:
        out[:, : min(have, width)] = h[:, : min(have, width)]
    return out


def count_cells(
    model: str,
    baseline: ModelBaseline,
    score_range: tuple[float, float],
    dimensions: Sequence[str],
    cells: Sequence[tuple[str, ...]],
    scores: Sequence[float],
    predictions: Sequence[object],
    features: Sequence[dict[str, object]],
    labels: Sequence[int | None],
) -> CellCounts:
    """Count one model's holdout rows per leaf cell on the model's drift bins.

    Examples
    --------
    >>> from tilewatch.aggregators.drift.reference import ModelColumns, build_model_baseline
    >>> cols = ModelColumns(scores=[0.1, 0.2, 0.9, 0.8], labels=[0, 0, 1, 0],
    ...                     predictions=[None] * 4, features=[{"x": 1.0}] * 4)
    >>> mb = build_model_baseline(cols, BaselineSettings(score_bins=2), 0.0, 1.0)
    >>> c = count_cells("m", mb, (0.0, 1.0), ("region",), [("eu",), ("eu",), ("us",), ("us",)],
    ...                 cols.scores, cols.predictions, cols.features, cols.labels)
    >>> mb.threshold.value
    0.9
    >>> c.keys, c.hists["score"].tolist(), c.labeled.tolist(), c.errors.tolist()
    ([('eu',), ('us',)], [[2, 0], [0, 2]], [2, 2], [0, 0])
    """
    names = tuple(sorted(baseline.features))
    single = Baseline("", [], score_range, BaselineSettings(), {model: baseline})
    settings = DriftSettings(features=names, max_features=max(1, len(names)), detectors=())
    profile = DriftProfile(settings, score_range, single)
    n = len(scores)
    score_arr = np.asarray(scores, dtype=np.float64)
    bins, _ = profile.encode([model] * n, score_arr, list(predictions), list(features))
    keys = sorted(set(cells))
    where = {k: i for i, k in enumerate(keys)}
    inverse = np.fromiter((where[c] for c in cells), dtype=np.int64, count=n)
    m = len(keys)
    widths = _model_widths(profile, model)
    hists: dict[str, IntArray] = {}
    for name, col in bins.items():
        width = profile.hist_bins[name]
        ok = col >= 0
        flat = np.bincount(inverse[ok] * width + col[ok], minlength=m * width)
        h = flat.reshape(m, width).astype(np.int64)
        hists[name] = np.rint(_narrow(h, widths[name], name.startswith("f:"))).astype(np.int64)
    label_arr = np.array([-1 if y is None else y for y in labels], dtype=np.int64)
    labeled = label_arr >= 0
    threshold = baseline.threshold
    wrong = np.zeros(n, dtype=bool)
    if threshold is not None:
        wrong = labeled & ((score_arr >= threshold.value).astype(np.int64) != label_arr)
    return CellCounts(
        dimensions=tuple(dimensions),
        keys=keys,
        hists=hists,
        score_sum=np.bincount(inverse, score_arr, minlength=m).astype(np.float64),
        score_sq=np.bincount(inverse, score_arr * score_arr, minlength=m).astype(np.float64),
        labeled=np.bincount(inverse, labeled, minlength=m).astype(np.int64),
        errors=np.bincount(inverse, wrong, minlength=m).astype(np.int64),
    )


class _ModelReference:
    """One model's reference keys (leaves and roll-ups), shrunk per histogram."""

    def __init__(
        self,
        counts: CellCounts,
        canonical: dict[tuple[str, ...], tuple[str, ...]],
        widths: dict[str, int],
        alpha: float,
    ) -> None:
        self.ndims = len(counts.dimensions)
        leaves = [canonical[k] for k in counts.keys]
        # Every variant key of every leaf: a dimension is ALL where the mask bit is set.
        index: dict[tuple[str, ...], int] = {}
        member_rows: list[int] = []
        member_keys: list[int] = []
        masks: list[int] = []
        for leaf_row, leaf in enumerate(leaves):
            for mask in range(1 << self.ndims):
                key = tuple(ALL if mask & (1 << d) else v for d, v in enumerate(leaf))
                k = index.get(key)
                if k is None:
                    k = index[key] = len(index)
                    masks.append(mask)
                member_rows.append(leaf_row)
                member_keys.append(k)
        self.index = index
        self.keys = list(index)
        self.masks = np.array(masks, dtype=np.int64)
        rows_of, keys_of = np.array(member_rows), np.array(member_keys)
        nk = len(index)

        def add_up(values: IntArray | FloatArray) -> FloatArray:
            if values.ndim == 1:
                return np.bincount(keys_of, values[rows_of], minlength=nk).astype(np.float64)
            out = np.zeros((nk, values.shape[1]))
            np.add.at(out, keys_of, values[rows_of])
            return out

        self.alpha = alpha
        self.widths = widths
        self.raw: dict[str, FloatArray] = {}
        self.order: dict[str, list[int]] = {}
        for name, h in counts.hists.items():
            if name not in widths:
                continue
            self.raw[name] = add_up(_narrow(h, widths[name], name.startswith("f:")))
            self.order[name] = self._dimension_order(self.raw[name])
        self.rows = add_up(counts.rows)
        self.score_sum = add_up(counts.score_sum)
        self.score_sq = add_up(counts.score_sq)
        self.labeled = add_up(counts.labeled.astype(np.float64))
        self.errors = add_up(counts.errors.astype(np.float64))
        self.shrunk = {name: self._shrink(raw, self.order[name]) for name, raw in self.raw.items()}
        order = self.order.get("score", list(range(self.ndims)))
        moments = np.stack([self.score_sum, self.score_sq, self.rows], axis=1)
        shares = self._shrink_means(moments[:, :2], self.rows, order)
        self.mean = shares[:, 0]
        self.std = np.sqrt(np.maximum(shares[:, 1] - shares[:, 0] ** 2, 0.0))
        rate = self._shrink_means(self.errors[:, None], self.labeled, order)
        self.error_rate = rate[:, 0]

    def _parent(self, key: tuple[str, ...], order: list[int]) -> tuple[str, ...] | None:
        """The next roll-up up the chain: the first dimension in ``order`` not yet ALL."""
        for d in order:
            if key[d] != ALL:
                return tuple(ALL if i == d else v for i, v in enumerate(key))
        return None

    def _dimension_order(self, roll: FloatArray) -> list[int]:
        """Dimensions from the one that matters least for this histogram to the most."""
        if self.ndims < 2:
            return list(range(self.ndims))
        leaf_idx = np.flatnonzero(self.masks == 0)
        big = leaf_idx[roll[leaf_idx].sum(axis=1) >= MIN_ROWS_FOR_ORDER]
        scores = []
        for d in range(self.ndims):
            parents = np.array(
                [self.index[self._parent_dropping(self.keys[i], d)] for i in big], dtype=np.int64
            )
            if len(big) == 0:
                scores.append(0.0)
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                div = psi(roll[parents], roll[big])
            w = roll[big].sum(axis=1)
            ok = np.isfinite(div)
            scores.append(float((div[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else 0.0)
        return sorted(range(self.ndims), key=lambda d: (scores[d], d))

    def _parent_dropping(self, key: tuple[str, ...], d: int) -> tuple[str, ...]:
        return tuple(ALL if i == d else v for i, v in enumerate(key))

    def _levels(self) -> list[IntArray]:
        """Key indices by the number of ALL values, the model total first."""
        alls = np.array([bin(int(m)).count("1") for m in self.masks], dtype=np.int64)
        return [np.flatnonzero(alls == a) for a in range(self.ndims, -1, -1)]

    def _parents(self, order: list[int]) -> IntArray:
        """Per key, the index of its parent in the chain of ``order`` (-1 for the total)."""
        out = np.full(len(self.keys), -1, dtype=np.int64)
        for i, key in enumerate(self.keys):
            parent = self._parent(key, order)
            if parent is not None:
                out[i] = self.index[parent]
        return out

    def _shrink(self, raw: FloatArray, order: list[int]) -> FloatArray:
        """Pseudo-counts: shares shrunk toward the parent's, scaled to ``n + alpha``."""
        parents = self._parents(order)
        n = raw.sum(axis=1)
        shares = np.zeros_like(raw)
        for level in self._levels():
            top = level[parents[level] < 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                shares[top] = raw[top] / n[top, None]
            rest = level[parents[level] >= 0]
            prior = shares[parents[rest]]
            shares[rest] = (raw[rest] + self.alpha * prior) / (n[rest, None] + self.alpha)
        out: FloatArray = shares * (n + self.alpha)[:, None]
        return out

    def _shrink_means(self, sums: FloatArray, weights: FloatArray, order: list[int]) -> FloatArray:
        """Means (``sums / weights``) shrunk toward the parent's with the same prior."""
        parents = self._parents(order)
        out = np.full(sums.shape, math.nan)
        for level in self._levels():
            top = level[parents[level] < 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[top] = sums[top] / weights[top, None]
            rest = level[parents[level] >= 0]
            prior = out[parents[rest]]
            out[rest] = (sums[rest] + self.alpha * prior) / (weights[rest, None] + self.alpha)
        return out

    def lookup(self, key: tuple[str, ...], name: str = "score") -> tuple[int, bool]:
        """The reference row for a cell's dimension values and histogram ``name`` (the nearest
        parent's in that histogram's order if the cell is absent), and whether the cell itself
        is in the reference."""
        found = self.index.get(key)
        if found is not None:
            return found, True
        order = self.order.get(name, list(range(self.ndims)))
        parent = self._parent(key, order)
        while parent is not None and parent not in self.index:
            parent = self._parent(parent, order)
        return self.index[parent] if parent is not None else -1, False


class CellReferences:
    """The reference of every cell of the monitor, from a baseline (see the module docstring).

    Parameters
    ----------
    profile
        The drift profile (its baseline, monitored features and histogram widths).
    cells
        The cell settings (dimensions and label capping, to match the registry's keys).
    prior_strength
        Rows' worth of the parent's shares a cell borrows.
    """

    def __init__(self, profile: DriftProfile, cells: CellSettings, prior_strength: float) -> None:
        self.profile = profile
        self.dimensions = tuple(cells.dimensions)
        self.prior_strength = prior_strength
        self.widths = {k: v for k, v in profile.hist_bins.items() if k != "latency"}
        self._models: dict[str, _ModelReference | None] = {}
        baseline = profile.baseline
        models = baseline.models if baseline is not None else {}
        for name, model in models.items():
            counts = model.cells
            if counts is None or tuple(counts.dimensions) != self.dimensions:
                self._models[name] = None
                continue
            canonical = {
                key: tuple(canonical_value(v, cells.label_max_length) for v in key)
                for key in counts.keys
            }
            self._models[name] = _ModelReference(
                counts, canonical, _model_widths(profile, name), prior_strength
            )
        self._table: _Rows | None = None
        self._keys: list[CellKey] = []
        # Snapshots merge outside the replica's lock, from the consumer thread and from
        # scrapes at once: the cache grows under its own lock (two threads extending it
        # together once doubled its rows).
        self._lock = threading.Lock()

    def has_cells(self, model: str) -> bool:
        """Whether the model's baseline has per-cell counts (else model-level shares)."""
        return self._models.get(model) is not None

    def table(self, keys: Sequence[CellKey]) -> Reference:
        """The reference of each cell (``keys`` as the registry lists them; cached, grows)."""
        t = self._cached(keys)
        return Reference(t.hists, t.mean, t.std)

    def errors(self, keys: Sequence[CellKey]) -> tuple[FloatArray, FloatArray]:
        """Each cell's reference error rate and its effective number of labelled rows (NaN
        and 0 where the baseline has no labels for it)."""
        t = self._cached(keys)
        return t.error_rate, t.labeled

    def _cached(self, keys: Sequence[CellKey]) -> _Rows:
        with self._lock:
            return self._grow(keys)

    def _grow(self, keys: Sequence[CellKey]) -> _Rows:
        have = len(self._keys)
        if self._table is None or len(keys) < have or list(keys[:have]) != self._keys:
            have, self._keys, self._table = 0, [], None
        if len(keys) > have or self._table is None:
            fresh = self._rows(keys[have:])
            self._table = fresh if self._table is None else self._table.extend(fresh)
            self._keys.extend(keys[have:])
        return self._table

    def _rows(self, keys: Sequence[CellKey]) -> _Rows:
        n = len(keys)
        hists = {name: np.zeros((n, w)) for name, w in self.widths.items()}
        mean, std = np.full(n, math.nan), np.full(n, math.nan)
        labeled, rate = np.zeros(n), np.full(n, math.nan)
        by_model: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if key[0] in self._models:
                by_model.setdefault(key[0], []).append(i)
        for model, cells in by_model.items():
            ref = self._models[model]
            if ref is None:
                for i in cells:
                    self._model_level(model, i, hists, mean, std)
                continue
            at = np.array(cells, dtype=np.int64)
            dims = [tuple(keys[i][1:]) for i in cells]
            for name, shrunk in ref.shrunk.items():
                target = hists.get(name)
                if target is None:
                    continue
                found = [ref.lookup(d, name) for d in dims]
                rows = np.array([r for r, _ in found], dtype=np.int64)
                own = np.array([o for _, o in found], dtype=bool)
                ok = rows >= 0
                values = shrunk[rows[ok]]
                # An absent cell: its parent's shares, worth alpha rows.
                with np.errstate(invalid="ignore", divide="ignore"):
                    scale = np.where(own[ok], 1.0, ref.alpha / values.sum(axis=1))
                wide = _narrow(values * scale[:, None], target.shape[1], name.startswith("f:"))
                target[at[ok]] = wide
            found = [ref.lookup(d) for d in dims]
            rows = np.array([r for r, _ in found], dtype=np.int64)
            own = np.array([o for _, o in found], dtype=bool)
            ok = rows >= 0
            sel, r = at[ok], rows[ok]
            mean[sel], std[sel] = ref.mean[r], ref.std[r]
            labeled[sel] = np.where(own[ok], ref.labeled[r] + ref.alpha, ref.alpha)
            rate[sel] = ref.error_rate[r]
        return _Rows(hists, mean, std, labeled, rate)

    def _model_level(
        self,
        model: str,
        i: int,
        hists: dict[str, FloatArray],
        mean: FloatArray,
        std: FloatArray,
    ) -> None:
        """A model without per-cell counts: its shares times its rows, for every cell."""
        spec = self.profile.spec(model)
        assert self.profile.baseline is not None
        mb = self.profile.baseline.models[model]
        if spec.score_ref is not None:
            hists["score"][i, : len(spec.score_ref)] = spec.score_ref * mb.rows
        if spec.class_ref is not None:
            hists["class"][i, : len(spec.class_ref)] = spec.class_ref * mb.rows
        for fspec in spec.features:
            target = hists.get(f"f:{fspec.name}")
            if target is None or fspec.ref_shares is None:
                continue
            missing = fspec.ref_missing or 0.0
            target[i, : len(fspec.ref_shares)] = fspec.ref_shares * mb.rows * (1.0 - missing)
            target[i, -1] = mb.rows * missing
        mean[i], std[i] = spec.score_mean or math.nan, spec.score_std or math.nan


class _Rows:
    """Cached reference rows of the registry's cells (grown as cells appear)."""

    def __init__(
        self,
        hists: dict[str, FloatArray],
        mean: FloatArray,
        std: FloatArray,
        labeled: FloatArray,
        error_rate: FloatArray,
    ) -> None:
        self.hists, self.mean, self.std = hists, mean, std
        self.labeled, self.error_rate = labeled, error_rate

    def extend(self, more: _Rows) -> _Rows:
        return _Rows(
            {k: np.concatenate([v, more.hists[k]]) for k, v in self.hists.items()},
            np.concatenate([self.mean, more.mean]),
            np.concatenate([self.std, more.std]),
            np.concatenate([self.labeled, more.labeled]),
            np.concatenate([self.error_rate, more.error_rate]),
        )
