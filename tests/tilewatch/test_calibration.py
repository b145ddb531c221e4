"""The calibration check ``tilewatch baseline`` prints: ECE and the label-free estimate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests import oracles
from tilewatch.calibration import calibration_check
from tilewatch.cli import main


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bins", [5, 10, 15])
def test_against_a_reference(seed: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    s = rng.beta(2, 3, 3000)
    y = (rng.uniform(size=3000) < np.clip(s + 0.05 * seed, 0, 1)).astype(int)
    labels: list[int | None] = [int(v) for v in y]
    labels[::7] = [None] * len(labels[::7])  # unlabelled rows are left out
    keep = np.array([v is not None for v in labels])
    check = calibration_check(s.tolist(), labels, 0.4, bins=bins)
    assert check is not None
    ys, ss = y[keep].astype(float), s[keep]
    pred = ss >= 0.4
    q = np.where(pred, ss, 1 - ss)
    assert check.rows == int(keep.sum())
    assert check.calibration_error == pytest.approx(
        oracles.calibration_error(ys, ss, bins), abs=1e-12
    )
    assert check.accuracy == pytest.approx(float(np.mean(pred == (ys == 1))), abs=1e-12)
    assert check.estimated_accuracy == pytest.approx(float(q.mean()), abs=1e-12)
    assert check.bound == pytest.approx(1.959964 * math.sqrt(np.sum(q * (1 - q))) / len(q))


def test_without_threshold_or_labels_or_probabilities() -> None:
    check = calibration_check([0.2, 0.8], [0, 1], None)
    assert check is not None and math.isnan(check.accuracy) and not check.consistent
    assert "no threshold" in check.describe()
    assert calibration_check([0.2, 0.8], [None, None], 0.5) is None
    assert calibration_check([2.0, 0.8], [0, 1], 0.5) is None


def _holdout(path: Path, calibrated: bool) -> Path:
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(4000):
        s = float(rng.uniform())
        p = s if calibrated else 0.5 + 0.4 * (s - 0.5)  # overconfident scores
        rows.append({"model": "churn", "score": s, "label": int(rng.uniform() < p)})
    path.write_text("\n".join(orjson.dumps(r).decode() for r in rows) + "\n")
    return path


@pytest.mark.parametrize("calibrated", [True, False])
def test_baseline_prints_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], calibrated: bool
) -> None:
    config = tmp_path / "t.toml"
    config.write_text(
        "[labels]\nthreshold = 0.5\ncalibration_bins = 8\n[labels.thresholds]\nchurn = 0.3\n"
    )
    data = _holdout(tmp_path / "holdout.jsonl", calibrated)
    code = main(
        [
            "baseline",
            "--config",
            str(config),
            "--input",
            str(data),
            "--output",
            str(tmp_path / "b.json"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "calibration on" in line)
    assert line.startswith("model churn: calibration on 4000 labelled rows")
    assert "(8 bins)" in line and "at threshold 0.3 " in line  # [labels.thresholds] wins
    assert ("NOT consistent" in line) != calibrated
