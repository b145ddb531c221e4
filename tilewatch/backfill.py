"""``tilewatch backfill``: history for a new deployment's dashboards, as Prometheus TSDB blocks.

The retained range of the input topic(s) (or a JSON Lines / Parquet file of events) goes
through the monitor's own batch path (:meth:`Monitor.process`: the same decoding, the same
:class:`ReplicaState`, the same collectors), with its own consumer outside the group
(:mod:`tilewatch.streams.replay`: no offsets committed, no changelog written, dead letters
counted but not produced). Each time a window is closed in every partition, the families a
scrape would return are collected from the snapshot that reports that window, and each sample
is stamped with the end of its model's window (samples without a ``model`` label with the
window's end). The OpenMetrics text of every 2-hour block range goes to a file and
``promtool tsdb create-blocks-from openmetrics`` turns it into blocks in the output folder.

Only whole windows inside ``[from, to]`` are written: the first window if it starts before
``from`` (its events before ``from`` were not read) is left out, as are the windows still open
at the end of the input (the live monitor reports them). See docs/backfill.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import orjson
from prometheus_client import CollectorRegistry

from tilewatch.aggregators.errors import TilewatchError
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.app import baseline_thresholds, build_classes, build_profile, running_detectors
from tilewatch.config import Config
from tilewatch.config.base import ConfigError, parse_duration
from tilewatch.exporters.prometheus.budget import CellBudget
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.exporters.prometheus.health_collector import HealthCollector
from tilewatch.exporters.prometheus.openmetrics import TimestampedFamilies
from tilewatch.streams.loop import Monitor
from tilewatch.streams.replay import ReplayRange, replay_batches

__all__ = ["BLOCK_SECONDS", "Backfill", "BackfillResult", "parse_time"]

#: Prometheus's block range: one OpenMetrics file (and promtool run) per range.
BLOCK_SECONDS = 7200
#: Families that describe a live consumer (its connection, lag, checkpoints, dead-letter
#: producer): a replay has none of these, so they are not backfilled.
LIVE_ONLY = (
    "tilewatch_kafka_up",
    "tilewatch_consumer_lag_events",
    "tilewatch_checkpoint",
    "tilewatch_dead_letter",
)
#: Closed windows a partition keeps during a replay (a batch may close several at once).
REPLAY_RETAIN_CLOSED = 64


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds from ``now``, epoch seconds, RFC 3339 / ISO 8601, or a duration ago.

    >>> parse_time("1700000000"), parse_time("2023-11-14T22:13:20Z")
    (1700000000.0, 1700000000.0)
    >>> parse_time("2h", now=10_000.0), parse_time("now", now=5.0)
    (2800.0, 5.0)
    """
    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return now
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_duration(text)
        except Exception:
            raise ConfigError(
                f"expected a time (epoch seconds, RFC 3339 like 2026-12-01T00:00:00Z, 'now', "
                f"or a duration ago like '7d'), got {text!r}"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class _Partition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class _FileRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp: int | None = None
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes | None]] | None = None


