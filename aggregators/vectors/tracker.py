"""Per-window accumulation of embeddings and attributions per (cell, predicted class).

:class:`VectorTracker` takes a batch's cell keys, event times, predicted classes, embedding
matrices (one float32 matrix per model, already checked for the model's dimension) and
attribution objects, and updates, per epoch-aligned event-time window and group (see
:func:`~tilewatch.aggregators.vectors.vector_reference.group_keys`), sufficient statistics that
merge by adding: the count, the sum of projected vectors, per-component bin counts, and the
count and sums of ``|a|`` and ``a^2`` per tracked feature. A reservoir sample (Algorithm R,
vectorised per batch) keeps up to ``reservoir`` projected points (first two components) per
group and window.

Windows are judged when the monitor reports them: :meth:`VectorTracker.close_through` judges a
model's open windows up to the one the replica state reports (every owned partition holding
data for it has closed it), so vector windows close exactly when the other window statistics
do; :meth:`VectorTracker.close_before` closes by event time alone (tools and tests). A judged
window (:func:`~tilewatch.aggregators.vectors.vector_flags.decide_vectors`) becomes the model's
latest. The last :data:`HISTORY` judged windows keep their sums (as partitions keep their 8
last closed windows): an event of one of them (a partition that was behind, or read late after
an assignment) is added and the window judged again when next reported; an event of an older
judged window is late: counted, not applied. Only the last :data:`KEEP_POINTS` keep their
sampled points. Events of a model without a vector reference are counted (``no_reference``)
and skipped.

The tracker is one per replica (not per partition) and is not checkpointed: after a restart
it starts empty, so the first window it reports may be partial (``docs/embeddings.md``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.cells.settings import OTHER
from tilewatch.aggregators.vectors.attributions import attribution_matrix
from tilewatch.aggregators.vectors.projection import bin_components
from tilewatch.aggregators.vectors.settings import VectorSettings
from tilewatch.aggregators.vectors.vector_flags import VectorDecisions, decide_vectors
from tilewatch.aggregators.vectors.vector_reference import (
    GroupKey,
    ModelVectors,
    class_name,
    group_keys,
)

__all__ = ["HISTORY", "KEEP_POINTS", "ClosedWindow", "VectorTracker", "WindowSums"]

#: Judged windows kept per model, with their sums (a lagging partition may still add to them);
#: the drill-down reads them. The sampled points of the last KEEP_POINTS of them only.
HISTORY = 8
KEEP_POINTS = 2


@dataclass
class WindowSums:
    """One model's sums for one window, one row per group id."""

    k: int
    bins: int
    features: int
    reservoir: int
    count: IntArray = field(init=False)
    zsum: FloatArray = field(init=False)
    hist: IntArray = field(init=False)
    attr_count: IntArray = field(init=False)
    attr_sum: FloatArray = field(init=False)
    attr_sq: FloatArray = field(init=False)
    points: FloatArray = field(init=False)
    seen: IntArray = field(init=False)

    def __post_init__(self) -> None:
        self.count = np.zeros(0, dtype=np.int64)
        self.zsum = np.zeros((0, self.k))
        self.hist = np.zeros((0, self.k, self.bins), dtype=np.int64)
        self.attr_count = np.zeros(0, dtype=np.int64)
        self.attr_sum = np.zeros((0, self.features))
        self.attr_sq = np.zeros((0, self.features))
        self.points = np.full((0, self.reservoir, 2), math.nan)
        self.seen = np.zeros(0, dtype=np.int64)

    def drop_points(self) -> None:
        """Stop sampling: free the reservoir (an old judged window keeps only its sums)."""
        self.reservoir = 0
        self.points = np.zeros((len(self.count), 0, 2))

    def ensure(self, groups: int) -> None:
        """Grow every table to ``groups`` rows."""
        have = len(self.count)
        if groups <= have:
            return
        extra = groups - have
        self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])
        self.zsum = np.concatenate([self.zsum, np.zeros((extra, self.k))])
        self.hist = np.concatenate([self.hist, np.zeros((extra, self.k, self.bins), np.int64)])
        self.attr_count = np.concatenate([self.attr_count, np.zeros(extra, dtype=np.int64)])
        self.attr_sum = np.concatenate([self.attr_sum, np.zeros((extra, self.features))])
        self.attr_sq = np.concatenate([self.attr_sq, np.zeros((extra, self.features))])
        self.points = np.concatenate([self.points, np.full((extra, self.reservoir, 2), math.nan)])
        self.seen = np.concatenate([self.seen, np.zeros(extra, dtype=np.int64)])


