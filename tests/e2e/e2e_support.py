"""End-to-end support: a ``tilewatch run`` subprocess, its scrape, and a known event stream.

Imported by the e2e tests (``from tests.e2e.e2e_support import ...``); the fixtures that
start and always stop the subprocess live in ``tests/e2e/conftest.py``.

The stream is built so that every expected number can be computed with numpy from the events
alone, plus the partition each record landed in (read back from the topic): event times rise
with a jitter smaller than the grace, so no event of the main stream is late.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import fast_client_settings, free_port

ALL = "__all__"
TILEWATCH_BIN = str(Path(sys.executable).with_name("tilewatch"))
WAIT_TIMEOUT = 60.0

#: Start of the event-time range: 2026-01-01T00:00:00Z, a multiple of every window size used.
T0 = 1_767_225_600.0
WINDOW_SECONDS = 10.0
GRACE_SECONDS = 1.0
JITTER_SECONDS = 0.4  # < GRACE_SECONDS / 2, so the main stream has no late event
ROLLING_EVENTS = 100

MODELS = ("alpha", "beta")
SEGMENTS = ("s0", "s1", "s2", "s3")
REGIONS = ("eu", "us", "ap")

Sample = tuple[str, frozenset[tuple[str, str]]]


# -- config and subprocess --------------------------------------------------------------------


def write_config(
    path: Path,
    bootstrap: str,
    topic: str,
    *,
    kafka: dict[str, Any] | None = None,
    cells: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a tilewatch TOML config for ``topic`` with a unique group and dead-letter topic.

    Checkpoints are on (the default) with a short interval unless ``state`` says otherwise.
    """
    tag = uuid.uuid4().hex[:12]
    kafka_table: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topics": [topic],
        "group_id": f"e2e-{tag}",
        "dead_letter_topic": f"e2e-dlq-{tag}",
        "commit_interval": "200ms",
        "poll_timeout": "100ms",
        **(kafka or {}),
    }
    cells_table: dict[str, Any] = {
        "window": f"{WINDOW_SECONDS:g}s",
        "grace": f"{GRACE_SECONDS:g}s",
        "rolling_events": ROLLING_EVENTS,
        **(cells or {}),
    }
    lines = ["[kafka]"]
    lines += [f"{k} = {_toml(v)}" for k, v in kafka_table.items()]
    lines += ["", "[kafka.client]"]
    lines += [f"{k} = {_toml(v)}" for k, v in fast_client_settings().items()]
    lines += ["", "[cells]"]
    lines += [f"{k} = {_toml(v)}" for k, v in cells_table.items()]
    state_table: dict[str, Any] = {"checkpoint_interval": "300ms", **(state or {})}
    lines += ["", "[state]"]
    lines += [f"{k} = {_toml(v)}" for k, v in state_table.items()]
    lines += ["", "[exporter]", f'listen = "127.0.0.1:{free_port()}"', ""]
    path.write_text("\n".join(lines))
    return path


def _toml(value: Any) -> str:
    """A TOML value for the few types a config uses (JSON spelling is valid TOML for them)."""
    if not isinstance(value, str | int | float | list):
        raise TypeError(f"no TOML spelling for {value!r}")
    return json.dumps(value)


