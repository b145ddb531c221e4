"""CellDetectors: ADWIN per leaf score, PageHinkley per window mean, exact indices on seeds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tilewatch.aggregators.drift.detectors import DETECTORS, CellDetectors
from tilewatch.aggregators.drift.profile import DriftSettings

ADWIN = DriftSettings(detectors=("adwin",))
PH = DriftSettings(detectors=("page_hinkley",))


def _step(seed: int = 123, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0.3, 0.05, n), rng.normal(0.6, 0.05, n)]


def _recording(det: CellDetectors) -> list[tuple[int, str, float]]:
    """Wrap ``_found`` to record every detection, in order."""
    seen: list[tuple[int, str, float]] = []
    found = det._found

    def record(cell: int, name: str, t: float) -> None:
        seen.append((cell, name, t))
        found(cell, name, t)

    det._found = record  # type: ignore[method-assign]
    return seen


def test_detector_names() -> None:
    assert sorted(DETECTORS) == ["adwin", "page_hinkley"]


def test_adwin_detects_step_at_exact_index() -> None:
    scores = _step()
    det = CellDetectors(ADWIN)
    seen = _recording(det)
    det.update_scores(
        np.zeros(len(scores), dtype=np.int64), scores, np.arange(len(scores), dtype=float)
    )
    # The step is at index 3000; ADWIN (delta 0.002, clock 32) reports it 39 scores later.
    assert seen == [(0, "adwin", 3039.0)]
    assert det.detections == {(0, "adwin"): 1}
    assert det.last == {(0, "adwin"): 3039.0}


def test_adwin_same_result_in_batches_and_interleaved_with_other_cells() -> None:
    scores = _step()
    rng = np.random.default_rng(9)
    noise = rng.normal(0.5, 0.05, len(scores))
    # Interleave cell 0 (the step) with cell 1 (stationary), fed in uneven batches.
    cells = np.empty(2 * len(scores), dtype=np.int64)
    cells[0::2], cells[1::2] = 0, 1
    values = np.empty(2 * len(scores))
    values[0::2], values[1::2] = scores, noise
    times = np.arange(len(values), dtype=float)
    det = CellDetectors(ADWIN)
    pos = 0
    while pos < len(values):
        k = int(rng.integers(1, 700))
        det.update_scores(cells[pos : pos + k], values[pos : pos + k], times[pos : pos + k])
        pos += k
    assert det.detections == {(0, "adwin"): 1}
    assert det.last == {(0, "adwin"): 2 * 3039.0}  # cell 0's 3040th score


def test_adwin_no_detection_on_stationary_stream() -> None:
    rng = np.random.default_rng(7)
    n = 50_000
    det = CellDetectors(ADWIN)
    det.update_scores(
        np.zeros(n, dtype=np.int64), rng.normal(0.5, 0.1, n), np.arange(n, dtype=float)
    )
    assert det.detections == {} and det.last == {}


def test_detectors_off_do_nothing() -> None:
    det = CellDetectors(DriftSettings(detectors=()))
    scores = _step()
    det.update_scores(
        np.zeros(len(scores), dtype=np.int64), scores, np.arange(len(scores), dtype=float)
    )
    det.update_windows(np.array([0]), np.array([50]), np.array([0.9]), np.array([1.0]), 60.0)
    assert det.detections == {} and det._adwin == {} and det._ph == {}
    ph_only = CellDetectors(PH)
    ph_only.update_scores(
        np.zeros(len(scores), dtype=np.int64), scores, np.arange(len(scores), dtype=float)
    )
    assert ph_only._adwin == {}


def test_page_hinkley_on_window_means() -> None:
    rng = np.random.default_rng(3)
    shifted = np.r_[rng.normal(0.3, 0.01, 20), rng.normal(0.7, 0.01, 10)]
    det = CellDetectors(PH)
    seen = _recording(det)
    counts, m2 = np.array([100, 100]), np.array([0.99, 0.99])  # score std 0.1 in each window
    for w, m in enumerate(shifted.tolist()):
        means = np.array([m, 0.3 + rng.normal(0, 0.01)])
        det.update_windows(np.array([0, 1]), counts, means, m2, (w + 1) * 60.0)
    # The shift starts with window 20 (ending at 1260 s) and is found there; cell 1 is quiet.
    assert seen == [(0, "page_hinkley", 1260.0)]
    assert det.detections == {(0, "page_hinkley"): 1}
    assert det.last == {(0, "page_hinkley"): 1260.0}


@pytest.mark.parametrize("size", [20, 2000])
def test_page_hinkley_is_standardized_by_the_cells_size(size: int) -> None:
    """A mean shift of 3 standard errors is found within a few windows in a cell of any size;
    the same cells without the shift give no alarm in 300 windows."""
    rng = np.random.default_rng(size)
    windows, cells = 300, 20
    det = CellDetectors(PH)
    seen = _recording(det)
    sd = 0.15
    for w in range(windows):
        shift = 3 * sd / np.sqrt(size) if w >= 200 else 0.0
        means = rng.normal(0.3, sd / np.sqrt(size), cells)
        means[:10] += shift  # cells 0..9 shift, 10..19 stay
        m2 = sd**2 * (size - 1) * rng.chisquare(size - 1, cells) / (size - 1)
        det.update_windows(np.arange(cells), np.full(cells, size), means, m2, float(w))
    first = {c: min(t for cc, _d, t in seen if cc == c) for c, _d, _t in seen}
    assert sorted(first) == list(range(10))
    assert max(first.values()) <= 208 and min(first.values()) >= 200, sorted(first.items())


def test_detections_count_and_last_is_max() -> None:
    det = CellDetectors(ADWIN)
    det._found(3, "adwin", 50.0)
    det._found(3, "adwin", 20.0)  # an earlier event time: last stays the largest
    det._found(4, "page_hinkley", 7.0)
    assert det.detections == {(3, "adwin"): 2, (4, "page_hinkley"): 1}
    assert det.last == {(3, "adwin"): 50.0, (4, "page_hinkley"): 7.0}


def test_to_dict_and_load_round_trip() -> None:
    scores = _step()
    det = CellDetectors(DriftSettings())
    det.update_scores(
        np.full(len(scores), 1, dtype=np.int64), scores, np.arange(len(scores), dtype=float)
    )
    det._found(0, "page_hinkley", 120.0)
    keys = [("m", "a"), ("m", "b")]
    rows = det.to_dict(keys)
    assert rows == [[["m", "a"], "page_hinkley", 1, 120.0], [["m", "b"], "adwin", 1, 3039.0]]
    assert json.loads(json.dumps(rows)) == rows  # plain data
    index = {tuple(k): i for i, k in enumerate(keys)}
    fresh = CellDetectors(DriftSettings())
    fresh.load([(index[tuple(k)], name, n, last) for k, name, n, last in rows])
    assert fresh.detections == det.detections and fresh.last == det.last
    # Loading adds counts and keeps the largest last time.
    fresh.load([(1, "adwin", 2, 10.0), (1, "page_hinkley", 1, -math.inf)])
    assert fresh.detections[(1, "adwin")] == 3 and fresh.last[(1, "adwin")] == 3039.0
    assert fresh.last[(1, "page_hinkley")] == -math.inf
