"""``tilewatch baseline`` end to end, reading inputs, ``load_baseline`` and ``[baseline]``."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tilewatch.aggregators.drift.reference import BaselineSettings
from tilewatch.aggregators.stats.threshold import choose_threshold
from tilewatch.cli import main
from tilewatch.config import ConfigError, parse_config
from tilewatch.holdout import BaselineError
from tilewatch.reference_file import load_baseline

SOURCE = "tilewatch.toml"


def _events(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = int(rng.random() < 0.35)
        out.append(
            {
                "model": "churn",
                "score": round(float(np.clip(rng.normal(0.35 + 0.3 * label, 0.15), 0, 1)), 3),
                "label": label,
                "features": {
                    "tenure": int(rng.integers(1, 60)),
                    "plan": ["basic", "pro", "team"][i % 3],
                },
            }
        )
    return out


def _write_jsonl(path: Path, events: list[dict[str, Any]], extra: Sequence[str] = ()) -> Path:
    lines = [orjson.dumps(e).decode() for e in events] + list(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "tilewatch.toml"
    path.write_text(text)
    return path


def _run(tmp_path: Path, *inputs: Path, config: str = "", extra: Sequence[str] = ()) -> int:
    args = ["baseline", "--config", str(_config(tmp_path, config))]
    for path in inputs:
        args += ["--input", str(path)]
    return main([*args, "--output", str(tmp_path / "baseline.json"), *extra])


def _written(tmp_path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((tmp_path / "baseline.json").read_text())
    return result


def test_jsonl_and_csv_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _events(300)
    jsonl = _write_jsonl(tmp_path / "valid.jsonl", events[:200])
    csv_path = tmp_path / "valid.csv"
    rows = ["model,score,label,features.tenure,features.plan,prediction"]
    rows += [
        f"churn,{e['score']},{'true' if e['label'] else 'false'},"
        f"{e['features']['tenure']},{e['features']['plan']},"
        for e in events[200:]
    ]
    rows += ["fraud,0.25,,100.5,,1", "fraud,0.75,,,gold,0"]
    csv_path.write_text("\n".join(rows) + "\n")

    assert _run(tmp_path, jsonl, csv_path, config='[baseline]\nthreshold_rule = "max_f1"\n') == 0
    captured = capsys.readouterr()
    data = _written(tmp_path)
    assert (data["format"], data["version"]) == ("tilewatch-baseline", 2)
    assert data["created_at"].endswith("Z")
    assert [s["path"] for s in data["sources"]] == [str(jsonl), str(csv_path)]
    assert [s["format"] for s in data["sources"]] == ["jsonl", "csv"]
    assert (data["rows_read"], data["rows_bad"]) == (302, 0)
    assert sorted(data["models"]) == ["churn", "fraud"]

    churn = data["models"]["churn"]
    expected = choose_threshold([e["score"] for e in events], [e["label"] for e in events])
    assert churn["threshold"]["value"] == expected.value
    assert churn["threshold"]["f1"] == pytest.approx(expected.f1)
    assert (churn["rows"], churn["labeled_rows"]) == (300, 300)
    assert churn["features"]["tenure"]["kind"] == "numeric"
    assert churn["features"]["plan"]["top"] == pytest.approx(
        {"basic": 1 / 3, "pro": 1 / 3, "team": 1 / 3}
    )
    assert churn["prediction_source"] == "threshold"
    # Per-cell reference counts: the rows of each leaf cell on the model's bins, summing to the
    # model's rows.
    cells = churn["cells"]
    assert cells["dimensions"] == ["segment", "region"]
    assert sum(sum(row) for row in cells["hists"]["score"]) == churn["rows"]
    assert sum(cells["labeled"]) == churn["labeled_rows"]
    assert len(churn["score"]["shares"]) == 20
    scores = np.array([e["score"] for e in events])
    assert churn["score"]["mean"] == pytest.approx(scores.mean())

    fraud = data["models"]["fraud"]
    assert fraud["threshold"] is None and fraud["labeled_rows"] == 0
    assert fraud["predictions"] == {"0": 0.5, "1": 0.5} and fraud["prediction_source"] == "field"
    assert fraud["features"]["tenure"]["missing_share"] == 0.5
    assert fraud["features"]["plan"]["categories"] == ["gold"]

    out = captured.out
    assert "model churn: 300 rows (300 labelled)" in out
    assert f"threshold {expected.value:.6g} by max_f1 on 300 labelled rows" in out
    assert "model fraud: 2 rows (0 labelled)" in out
    assert "no labels: no threshold (none written)" in out
    assert "2 model(s) from 2 file(s): 302 rows read, 302 used, 0 skipped as malformed." in out
    assert "tilewatch: warning: model fraud: no labels: no threshold" in captured.err

    loaded = load_baseline(tmp_path / "baseline.json")
    assert loaded.to_dict() == data


def test_custom_event_paths_and_cost_rule(tmp_path: Path) -> None:
    events = _events(100)
    nested = [
        {"m": {"name": e["model"]}, "out": {"p": e["score"]}, "y": e["label"], "x": e["features"]}
        for e in events
    ]
    jsonl = _write_jsonl(tmp_path / "nested.jsonl", nested)
    config = (
        '[events]\nmodel = "m.name"\nscore = "out.p"\nlabel = "y"\nfeatures = "x"\n'
        '[baseline]\nthreshold_rule = "cost"\ncost_ratio = 5.0\nscore_bins = 4\n'
        "feature_bins = 3\ntop_categories = 1\n"
    )
    assert _run(tmp_path, jsonl, config=config) == 0
    churn = _written(tmp_path)["models"]["churn"]
    expected = choose_threshold(
        [e["score"] for e in events], [e["label"] for e in events], "cost", 5.0
    )
    assert churn["threshold"]["value"] == expected.value
    assert churn["threshold"]["cost"] == expected.cost and churn["threshold"]["cost_ratio"] == 5
    assert len(churn["score"]["shares"]) == 4
    assert len(churn["features"]["tenure"]["shares"]) <= 3
    assert len(churn["features"]["plan"]["top"]) == 1
    assert churn["features"]["plan"]["top"] == {"basic": 0.34}
    assert churn["features"]["plan"]["other_share"] == pytest.approx(0.66)


def test_malformed_rows_reported_counted_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = [
        '{"model": "churn", "score": "abc"}',  # line 201
        "not json",  # 202
        "[1, 2]",  # 203
        '{"model": "churn", "score": 1.5}',  # 204
        '{"model": "churn", "score": 0.5, "label": 2}',  # 205
        '{"score": 0.5}',  # 206
    ]
    path = _write_jsonl(tmp_path / "data.jsonl", _events(200), bad)
    csv_path = tmp_path / "more.csv"
    csv_path.write_text("model,score\nchurn,0.5\nchurn,\nchurn,0.1,extra\n")
    assert _run(tmp_path, path, csv_path, extra=["--max-bad-share", "0.05"]) == 0
    captured = capsys.readouterr()
    err = captured.err
    # The summary tells the rows used apart from the rows read.
    assert "from 2 file(s): 209 rows read, 201 used, 8 skipped as malformed." in captured.out
    assert f'{path}:201: score: expected a number in [0, 1], got "abc"' in err
    assert f"{path}:202: not valid JSON" in err
    assert f"{path}:203: expected a JSON object, got a list" in err
    assert f"{path}:204: score: expected a number in [0, 1], got 1.5" in err
    assert f"{path}:205: label: expected 0, 1, true, false or null, got 2" in err
    assert f"{path}:206: model: required field is missing" in err
    assert f"{csv_path}:3: score: required field is missing" in err
    assert f"{csv_path}:4: expected 2 columns as in the header, got 3" in err
    data = _written(tmp_path)
    assert (data["rows_read"], data["rows_bad"]) == (209, 8)
    assert [s["bad_rows"] for s in data["sources"]] == [6, 2]
    assert data["models"]["churn"]["rows"] == 201


def test_too_many_bad_rows_fail_and_list_the_first_20(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_jsonl(tmp_path / "data.jsonl", _events(70), ['{"model": "m"}'] * 30)
    assert _run(tmp_path, path) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "tilewatch: error: 30 of 100 rows are malformed: more than --max-bad-share 0.01 of the "
        "rows are bad; the first ones:\n"
    )
    assert f"  {path}:71: score: required field is missing" in err
    assert f"  {path}:90: score" in err and f"{path}:91:" not in err
    assert "  ... and 10 more" in err
    assert not (tmp_path / "baseline.json").exists()
    assert _run(tmp_path, path, extra=["--max-bad-share", "0.3"]) == 0


def test_all_bad_input_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [], ["{", "[]"])
    assert _run(tmp_path, path, extra=["--max-bad-share", "1"]) == 2
    err = capsys.readouterr().err
    assert "tilewatch: error: 2 of 2 rows are malformed: no valid row" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert _run(tmp_path, empty) == 2
    assert f"no valid row in {empty} (empty input)" in capsys.readouterr().err


def test_missing_file_and_unknown_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "absent.jsonl"
    assert _run(tmp_path, absent) == 2
    assert capsys.readouterr().err == (
        f"tilewatch: error: {absent}: cannot read the input file: No such file or directory\n"
    )
    odd = tmp_path / "data.txt"
    odd.write_text('{"model": "m", "score": 0.5}\n')
    assert _run(tmp_path, odd) == 2
    assert "cannot tell the format from the extension" in capsys.readouterr().err
    assert _run(tmp_path, odd, extra=["--format", "jsonl"]) == 0


def test_bad_max_bad_share_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        _run(tmp_path, tmp_path / "x.jsonl", extra=["--max-bad-share", "2"])
    assert info.value.code == 2
    assert "expected a number in [0, 1], got '2'" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow installed")
def test_parquet_without_pyarrow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")
    assert _run(tmp_path, path) == 2
    err = capsys.readouterr().err
    assert f"{path}: reading Parquet needs pyarrow, which is not installed" in err
    assert "pip install pyarrow" in err


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="needs pyarrow")
def test_parquet_with_pyarrow(tmp_path: Path) -> None:  # pragma: no cover - optional
    import pyarrow as pa
    import pyarrow.parquet as pq

    events = _events(50)
    table = pa.Table.from_pylist(events)
    pq.write_table(table, tmp_path / "data.parquet")
    assert _run(tmp_path, tmp_path / "data.parquet") == 0
    assert _written(tmp_path)["models"]["churn"]["rows"] == 50


# --- load_baseline ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not a tilewatch baseline: not valid JSON"),
        (b'{"hello": 1}', 'not a tilewatch baseline: no "format" field'),
        (
            b'{"format": "other"}',
            "not a valid tilewatch baseline: format: expected 'tilewatch-baseline', got 'other'",
        ),
        (
            b'{"format": "tilewatch-baseline", "version": 9}',
            "not a valid tilewatch baseline: version: expected one of (1, 2)",
        ),
        (
            b'{"format": "tilewatch-baseline", "version": 1}',
            "not a valid tilewatch baseline: settings: missing",
        ),
    ],
)
def test_load_baseline_refuses_foreign_and_corrupt_files(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(content)
    with pytest.raises(BaselineError) as info:
        load_baseline(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert isinstance(info.value, ConfigError)


def test_load_baseline_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="cannot read the baseline: No such file"):
        load_baseline(tmp_path / "absent.json")


# --- [baseline] config -----------------------------------------------------------------------


def test_baseline_section_defaults_and_values() -> None:
    assert parse_config({}).baseline == BaselineSettings()
    table = {
        "path": "baselines/churn.json",
        "score_bins": 10,
        "feature_bins": 5,
        "top_categories": 3,
        "threshold_rule": "cost",
        "cost_ratio": 4,
    }
    assert parse_config({"baseline": table}).baseline == BaselineSettings(
        path="baselines/churn.json",
        score_bins=10,
        feature_bins=5,
        top_categories=3,
        threshold_rule="cost",
        cost_ratio=4.0,
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"threshold_rule": "best"},
            '[baseline].threshold_rule: expected "max_f1", "youden" or "cost", got "best"',
        ),
        (
            {"threshold_rule": "cost"},
            "[baseline].cost_ratio: expected a number > 0 (cost of a false negative / cost of a "
            'false positive) since threshold_rule is "cost", got no key',
        ),
        (
            {"threshold_rule": "cost", "cost_ratio": 0},
            "[baseline].cost_ratio: expected a number > 0, got 0",
        ),
        ({"cost_ratio": "high"}, '[baseline].cost_ratio: expected a finite number, got "high"'),
        ({"score_bins": 0}, "[baseline].score_bins: expected an integer >= 1, got 0"),
        ({"feature_bins": 2.5}, "[baseline].feature_bins: expected an integer >= 1, got 2.5"),
        ({"top_categories": True}, "[baseline].top_categories: expected an integer >= 1, got true"),
        ({"path": ""}, '[baseline].path: expected a non-empty string, got ""'),
        (
            {"paht": "x"},
            "[baseline].paht: unknown key, expected one of cost_ratio, feature_bins, path, "
            "score_bins, threshold_rule, top_categories",
        ),
    ],
)
def test_baseline_section_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"baseline": table}, SOURCE)
    assert str(info.value) == f"{SOURCE}: {message}"


def test_config_error_through_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_jsonl(tmp_path / "data.jsonl", _events(10))
    assert _run(tmp_path, path, config='[baseline]\nthreshold_rule = "cost"\n') == 2
    err = capsys.readouterr().err
    assert err.startswith("tilewatch: error: ")
    assert "[baseline].cost_ratio: expected a number > 0" in err
