"""The progress line ``tilewatch run`` logs every 30 seconds while it consumes.

After the partitions are assigned the loop has nothing to say unless something goes wrong; a
person watching the terminal (or a log search) still wants to know it is alive and keeping up:
records read, valid, invalid and late, the lag, the cells and the rate since the last line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.summary import RunSummary

__all__ = ["DEFAULT_INTERVAL", "Progress"]

#: Seconds between two progress lines.
DEFAULT_INTERVAL = 30.0

log = logging.getLogger("tilewatch.progress")


class Progress:
    """Formats and logs progress lines of a run from its summary and its replica state.

    Examples
    --------
    >>> from tilewatch.aggregators.cells.settings import CellSettings
    >>> clock = iter([0.0, 30.0]).__next__
    >>> summary = RunSummary()
    >>> progress = Progress(summary, ReplicaState(CellSettings()), clock=clock)
    >>> summary.read, summary.valid, summary.invalid, summary.late = 60_300, 60_000, 200, 100
    >>> print(progress.line())
    progress: read 60,300 records (60,000 valid, 200 invalid, 100 late),
    lag 0, 0 cells, 2,010 events/s
    """

    def __init__(
        self,
        summary: RunSummary,
        state: ReplicaState,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.summary = summary
        self.state = state
        self.interval = interval
        self._clock = clock
        self._last = (clock(), summary.read)

    def line(self) -> str:
        """The progress since the previous line (or since the start)."""
        now, s = self._clock(), self.summary
        with self.state.lock:
            lag = sum(self.state.ingest.lag.values())
            cells = len(self.state.registry)
        then, read_then = self._last
        rate = (s.read - read_then) / (now - then) if now > then else 0.0
        self._last = (now, s.read)
        return (
            f"progress: read {s.read:,} records ({s.valid:,} valid, {s.invalid:,} invalid, "
            f"{s.late:,} late), lag {lag:,}, {cells:,} cells, {rate:,.0f} events/s"
        )

    def run(self, stop: threading.Event) -> None:
        """Log a line every :attr:`interval` seconds until ``stop`` is set."""
        while not stop.wait(self.interval):
            log.info("%s", self.line())

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run in a daemon thread; it ends when ``stop`` is set."""
        thread = threading.Thread(target=self.run, args=(stop,), name="progress", daemon=True)
        thread.start()
        return thread
