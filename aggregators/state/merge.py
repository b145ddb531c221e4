"""Merging partition copies into a snapshot (outside the state lock).

:meth:`tilewatch.aggregators.state.replica.ReplicaState.snapshot` copies each partition's arrays
under the lock (:class:`PartCopy`); the functions here merge the copies: counts add, moments merge
exactly, histograms add, and each model's reported window gets its statistics (:func:`window_view`,
cached by the replica because closed windows never change).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.cells.registry import CellKey, CellRegistry
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.cells.windows import models_in, reporting
from tilewatch.aggregators.drift.cell_reference import CellReferences
from tilewatch.aggregators.drift.profile import DriftProfile
from tilewatch.aggregators.drift.window import (
    Reference,
    WindowDrift,
    derive_window_drift,
    window_score_psi,
)
from tilewatch.aggregators.labels.fairness import Gap, performance_gaps
from tilewatch.aggregators.labels.view import LabelCopy
from tilewatch.aggregators.state.partition import PartitionState
from tilewatch.aggregators.state.row_sums import latency_by_cell, sum_rows
from tilewatch.aggregators.state.snapshot import IngestStats, PartitionKey, Snapshot
from tilewatch.aggregators.state.versions import VersionTable, merge_versions
from tilewatch.aggregators.stats.class_drift import ClassDrift, class_drift_decisions
from tilewatch.aggregators.stats.class_errors import ClassErrorDecisions, class_error_decisions
from tilewatch.aggregators.stats.latency import LATENCY_QUANTILES
from tilewatch.aggregators.stats.moments import merge_moments, variance
from tilewatch.aggregators.stats.multiclass import MulticlassMetrics
from tilewatch.aggregators.stats.multiclass_window import window_metrics
from tilewatch.aggregators.stats.rolling import RollingCopy

__all__ = [
    "PartCopy",
    "View",
    "WindowCopies",
    "WindowView",
    "build_window_view",
    "detections_of",
    "merge",
    "reported_windows",
    "sum_rows",
    "trailing_span",
]


#: Per window: the moments (dense) and each histogram as ``(cells, counts)`` (compact).
WindowCopies = dict[
    int, tuple[tuple[IntArray, FloatArray, FloatArray], dict[str, tuple[IntArray, IntArray]]]
]


class HasWindows(Protocol):
    """What the window statistics read of a partition's copy: its windows."""

    windows: WindowCopies


@dataclass
class PartCopy:
    key: PartitionKey
    offset: int | None
    events: IntArray
    late: IntArray
    last: FloatArray
    rolling: RollingCopy
    windows: WindowCopies
    violations: dict[tuple[str, str, str], int]
    detections: dict[tuple[int, str], tuple[int, float, bool]]
    versions: VersionTable
    labels: LabelCopy | None


def detections_of(part: PartitionState) -> dict[tuple[int, str], tuple[int, float, bool]]:
    """(cell, detector) -> (detections, last time, active) of one partition's detectors: the
    score detectors and the error-stream ones; active means within one window of event time."""
    horizon = part.max_event_time - part.settings.window_seconds
    out = {} if part.detectors is None else part.detectors.summary(horizon)
    if part.labels is not None and part.labels.detectors is not None:
        out.update(part.labels.detectors.summary(horizon))
    return out


@dataclass
class View:
    keys: list[CellKey]
    is_leaf: BoolArray
    model_ids: IntArray
    model_names: list[str]
    latest: dict[int, int]
    overflow: dict[str, int]


def _window(
    parts: Sequence[HasWindows], w: int, n: int, hist_bins: dict[str, int]
) -> tuple[IntArray, FloatArray, FloatArray, dict[str, IntArray]]:
    moments_of = [part.windows[w][0] for part in parts if w in part.windows]
    if moments_of:  # the first partition's as they are (its copies), the others merged in
        c, m, s = moments_of[0]
        for moments in moments_of[1:]:
            c, m, s = merge_moments(c, m, s, *moments)
    else:
        c, m, s = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    hists = {name: np.zeros((n, b), dtype=np.int64) for name, b in hist_bins.items()}
    for part in parts:
        if w in part.windows:
            part_hists = part.windows[w][1]
            for name, (cells, h) in part_hists.items():
                if name in hists:  # callers may ask for the moments only
                    width = min(hists[name].shape[1], h.shape[1])
                    hists[name][cells, :width] += h[:, :width]  # a cell once per partition
    return c, m, s, hists


def _add_window_hists(
    parts: Sequence[HasWindows], w: int, sel: BoolArray, out: dict[str, IntArray]
) -> None:
    """Add each partition's histograms of window ``w``, for the cells selected by ``sel``,
    into the dense tables ``out`` (only the names ``out`` has)."""
    for part in parts:
        if w in part.windows:
            for name, (cells, h) in part.windows[w][1].items():
                table = out.get(name)
                if table is not None:
                    keep = sel[cells]
                    width = min(table.shape[1], h.shape[1])
                    table[cells[keep], :width] += h[keep, :width]  # a cell once per partition


