"""``tilewatch broker``: the embedded broker on its own, reachable at the address it prints,
stopped cleanly by Ctrl-C or SIGTERM; a busy port is a clear error."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from kafka import KafkaAdminClient

from tests.tilewatch.test_demo import _alive, _tansu_pids_under
from tilewatch.streams.dev.broker import EmbeddedBroker

SCRIPT = Path(sys.executable).parent / "tilewatch"


class _Lines:
    """The lines of a pipe, read by a thread (select() misses lines already buffered)."""

    def __init__(self, pipe: IO[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.queue.put(line)
        self.queue.put("")

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no line with {needle!r} within {timeout} s: {self.seen}")
            assert line, f"tilewatch broker exited early: {self.seen}"
            self.seen.append(line)
            if needle in line:
                return line

    def rest(self, timeout: float) -> str:
        """The remaining lines, up to the end of the pipe."""
        out = []
        deadline = time.monotonic() + timeout
        while (line := self.queue.get(timeout=max(deadline - time.monotonic(), 0.01))) != "":
            out.append(line)
        return "".join(out)


@pytest.mark.broker
@pytest.mark.parametrize(
    ("signum", "ignored"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGINT", "SIGTERM", "SIGINT-ignored-by-the-parent"],
)
def test_broker_serves_the_printed_address_and_stops_on_a_signal(
    signum: int, ignored: bool
) -> None:
    """``ignored``: started as a script's background job is (SIGINT ignored, which a child
    inherits): Ctrl-C's signal still stops it."""
    with subprocess.Popen(
        [str(SCRIPT), "broker", "--port", "0", "--topic", "predictions", "--topic", "outcomes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else None,
    ) as proc:
        brokers: list[int] = []
        assert proc.stdout is not None and proc.stderr is not None
        lines = _Lines(proc.stdout)
        try:
            first = lines.wait_for("listening on", 30)
            match = re.fullmatch(r"tilewatch broker: listening on (127\.0\.0\.1:\d+)\n", first)
            assert match, first
            bootstrap = match[1]
            lines.wait_for("bootstrap_servers", 30)  # the topics exist by now
            brokers = _tansu_pids_under(proc.pid)
            assert len(brokers) == 1
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
            try:
                topics = set(admin.list_topics())
            finally:
                admin.close()
            assert {"predictions", "outcomes"} <= topics
            proc.send_signal(signum)
            started = time.monotonic()
            proc.wait(timeout=10)
            assert time.monotonic() - started < 3
            out, err = lines.rest(5), proc.stderr.read()
            assert proc.returncode == 0, err
            assert out.rstrip().endswith("tilewatch broker: stopped"), out
            assert "Traceback" not in err, err
            deadline = time.monotonic() + 3
            while any(_alive(b) for b in brokers) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not [b for b in brokers if _alive(b)]
        finally:
            if proc.poll() is None:
                proc.kill()
            for b in brokers:
                if _alive(b):
                    os.kill(b, signal.SIGKILL)


def test_broker_on_a_busy_port_says_so() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        proc = subprocess.run(
            [str(SCRIPT), "broker", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"tilewatch: error: cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "--port 0" in proc.stderr


@pytest.mark.broker
def test_produce_demo_says_what_it_does_then_what_it_did(
    broker: EmbeddedBroker, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    from tilewatch.cli import main

    topic = make_topic(3)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(
            [
                "produce-demo",
                "--bootstrap",
                broker.bootstrap,
                "--topic",
                topic,
                "--total",
                "500",
                "--rate",
                "5000",
            ]
        )
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"tilewatch: sending about 5000 events/s to {topic!r} at {broker.bootstrap} "
        "until 500 events",
        f"tilewatch: sent 500 events to {topic!r}",
    ]
