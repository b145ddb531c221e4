"""Which window each model reports, and a past window's score statistics alone.

:meth:`~tilewatch.aggregators.state.replica.ReplicaState.snapshot` and :func:`past_window`
share :func:`reported_latest` (the window each model reports, up to a window number) and
:func:`needed_windows` (the closed windows its statistics merge). :func:`past_window` is what
the forecasts' catch-up reads of each window a backlog closed: the reported windows' moments
(and score drift, and performance with labels) merged over the partitions, without the cell
counts, rolling statistics, feature histograms, latency, detections and versions a snapshot
copies and merges (at 100,000 cells, a whole snapshot per past window was most of the
catch-up's cost).

Run under the replica's lock where said; pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.drift.profile import DriftProfile
from tilewatch.aggregators.labels.view import (
    LabelCopy,
    PerformanceView,
    copy_labels,
    performance_view,
)
from tilewatch.aggregators.state.merge import (
    View,
    WindowCopies,
    build_window_view,
    trailing_span,
)
from tilewatch.aggregators.state.partition import PartitionState

if TYPE_CHECKING:
    from tilewatch.aggregators.state.replica import ReplicaState

__all__ = [
    "PastWindow",
    "needed_windows",
    "past_window",
    "performance",
    "reported_latest",
    "window_copies",
]


def reported_latest(parts: Iterable[PartitionState], n: int, upto: int | None) -> dict[int, int]:
    """Model id -> the window it reports (under the lock): its latest window (at most
    ``upto``) that some partition closed with data for it and that no partition holding data
    of that model for it still holds open."""
    parts = list(parts)
    still_open: set[tuple[int, int]] = set()
    closed: list[tuple[int, set[int]]] = []
    for part in parts:
        part._ensure(n)
        for w in part.open:
            still_open |= {(w, mid) for mid in part.window_models(w, open_=True)}
        for w in part.closed if upto is None else [w for w in part.closed if w <= upto]:
            closed.append((w, part.window_models(w)))
    latest: dict[int, int] = {}
    for w, mids in closed:
        for mid in mids:
            if (w, mid) not in still_open and latest.get(mid, -(2**62)) < w:
                latest[mid] = w
    return latest


def needed_windows(
    latest: dict[int, int], profile: DriftProfile | None, trailing: bool
) -> set[int]:
    """The windows the statistics of the reported ones merge: each, the one before it (the
    mean's shift) and, with trailing references, their span."""
    needed = set(latest.values()) | {w - 1 for w in latest.values()}
    if profile is not None and trailing:
        s = profile.settings
        for w in latest.values():
            needed |= set(trailing_span(w, s.trailing_windows, s.trailing_gap))
    return needed


def window_copies(
    part: PartitionState, needed: set[int], n: int, hist_bins: dict[str, int]
) -> WindowCopies:
    """Copies of the ``needed`` closed windows of ``part`` (under the lock): the moments of
    ``n`` cells and the histograms named in ``hist_bins``."""
    return {
        w: (acc.sized(n), {name: acc.hist_copy(name, n, b) for name, b in hist_bins.items()})
        for w, acc in part.closed.items()
        if w in needed
    }


def performance(state: ReplicaState, view: View, copies: list[LabelCopy]) -> PerformanceView | None:
    """The performance view of the label copies (None without ``[labels]``)."""
    if state.labels is None:
        return None
    return performance_view(
        state.labels,
        state.settings.window_seconds,
        view.keys,
        state.settings.dimensions,
        view.model_ids,
        view.model_names,
        view.latest,
        copies,
        reference_errors=state._reference_errors(view.keys),
        trailing=state._trailing_errors(),
        decision_cache=state._decision_cache,
    )


@dataclass(frozen=True)
class PastWindow:
    """Each model's reported window up to a window number: the fields of a
    :class:`~tilewatch.aggregators.state.snapshot.Snapshot` the forecasts read."""

    model_names: list[str]
    model_ids: IntArray
    window_mean: FloatArray
    window_end: dict[str, float]
    #: The debiased score PSI of each cell (None without a drift profile).
    score_psi: FloatArray | None
    performance: PerformanceView | None


@dataclass
class _Windows:
    windows: WindowCopies


def past_window(state: ReplicaState, upto: int) -> PastWindow:
    """The windows each model reports up to window ``upto``, their score statistics only
    (the score PSI with a drift profile, performance with labels); copies under the lock,
    merges outside it."""
    profile = state.profile
    # The score histogram alone (its PSI): no feature, latency or multi-class tables copied.
    hist_bins = {} if profile is None else {"score": state.hist_bins["score"]}
    with state.lock:
        reg = state.registry
        n = len(reg)
        latest = reported_latest(state.partitions.values(), n, upto)
        needed = needed_windows(latest, profile, state.trailing)
        parts = [
            _Windows(window_copies(part, needed, n, hist_bins))
            for part in state.partitions.values()
        ]
        view = View(
            keys=list(reg.keys),
            is_leaf=reg.is_leaf,
            model_ids=reg.model_ids,
            model_names=list(reg.model_names),
            latest=latest,
            overflow={},
        )
        labels = [
            copy_labels(part.labels, n, view.model_ids, set(latest.values()))
            for part in state.partitions.values()
            if part.labels is not None
        ]
    windows = build_window_view(
        state.settings, profile, hist_bins, view, parts, state.references, score_only=True
    )
    return PastWindow(
        model_names=view.model_names,
        model_ids=view.model_ids,
        window_mean=windows.mean,
        window_end=windows.end,
        score_psi=windows.score_psi,
        performance=performance(state, view, labels),
    )
