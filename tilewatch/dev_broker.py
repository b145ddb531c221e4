"""``tilewatch broker``: the embedded dev broker on its own, for ``tilewatch run`` without Docker.

It is the broker of ``tilewatch demo`` (Tansu, in memory): start it in one terminal, point
``produce-demo`` and a config's ``[kafka] bootstrap_servers`` at the address it prints, and
stop it with Ctrl-C or SIGTERM. Nothing is kept after it stops.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.errors import StreamError

__all__ = ["DEFAULT_PORT", "run_broker"]

#: Kafka's usual port, so that a config written for a local Kafka works unchanged.
DEFAULT_PORT = 9092


def _check_free(host: str, port: int) -> None:
    """Fail with a clear message when ``host:port`` is taken (Tansu would only log it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StreamError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is a Kafka already running "
                "there? choose another --port, or --port 0 for a free one"
            ) from exc


def run_broker(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    topics: Sequence[str] = ("predictions",),
    partitions: int = 6,
    out: TextIO = sys.stdout,
    duration: float | None = None,
) -> int:
    """Run the embedded broker until Ctrl-C/SIGTERM (a ``KeyboardInterrupt``) or ``duration``.

    ``port`` 0 picks a free port. Creates ``topics`` with ``partitions`` partitions each and
    prints the bootstrap address first thing, so scripts can read it from the first line.
    """
    if port:
        _check_free(host, port)
    broker = EmbeddedBroker(host=host, port=port or None).start()
    try:
        print(f"tilewatch broker: listening on {broker.bootstrap}", file=out, flush=True)
        for topic in topics:
            broker.create_topic(topic, partitions=partitions)
        print(
            f"  topics: {', '.join(f'{t} ({partitions} partitions)' for t in topics) or 'none'}"
            "\n"
            f'  in a config:  [kafka] bootstrap_servers = "{broker.bootstrap}"\n'
            f"  traffic:      tilewatch produce-demo --bootstrap {broker.bootstrap}\n"
            f"  storage in memory, log {broker.log_path}; Ctrl-C stops it",
            file=out,
            flush=True,
        )
        started = time.monotonic()
        while broker.running:
            if duration is not None and time.monotonic() - started >= duration:
                break
            time.sleep(0.2)
        else:
            raise StreamError(f"the embedded broker exited; its log is {broker.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        # In memory: nothing to flush; Tansu delays SIGTERM while a group join is pending.
        broker.stop(timeout=1.0)
    print("tilewatch broker: stopped", file=out, flush=True)
    return 0