class _DiscardProducer:
    """Dead letters of a replay are counted (``tilewatch_invalid_events_total``), not produced:
    the live monitor already dead-lettered them."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> None:  # fmt: skip
        return None

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


def _never() -> Any:
    raise TilewatchError("a backfill reads through its own replay consumer")


def file_batches(
    path: str, topic: str, batch: int
) -> Iterator[tuple[Mapping[Any, list[Any]], int]]:
    """Batches of a JSON Lines or Parquet file as records of partition 0 of ``topic``, with the
    bytes (JSON Lines) or rows (Parquet) read so far."""
    tp = _Partition(topic, 0)
    records: list[Any] = []
    if path.endswith(".parquet"):
        from tilewatch.holdout import _parquet

        for number, row in _parquet(path):
            records.append(_FileRecord(topic, 0, number - 1, orjson.dumps(row)))
            if len(records) >= batch:
                yield {tp: records}, number
                records = []
        if records:
            yield {tp: records}, records[-1].offset + 1
        return
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed below; a generator)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the input file: {exc.strerror or exc}") from exc
    with file:
        done = 0
        for number, line in enumerate(file):
            done += len(line)
            if not line.strip():
                continue
            records.append(_FileRecord(topic, 0, number, line.rstrip(b"\r\n")))
            if len(records) >= batch:
                yield {tp: records}, done
                records = []
        if records:
            yield {tp: records}, done


@dataclass
class BackfillResult:
    """What a backfill read and wrote."""

    read: int
    valid: int
    invalid: int
    late: int
    windows: int
    samples: int
    blocks: list[str]


class Backfill:
    """A replay of one range through a fresh replica state, written as TSDB blocks.

    Parameters
    ----------
    config
        The monitor's config (the same cells, drift, labels and hierarchy as the live one).
    start, end
        The range (epoch seconds; ``end`` None: up to the newest record).
    output
        The folder the blocks go to (created; Prometheus's ``--storage.tsdb.path`` or a folder
        to move blocks from).
    """

    def __init__(
        self,
        config: Config,
        start: float,
        end: float | None,
        output: str,
        *,
        promtool: str = "promtool",
        out: TextIO | None = None,
        job: str = "tilewatch",
        instance: str | None = None,
    ) -> None:
        if end is not None and end <= start:
            raise ConfigError(f"--to ({end:.0f}) must be after --from ({start:.0f})")
        self.config, self.start, self.end, self.output = config, start, end, Path(output)
        self.promtool = promtool
        self.out = sys.stderr if out is None else out
        profile = build_profile(config)
        self.state = ReplicaState(
            config.cells,
            profile,
            labels=config.labels,
            thresholds=baseline_thresholds(profile),
            classes=build_classes(config, profile),
        )
        self.state.retain_closed = max(self.state.retain_closed, REPLAY_RETAIN_CLOSED)
        self.state.forecasts = config.forecast.build()  # as in the live monitor
        self.monitor = Monitor(
            config.kafka,
            config.events,
            self.state,
            consumer_factory=_never,
            producer_factory=_DiscardProducer,
            label_topic=config.label_topic,
        )
        self._snapshot: Any = None
        self._now = start
        self.registry = CollectorRegistry()
        health = HealthCollector(
            lambda: self._snapshot,
            config.cells.dimensions,
            config.hierarchy,
            detectors=running_detectors(config),
            clock=lambda: self._now,
        )
        budget = CellBudget(config.exporter.max_exported_cells, health.unhealthy)
        health.budget = budget
        self.registry.register(
            CellCollector(lambda: self._snapshot, config.cells.dimensions, budget)
        )
        self.registry.register(health)
        exp = config.exporter
        instance = f"{exp.host}:{exp.port}" if instance is None else instance
        self.families = TimestampedFamilies({"job": job, "instance": instance})
        self._last_window = -(2**62)
        self._block: int | None = None
        self._files: list[Path] = []
        self.windows = self.samples = 0

    # -- reading ---------------------------------------------------------------------------

    def run_topics(self) -> BackfillResult:
        """Replay the config's topics (and its outcomes topic) over the range."""
        kafka = self.config.kafka
        topics = list(kafka.topics)
        if self.config.label_topic is not None:
            topics.append(self.config.label_topic.topic)
        plan: list[ReplayRange] = []

        def planned(rng: ReplayRange) -> None:
            plan.append(rng)
            for topic, partition in rng.start:
                if topic in kafka.topics:
                    self.state.assign((topic, partition))

        # records stamped up to one grace before `from` may hold events of the first window
        start_ms = int((self.start - self.config.cells.grace_seconds) * 1000)
        # and records stamped a window and a grace after `to` may close the last window
        cells = self.config.cells
        after = cells.window_seconds + cells.grace_seconds
        end_ms = None if self.end is None else int((self.end + after) * 1000)
        progress = _Progress(self.out, "records")
        batches = replay_batches(kafka, topics, start_ms, end_ms, on_plan=planned)
        return self._consume(
            ((b, None) for b in batches), progress, lambda: plan[0].total if plan else 0
        )

    def run_file(self, path: str) -> BackfillResult:
        """Replay a JSON Lines or Parquet file of events (in event order)."""
        topic = self.config.kafka.topics[0]
        self.state.assign((topic, 0))
        try:
            size = os.path.getsize(path) if not path.endswith(".parquet") else 0
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the input file: {exc.strerror}") from exc
        unit = "bytes" if size else "rows"
        batches = file_batches(path, topic, self.config.kafka.max_poll_records)
        return self._consume(batches, _Progress(self.out, unit), lambda: size)

    def _consume(
        self,
        batches: Iterator[tuple[Mapping[Any, list[Any]], int | None]],
        progress: _Progress,
        total: Any,
    ) -> BackfillResult:
        self.output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="tilewatch-backfill-") as tmp:
            self._tmp = Path(tmp)
            for batch, done in batches:
                self.monitor.process(batch)
                self._write_closed()
                read = self.monitor.summary.read
                progress.show(read if done is None else done, total(), read, self.windows)
            self._flush()
            progress.show(None, None, self.monitor.summary.read, self.windows, final=True)
            blocks = self._create_blocks()
        s = self.monitor.summary
        return BackfillResult(
            s.read, s.valid, s.invalid, s.late, self.windows, self.samples, blocks
        )

    # -- writing ---------------------------------------------------------------------------

    def _write_closed(self) -> None:
        """Collect the families of every window closed in all partitions since the last call."""
        state, size = self.state, self.config.cells.window_seconds
        with state.lock:
            parts = list(state.partitions.values())
            still_open = min((min(p.open) for p in parts if p.open), default=2**62)
            ready = sorted(
                {w for p in parts for w in p.closed if self._last_window < w < still_open}
            )
            for p in parts:
                p.rolling.refresh()
        for w in ready:
            self._last_window = w
            start, end = w * size, (w + 1) * size
            if start < self.start or (self.end is not None and end > self.end):
                continue
            snap = state.snapshot(upto=w)
            if end not in snap.window_end.values():
                continue
            if state.forecasts is not None:  # what the live refresh() does once per window
                with state.lock:
                    state.forecasts.record(snap)
                    forecasts = state.forecasts.view(len(snap.keys))
                snap = dataclasses.replace(snap, forecasts=forecasts)
            self._snapshot, self._now = snap, end
            block = math.floor(end / BLOCK_SECONDS)
            if self._block is not None and block != self._block:
                self._flush()
            self._block = block
            families = (f for f in self.registry.collect() if not f.name.startswith(LIVE_ONLY))
            self.samples += self.families.add(families, _stamps(snap.window_end, end))
            self.windows += 1

    def _flush(self) -> None:
        if not len(self.families):
            return
        path = self._tmp / f"block-{self._block}.om"
        path.write_text(self.families.text(), encoding="utf-8")
        self.families.clear()
        self._files.append(path)

    def _create_blocks(self) -> list[str]:
        if not self._files:
            return []
        if shutil.which(self.promtool) is None:
            raise TilewatchError(f"{self.promtool} not found: install Prometheus's promtool")
        before = {p.name for p in self.output.iterdir()}
        for path in self._files:
            done = subprocess.run(
                [
                    self.promtool,
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    str(path),
                    str(self.output),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise TilewatchError(
                    f"promtool tsdb create-blocks-from openmetrics failed on {path.name}: "
                    f"{(done.stderr or done.stdout).strip()[-2000:]}"
                )
        return sorted(p.name for p in self.output.iterdir() if p.name not in before)


def _stamps(ends: Mapping[str, float], end: float) -> Callable[[Mapping[str, str]], float]:
    """A sample's time: the end of its model's reported window, else the window's end."""
    return lambda labels: ends.get(labels.get("model", ""), end)


class _Progress:
    """One terminal line, redrawn at most once a second: read, windows written, ETA."""

    def __init__(self, out: TextIO, unit: str, interval: float = 1.0) -> None:
        self.out, self.unit, self.interval = out, unit, interval
        self._t0 = self._last = time.monotonic()

    def show(
        self, done: int | None, total: int | None, read: int, windows: int, final: bool = False
    ) -> None:
        now = time.monotonic()
        if not final and now - self._last < self.interval:
            return
        self._last = now
        eta = ""
        if done and total and total > done:
            eta = f", ETA {_clock((now - self._t0) * (total - done) / done)}"
        if final:
            eta = f", done in {_clock(now - self._t0)}"
        of = f" ({100 * done / total:.0f}% of {total:,} {self.unit})" if done and total else ""
        line = f"backfill: {read:,} events read{of}, {windows:,} windows written{eta}"
        tty = self.out.isatty()
        self.out.write(("\r\x1b[K" if tty else "") + line + ("\n" if final or not tty else ""))
        self.out.flush()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
