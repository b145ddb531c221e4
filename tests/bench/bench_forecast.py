"""Backtest of the forecast tiles on the synthetic traffic, and their cost per cell.

The demo traffic (``tilewatch.streams.dev.traffic``: 1 model, segments x regions, inline labels)
goes window by window through a :class:`ReplicaState` with :class:`CellForecasts`, as the
running monitor does (one ``refresh()`` per window). The generator's degraded cell changes in
one step; a forecast is about trends, so the bench builds one: from window ``--ramp-start`` on,
the scores of ``smb x eu-west`` rise linearly by ``--ramp`` over ``--ramp-windows`` windows
(then stay up). Each window's forecasts (1..H windows ahead, 90% intervals) are compared with
the values the following windows showed:

- **coverage**: the share of actual values inside the interval, per horizon, over every cell
  and window (target: within 5 points of 90%);
- **MAE against naive**: the mean absolute error of the forecast and of the naive last-value
  forecast, for the ramped cell during its ramp ("trend") and for the cells that never see the
  ramp ("stationary": leaf cells in neither its segment nor its region).

It also times :meth:`DampedTrend.update` and :meth:`~DampedTrend.forecast` over 100,000 series.

Run: ``.venv/bin/python tests/bench/bench_forecast.py [--windows 160] [--events 3000]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tilewatch.aggregators.cells.settings import CellSettings  # noqa: E402
from tilewatch.aggregators.labels.settings import LabelSettings  # noqa: E402
from tilewatch.aggregators.state.forecasts import CellForecasts  # noqa: E402
from tilewatch.aggregators.state.replica import ReplicaState  # noqa: E402
from tilewatch.aggregators.stats.forecast import DampedTrend  # noqa: E402
from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec  # noqa: E402

WINDOW = 10.0
RAMPED = ("smb", "eu-west")
STATS = ("score_mean", "accuracy")


def _run(args: argparse.Namespace) -> dict[str, list[tuple[int, np.ndarray, tuple]]]:
    """Per statistic: (window, observed values per cell, (mean, lower, upper)) per window."""
    cells = CellSettings(dimensions=("segment", "region"), window_seconds=WINDOW, grace_seconds=0)
    labels = LabelSettings(source="inline", threshold=0.5, error_detector=None)
    state = ReplicaState(cells, labels=labels)
    params = {"alpha": args.alpha, "beta": args.beta, "phi": args.phi}
    state.forecasts = CellForecasts(STATS, horizon=args.horizon, **params)
    gen = TrafficGenerator(
        TrafficSpec(degrade_cell=None, label_share=0.5, seed=args.seed), start_time=0.0
    )
    out: dict[str, list[tuple[int, np.ndarray, tuple]]] = {s: [] for s in STATS}
    last: dict[str, float] = {}
    for w in range(args.windows):
        events = gen.events(args.events, event_time=w * WINDOW, spread_seconds=WINDOW)
        ramp = args.ramp * min(1.0, max(0.0, (w - args.ramp_start) / args.ramp_windows))
        keys, times, scores, labs = [], [], [], []
        for e in events:
            s = float(e["score"])
            if (e["segment"], e["region"]) == RAMPED:
                s = min(1.0, s + ramp)
            keys.append((e["model"], e["segment"], e["region"]))
            times.append(float(e["timestamp"]))
            scores.append(s)
            labs.append(e["label"])
        state.apply(
            ("t", 0), keys, np.array(times), np.array(scores), next_offset=w + 1, labels=labs
        )
        state.refresh()
        snap = state.snapshot()
        assert snap.forecasts is not None
        for stat in STATS:
            if stat == "score_mean":
                values, end = snap.window_mean, snap.window_end.get("churn")
            else:
                assert snap.performance is not None
                values, end = (
                    snap.performance.stats.accuracy,
                    snap.performance.window_end.get("churn"),
                )
            if end is None or end == last.get(stat) or stat not in snap.forecasts:
                continue
            last[stat] = end
            f = tuple(a.copy() for a in snap.forecasts[stat])
            out[stat].append((round(end / WINDOW) - 1, np.array(values, dtype=float), f))
    keys = state.snapshot().keys
    args.ramped_rows = [i for i, k in enumerate(keys) if set(RAMPED) & set(k[1:]) or "__all__" in k]
    args.ramped_leaf = keys.index(("churn", *RAMPED))
    return out


def _evaluate(args: argparse.Namespace, series: list[tuple[int, np.ndarray, tuple]]) -> None:
    by_window = {w: (v, f) for w, v, f in series}
    n = min(len(v) for _w, v, _f in series)
    stationary = np.ones(n, dtype=bool)
    stationary[[r for r in args.ramped_rows if r < n]] = False
    inside = [[] for _ in range(args.horizon)]
    err = {g: [[] for _ in range(args.horizon)] for g in ("trend", "stationary")}
    naive = {g: [[] for _ in range(args.horizon)] for g in ("trend", "stationary")}
    ramp_end = args.ramp_start + args.ramp_windows
    for w, (values, (mean, lower, upper)) in by_window.items():
        for h in range(1, args.horizon + 1):
            later = by_window.get(w + h)
            if later is None:
                continue
            actual = later[0][:n]
            ok = np.isfinite(actual) & np.isfinite(mean[h - 1, :n]) & np.isfinite(values[:n])
            inside[h - 1] += (
                (lower[h - 1, :n][ok] <= actual[ok]) & (actual[ok] <= upper[h - 1, :n][ok])
            ).tolist()
            groups = {"stationary": ok & stationary}
            if args.ramp_start + 3 <= w and w + h <= ramp_end:
                leaf = np.zeros(n, dtype=bool)
                leaf[args.ramped_leaf] = True
                groups["trend"] = ok & leaf
            for g, rows in groups.items():
                err[g][h - 1] += np.abs(mean[h - 1, :n][rows] - actual[rows]).tolist()
                naive[g][h - 1] += np.abs(values[:n][rows] - actual[rows]).tolist()
    print("  horizon  coverage  MAE trend (naive)      MAE stationary (naive)   points")
    for h in range(args.horizon):
        cov = np.mean(inside[h]) if inside[h] else float("nan")
        t, tn = np.mean(err["trend"][h] or [np.nan]), np.mean(naive["trend"][h] or [np.nan])
        # nan: the ramped cell has no value (e.g. below [labels] min_samples labelled events)
        s, sn = np.mean(err["stationary"][h]), np.mean(naive["stationary"][h])
        print(
            f"  {h + 1:>7}  {100 * cov:7.1f}%  {t:.4f} ({tn:.4f})        {s:.4f} ({sn:.4f})"
            f"          {len(inside[h])}"
        )


def _cost() -> None:
    n = 100_000
    f = DampedTrend(n)
    rng = np.random.default_rng(0)
    rows = np.arange(n)
    times = []
    for _ in range(20):
        y = rng.normal(0.3, 0.05, n)
        t0 = time.perf_counter()
        f.update(y, rows)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    f.forecast(5)
    fc = time.perf_counter() - t0
    upd = float(np.median(times[3:]))
    print(
        f"cost over {n:,} series: update {1e9 * upd / n:.0f} ns/series per window, "
        f"forecast (H=5) {1e9 * fc / n:.0f} ns/series"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--windows", type=int, default=160)
    p.add_argument("--events", type=int, default=3000, help="events per window")
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--ramp", type=float, default=0.25)
    p.add_argument("--ramp-start", type=int, default=60)
    p.add_argument("--ramp-windows", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    d = DampedTrend()
    p.add_argument("--alpha", type=float, default=d.alpha)
    p.add_argument("--beta", type=float, default=d.beta)
    p.add_argument("--phi", type=float, default=d.phi)
    args = p.parse_args()
    t0 = time.perf_counter()
    results = _run(args)
    print(
        f"bench_forecast: {args.windows} windows x {args.events} events, ramp +{args.ramp} on "
        f"{RAMPED} over windows {args.ramp_start}..{args.ramp_start + args.ramp_windows} "
        f"({time.perf_counter() - t0:.1f} s); alpha {args.alpha} beta {args.beta} phi {args.phi}"
    )
    for stat in STATS:
        print(f"{stat} (nominal coverage 90%):")
        _evaluate(args, results[stat])
    _cost()


if __name__ == "__main__":
    main()
