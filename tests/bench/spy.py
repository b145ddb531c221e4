"""py-spy around a benchmark's process: collapsed stacks of every thread, and their top entries."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def start_py_spy(prefix: Path, pid: int, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Record process ``pid`` with py-spy (raw collapsed stacks, every thread) into
    ``PREFIX-NAME.txt`` until :func:`stop_py_spy`."""
    out = prefix.with_name(f"{prefix.name}-{name}.txt")
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--rate",
            "100",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return spy, out


def stop_py_spy(spy: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    spy.send_signal(signal.SIGINT)
    spy.wait(30)
    return {"path": str(out), **top_entries(out)}


def top_entries(path: Path, n: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares of the functions in py-spy's collapsed stacks."""
    self_n: dict[str, int] = {}
    incl: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        threads[frames[0]] = threads.get(frames[0], 0) + k
        leaf = frames[-1]
        self_n[leaf] = self_n.get(leaf, 0) + k
        for f in set(frames[1:]):
            incl[f] = incl.get(f, 0) + k
    total = max(total, 1)

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, c / total) for f, c in sorted(d.items(), key=lambda kv: -kv[1])[:n]]

    return {
        "samples": total,
        "threads": top(threads),
        "self": top(self_n),
        "inclusive": top(incl),
    }
