"""``tilewatch run`` is not silent after assignment: a progress line every interval, and the
summary once at the end."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import fast_client_settings, free_port
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.producer import produce_traffic
from tilewatch.streams.dev.traffic import TrafficSpec

SCRIPT = Path(sys.executable).parent / "tilewatch"
PROGRESS = re.compile(
    r"INFO tilewatch\.progress: progress: read ([\d,]+) records \(([\d,]+) valid, ([\d,]+) "
    r"invalid, ([\d,]+) late\), lag ([\d,]+), ([\d,]+) cells, ([\d,]+) events/s$"
)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.broker
def test_run_logs_progress_and_one_summary(
    broker: EmbeddedBroker, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(3)
    total = 3000
    produce_traffic(
        broker.bootstrap,
        topic,
        spec=TrafficSpec(invalid_share=0.05, seed=3),
        rate=50_000,
        total=total,
    )
    client = "".join(f"{k} = {v}\n" for k, v in fast_client_settings().items())
    config = tmp_path / "run.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{broker.bootstrap}"\ntopics = ["{topic}"]\n'
        f'group_id = "g-{uuid.uuid4().hex}"\n'
        f"[kafka.client]\n{client}"
        f'[exporter]\nlisten = "127.0.0.1:{free_port()}"\n[state]\ncheckpoints = false\n'
    )
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(SCRIPT), "run", "--config", str(config), "--progress-interval", "1"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        done: list[re.Match[str]] = []
        while not done:
            assert time.monotonic() < deadline, stderr_path.read_text()
            assert proc.poll() is None, stderr_path.read_text()
            lines = stderr_path.read_text().splitlines()
            matches = [m for m in map(PROGRESS.search, lines) if m]
            done = [m for m in matches if _int(m[1]) == total]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    read, valid, invalid, late, lag, cells, _rate = (_int(g) for g in done[0].groups())
    assert valid + invalid + late == read == total
    assert invalid > 0 and lag == 0 and cells > 0
    stderr = stderr_path.read_text()
    assert all(PROGRESS.search(line) for line in stderr.splitlines() if "progress:" in line)
    # Progress lines a second apart, the rate measured between them.
    assert len([line for line in stderr.splitlines() if PROGRESS.search(line)]) >= 2
    # The start-up time, once: from the process start to the first counted records.
    first = re.findall(
        r"INFO tilewatch\.app: first records counted \((\d+) read\), ([\d.]+) s after the "
        r"process started$",
        stderr,
        flags=re.MULTILINE,
    )
    assert len(first) == 1, stderr
    assert 0 < int(first[0][0]) <= total
    assert 0 < float(first[0][1]) < 60
    summaries = [
        line
        for line in (out + stderr).splitlines()
        if re.search(r"read \d+ records", line) and "progress:" not in line
    ]
    assert summaries == [line for line in out.splitlines() if line.startswith("tilewatch: read ")]
    assert len(summaries) == 1, out + stderr
    assert summaries[0].startswith(f"tilewatch: read {total} records (")
