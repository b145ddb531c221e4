"""``tilewatch run --config FILE`` as a subprocess: start, wait on its scrape, signal, stop.

The fixtures that start and always stop it live in ``tests/e2e/conftest.py``
(``start_tilewatch``); :func:`parse_summary` reads the line it prints when it exits.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.support.config import read_config
from tests.e2e.support.scrape import (
    Sample,
    compare_metrics,
    parse_metrics,
    scrape,
    summarize,
    value,
)

TILEWATCH_BIN = str(Path(sys.executable).with_name("tilewatch"))
WAIT_TIMEOUT = 60.0


class TilewatchProcess:
    """``tilewatch run --config FILE`` as a subprocess, with output in files next to it."""

    def __init__(self, config: Path, name: str = "tilewatch") -> None:
        self.config = config
        cfg = read_config(config)
        self.group_id: str = cfg["kafka"]["group_id"]
        self.dead_letter_topic: str = cfg["kafka"]["dead_letter_topic"]
        self.url = f"http://{cfg['exporter']['listen']}/metrics"
        self.stdout_path = config.parent / f"{name}.stdout"
        self.stderr_path = config.parent / f"{name}.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> TilewatchProcess:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [TILEWATCH_BIN, "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr_tail(self, lines: int = 40) -> str:
        if not self.stderr_path.exists():
            return "(no stderr)"
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])

    def describe(self) -> str:
        code = None if self.process is None else self.process.poll()
        return f"tilewatch pid {self.pid} (exit code {code}); stderr tail:\n{self.stderr_tail()}"

    def scrape(self) -> str:
        return scrape(self.url)

    def metrics(self) -> dict[Sample, float]:
        return parse_metrics(self.scrape())

    def wait_until(
        self,
        what: str,
        predicate: Callable[[dict[Sample, float]], bool],
        timeout: float = WAIT_TIMEOUT,
    ) -> dict[Sample, float]:
        """Scrape until ``predicate(metrics)`` holds; fail naming ``what`` and the stderr tail."""
        deadline = time.monotonic() + timeout
        last: dict[Sample, float] | None = None
        error = ""
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"tilewatch exited while waiting for {what}: {self.describe()}")
            try:
                last = self.metrics()
            except (urllib.error.URLError, OSError) as exc:
                error = repr(exc)
            else:
                if predicate(last):
                    return last
            if time.monotonic() >= deadline:
                shown = "no scrape succeeded" if last is None else summarize(last)
                pytest.fail(
                    f"waited {timeout:g} s for {what}; last scrape: {shown} {error}\n"
                    f"{self.describe()}"
                )
            time.sleep(0.05)

    def wait_read(self, expected: int, timeout: float = WAIT_TIMEOUT) -> dict[Sample, float]:
        """Wait until ``tilewatch_read_events_total == expected``."""
        return self.wait_until(
            f"tilewatch_read_events_total == {expected}",
            lambda m: value(m, "tilewatch_read_events_total") == expected,
            timeout,
        )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"tilewatch did not exit within {timeout:g} s: {self.describe()}")

    def stop(self) -> None:
        """Terminate (then kill) the process if it still runs; idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def settled_metrics(
    process: TilewatchProcess,
    what: str,
    predicate: Callable[[dict[Sample, float]], bool],
    timeout: float = WAIT_TIMEOUT,
    gap: float = 0.3,
) -> dict[Sample, float]:
    """A scrape for which ``predicate`` holds and that equals the scrape taken ``gap`` s before
    it in every compared family: the replica is idle and its rolling windows were refreshed
    (the loop refreshes on every empty poll, and ``poll_timeout`` is below ``gap``)."""
    deadline = time.monotonic() + timeout
    previous: dict[Sample, float] | None = None
    while True:
        metrics = process.wait_until(what, predicate, max(deadline - time.monotonic(), 0.1))
        if previous is not None and not compare_metrics(previous, metrics, rel=0.0):
            return metrics
        if time.monotonic() >= deadline:
            pytest.fail(f"metrics of {process.describe()} did not settle for {what}")
        previous = metrics
        time.sleep(gap)


SUMMARY_PREFIX = "tilewatch: read "


@dataclass
class Summary:
    read: int
    valid: int
    late: int
    invalid: int
    committed: dict[tuple[str, int], int]


def parse_summary(stdout: str) -> Summary:
    """Parse the last line ``tilewatch: read N records (V valid, ...); committed t/p=o ...``."""
    lines = [line for line in stdout.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert len(lines) == 1, f"expected one summary line in stdout, got {stdout!r}"
    match = re.fullmatch(
        r"tilewatch: read (\d+) records \((\d+) valid, (\d+) late, (\d+) invalid\); "
        r"committed ?(.*)",
        lines[0],
    )
    assert match is not None, f"summary line not understood: {lines[0]!r}"
    committed: dict[tuple[str, int], int] = {}
    for item in match[5].split():
        tp, _, offset = item.rpartition("=")
        topic, _, partition = tp.rpartition("/")
        committed[(topic, int(partition))] = int(offset)
    read, valid, late, invalid = (int(match[i]) for i in range(1, 5))
    return Summary(read, valid, late, invalid, committed)
