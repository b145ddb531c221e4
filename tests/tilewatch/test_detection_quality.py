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
from scipy import stats

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
        if (kind, signal) == ("concept_drift", "error_rate"):
            # Here the model errs on ~44 % of the region's events and the concept drift adds
            # only 10-15 % to that (relative), below [labels] error_alert = 0.2, in cells of 25
            # to 180 labels: calibration carries this change (asserted); the full benchmark's
            # larger cells also flag error_rate at delay 0.
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


def test_clean_cells_are_not_red_and_changed_cells_are(
    scenario: Scenario, run: tuple[str, Replay]
) -> None:
    """Health components judge each cell against its own reference: at most 1 red component
    per 1,000 clean cell-windows (the issue's target), within sampling error at this size
    (the 99 % Poisson quantile at that rate: 8 in ~3,500 windows; the full benchmark, 11,000
    clean cell-windows, measures 0.5 per 1,000); every change turns its cells red."""
    reference, result = run
    report = score(scenario, result)
    for component, (red, windows) in report.red.items():
        assert windows > 3000
        allowed = stats.poisson.ppf(0.99, windows / 1000)
        assert red <= allowed, f"{reference}: {component} red in {red} of {windows}"
    for kind, red in report.changed_red.items():
        assert red, f"{reference}: the cells of {kind} never went red"
    assert report.found[("concept_drift", "calibration")] is not None
