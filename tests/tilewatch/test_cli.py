"""The ``tilewatch`` command line: version, check-config, errors, run failing fast, the script."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from tilewatch import __version__
from tilewatch.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tilewatch.toml"
SCRIPT = Path(sys.executable).parent / "tilewatch"


@pytest.fixture
def keep_signal_handlers() -> Iterator[None]:
    """``run`` installs SIGINT/SIGTERM handlers in the calling process: put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port held by a listening socket for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def _run_config(tmp_path: Path, listen_port: int) -> Path:
    """A config whose bootstrap server is a free port nobody listens on."""
    path = tmp_path / "run.toml"
    path.write_text(
        "[kafka]\n"
        f'bootstrap_servers = "127.0.0.1:{free_port()}"\n'
        'topics = ["predictions"]\n'
        "[exporter]\n"
        f'listen = "127.0.0.1:{listen_port}"\n'
    )
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tilewatch {__version__}"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_check_config_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{EXAMPLE}: ok"
    assert "kafka: 127.0.0.1:9092 topics=['predictions'] group=tilewatch" in out
    assert "dead_letter_topic=tilewatch-dead-letter" in out
    assert (
        "cells: dimensions=['segment', 'region'] window=60.0s grace=30.0s "
        "rolling_events=1000 max_cells=10000" in out
    )
    assert "exporter: http://0.0.0.0:9464/metrics" in out
    assert "state: checkpoints to tilewatch-tilewatch-changelog every 10.0s" in out


def test_check_config_bad_duration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tilewatch.toml"
    path.write_text('[cells]\nwindow = "soon"\n')
    assert main(["check-config", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f'tilewatch: error: {path}: [cells].window: expected a duration like "1m", got "soon"\n'
    )


def test_check_config_invalid_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[cells\n")
    assert main(["check-config", "--config", str(path)]) == 2
    assert f"{path}: invalid TOML" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_missing_config_file(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent.toml"
    assert main([command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tilewatch: error: {path}: cannot read the config file")
    assert "No such file or directory" in err


def test_run_with_busy_metrics_port_fails_fast_in_a_subprocess(
    tmp_path: Path, busy_port: int
) -> None:
    """Safety net: a hang here would be a bug (run must bind the port before touching Kafka)."""
    config = _run_config(tmp_path, busy_port)
    started = time.monotonic()
    proc = subprocess.run(
        [str(SCRIPT), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"cannot listen on 127.0.0.1:{busy_port} for metrics" in proc.stderr
    assert "Address already in use" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 20


def test_run_with_busy_metrics_port_in_process(
    tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str], keep_signal_handlers: None
) -> None:
    config = _run_config(tmp_path, busy_port)
    assert main(["run", "--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(
        f"tilewatch: error: cannot listen on 127.0.0.1:{busy_port} for metrics: "
    )


def test_console_script_help() -> None:
    proc = subprocess.run(
        [str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: tilewatch")
    for command in ("run", "demo", "produce-demo", "check-config"):
        assert command in proc.stdout, command


def test_unknown_log_level_is_a_usage_error(tmp_path: Path) -> None:
    # In a subprocess: under pytest the root logger already has handlers, so basicConfig
    # ignores the level and the bug does not show in-process.
    proc = subprocess.run(
        [str(SCRIPT), "--log-level", "bogus", "check-config", "--config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2
    assert "--log-level" in proc.stderr


def test_unknown_demo_statistic_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tilewatch.demo

    calls: list[dict[str, object]] = []

    def fake_run_demo(**kwargs: object) -> int:  # never start a broker from this test
        calls.append(kwargs)
        return 0

    monkeypatch.setattr(tilewatch.demo, "run_demo", fake_run_demo)
    with pytest.raises(SystemExit) as info:
        main(["demo", "--statistic", "p99", "--duration", "1"])
    assert info.value.code == 2
    assert "window_score_mean" in capsys.readouterr().err
    assert calls == []
