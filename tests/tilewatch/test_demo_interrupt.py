"""Ctrl-C in ``tilewatch demo`` as a person types it: in a real terminal (a pty), where the
line discipline sends SIGINT to the whole foreground process group."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.tilewatch.test_demo import _alive, _tansu_pids_under


def _read_until(fd: int, needle: bytes, timeout: float, seen: bytearray) -> bool:
    """Read the pty into ``seen`` until ``needle`` appears after the current end, or EOF."""
    start = len(seen)
    deadline = time.monotonic() + timeout
    while needle not in seen[start:]:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child side closed
            return False
        if not chunk:
            return False
        seen += chunk
    return True


def _drain(fd: int, timeout: float, seen: bytearray) -> None:
    """Read until the child closes the terminal (EOF/EIO) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        seen += chunk


@pytest.mark.broker
@pytest.mark.parametrize("consuming", [False, True], ids=["while-joining", "while-consuming"])
def test_ctrl_c_in_a_terminal_stops_everything_quickly_and_quietly(consuming: bool) -> None:
    """At the first frame the consumer group is still joining; later it is consuming."""
    script = str(Path(sys.executable).parent / "tilewatch")
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session of its own with the pty as controlling terminal
        os.environ["TERM"] = "xterm-256color"
        os.execv(script, [script, "demo", "--port", "0"])
    seen = bytearray()
    brokers: list[int] = []
    try:
        assert _read_until(fd, b"metrics at", 30, seen), seen.decode(errors="replace")
        assert _read_until(fd, b"dead-lettered", 30, seen), seen.decode(errors="replace")
        if consuming:  # wait for a frame that has read 100 records or more
            deadline = time.monotonic() + 40
            while not re.search(rb"\nread [1-9]\d{2,}  invalid", bytes(seen)):
                assert time.monotonic() < deadline, seen.decode(errors="replace")
                assert _read_until(fd, b"dead-lettered", 10, seen)
        brokers = _tansu_pids_under(pid)
        assert len(brokers) == 1
        before = len(seen)
        os.write(fd, b"\x03")  # the terminal's interrupt character: SIGINT to the group
        started = time.monotonic()
        _drain(fd, 20, seen)
        _, status = os.waitpid(pid, 0)
        took = time.monotonic() - started
        pid = 0
        after = seen[before:].decode(errors="replace")
        assert os.waitstatus_to_exitcode(status) == 0, after
        assert took < 3.0, f"Ctrl-C took {took:.1f} s:\n{after}"
        assert "Traceback" not in after, after
        errors = [line for line in after.splitlines() if " ERROR " in line or " WARNING " in line]
        assert not errors, after
        summaries = [line for line in after.splitlines() if "tilewatch demo: stopped" in line]
        assert len(summaries) == 1, after
        assert "read " in summaries[0] and " valid" in summaries[0], summaries
        deadline = time.monotonic() + 3
        while any(_alive(b) for b in brokers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [b for b in brokers if _alive(b)], "the broker outlived the demo"
    finally:
        os.close(fd)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for b in brokers:
            if _alive(b):
                os.kill(b, signal.SIGKILL)