def _window_rows(
    parts: Sequence[HasWindows], w: int, sel: BoolArray, name: str
) -> list[tuple[IntArray, IntArray]]:
    """Each partition's rows of histogram ``name`` in window ``w`` for the cells selected by
    ``sel``, compact: ``(cells, rows)`` (a cell once per partition)."""
    out = []
    for part in parts:
        if w in part.windows and name in part.windows[w][1]:
            cells, h = part.windows[w][1][name]
            keep = sel[cells]
            out.append((cells[keep], h[keep]))
    return out


@dataclass(frozen=True)
class WindowView:
    """Each cell's model's reported window, merged, with its statistics (cached)."""

    count: IntArray
    mean: FloatArray
    variance: FloatArray
    start: dict[str, float]
    end: dict[str, float]
    drift: WindowDrift | None
    latency: dict[float, FloatArray]
    multiclass: MulticlassMetrics | None = None
    class_errors: ClassErrorDecisions | None = None
    class_drift: ClassDrift | None = None
    class_gaps: tuple[Gap, ...] = ()
    #: The score PSI alone (``score_only``; else in :attr:`drift`).
    score_psi: FloatArray | None = None


def trailing_span(w: int, windows: int, gap: int) -> range:
    """The windows a trailing reference of window ``w`` merges: ``windows`` of them, the last
    ``gap`` windows before ``w``.

    Examples
    --------
    >>> list(trailing_span(20, 3, 1))
    [16, 17, 18]
    """
    return range(w - gap - windows, w - gap)


