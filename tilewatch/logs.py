"""Logging of the command line: tilewatch's own lines as they are, kafka-python's summarised.

kafka-python logs every failed connection attempt, its backoff and its retry, at ERROR and
WARNING: an unreachable broker prints dozens of lines a minute, which bury the one line that
says what is wrong. :class:`RepeatSummary` lets the first message of each kind through, counts
the repeats for ``interval`` seconds, and says how many it held back with the next message of
that kind (or at exit, :meth:`RepeatSummary.flush`). The errors a client logs about its own
close (a refresh cancelled on Ctrl-C) are dropped below DEBUG.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RepeatSummary", "configure_logging"]

#: kafka-python messages about connecting: one kind, whatever the broker, backoff or errno.
_CONNECTION = re.compile(
    r"connect|bootstrap|ECONNREFUSED|not ready|unable to|timed out|DNS|getaddrinfo|"
    r"NoBrokersAvailable|node not ready|disconnected",
    re.IGNORECASE,
)
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")
#: kafka-python errors about its own close (a metadata refresh or a send cut short when the
#: client closes, as on Ctrl-C): not a problem with Kafka, dropped unless ``tracebacks``.
_OWN_CLOSE = re.compile(
    r"failed:? Cancelled|Transport closed for writes|CancelledError|"
    r"\(closed\)>: Error receiving network data|"  # a read cut short by the client's close
    r"Error closing coroutine for cancelled task"  # a task of its I/O loop, closed with it
)


@dataclass
class _Seen:
    since: float
    held: int = 0
    level: int = logging.WARNING
    name: str = "kafka"


class RepeatSummary(logging.Filter):
    """A handler filter: the first record of a kind from ``prefix`` loggers passes, repeats
    within ``interval`` seconds are counted and held back; their tracebacks are dropped unless
    ``tracebacks``.

    Examples
    --------
    >>> clock = iter([0.0, 1.0, 2.0, 70.0]).__next__
    >>> summary = RepeatSummary(interval=60.0, clock=clock)
    >>> def record(msg):
    ...     return logging.LogRecord("kafka.net", logging.ERROR, "", 0, msg, None, None)
    >>> [summary.filter(record(f"Connection failed: 111 ECONNREFUSED ({i})")) for i in range(3)]
    [True, False, False]
    >>> last = record("Connection failed: 111 ECONNREFUSED")
    >>> summary.filter(last), last.getMessage()
    (True, 'Connection failed: 111 ECONNREFUSED (and 2 similar kafka-python messages in 70 s)')
    """

    def __init__(
        self,
        prefix: str = "kafka",
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        tracebacks: bool = False,
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.tracebacks = tracebacks
        self.interval = interval
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._handlers: list[logging.Handler] = []

    def _kind(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if _CONNECTION.search(text):
            return "connection"
        return f"{record.name}:{_NUMBERS.sub('#', text)}"

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name == self.prefix or record.name.startswith(self.prefix + ".")):
            return True
        if not self.tracebacks:  # a client's internal traceback says nothing to a person
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            if _OWN_CLOSE.search(record.getMessage()):
                return False
        now = self._clock()
        kind = self._kind(record)
        seen = self._seen.get(kind)
        if seen is not None and now - seen.since < self.interval:
            seen.held += 1
            return False
        if seen is not None and seen.held:
            record.msg = (
                f"{record.getMessage()} (and {seen.held} similar kafka-python messages in "
                f"{now - seen.since:.0f} s)"
            )
            record.args = None
        self._seen[kind] = _Seen(now, 0, record.levelno, record.name)
        return True

    def install(self) -> None:
        """Filter every handler of the root logger (where kafka-python's records end up)."""
        self._handlers = list(logging.getLogger().handlers)
        for handler in self._handlers:
            handler.addFilter(self)

    def remove(self) -> None:
        """Take the filter off the handlers :meth:`install` put it on (an in-process caller of
        the CLI, such as a test, keeps its logging as it was)."""
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers = []

    def flush(self) -> None:
        """Say how many messages are still held back (call once, at exit)."""
        held = [seen for seen in self._seen.values() if seen.held]
        self._seen.clear()
        for seen in held:
            logging.getLogger(seen.name).log(
                seen.level, "%d more kafka-python messages like the above were not shown", seen.held
            )


def configure_logging(level: str) -> RepeatSummary:
    """Log to stderr at ``level``; kafka-python at WARNING and summarised. Returns the filter
    (flush and remove it at exit)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # "Task ... ran for 0.19s, blocking the event loop": kafka-python 3's note on its own IO
    # loop under CPU load; it tells a user nothing they can act on.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    summary = RepeatSummary(tracebacks=level == "DEBUG")
    summary.install()
    return summary
