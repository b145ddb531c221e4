"""``tilewatch backfill`` on a JSON Lines file (the topic replay is tests/e2e/test_backfill_e2e.py):
what it reads and writes, its progress line, and its argument errors."""

from __future__ import annotations

import io
import math
from pathlib import Path

import orjson
import pytest

from tilewatch import cli
from tilewatch.backfill import Backfill, parse_time
from tilewatch.config import parse_config
from tilewatch.config.base import ConfigError
from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec

WINDOW = 10.0


def _config() -> dict[str, object]:
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["predictions"]},
        "cells": {"window": "10s", "grace": "1s"},
    }


@pytest.mark.prometheus
def test_a_jsonl_file_becomes_blocks_with_one_sample_time_per_window(
    tmp_path: Path, promtool_bin: str
) -> None:
    t0 = math.floor(1_796_000_000 / WINDOW) * WINDOW
    gen = TrafficGenerator(TrafficSpec(seed=4), start_time=t0)
    events = gen.events(3_000, spread_seconds=60.0)  # 6 windows
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events) + b"not json\n")
    out = io.StringIO()
    config = parse_config(_config(), source="<test>")
    backfill = Backfill(
        config, t0, t0 + 60.0, str(tmp_path / "blocks"), promtool=promtool_bin, out=out
    )
    result = backfill.run_file(str(path))
    # windows 0..4 close (the last one stays open: no event after it); all inside [from, to]
    assert (result.read, result.valid, result.invalid, result.windows) == (3_001, 3_000, 1, 5)
    assert result.blocks and all(
        (tmp_path / "blocks" / b / "meta.json").exists() for b in result.blocks
    )
    assert "3,001 events read, 5 windows written, done in" in out.getvalue()
    assert result.samples > 0


def test_times_and_ranges_are_checked() -> None:
    assert parse_time("7d", now=700_000.0) == 700_000.0 - 7 * 86_400
    with pytest.raises(ConfigError, match="expected a time"):
        parse_time("yesterday-ish")
    config = parse_config(_config(), source="<test>")
    with pytest.raises(ConfigError, match="must be after --from"):
        Backfill(config, 100.0, 50.0, "unused")


def test_the_cli_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tw.toml"
    config.write_text('[kafka]\nbootstrap_servers = "127.0.0.1:1"\n')
    missing = str(tmp_path / "none.jsonl")
    code = cli.main(["backfill", "--config", str(config), "--from", "0", "--input", missing])
    assert code == 2
    assert "cannot read the input file" in capsys.readouterr().err
