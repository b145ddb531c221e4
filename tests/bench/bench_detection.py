"""Detection benchmark: does tilewatch flag the tiles that changed, and only those?

Segmented traffic where segments genuinely differ (:mod:`tilewatch.streams.dev.scenarios`:
region- and segment-dependent features and score mixes, cells from ~20 to ~5,000 events per
window, a 400-category feature), with one change of each kind injected after a long clean
stretch: a covariate shift in one leaf, a dropped feature in one region, a class-prior shift in
one segment, concept drift in one region, a slow drift over an hour in one segment. Plus a clean
twin of at least 1M events over 120 cells, where every flag is false. The baseline is built by
the real ``tilewatch baseline`` code from a clean holdout of the same model; every window goes
through the monitor's own batch path (:func:`tests.detection.replay`).

Reported per signal: changes found and their delay in windows, false flags per 1,000 clean
cell-windows; per health component: red components per 1,000 clean cell-windows, and whether
the changed cells went red. Both references run: the per-cell baseline and the trailing one.

Targets (issue 12): every change flagged within 2 windows of onset, the slow drift within 10;
at most 1 false flag per 1,000 clean cell-windows per signal; at most 1 red component per 1,000.

Run (about 5 minutes on 2 cores; ``--windows`` and ``--holdout-windows`` shrink it)::

    .venv/bin/python tests/bench/bench_detection.py
    .venv/bin/python tests/bench/bench_detection.py --windows 40 --references baseline
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.detection import Report, config_for, replay, score, write_holdout_baseline  # noqa: E402
from tilewatch.streams.dev.scenario_spec import ScenarioSpec  # noqa: E402
from tilewatch.streams.dev.scenarios import Scenario  # noqa: E402


def _summary(name: str, report: Report) -> dict[str, object]:
    missed = [f"{k}/{s}" for (k, s), d in report.found.items() if d is None]
    late = [
        f"{k}/{s}={d}"
        for (k, s), d in report.found.items()
        if d is not None and d > report.deadline[k]
    ]
    worst_flag = max((report.per_thousand(p) for p in report.false_flags.values()), default=0.0)
    worst_red = max((report.per_thousand(p) for p in report.red.values()), default=0.0)
    return {
        "run": name,
        "missed": missed,
        "late": late,
        "worst_false_flags_per_1000": round(worst_flag, 3),
        "worst_red_per_1000": round(worst_red, 3),
        "changed_not_red": [k for k, red in report.changed_red.items() if not red],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=120, help="windows of the changed run")
    parser.add_argument("--clean-windows", type=int, default=30, help="windows of the clean run")
    parser.add_argument("--holdout-windows", type=float, default=10.0,
                        help="holdout size in windows of traffic")  # fmt: skip
    parser.add_argument("--references", default="baseline,trailing",
                        help="comma-separated: baseline, trailing")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the summaries here")
    args = parser.parse_args(argv)

    summaries = []
    with tempfile.TemporaryDirectory(prefix="tilewatch-detection-") as tmp:
        folder = Path(tmp)
        changed = Scenario(ScenarioSpec(windows=args.windows, seed=args.seed))
        # The same model and population, fresh windows: the clean twin continues after the
        # changed run's windows (each window has its own random stream).
        total = args.windows + args.clean_windows
        clean = Scenario(ScenarioSpec(windows=total, seed=args.seed), clean=True)
        spans = {"changed": range(args.windows), "clean": range(args.windows, total)}
        rows = int(changed.events_per_window * args.holdout_windows)
        t0 = time.perf_counter()
        baseline = write_holdout_baseline(changed, rows, folder)
        print(f"baseline: {rows:,} holdout rows, {baseline.stat().st_size / 1e6:.1f} MB, "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        print(f"changes: {[(c.kind, c.onset_window) for c in changed.truth]}")
        for reference in args.references.split(","):
            for name, scenario in (("changed", changed), ("clean", clean)):
                config = config_for(scenario, baseline, reference=reference)
                t0 = time.perf_counter()
                run = replay(scenario, config, spans[name])
                seconds = time.perf_counter() - t0
                report = score(scenario, run)
                title = f"{name} traffic, reference = {reference}"
                print(f"\n== {title}: {run.events:,} events, {len(run.windows)} windows, "
                      f"{len(run.keys[-1])} cells, {seconds:.0f} s")  # fmt: skip
                print("\n".join(report.lines()))
                summaries.append(_summary(title, report))
    print("\n== summary (targets: found within the deadline, <= 1 false flag and <= 1 red "
          "component per 1,000 clean cell-windows)")  # fmt: skip
    for s in summaries:
        print(json.dumps(s))
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
