"""``tilewatch demo`` end to end: its own broker, traffic, monitor, heatmap, clean stop."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tilewatch.demo
from tilewatch.streams.dev.broker import EmbeddedBroker


def _tansu_children() -> set[int]:
    """Pids of tansu processes that are children of this test process."""
    proc = subprocess.run(
        ["pgrep", "-P", str(os.getpid()), "-f", "tansu"], capture_output=True, text=True
    )
    return {int(pid) for pid in proc.stdout.split()}


@pytest.mark.broker
def test_demo_runs_and_stops_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    brokers: list[EmbeddedBroker] = []

    class RecordedBroker(EmbeddedBroker):
        def start(self) -> EmbeddedBroker:
            brokers.append(self)
            return super().start()

    monkeypatch.setattr(tilewatch.demo, "EmbeddedBroker", RecordedBroker)
    before = _tansu_children()
    out = io.StringIO()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:  # the demo moves, and says so
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = tilewatch.demo.run_demo(
            duration=15, port=port, rate=2000, window="2s", refresh=2, out=out, color=False
        )

    text = out.getvalue()
    moved = re.search(
        rf"^tilewatch demo: port {port} is busy \(.*\); serving on port (\d+) instead$",
        text,
        re.MULTILINE,
    )
    assert moved, text
    assert int(moved[1]) != port
    assert code == 0, text
    assert "\x1b" not in text
    assert re.search(r"^metrics at http://127\.0\.0\.1:\d+/metrics", text, re.MULTILINE), text
    assert re.search(
        r"^tilewatch demo: broker 127\.0\.0\.1:\d+, topic 'predictions'", text, re.MULTILINE
    ), text

    frames = text.split("\n\n")
    last = [f for f in frames if "dead-lettered" in f][-1]
    lines = last.strip().splitlines()
    assert re.fullmatch(
        r"\S+: window_score_mean   \(last closed window ends "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)",
        lines[0],
    ), last
    assert re.search(r" 0\.\d{3} ", last), last  # a closed window with values
    # At least one segment row with its counts line below it.
    rows = [
        line
        for line in lines[2:]
        if line[:16].strip()
        and not line.startswith(("read ", "metrics at", "colour scale", "health:"))
    ]
    assert [r for r in rows if not r.startswith("__all__")], last
    assert re.search(r"n=[1-9]\d*", last), last

    status = re.search(
        r"^read (\d+)  invalid (\d+)  dead-lettered (\d+)  lag (\d+)", last, re.MULTILINE
    )
    assert status, last
    assert int(status[1]) > 0
    assert int(status[2]) > 0  # the demo sends 1% invalid records
    final = text.rstrip().splitlines()[-1]
    summary = re.fullmatch(
        r"tilewatch demo: stopped: read (\d+) records \((\d+) valid, (\d+) late, (\d+) invalid\)",
        final,
    )
    assert summary, final
    assert int(summary[1]) == sum(int(summary[i]) for i in (2, 3, 4)) > 0, final

    assert len(brokers) == 1
    assert not brokers[0].running
    assert _tansu_children() <= before


def _tansu_pids_under(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    pids = []
    for child in out.split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"tansu" in cmdline:
            pids.append(int(child))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.broker
def test_sigterm_stops_the_demo_broker() -> None:
    script = Path(sys.executable).parent / "tilewatch"
    brokers: list[int] = []
    with subprocess.Popen(
        [str(script), "demo", "--port", "0", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as demo:
        try:
            assert demo.stdout is not None
            deadline = time.monotonic() + 30
            line = ""
            while "metrics at" not in line:
                assert time.monotonic() < deadline, "demo did not start"
                ready, _, _ = select.select([demo.stdout], [], [], 1.0)
                if ready:
                    line = demo.stdout.readline()
                    assert line, "demo exited before serving metrics"
            brokers = _tansu_pids_under(demo.pid)
            assert len(brokers) == 1
            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=30)
            deadline = time.monotonic() + 3
            while any(_alive(pid) for pid in brokers) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not [pid for pid in brokers if _alive(pid)], "tansu broker left running"
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
            for pid in brokers:  # the orphan, if the bug is there: ours to clean up, by pid
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
