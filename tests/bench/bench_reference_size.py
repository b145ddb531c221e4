"""Per-cell baseline references at scale: build time, file size, load and lookup times.

A holdout of ``--rows`` rows over ``--segments`` x ``--regions`` leaf cells (the detection
scenarios' traffic) goes through the real ``tilewatch baseline`` reader and builder; then the
monitor's side: loading the file, building the per-cell references (roll-ups, shrinkage,
parent order) and looking every cell up.

Run: ``.venv/bin/python tests/bench/bench_reference_size.py --rows 1000000`` (10,000 cells).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.detection import config_for, write_holdout_baseline  # noqa: E402
from tilewatch.aggregators.cells.registry import CellRegistry  # noqa: E402
from tilewatch.aggregators.drift.cell_reference import CellReferences  # noqa: E402
from tilewatch.app import build_profile  # noqa: E402
from tilewatch.reference_file import load_baseline  # noqa: E402
from tilewatch.streams.dev.scenario_spec import ScenarioSpec  # noqa: E402
from tilewatch.streams.dev.scenarios import Scenario  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--regions", type=int, default=100)
    args = parser.parse_args(argv)
    segments = tuple(f"s{i:03d}" for i in range(args.segments))
    regions = tuple(f"r{i:03d}" for i in range(args.regions))
    spec = ScenarioSpec(segments=segments, regions=regions, windows=2, min_cell_events=5.0)
    scenario = Scenario(spec)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        path = write_holdout_baseline(scenario, args.rows, Path(tmp))
        print(f"build: {time.perf_counter() - t:.1f} s, file {path.stat().st_size / 1e6:.1f} MB")
        t = time.perf_counter()
        baseline = load_baseline(path)
        cells = baseline.models[spec.model].cells
        assert cells is not None
        print(f"load: {time.perf_counter() - t:.2f} s, {len(cells.keys):,} leaf cells")
        config = config_for(scenario, path)
        t = time.perf_counter()
        profile = build_profile(config)
        assert profile is not None
        refs = CellReferences(profile, config.cells, config.drift.prior_strength)
        print(f"references: {time.perf_counter() - t:.2f} s (profile, roll-ups, shrinkage)")
        registry = CellRegistry(config.cells)
        registry.index_many([(spec.model, s, r) for s in segments for r in regions])
        t = time.perf_counter()
        refs.table(registry.keys)
        print(f"lookup of {len(registry.keys):,} cells: {time.perf_counter() - t:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
