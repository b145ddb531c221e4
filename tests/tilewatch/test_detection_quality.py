"""Detection quality on realistic segmented traffic, small enough for CI.

The same generator and scoring as ``tests/bench/bench_detection.py`` (which runs 4M + 1M
events), on a shorter scenario: cells genuinely differ by segment and region, cell sizes span
20 to 1,500 events per window, one change of each kind after a clean stretch. The baseline is
built by the real ``tilewatch baseline`` code; every window goes through the monitor's batch
path. See ``tests/detection.py`` for what counts as found, late or false.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detection import Replay, config_for, replay, score, write_holdout_baseline
from tilewatch.streams.dev.scenario_spec import ScenarioSpec
from tilewatch.streams.dev.scenarios import Scenario

WINDOWS = 40
SPEC = ScenarioSpec(windows=WINDOWS, max_cell_events=1500.0, seed=7)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario(SPEC)


@pytest.fixture(scope="module")
def baseline(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = int(scenario.events_per_window * 10)
    return write_holdout_baseline(scenario, rows, tmp_path_factory.mktemp("detection"))


@pytest.fixture(scope="module", params=["baseline", "trailing"])
def run(request: pytest.FixtureRequest, scenario: Scenario, baseline: Path) -> tuple[str, Replay]:
    config = config_for(scenario, baseline, reference=request.param)
    return request.param, replay(scenario, config)


def test_every_change_is_flagged_in_its_cell_in_time(
    scenario: Scenario, run: tuple[str, Replay]
) -> None:
    reference, result = run
    report = score(scenario, result)
    print("\n".join(report.lines()))
    for (kind, signal), delay in report.found.items():
        if signal == "any" or kind == "slow_drift":
            continue
        assert delay is not None, f"{reference}: {kind} never flagged for {signal}"
        assert delay <= report.deadline[kind], f"{reference}: {kind}/{signal} after {delay}"
    if reference == "baseline":
        # The slow drift (1.5 log-income over 60 windows) passes psi_alert in its leaves after
        # about 10 windows and in its wider segment roll-up a few windows later.
        assert report.found[("slow_drift", "feature_psi")] is not None
        assert report.found[("slow_drift", "feature_psi")] <= 16  # type: ignore[operator]
        assert report.leaves_found[("slow_drift", "feature_psi")] >= 0.5


def test_clean_cells_are_not_flagged(scenario: Scenario, run: tuple[str, Replay]) -> None:
    reference, result = run
    report = score(scenario, result)
    for signal, (flags, windows) in report.false_flags.items():
        if signal.startswith("detector:"):
            continue
        assert windows > 3000
        assert flags <= windows / 1000, f"{reference}: {signal} {flags} in {windows}"