def read_config(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(path.read_text())


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


def scrape(url: str, timeout: float = 5.0) -> str:
    """GET the exposition text at ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def parse_metrics(text: str) -> dict[Sample, float]:
    """``{(sample name, frozenset(labels.items())): value}`` of an exposition text."""
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict[Sample, float], name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


def series(metrics: dict[Sample, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of ``name``, by label set."""
    return {labels: v for (n, labels), v in metrics.items() if n == name}


def cell_labels(cell: tuple[str, str, str]) -> frozenset[tuple[str, str]]:
    model, segment, region = cell
    return frozenset({("model", model), ("segment", segment), ("region", region)})


def summarize(metrics: dict[Sample, float]) -> str:
    keep = ("tilewatch_read_events_total", "tilewatch_dead_letter_events_total")
    shown = {n: v for (n, labels), v in metrics.items() if n in keep and not labels}
    return f"{shown} ({len(metrics)} samples)"


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
    import re

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


# -- the event stream -------------------------------------------------------------------------


@dataclass
class Event:
    """One valid event as produced, and what the decoder must make of it."""

    event_id: str
    cell: tuple[str, str, str]  # (model, segment, region) after decoding
    time: float  # event time after decoding
    score: float  # score after decoding
    payload: dict[str, Any]

    @property
    def key(self) -> bytes:
        return "|".join(self.cell).encode()

    @property
    def value(self) -> bytes:
        return json.dumps(self.payload).encode()


@dataclass
class BadRecord:
    key: bytes
    value: bytes | None
    reason: str


def leaf_cells() -> list[tuple[str, str, str]]:
    return [(m, s, r) for m in MODELS for s in SEGMENTS for r in REGIONS]


def make_event(
    rng: np.random.Generator, index: int, cell: tuple[str, str, str], t: float, score: float
) -> Event:
    """An event whose fields take, with small probabilities, the slower valid forms."""
    model, segment, region = cell
    payload: dict[str, Any] = {
        "event_id": f"e{index}",
        "model": model,
        "segment": segment,
        "region": region,
        "score": score,
        "timestamp": t,
        "latency_ms": float(rng.integers(1, 50)),
    }
    form = rng.random()
    if form < 0.02:  # epoch milliseconds
        ms = round(t * 1000)
        payload["timestamp"] = ms
        t = float(ms) / 1000.0
    elif form < 0.03:  # RFC 3339 with an offset
        text = datetime.fromtimestamp(t, UTC).isoformat()
        payload["timestamp"] = text
        t = datetime.fromisoformat(text).timestamp()
    elif form < 0.05:  # integer score
        score = float(rng.integers(0, 2))
        payload["score"] = int(score)
    elif form < 0.055:  # region absent: the decoder files it under "unknown"
        del payload["region"]
        cell = (model, segment, "unknown")
    return Event(f"e{index}", cell, t, score, payload)


def make_stream(seed: int, n: int, span: float, start: float = T0 + 5.0) -> list[Event]:
    """``n`` valid events over ``span`` seconds of event time, rising with a small jitter."""
    rng = np.random.default_rng(seed)
    cells = leaf_cells()
    # Each cell has its own score distribution, so cell statistics differ.
    shapes = {c: (1.0 + 4.0 * rng.random(), 1.0 + 4.0 * rng.random()) for c in cells}
    picks = rng.integers(0, len(cells), size=n)
    times = start + np.arange(n) * (span / n) + rng.uniform(-JITTER_SECONDS, JITTER_SECONDS, n)
    events = []
    for i in range(n):
        cell = cells[int(picks[i])]
        a, b = shapes[cell]
        events.append(make_event(rng, i, cell, float(times[i]), float(rng.beta(a, b))))
    return events


def far_future_events(events: Sequence[Event], first_index: int, after: float) -> list[Event]:
    """One event per leaf cell ``after`` s past the last event, so every partition holding a
    cell sees its watermark jump and every earlier window closes."""
    last = max(e.time for e in events)
    base = math.floor((last + after) / WINDOW_SECONDS) * WINDOW_SECONDS + 1.0
    cells = sorted({e.cell for e in events})
    out = []
    for j, cell in enumerate(cells):
        model, segment, region = cell
        t = base + j * 0.001
        payload = {
            "event_id": f"e{first_index + j}",
            "model": model,
            "segment": segment,
            "score": 0.5,
            "timestamp": t,
        }
        if region != "unknown":
            payload["region"] = region
        out.append(Event(f"e{first_index + j}", cell, t, 0.5, payload))
    return out


#: One bad record per kind, cycled; each value is a function of a unique number.
BAD_KINDS: tuple[tuple[str, Callable[[int], bytes | None]], ...] = (
    ("not_json", lambda i: f"{{not json {i}".encode()),
    ("not_json", lambda i: b"\xff\xfe" + str(i).encode()),
    ("not_object", lambda i: f"[{i}, 1, 2]".encode()),
    ("not_object", lambda i: str(i).encode()),
    ("bad_score", lambda i: _bad(i, score=1.5)),
    ("bad_score", lambda i: _bad(i, score=-0.25)),
    ("bad_score", lambda i: _bad(i, score=2)),
    ("missing_field", lambda i: _bad(i, model=None)),
    ("missing_field", lambda i: _bad(i, drop="model")),
    ("missing_field", lambda i: _bad(i, drop="score")),
    ("bad_timestamp", lambda i: _bad(i, timestamp="yesterday")),
    ("bad_timestamp", lambda i: _bad(i, timestamp="2026-01-01T00:00:10")),
    ("bad_timestamp", lambda i: _bad(i, timestamp=-5)),
    ("wrong_type", lambda i: _bad(i, score="0.5")),
    ("wrong_type", lambda i: _bad(i, model=7)),
    ("bad_dimension", lambda i: _bad(i, segment=[1])),
    ("empty_value", lambda i: None),
)


def _bad(i: int, drop: str | None = None, **fields: Any) -> bytes:
    payload: dict[str, Any] = {
        "event_id": f"bad{i}",
        "model": "alpha",
        "segment": "s0",
        "region": "eu",
        "score": 0.5,
        "timestamp": T0 + 30.0,
        **fields,
    }
    if drop is not None:
        del payload[drop]
    return json.dumps(payload).encode()


def make_bad_records(n: int) -> list[BadRecord]:
    out = []
    for i in range(n):
        reason, build = BAD_KINDS[i % len(BAD_KINDS)]
        out.append(BadRecord(f"bad-{i}".encode(), build(i), reason))
    return out


def interleave(
    seed: int, events: Sequence[Event], bad: Sequence[BadRecord]
) -> list[Event | BadRecord]:
    """``events`` in order, with ``bad`` records inserted at random positions."""
    rng = np.random.default_rng(seed)
    positions = sorted(rng.integers(0, len(events), size=len(bad)).tolist())
    out: list[Event | BadRecord] = []
    it = iter(bad)
    j = 0
    for i, event in enumerate(events):
        while j < len(positions) and positions[j] == i:
            out.append(next(it))
            j += 1
        out.append(event)
    out.extend(it)
    return out


def records_of(stream: Sequence[Event | BadRecord]) -> tuple[list[bytes | None], list[bytes]]:
    """Values and keys to hand to ``helpers.produce``."""
    values: list[bytes | None] = [r.value for r in stream]
    keys = [r.key for r in stream]
    return values, keys


# -- expected statistics ----------------------------------------------------------------------


def rollups(cell: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    model, segment, region = cell
    return [
        (model, segment, region),
        (model, ALL, region),
        (model, segment, ALL),
        (model, ALL, ALL),
    ]


@dataclass
class Expected:
    """numpy statistics per cell (leaf and roll-up) of a list of events."""

    events: dict[tuple[str, str, str], int] = field(default_factory=dict)
    rolling: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    window_end: dict[str, float] = field(default_factory=dict)
    window: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)


def expected_stats(
    events: Iterable[Event], partition_of: dict[str, int], data_events: Iterable[Event]
) -> Expected:
    """Counts, rolling windows (per partition, last ``ROLLING_EVENTS`` each, merged) and the
    last closed window of each model, which is the last window holding ``data_events``."""
    out = Expected()
    per_partition: dict[tuple[int, tuple[str, str, str]], list[float]] = defaultdict(list)
    for e in events:  # in partition order (produce order within each partition)
        part = partition_of[e.event_id]
        for cell in rollups(e.cell):
            out.events[cell] = out.events.get(cell, 0) + 1
            per_partition[(part, cell)].append(e.score)
    merged: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for (_part, cell), scores in per_partition.items():
        merged[cell].extend(scores[-ROLLING_EVENTS:])
    out.rolling = {cell: np.array(v) for cell, v in merged.items()}
    data = list(data_events)
    for model in MODELS:
        windows = [math.floor(e.time / WINDOW_SECONDS) for e in data if e.cell[0] == model]
        last = max(windows)
        out.window_end[model] = (last + 1) * WINDOW_SECONDS
    in_window: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for e in data:
        end = out.window_end[e.cell[0]]
        if end - WINDOW_SECONDS <= e.time < end:
            for cell in rollups(e.cell):
                in_window[cell].append(e.score)
    out.window = {cell: np.array(in_window.get(cell, [])) for cell in out.events}
    return out


def sample_mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


def sample_variance(values: np.ndarray) -> float:
    return float(values.var(ddof=1)) if len(values) >= 2 else math.nan


def close(actual: float | None, expected: float, tol: float = 1e-9) -> bool:
    if actual is None:
        return False
    if math.isnan(expected):
        return math.isnan(actual)
    return abs(actual - expected) <= tol


# -- config extensions (appended for tests/e2e/test_broker_faults.py) -------------------------


def extend_config(
    path: Path,
    *,
    client: dict[str, Any] | None = None,
    events: dict[str, Any] | None = None,
) -> Path:
    """Add keys to the ``[kafka.client]`` table of a :func:`write_config` file, and an
    ``[events]`` table, in place; returns ``path``."""
    text = path.read_text()
    if client:
        extra = "".join(f"{k} = {_toml(v)}\n" for k, v in client.items())
        assert text.count("[kafka.client]\n") == 1, f"no [kafka.client] table in {path}"
        text = text.replace("[kafka.client]\n", "[kafka.client]\n" + extra)
    if events:
        text += "\n[events]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in events.items())
    path.write_text(text)
    return path


# -- crash recovery and scale-out (appended for test_crash_recovery.py, test_scale_out.py) ----

#: Families compared between two replicas' scrapes: exactly, or within 1e-9 relative (float
#: merge order may differ between runs that cut batches and checkpoints at other offsets).
EXACT_FAMILIES = (
    "tilewatch_events_total",
    "tilewatch_window_events",
    "tilewatch_rolling_events",
    "tilewatch_late_events_total",
    "tilewatch_window_end_timestamp_seconds",
    "tilewatch_last_event_timestamp_seconds",
)
CLOSE_FAMILIES = (
    "tilewatch_window_score_mean",
    "tilewatch_window_score_variance",
    "tilewatch_rolling_score_mean",
    "tilewatch_rolling_score_variance",
)


def override_client_settings(path: Path, **settings: int) -> Path:
    """Replace values in the ``[kafka.client]`` table of a :func:`write_config` file (keys
    already there, e.g. ``session_timeout_ms``, are rewritten, others added); returns ``path``."""
    lines = path.read_text().split("\n")
    start = lines.index("[kafka.client]") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    table = {line.split(" = ", 1)[0]: line for line in lines[start:end]}
    table.update({k: f"{k} = {_toml(v)}" for k, v in settings.items()})
    lines[start:end] = list(table.values())
    path.write_text("\n".join(lines))
    return path


def leaf_events_total(metrics: dict[Sample, float]) -> float:
    """Sum of ``tilewatch_events_total`` over leaf cells (no ``__all__`` label value)."""
    return sum(
        v
        for labels, v in series(metrics, "tilewatch_events_total").items()
        if ALL not in dict(labels).values()
    )


def caught_up(metrics: dict[Sample, float], partitions: int) -> bool:
    """Whether the replica owns ``partitions`` partitions, each with a lag of 0."""
    lag = series(metrics, "tilewatch_consumer_lag_events")
    return (
        value(metrics, "tilewatch_partitions_assigned") == partitions
        and len(lag) == partitions
        and all(v == 0 for v in lag.values())
    )


def _same(a: float, b: float, rel: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def compare_metrics(
    reference: dict[Sample, float], actual: dict[Sample, float], rel: float = 1e-9
) -> list[str]:
    """Every difference between two scrapes in the cell and model families, as lines."""
    problems: list[str] = []
    for name in (*EXACT_FAMILIES, *CLOSE_FAMILIES):
        want, got = series(reference, name), series(actual, name)
        for labels in sorted(set(want) | set(got), key=sorted):
            w, g = want.get(labels), got.get(labels)
            exact = name in EXACT_FAMILIES
            if w is None or g is None or not (w == g if exact else _same(w, g, rel)):
                problems.append(f"{name}{dict(labels)}: reference {w!r}, got {g!r}")
    return problems


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


def read_changelog(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every record of a changelog topic, read without a group up to each partition's high
    watermark as reported by fetch responses (never ``end_offsets()``)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() >= deadline:
                pytest.fail(f"changelog topic {topic!r} has no partitions")
            time.sleep(0.05)
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while True:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            if all(
                (hw := consumer.highwater(tp)) is not None and consumer.position(tp) >= hw
                for tp in tps
            ):
                return records
            if time.monotonic() >= deadline:
                pytest.fail(f"could not read changelog {topic!r} to its end in {timeout:g} s")
    finally:
        consumer.close()


# -- drift and baseline (appended for test_drift_pipeline.py) ---------------------------------


def add_drift_config(
    path: Path,
    *,
    baseline: dict[str, Any] | None = None,
    drift: dict[str, Any] | None = None,
) -> Path:
    """Append a ``[baseline]`` and a ``[drift]`` table to a :func:`write_config` file (neither
    is written by it); returns ``path``."""
    text = path.read_text()
    for name, table in (("baseline", baseline), ("drift", drift)):
        if table:
            assert f"[{name}]" not in text, f"{path} already has a [{name}] table"
            text += f"\n[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())
    path.write_text(text)
    return path
