"""tilewatch baseline on multi-class reference data: class shares and confidence histograms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings
from tilewatch.cli import main
from tilewatch.reference_file import load_baseline

CLASSES = ["buy", "sell", "hold"]
CONFIG = """
[events]
scores = "probs"
classes = ["buy", "sell", "hold"]
"""


def rows(n: int, seed: int = 4) -> tuple[list[dict[str, Any]], np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([2.0, 1.0, 0.5], n).round(6)
    out = []
    for i, p in enumerate(probs.tolist()):
        row: dict[str, Any] = {
            "model": "intent",
            "segment": "a" if i % 2 else "b",
            "region": "r",
            "timestamp": 1767225600 + i,
            "label": CLASSES[i % 3],
        }
        # Half as lists in the configured order, half as objects.
        row["probs"] = p if i % 2 else dict(zip(CLASSES, p, strict=True))
        out.append(row)
    return out, probs


def run(tmp_path: Path, lines: list[str]) -> int:
    (tmp_path / "tilewatch.toml").write_text(CONFIG)
    (tmp_path / "ref.jsonl").write_text("\n".join(lines) + "\n")
    return main(
        [
            "baseline",
            "--config",
            str(tmp_path / "tilewatch.toml"),
            "--input",
            str(tmp_path / "ref.jsonl"),
            "--output",
            str(tmp_path / "baseline.json"),
        ]
    )


def test_class_shares_and_confidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, probs = rows(400)
    bad = [
        orjson.dumps({**events[0], "probs": [0.5, 0.5]}).decode(),  # length
        orjson.dumps({**events[0], "probs": {"buy": 0.9, "sell": 0.3}}).decode(),  # sum
        orjson.dumps({**events[0], "probs": {"buy": "x"}}).decode(),  # not a number
    ]
    assert run(tmp_path, [orjson.dumps(e).decode() for e in events] + bad) == 0
    err = capsys.readouterr().err
    assert "ref.jsonl:401: probs: a list of 3 probabilities ([events] classes) expected" in err
    assert "ref.jsonl:402: probs: probabilities sum to 1.2, not 1" in err
    assert "ref.jsonl:403: probs: probability of 'buy' is not a number" in err
    written = json.loads((tmp_path / "baseline.json").read_text())
    model = written["models"]["intent"]
    top = probs.argmax(axis=1)
    expected = {c: float(np.mean(top == j)) for j, c in enumerate(CLASSES)}
    assert model["predictions"] == pytest.approx(dict(sorted(expected.items())))
    # The score histogram is that of the top-class probability (the confidence).
    confidence = probs.max(axis=1) / probs.sum(axis=1)
    edges = np.asarray(model["score"]["edges"])
    counts = np.histogram(confidence, bins=edges)[0]
    assert model["score"]["shares"] == pytest.approx((counts / counts.sum()).tolist())
    # The drift profile then tests the class mix on the baseline's classes.
    profile = DriftProfile(DriftSettings(), (0.0, 1.0), load_baseline(tmp_path / "baseline.json"))
    assert profile.spec("intent").classes == {"buy": 0, "hold": 1, "sell": 2}


def test_csv_rows_with_one_column_per_class(tmp_path: Path) -> None:
    """In CSV the probabilities are columns named <scores>.<class>."""
    events, probs = rows(200)
    header = "model,segment,region,timestamp,probs.buy,probs.sell,probs.hold"
    lines = [header] + [
        ",".join(
            [e["model"], e["segment"], e["region"], str(e["timestamp"])] + [str(p) for p in row]
        )
        for e, row in zip(events, probs.tolist(), strict=True)
    ]
    (tmp_path / "tilewatch.toml").write_text(CONFIG)
    (tmp_path / "ref.csv").write_text("\n".join(lines) + "\n")
    args = ["baseline", "--config", str(tmp_path / "tilewatch.toml"), "--input"]
    assert main([*args, str(tmp_path / "ref.csv"), "--output", str(tmp_path / "b.json")]) == 0
    model = json.loads((tmp_path / "b.json").read_text())["models"]["intent"]
    top = probs.argmax(axis=1)
    expected = {c: float(np.mean(top == j)) for j, c in enumerate(CLASSES)}
    assert model["predictions"] == pytest.approx(dict(sorted(expected.items())))
