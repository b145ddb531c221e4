"""A terminal heatmap of one statistic: first dimension down, second across, with counts.

Used by ``tilewatch demo``. Colours come from a colour-blind-safe sequential scale (viridis
stops) on a fixed range per statistic, so the same value always has the same colour. A tile
shows ``-`` when its sample is below ``min_samples`` (the rule the dashboards and the health
hierarchy apply), and tiles the health hierarchy flags carry a symbol as well as their colour
(``!`` amber, ``!!`` red), so they read in a log without colour and for colour-blind users.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.cells.settings import ALL
from tilewatch.aggregators.labels.view import PerformanceView
from tilewatch.aggregators.state.snapshot import Snapshot

__all__ = ["LABELLED", "MARKS", "SAMPLES", "STATISTICS", "TerminalStatistic", "render_heatmap"]

#: What a statistic's sample counts: events, or labelled events (their own ``min_samples``).
SAMPLES = "events"
LABELLED = "labelled events"
#: The symbol of an amber (1) and a red (2) tile.
MARKS = {1: "!", 2: "!!"}

#: A per-cell array of a snapshot, or None when the snapshot does not have it.
Column = Callable[[Snapshot], npt.ArrayLike | None]


class TerminalStatistic(NamedTuple):
    """What a heatmap shows: the values, the sample counts, a fixed colour range (or None for
    counts), whether the values are those of the performance window (else the last closed
    one), whether they exist only once a window closed, and what the counts count."""

    values: Column
    counts: Column
    fixed: tuple[float, float] | None
    performance_window: bool = False
    windowed: bool = True
    sample: str = SAMPLES


def _performance(pick: Callable[[PerformanceView], npt.ArrayLike]) -> Column:
    """A column of the performance view (None without a [labels] section)."""
    return lambda snap: None if snap.performance is None else pick(snap.performance)


STATISTICS: dict[str, TerminalStatistic] = {
    "window_score_mean": TerminalStatistic(
        lambda s: s.window_mean, lambda s: s.window_count, (0.0, 1.0)
    ),
    "window_score_variance": TerminalStatistic(
        lambda s: s.window_variance, lambda s: s.window_count, (0.0, 0.1)
    ),
    "window_events": TerminalStatistic(lambda s: s.window_count, lambda s: s.window_count, None),
    "rolling_score_mean": TerminalStatistic(
        lambda s: s.rolling_mean, lambda s: s.rolling_count, (0.0, 1.0), windowed=False
    ),
    "rolling_score_variance": TerminalStatistic(
        lambda s: s.rolling_variance, lambda s: s.rolling_count, (0.0, 0.1), windowed=False
    ),
    "events_total": TerminalStatistic(
        lambda s: s.events_total, lambda s: s.events_total, None, windowed=False
    ),
    # Performance from labels (a [labels] section): the model's performance window.
    "window_accuracy": TerminalStatistic(
        _performance(lambda p: p.stats.accuracy),
        _performance(lambda p: p.stats.labeled),
        (0.0, 1.0),
        performance_window=True,
        sample=LABELLED,
    ),
    # A multi-class model's accuracy (top class = label) over the last closed window.
    "window_class_accuracy": TerminalStatistic(
        lambda s: None if s.multiclass is None else s.multiclass.accuracy,
        lambda s: None if s.multiclass is None else s.multiclass.labeled,
        (0.0, 1.0),
        sample=LABELLED,
    ),
    "window_estimated_accuracy": TerminalStatistic(
        _performance(lambda p: p.estimate),
        _performance(lambda p: p.estimate_predictions),
        (0.0, 1.0),
    ),
}


def _column(snap: Snapshot, column: Column, fill: float) -> np.ndarray:
    """A per-cell float array of the snapshot (``fill`` where the snapshot has none)."""
    values = column(snap)
    if values is None:
        return np.full(len(snap.keys), fill)
    return np.asarray(values, dtype=float)


# Viridis, sampled at 8 stops, as xterm-256 colour indices.
_VIRIDIS_256 = (53, 54, 60, 24, 30, 36, 71, 184)


def _colour(value: float, lo: float, hi: float) -> int | None:
    if math.isnan(value) or hi <= lo:
        return None
    pos = min(max((value - lo) / (hi - lo), 0.0), 1.0)
    return _VIRIDIS_256[min(int(pos * len(_VIRIDIS_256)), len(_VIRIDIS_256) - 1)]


def _ordered(values: set[str]) -> list[str]:
    return sorted(values - {ALL}) + ([ALL] if ALL in values else [])


def _utc(ts: float) -> str:
    """An event time as a UTC wall-clock time, to the second."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_heatmap(
    snap: Snapshot,
    statistic: str = "window_score_mean",
    model: str | None = None,
    color: bool = True,
    min_samples: Mapping[str, int] | None = None,
    status: npt.ArrayLike | None = None,
) -> str:
    """Render ``statistic`` for ``model`` (default: the first model) as text.

    Each tile shows the value and, below it, the sample count; ``__all__`` is the totals row
    and column. Needs at least two dimensions; with fewer, the table has one column.
    ``min_samples`` maps :data:`SAMPLES` and :data:`LABELLED` to the count a windowed value
    needs (below it the tile shows ``-``); ``status`` is each cell's health status (-1 none,
    0 green, 1 amber, 2 red), marked with :data:`MARKS`.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; choose one of {sorted(STATISTICS)}")
    stat = STATISTICS[statistic]
    values = _column(snap, stat.values, math.nan)
    counts = _column(snap, stat.counts, 0.0)
    marks = None if status is None else np.asarray(status, dtype=np.int64)
    fixed = stat.fixed
    models = [m for m in snap.model_names if m != "__other__"] or snap.model_names
    if not models:
        return "no events yet"
    model = model or models[0]
    head = f"{model}: {statistic}"
    ends = (
        ({} if snap.performance is None else snap.performance.window_end)
        if stat.performance_window
        else snap.window_end
    )
    if model in ends:
        which = "performance window" if stat.performance_window else "last closed window"
        head += f"   ({which} ends {_utc(ends[model])})"
    elif stat.windowed and (snap.performance is not None or not stat.performance_window):
        seen = sum(
            int(snap.events_total[i])
            for i, k in enumerate(snap.keys)
            if k[0] == model and snap.is_leaf[i]
        )
        return f"{head}   waiting for the first window to close (events so far: {seen})"
    needed = (min_samples or {}).get(stat.sample, 0) if fixed and stat.windowed else 0
    tiles: dict[tuple[str, str], int] = {}
    rows: set[str] = set()
    cols: set[str] = set()
    for i, key in enumerate(snap.keys):
        if key[0] != model or snap.events_total[i] == 0:
            continue
        r = key[1] if len(key) > 1 else ALL
        c = key[2] if len(key) > 2 else ALL
        if len(key) > 3 and any(v != ALL for v in key[3:]):
            continue
        tiles[(r, c)] = i
        rows.add(r)
        cols.add(c)
    row_names, col_names = _ordered(rows), _ordered(cols)
    shown = [float(values[i]) for i in tiles.values() if not math.isnan(values[i])]
    lo, hi = fixed if fixed else ((min(shown), max(shown)) if shown else (0.0, 1.0))
    width = 12
    lines = [head, " " * 16 + "".join(c[: width - 1].rjust(width - 1) + " " for c in col_names)]
    flagged = False
    for r in row_names:
        top, bottom = [r[:15].ljust(16)], [" " * 16]
        for c in col_names:
            found = tiles.get((r, c))
            if found is None:
                top.append(" " * width)
                bottom.append(" " * width)
                continue
            i = found
            v = float(values[i])
            if counts[i] < needed:
                v = math.nan
            text = "-" if math.isnan(v) else (f"{v:.0f}" if fixed is None else f"{v:.3f}")
            mark = "" if marks is None else MARKS.get(int(marks[i]), "")
            flagged = flagged or bool(mark)
            cell = (f"{text} {mark:<2}" if marks is not None else text).rjust(width - 1) + " "
            shade = _colour(v, lo, hi)
            if color and shade is not None:
                cell = f"\x1b[48;5;{shade}m\x1b[97m{cell}\x1b[0m"
            top.append(cell)
            bottom.append(f"n={int(counts[i])}".rjust(width - 1) + " ")
        lines.append("".join(top))
        lines.append("".join(bottom))
    if fixed:
        rule = (
            f"fewer than {needed} {stat.sample} (min_samples)"
            if needed
            else f"no value (no {stat.sample})"
        )
        lines.append(f"colour scale: {lo:g} (dark) .. {hi:g} (yellow); '-' = {rule}")
    if marks is not None:
        lines.append("health: '!' amber, '!!' red" + ("" if flagged else " (no tile flagged)"))
    return "\n".join(lines)
