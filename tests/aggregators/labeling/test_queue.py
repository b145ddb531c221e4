"""The labeling queue against an offline selection written with plain sorting on the same data."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest

from tilewatch.aggregators.labeling.queue import LabelingQueue, Selected
from tilewatch.aggregators.labeling.reasons import binary_signals, multiclass_signals
from tilewatch.aggregators.labeling.settings import REASONS, LabelingSettings

WINDOW, GRACE = 60.0, 5.0


def make_events(seed: int, n: int = 3000, cells: int = 12) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 240, n)) + rng.normal(0, 4, n)  # some disorder, some late
    return {
        "leaf": rng.integers(0, cells, n).astype(np.int64),
        "times": times,
        "offsets": np.arange(1000, 1000 + n, dtype=np.int64),
        "scores": np.round(rng.uniform(0, 1, n), 3),  # rounding makes ties
        "thresholds": np.where(rng.uniform(size=n) < 0.05, np.nan, 0.4),
        "labels": np.where(rng.uniform(size=n) < 0.3, np.nan, (rng.uniform(size=n) < 0.5) * 1.0),
    }


def run_queue(
    ev: dict[str, Any], settings: LabelingSettings, cuts: list[int], status: Any = None
) -> list[Selected]:
    q = LabelingQueue(settings, WINDOW, GRACE)
    out: list[Selected] = []
    max_t = -math.inf
    bounds = [0, *cuts, len(ev["leaf"])]
    for a, b in itertools.pairwise(bounds):
        sl = slice(a, b)
        sig = binary_signals(
            ev["scores"][sl], ev["thresholds"][sl], ev["labels"][sl], settings.margin
        )
        payloads = [(None, b"%d" % o) for o in ev["offsets"][sl].tolist()]
        q.offer(ev["leaf"][sl], ev["times"][sl], ev["offsets"][sl], sig, payloads, max_t)
        max_t = max(max_t, float(ev["times"][sl].max()))
        out += q.close(max_t - GRACE, status)
        assert all(
            len(t) <= max(2 * 12 * settings.cell_capacity, 256) + (b - a)
            for tables in q.tables.values()
            for t in tables.values()
        )
    return out + q.close(math.inf, status)


def offline(
    ev: dict[str, Any],
    s: LabelingSettings,
    flagged: set[int] = frozenset(),  # type: ignore[assignment]
) -> set[tuple[int, str]]:
    """The rule, event by event with Python sorting: (offset, reason) of every selection."""
    max_t, per_window = -math.inf, {}
    for i in range(len(ev["leaf"])):
        t = float(ev["times"][i])
        w = math.floor(t / WINDOW)
        if (w + 1) * WINDOW > max_t - GRACE:  # not late
            per_window.setdefault(w, []).append(i)
        max_t = max(max_t, t)
    chosen = set()
    for _w, idx in per_window.items():
        total = min(s.max_per_window, math.ceil(s.rate * len(idx)))
        k = len(s.reasons)
        for j, reason in enumerate(s.reasons):
            budget = total // k + (1 if j < total % k else 0)
            cands = []
            for i in idx:
                p, th, lab = ev["scores"][i], ev["thresholds"][i], ev["labels"][i]
                if math.isnan(th):
                    continue
                m = abs(p - th)
                right = None if math.isnan(lab) else bool((p >= th) == (lab == 1.0))
                confident = m > s.margin
                prio = {
                    "least_confident": -m,
                    "most_confident": m,
                    "confident_wrong": m if right is False and confident else None,
                    "unsure_but_right": -m if right is True and not confident else None,
                }[reason]
                if prio is not None:
                    cands.append((-prio, int(ev["offsets"][i]), int(ev["leaf"][i])))
            by_cell: dict[int, list[Any]] = {}
            for c in sorted(cands):
                by_cell.setdefault(c[2], []).append(c)
            pool = []
            for cell, rows in by_cell.items():
                share = s.flagged_cell_share if cell in flagged else s.cell_share
                quota = max(1, math.floor(share * budget)) if budget else 0
                pool += rows[:quota]
            chosen |= {(o, reason) for _p, o, _c in sorted(pool)[:budget]}
    return chosen


REASONS_NO_HASH = ("least_confident", "most_confident", "confident_wrong", "unsure_but_right")
SETTINGS = [
    LabelingSettings(reasons=REASONS_NO_HASH, rate=0.05, max_per_window=40, cell_share=0.1),
    LabelingSettings(reasons=("least_confident",), rate=0.5, max_per_window=30, cell_share=0.2),
    LabelingSettings(reasons=("confident_wrong", "unsure_but_right"), rate=1.0, max_per_window=9),
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("seed", [1, 2])
def test_selection_matches_the_offline_rule(settings: LabelingSettings, seed: int) -> None:
    ev = make_events(seed)
    got = run_queue(ev, settings, cuts=[700, 701, 1500, 2900])
    assert got  # the data has candidates under every setting
    pairs = [(s.offset, s.reason) for s in got]
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == offline(ev, settings)
    # Budgets: per window at most the window budget; per cell at most its quota.
    counts = window_events(ev)
    for w in {s.window for s in got}:
        in_w = [s for s in got if s.window == w]
        assert len(in_w) <= settings.window_budget(counts[w])
        budgets = settings.reason_budgets(counts[w])
        for reason, budget in zip(settings.reasons, budgets, strict=True):
            cells = [s.cell for s in in_w if s.reason == reason]
            assert len(cells) <= budget
            assert all(cells.count(c) <= settings.cell_quota(budget, False) for c in cells)


def window_events(ev: dict[str, Any]) -> dict[int, int]:
    """Valid (not late) events per window, event by event."""
    max_t, counts = -math.inf, {}
    for t in ev["times"].tolist():
        w = math.floor(t / WINDOW)
        if (w + 1) * WINDOW > max_t - GRACE:
            counts[w] = counts.get(w, 0) + 1
        max_t = max(max_t, t)
    return counts


@pytest.mark.parametrize("cuts", [[], [1], [10, 20, 30, 2000], list(range(50, 3000, 50))])
def test_selection_does_not_depend_on_batches(cuts: list[int]) -> None:
    ev = make_events(3)
    s = SETTINGS[0]
    base = [(x.offset, x.reason, x.value) for x in run_queue(ev, s, [])]
    assert sorted(base) == sorted((x.offset, x.reason, x.value) for x in run_queue(ev, s, cuts))


def test_threshold_margin_is_a_seeded_sample_within_the_margin() -> None:
    ev = make_events(4)
    s = LabelingSettings(reasons=("threshold_margin",), margin=0.1, rate=0.02, max_per_window=50)
    got = run_queue(ev, s, [1234])
    assert got and all(abs(x.score - 0.4) <= 0.1 + 1e-12 for x in got)
    assert sorted(x.offset for x in got) == sorted(x.offset for x in run_queue(ev, s, [5, 2500]))


def test_flagged_cells_get_the_larger_share() -> None:
    ev = make_events(5)
    s = LabelingSettings(
        reasons=("least_confident",),
        rate=0.5,
        max_per_window=40,
        cell_share=0.05,
        flagged_cell_share=0.5,
    )

    def status(cells: Any) -> Any:
        return np.where(cells == 3, 2, 0)

    got = run_queue(ev, s, [900], status)
    assert {(x.offset, x.reason) for x in got} == offline(ev, s, {3})
    per_window_cell3 = [sum(1 for x in got if x.window == w and x.cell == 3) for w in range(4)]
    assert max(per_window_cell3) > s.cell_quota(40, False)  # more than an unflagged cell
    assert {x.status for x in got if x.cell == 3} == {2}


def test_counters_and_the_checkpoint_round_trip() -> None:
    ev = make_events(6)
    s = SETTINGS[0]
    q = LabelingQueue(s, WINDOW, GRACE)
    keys = [("m", f"c{i}") for i in range(12)]
    n, half = len(ev["leaf"]), 1700
    sig = binary_signals(ev["scores"], ev["thresholds"], ev["labels"], s.margin)

    def cut(a: int, b: int) -> Any:
        from tilewatch.aggregators.labeling.reasons import Signals

        return Signals(*(getattr(sig, f)[a:b] for f in Signals.__slots__))

    def payloads(a: int, b: int) -> list[Any]:
        return [(b"k", b"%d" % o) for o in ev["offsets"][a:b].tolist()]

    q.offer(
        ev["leaf"][:half],
        ev["times"][:half],
        ev["offsets"][:half],
        cut(0, half),
        payloads(0, half),
        -math.inf,
    )
    first = q.close(float(ev["times"][:half].max()) - GRACE)
    data = json.loads(json.dumps(q.to_dict(keys)))
    index = {k: i for i, k in enumerate(keys)}
    r = LabelingQueue.from_dict(data, s, WINDOW, GRACE, 2, index.__getitem__)
    assert r.to_dict(keys) == data
    max_t = float(ev["times"][:half].max())
    rest = []
    for queue in (q, r):
        queue.offer(
            ev["leaf"][half:],
            ev["times"][half:],
            ev["offsets"][half:],
            cut(half, n),
            payloads(half, n),
            max_t,
        )
        rest.append(queue.close(math.inf))
    assert rest[0] == rest[1]
    everything = first + rest[0]
    assert {(x.offset, x.reason) for x in everything} == offline(ev, s)
    for reason in s.reasons:
        counted = r.selected[:, REASONS.index(reason)].sum()
        assert counted == sum(1 for x in everything if x.reason == reason)
    assert r.no_threshold == q.no_threshold > 0


@pytest.mark.parametrize(
    "bad",
    [
        {"version": 2, "windows": [], "selected": [], "no_threshold": 0},
        {"version": 1, "windows": [[0, 1, {"nope": []}]], "selected": [], "no_threshold": 0},
        {
            "version": 1,
            "windows": [
                [0, 1, {"least_confident": [[["m", "a"], 0.1, 3, 0.5, None, None, "###"]]}]
            ],
            "selected": [],
            "no_threshold": 0,
        },
        {
            "version": 1,
            "windows": [],
            "selected": [[["m"], "least_confident", 1]],
            "no_threshold": 0,
        },
    ],
)
def test_a_bad_checkpoint_is_refused_before_cells_are_added(bad: dict[str, Any]) -> None:
    from tilewatch.aggregators.errors import StateError

    added: list[Any] = []
    with pytest.raises(StateError, match="labeling"):
        LabelingQueue.from_dict(bad, SETTINGS[0], WINDOW, GRACE, 2, added.append)
    assert added == []


def test_multiclass_signals_match_a_direct_computation() -> None:
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(4), size=500)
    labels = rng.integers(-1, 4, 500)
    sig = multiclass_signals(p, labels, confident_at=0.6)
    srt = np.sort(p, axis=1)
    assert np.allclose(sig.confidence, srt[:, -1])
    assert np.allclose(sig.margin, srt[:, -1] - srt[:, -2])
    known = labels >= 0
    assert (sig.correct[~known] == -1).all()
    assert (sig.correct[known] == (p.argmax(axis=1) == labels)[known]).all()
    assert (sig.confident == (srt[:, -1] >= 0.6)).all()