def _trailing(
    parts: Sequence[HasWindows], view: View, profile: DriftProfile, hist_bins: dict[str, int]
) -> Reference:
    """Each cell's own previous windows, merged: counts add, moments merge exactly."""
    s = profile.settings
    n = len(view.keys)
    names = {k: v for k, v in hist_bins.items() if k != "latency"}
    hists = {name: np.zeros((n, b)) for name, b in names.items()}
    c, m, m2 = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    for w, _mids, sel in reporting(view.latest, view.model_ids):
        for past in trailing_span(w, s.trailing_windows, s.trailing_gap):
            pc, pm, ps, ph = _window(parts, past, n, names)
            rc, rm, rs = merge_moments(c[sel], m[sel], m2[sel], pc[sel], pm[sel], ps[sel])
            c[sel], m[sel], m2[sel] = rc, rm, rs
            for name, h in ph.items():
                hists[name][sel] += h[sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(c > 0, np.sqrt(m2 / c), math.nan)
    return Reference(hists, np.where(c > 0, m, math.nan), std)


def build_window_view(
    settings: CellSettings,
    profile: DriftProfile | None,
    hist_bins: dict[str, int],
    view: View,
    parts: Sequence[HasWindows],
    references: CellReferences | None = None,
    score_only: bool = False,
) -> WindowView:
    """Each cell's model's reported window, merged, and its statistics. ``score_only``: the
    score moments and, with a drift profile, the score PSI alone (:attr:`WindowView.score_psi`;
    no drift decisions, latency or multi-class metrics): what the forecasts' catch-up reads
    of each past window."""
    n = len(view.keys)
    model_ids = view.model_ids
    w_c, w_m, w_s = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    p_c, p_m = np.zeros(n, dtype=np.int64), np.zeros(n)
    # Latency is read for its percentiles only: kept compact (the rows of the cells with
    # data), not as a dense (cells, 62) table (64 MB at 100,000 cells, zeroed and summed for
    # every new reported window).
    dense = {name: b for name, b in hist_bins.items() if name != "latency"}
    w_h = {name: np.zeros((n, b), dtype=np.int64) for name, b in dense.items()}
    latency: list[tuple[IntArray, IntArray]] = []
    size = settings.window_seconds
    window_start: dict[str, float] = {}
    window_end: dict[str, float] = {}
    for w, mids, sel in reporting(view.latest, model_ids):
        c, m, s, _none = _window(parts, w, n, {})
        w_c[sel], w_m[sel], w_s[sel] = c[sel], m[sel], s[sel]
        # The histograms go straight into the reported table (the selections of the windows
        # are disjoint and the rows start at zero): no dense per-window table and copy, which
        # at 100,000 cells were two 50 MB temporaries for the latency table alone.
        _add_window_hists(parts, w, sel, w_h)
        if "latency" in hist_bins:
            latency += _window_rows(parts, w, sel, "latency")
        pc, pm, _ps, _ph = _window(parts, w - 1, n, {})
        p_c[sel], p_m[sel] = pc[sel], pm[sel]
        for mid in mids:
            window_start[view.model_names[mid]] = float(w * size)
            window_end[view.model_names[mid]] = float((w + 1) * size)
    mean = np.where(w_c > 0, w_m, math.nan)
    var = variance(w_c, w_s)
    drift = None
    if profile is not None:
        if profile.settings.reference == "trailing":
            reference = _trailing(parts, view, profile, hist_bins)
        elif references is not None:
            reference = references.table(view.keys)
        else:
            reference = Reference(
                {k: np.zeros((n, b)) for k, b in hist_bins.items() if k != "latency"},
                np.full(n, math.nan),
                np.full(n, math.nan),
            )
        if score_only:
            psi = window_score_psi(profile, w_c, w_h["score"], reference)
            return WindowView(w_c, mean, var, window_start, window_end, None, {}, score_psi=psi)
        drift = derive_window_drift(
            profile, w_c, mean, var, w_h, np.where(p_c > 0, p_m, math.nan), p_c, reference
        )
    quantiles = latency_by_cell(latency, n, LATENCY_QUANTILES)
    window_latency = dict(zip(LATENCY_QUANTILES, quantiles, strict=True))
    if score_only:
        return WindowView(w_c, mean, var, window_start, window_end, None, {})
    multiclass, class_errors, class_drift = None, None, None
    class_gaps: tuple[Gap, ...] = ()
    if "mc_class" in w_h:
        k = hist_bins["mc_class"]
        min_samples = profile.settings.min_samples if profile is not None else 1
        multiclass = window_metrics(w_h, k, min_samples)
        class_gaps = tuple(
            g
            for g in performance_gaps(
                view.keys,
                settings.dimensions,
                multiclass.labeled,
                multiclass.accuracy,
                1.0 - multiclass.accuracy,
                min_samples,
            )
            if g.metric == "accuracy"
        )
        if profile is not None:
            if profile.settings.reference != "trailing":  # the class signals' own reference
                names = {h: b for h, b in hist_bins.items() if h.startswith("mc_")}
                reference = _trailing(parts, view, profile, names)
            class_errors = class_error_decisions(
                w_h["mc_confusion"],
                reference.hists["mc_confusion"],
                min_samples,
                profile.settings.fdr_rate,
            )
            class_drift = class_drift_decisions(
                w_h,
                reference.hists,
                min_samples,
                profile.settings.fdr_rate,
                profile.settings.psi_alert,
            )
    return WindowView(
        w_c,
        mean,
        var,
        window_start,
        window_end,
        drift,
        window_latency,
        multiclass,
        class_errors,
        class_drift,
        class_gaps,
    )


def merge(
    settings: CellSettings,
    profile: DriftProfile | None,
    view: View,
    parts: list[PartCopy],
    ingest: IngestStats,
    window_view: WindowView,
) -> Snapshot:
    n = len(view.keys)
    model_ids = view.model_ids
    events = np.zeros(n, dtype=np.int64)
    late = np.zeros(n, dtype=np.int64)
    last = np.full(n, -math.inf)
    r_c, r_m, r_s = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    violations: dict[tuple[str, str, str], int] = {}
    detections: dict[tuple[int, str], tuple[int, float, bool]] = {}
    for part in parts:
        for dkey, (dn, dlast, dactive) in part.detections.items():
            pn, plast, pactive = detections.get(dkey, (0, -math.inf, False))
            detections[dkey] = (pn + dn, max(plast, dlast), pactive or dactive)
        events += part.events
        late += part.late
        np.maximum(last, part.last, out=last)
        if part is parts[0]:  # fresh arrays (current() copies): the first as it is
            r_c, r_m, r_s = part.rolling.current()
        else:
            r_c, r_m, r_s = merge_moments(r_c, r_m, r_s, *part.rolling.current())
        for vkey, count in part.violations.items():
            violations[vkey] = violations.get(vkey, 0) + count
    wv = window_view
    return Snapshot(
        dimensions=settings.dimensions,
        keys=view.keys,
        is_leaf=view.is_leaf,
        model_ids=model_ids,
        model_names=view.model_names,
        events_total=events,
        late_total=late,
        last_event_time=np.where(np.isfinite(last), last, math.nan),
        window_count=wv.count,
        window_mean=wv.mean,
        window_variance=wv.variance,
        window_start=wv.start,
        window_end=wv.end,
        rolling_count=r_c,
        rolling_mean=np.where(r_c > 0, r_m, math.nan),
        rolling_variance=variance(r_c, r_s),
        overflow=view.overflow,
        ingest=ingest,
        partitions={part.key: part.offset for part in parts},
        drift=wv.drift,
        violations=violations,
        detections=detections,
        window_latency=wv.latency,
        multiclass=wv.multiclass,
        class_errors=wv.class_errors,
        class_drift=wv.class_drift,
        class_gaps=wv.class_gaps,
        model_versions=merge_versions([part.versions for part in parts]),
    )


def reported_windows(
    partitions: Iterable[PartitionState], registry: CellRegistry
) -> dict[str, int]:
    """The window each model reports, by model name: its latest window some partition closed
    with data for it that no partition holding its data still holds open."""
    model_ids = registry.model_ids
    parts = list(partitions)
    still_open: set[tuple[int, int]] = set()
    for part in parts:
        for w, acc in part.open.items():
            still_open |= {(w, mid) for mid in models_in(acc.count > 0, model_ids)}
    latest: dict[int, int] = {}
    for part in parts:
        for w, acc in part.closed.items():
            for mid in models_in(acc.count > 0, model_ids):
                if (w, mid) not in still_open and latest.get(mid, -(2**62)) < w:
                    latest[mid] = w
    return {registry.model_names[mid]: w for mid, w in latest.items()}
