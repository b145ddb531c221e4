"""ErrorDetectors: river's binary detectors per leaf cell, exact indices against river itself."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from river.drift import binary

from tilewatch.aggregators.labels.error_detectors import ERROR_DETECTORS, PARAMETERS, ErrorDetectors

ROOT = Path(__file__).resolve().parents[3]
RIVER = {"ddm": binary.DDM, "hddm_a": binary.HDDMA, "hddm_w": binary.HDDMW}
#: Detection indices on ``_stream()`` (error rate 0.05, then 0.4 from index 3000), with the
#: parameters the wrapper uses (HDDM_A: drift confidence 1e-4).
EXPECTED = {"ddm": [3060], "hddm_a": [3070], "hddm_w": [3101, 4654, 5132, 5524]}


def _stream(seed: int = 7, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(n) < 0.05, rng.random(n) < 0.4].astype(np.int64)


def _river_indices(kind: str, errors: np.ndarray) -> list[int]:
    det = RIVER[kind](**PARAMETERS.get(kind, {}))
    found = []
    for i, x in enumerate(errors.tolist()):
        det.update(x)
        if det.drift_detected:
            found.append(i)
    return found


def test_names() -> None:
    assert sorted(ERROR_DETECTORS) == ["ddm", "hddm_a", "hddm_w"]
    assert all(ERROR_DETECTORS.values())


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown error detector 'adwin'; expected one of ddm"):
        ErrorDetectors("adwin")


@pytest.mark.parametrize("kind", sorted(ERROR_DETECTORS))
def test_exact_detection_indices_match_river(kind: str) -> None:
    errors = _stream()
    assert _river_indices(kind, errors) == EXPECTED[kind]
    det = ErrorDetectors(kind)
    times = np.arange(len(errors), dtype=float) * 0.5
    det.update(np.zeros(len(errors), dtype=np.int64), errors, times)
    hits = EXPECTED[kind]
    assert det.detections == {(0, kind): len(hits)}
    assert det.last == {(0, kind): hits[-1] * 0.5}
    assert min(hits) > 3000  # nothing before the jump


@pytest.mark.parametrize("kind", sorted(ERROR_DETECTORS))
def test_batches_interleaved_cells_and_bool_input_give_the_same_result(kind: str) -> None:
    errors = _stream()
    quiet = (np.random.default_rng(3).random(len(errors)) < 0.05).astype(np.int64)
    cells = np.empty(2 * len(errors), dtype=np.int64)
    cells[0::2], cells[1::2] = 4, 9
    bits = np.empty(2 * len(errors), dtype=bool)
    bits[0::2], bits[1::2] = errors.astype(bool), quiet.astype(bool)
    times = np.arange(len(bits), dtype=float)
    det = ErrorDetectors(kind)
    rng, pos = np.random.default_rng(11), 0
    while pos < len(bits):
        k = int(rng.integers(1, 700))
        det.update(cells[pos : pos + k], bits[pos : pos + k], times[pos : pos + k])
        pos += k
    hits = EXPECTED[kind]
    quiet_hits = _river_indices(kind, quiet)
    assert det.detections.get((4, kind)) == len(hits)
    assert det.last[(4, kind)] == 2.0 * hits[-1]  # cell 4's events sit at even positions
    assert det.detections.get((9, kind), 0) == len(quiet_hits)


def test_to_dict_and_load_round_trip() -> None:
    det = ErrorDetectors("ddm")
    errors = _stream()
    det.update(np.full(len(errors), 1, dtype=np.int64), errors, np.arange(len(errors), dtype=float))
    keys = [("m", "a"), ("m", "b")]
    rows = det.to_dict(keys)
    assert rows == [[["m", "b"], "ddm", 1, 3060.0]]
    assert json.loads(json.dumps(rows)) == rows
    fresh = ErrorDetectors("ddm")
    fresh.load([(1, name, n, last) for _k, name, n, last in rows])
    assert fresh.detections == det.detections and fresh.last == det.last
    fresh.load([(1, "ddm", 2, 10.0), (0, "ddm", 1, -math.inf)])
    assert fresh.detections == {(1, "ddm"): 3, (0, "ddm"): 1}
    assert fresh.last == {(1, "ddm"): 3060.0, (0, "ddm"): -math.inf}


def test_importing_does_not_load_river() -> None:
    """river (and through it urllib.request) is imported when a detector is built only."""
    code = (
        "import sys\n"
        "import tilewatch.aggregators.labels.error_detectors\n"
        "import tilewatch.aggregators.labels.join\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'river'"
        " or m == 'urllib.request'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", sorted(ERROR_DETECTORS))
def test_cost_per_update(kind: str) -> None:
    """Reported (-s); bounded loosely, at 5x river's own cost on the same stream plus 1 µs."""
    errors = np.tile(_stream(), 2)
    t0 = time.perf_counter()
    _river_indices(kind, errors)
    t1 = time.perf_counter()
    ErrorDetectors(kind).update(
        np.zeros(len(errors), dtype=np.int64), errors, np.arange(len(errors), dtype=float)
    )
    t2 = time.perf_counter()
    river_cost, ours = (t1 - t0) / len(errors), (t2 - t1) / len(errors)
    print(f"\n{kind}: {ours * 1e6:.2f} µs per update (river alone {river_cost * 1e6:.2f} µs)")
    assert ours < 5 * river_cost + 1e-6


@pytest.mark.parametrize("confidence", [0.001, 1e-4])
@pytest.mark.parametrize("seed", range(6))
def test_lean_hddm_a_detects_at_river_indices(seed: int, confidence: float) -> None:
    """The lean HDDM_A the wrapper runs equals river's HDDMA update by update, detections and
    resets included, on streams with several steps up and down."""
    from tilewatch.aggregators.labels.error_detectors import _LeanHDDMA

    rng = np.random.default_rng(seed)
    rates = [0.05, 0.4, 0.1, 0.6, 0.02, 0.3, 0.2, 0.7][seed % 2 :]
    bits = np.concatenate([rng.random(1500) < r for r in rates]).tolist()
    lean, ref = _LeanHDDMA(confidence), binary.HDDMA(drift_confidence=confidence)
    got, want = [], []
    for i, b in enumerate(bits):
        ref.update(b)
        if lean.update(b):
            got.append(i)
        if ref.drift_detected:
            want.append(i)
    assert got == want
    assert want  # the steps up are found


def test_the_wrapper_runs_the_lean_hddm_a() -> None:
    from tilewatch.aggregators.labels.error_detectors import _LeanHDDMA

    det = ErrorDetectors("hddm_a")
    det.update(np.zeros(10, dtype=np.int64), np.zeros(10, dtype=bool), np.arange(10.0))
    assert all(isinstance(d, _LeanHDDMA) for d in det._detectors.values())