@dataclass(frozen=True)
class ClosedWindow:
    """A model's judged window: its end, the decisions, and each group's sampled points."""

    end: float
    decisions: VectorDecisions
    points: dict[GroupKey, FloatArray]


class VectorTracker:
    """Embedding and attribution statistics per window and group; see the module docstring.

    Examples
    --------
    >>> from tilewatch.aggregators.vectors.vector_reference import build_model_vectors
    >>> rng = np.random.default_rng(0)
    >>> ref = build_model_vectors(VectorSettings(components=2), [("eu",)] * 400, [None] * 400,
    ...                           rng.normal(size=(400, 8)), range(400), None)
    >>> t = VectorTracker(VectorSettings(components=2, min_samples=10), {"m": ref}, 60.0)
    >>> x = rng.normal(size=(50, 8)).astype(np.float32) + 2.0
    >>> t.apply([("m", "eu")] * 50, np.full(50, 10.0), [None] * 50, {"m": (np.arange(50), x)})
    >>> t.close_before(70.0)
    >>> w = t.latest["m"]
    >>> w.end, w.decisions.keys[0], bool(w.decisions.flags["embedding_distance"][0])
    (60.0, (('eu',), '__all__'), True)
    """

    def __init__(
        self,
        settings: VectorSettings,
        references: Mapping[str, ModelVectors],
        window_seconds: float,
        seed: int = 0,
    ) -> None:
        self.settings = settings
        self.references = dict(references)
        self.window_seconds = float(window_seconds)
        self._rng = np.random.default_rng(seed)
        #: Per model: group key -> group id, and the ids of each (cell, class) pair.
        self._groups: dict[str, dict[GroupKey, int]] = {}
        self._pairs: dict[str, dict[tuple[tuple[str, ...], str | None], list[int]]] = {}
        #: Sums of the open windows and of the last HISTORY judged ones per model (a judged
        #: window still takes events of a partition that was behind, and is judged again).
        self._sums: dict[tuple[str, int], WindowSums] = {}
        #: Windows with events not judged yet.
        self._dirty: set[tuple[str, int]] = set()
        #: Each model's latest judged window, and its last HISTORY ones (oldest first).
        self.latest: dict[str, ClosedWindow] = {}
        self.history: dict[str, dict[float, ClosedWindow]] = {}
        #: Per model: the last window judged (events up to it are late).
        self._judged: dict[str, int] = {}
        #: Events skipped, by reason: ``late``, ``no_reference``, ``bad_attributions``.
        self.skipped: dict[str, int] = {}
        #: Embeddings dropped by the decoding stage, by (model, reason).
        self.bad_embeddings: dict[tuple[str, str], int] = {}

    def count_bad_embeddings(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add the decoding stage's dropped embeddings (by model and reason)."""
        for key, n in counts.items():
            self.bad_embeddings[key] = self.bad_embeddings.get(key, 0) + n

    def _count(self, reason: str, n: int) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    def group_keys(self, model: str) -> list[GroupKey]:
        """The groups of a model in id order."""
        return list(self._groups.get(model, {}))

    def _ids(
        self,
        model: str,
        ref: ModelVectors,
        cells: Sequence[tuple[str, ...]],
        classes: Sequence[str | None],
    ) -> list[list[int]]:
        groups = self._groups.setdefault(model, {})
        pairs = self._pairs.setdefault(model, {})
        known = set(ref.classes)
        out = []
        for cell, cls in zip(cells, classes, strict=True):
            ids = pairs.get((cell, cls))
            if ids is None:
                name = None if cls is None else (cls if cls in known else OTHER)
                ids = [groups.setdefault(key, len(groups)) for key in group_keys([cell], [name])[0]]
                pairs[(cell, cls)] = ids
            out.append(ids)
        return out

    def apply(
        self,
        keys: Sequence[tuple[str, ...]],
        event_times: FloatArray,
        classes: Sequence[Any],
        embeddings: Mapping[str, tuple[IntArray, npt.NDArray[np.floating]]],
        attributions: Sequence[Any] | None = None,
    ) -> None:
        """Apply a batch: ``embeddings`` maps a model to (batch rows, their vectors)."""
        n = len(keys)
        if n:
            size = self.window_seconds
            windows = np.floor(np.asarray(event_times, dtype=np.float64) / size).astype(np.int64)
            models = [k[0] for k in keys]
            judged = np.array([self._judged.get(m, -(2**62)) for m in models], dtype=np.int64)
            late = windows <= judged
            if late.any():  # a judged window whose sums are kept still takes events
                kept = [(models[i], int(windows[i])) in self._sums for i in np.flatnonzero(late)]
                late[np.flatnonzero(late)[kept]] = False
            self._count("late", int(late.sum()))
            names = [class_name(c) for c in classes]
            for model in sorted(set(models)):
                rows = np.array([i for i, m in enumerate(models) if m == model], dtype=np.int64)
                rows = rows[~late[rows]]
                ref = self.references.get(model)
                if ref is None:
                    self._count("no_reference", len(rows))
                    continue
                if rows.size:
                    self._apply_model(
                        model, ref, keys, rows, windows, names, embeddings.get(model), attributions
                    )

    def due_windows(self, watermark: float) -> frozenset[tuple[str, int]]:
        """(model, window) of the windows with events not judged yet that end at or before
        ``watermark``."""
        size = self.window_seconds
        return frozenset(mw for mw in self._dirty if (mw[1] + 1) * size <= watermark)

    def due(self, watermark: float) -> bool:
        """Whether some window with events not judged yet ends at or before ``watermark`` (a
        cheap check before asking the replica state which windows it reports)."""
        size = self.window_seconds
        return any((w + 1) * size <= watermark for _m, w in self._dirty)

    def close_before(self, watermark: float) -> None:
        """Judge every window with new events that ends at or before ``watermark``."""
        size = self.window_seconds
        for model, w in sorted(self._dirty, key=lambda mw: mw[1]):
            if (w + 1) * size <= watermark:
                self.close_through(model, w)

    def close_through(self, model: str, window: int) -> None:
        """Judge the model's windows with new events up to ``window``, oldest first, and drop
        the sums of judged windows past the last HISTORY."""
        for m, w in sorted((mw for mw in self._dirty if mw[0] == model), key=lambda mw: mw[1]):
            if w <= window:
                self._judge(m, w)
        self._judged[model] = max(self._judged.get(model, -(2**62)), window)
        judged = sorted(w for m, w in self._sums if m == model and w <= self._judged[model])
        for w in judged[:-HISTORY]:
            del self._sums[(model, w)]
        for w in judged[-HISTORY:-KEEP_POINTS]:
            self._sums[(model, w)].drop_points()

    def _apply_model(
        self,
        model: str,
        ref: ModelVectors,
        keys: Sequence[tuple[str, ...]],
        rows: IntArray,
        windows: IntArray,
        names: list[str | None],
        emb: tuple[IntArray, Any] | None,
        attributions: Sequence[Any] | None,
    ) -> None:
        s = self.settings
        k = 0 if ref.projection is None else ref.projection.k
        nb = ref.edges.shape[1] + 1 if ref.edges.ndim == 2 and k else 0
        nf = len(ref.features)
        ids = self._ids(
            model, ref, [keys[i][1:] for i in rows.tolist()], [names[i] for i in rows.tolist()]
        )
        n_groups = len(self._groups[model])
        per = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        gid = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(per.sum()))
        ev = np.repeat(rows, per)  # batch row of each (event, group) pair
        pos_of_row = np.full(len(keys), -1, dtype=np.int64)
        pos_of_row[rows] = np.arange(len(rows))
        # Projection of the rows with a vector (the whole model's rows in one product).
        z_of_row = None
        if emb is not None and k and ref.projection is not None:
            emb_rows, matrix = emb
            keep = pos_of_row[emb_rows] >= 0
            if keep.any():
                z = ref.projection.project(matrix[keep])
                z_of_row = np.full((len(keys), k), math.nan)
                z_of_row[emb_rows[keep]] = z
        a_of_row = ok_of_row = None
        if attributions is not None and nf:
            objs = [attributions[i] for i in rows.tolist()]
            present = np.array([o is not None for o in objs], dtype=np.bool_)
            a, ok = attribution_matrix(objs, ref.features)
            self._count("bad_attributions", int((present & ~ok).sum()))
            a_of_row = np.zeros((len(keys), nf))
            a_of_row[rows] = a
            ok_of_row = np.zeros(len(keys), dtype=np.bool_)
            ok_of_row[rows] = ok
        for w in np.unique(windows[rows]).tolist():
            sums = self._sums.get((model, w))
            if sums is None:
                sums = self._sums[(model, w)] = WindowSums(k, nb, nf, s.reservoir)
            self._dirty.add((model, w))
            sums.ensure(n_groups)
            in_w = windows[ev] == w
            if z_of_row is not None:
                zz = z_of_row[ev]
                has = in_w & ~np.isnan(zz[:, 0])
                g, zg = gid[has], zz[has]
                sums.count += np.bincount(g, minlength=n_groups)
                for j in range(k):
                    sums.zsum[:, j] += np.bincount(g, weights=zg[:, j], minlength=n_groups)
                b = bin_components(zg, ref.edges)
                flat = (g[:, None] * k + np.arange(k)) * nb + b
                sums.hist += np.bincount(flat.ravel(), minlength=n_groups * k * nb).reshape(
                    n_groups, k, nb
                )
                self._sample(sums, g, zg)
            if a_of_row is not None and ok_of_row is not None:
                has = in_w & ok_of_row[ev]
                g, ag = gid[has], a_of_row[ev[has]]
                sums.attr_count += np.bincount(g, minlength=n_groups)
                for j in range(nf):
                    sums.attr_sum[:, j] += np.bincount(g, weights=ag[:, j], minlength=n_groups)
                    sums.attr_sq[:, j] += np.bincount(g, weights=ag[:, j] ** 2, minlength=n_groups)

    def _sample(self, sums: WindowSums, g: IntArray, z: FloatArray) -> None:
        """Algorithm R for every group at once, in event order."""
        r = sums.reservoir
        if not len(g) or not r:
            return
        order = np.argsort(g, kind="stable")
        gs = order_g = g[order]
        starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
        rank = np.arange(len(gs)) - np.repeat(starts, np.diff(np.r_[starts, len(gs)]))
        t = sums.seen[order_g] + rank  # how many points the group had seen before this one
        slot = np.where(t < r, t, np.floor(self._rng.random(len(t)) * (t + 1)).astype(np.int64))
        keep = slot < r
        target = order_g[keep] * r + slot[keep]
        src = order[keep]
        # Last write wins, as in the sequential algorithm.
        last = len(target) - 1 - np.unique(target[::-1], return_index=True)[1]
        flat = sums.points.reshape(-1, 2)
        flat[target[last]] = (
            z[src[last], :2]
            if z.shape[1] >= 2
            else np.column_stack([z[src[last], 0], np.zeros(len(last))])
        )
        sums.seen += np.bincount(g, minlength=len(sums.seen))

    def _judge(self, model: str, w: int) -> None:
        size = self.window_seconds
        self._dirty.discard((model, w))
        sums = self._sums[(model, w)]
        ref = self.references[model]
        keys = self.group_keys(model)
        sums.ensure(len(keys))
        decisions = decide_vectors(
            self.settings,
            ref,
            keys,
            sums.count,
            sums.zsum,
            sums.hist,
            sums.attr_count,
            sums.attr_sum,
            sums.attr_sq,
        )
        filled = np.minimum(sums.seen, sums.reservoir)
        points = {
            key: sums.points[i, : filled[i]].copy() for i, key in enumerate(keys) if filled[i]
        }
        closed = ClosedWindow((w + 1) * size, decisions, points)
        history = self.history.setdefault(model, {})
        history[closed.end] = closed
        ends = sorted(history)
        for end in ends[:-HISTORY]:
            del history[end]
        for end in ends[-HISTORY:-KEEP_POINTS]:
            if history[end].points:
                history[end] = dataclasses.replace(history[end], points={})
        prev = self.latest.get(model)
        if prev is None or prev.end <= closed.end:
            self.latest[model] = closed
