"""Detection quality on a scenario: replay it through the monitor's own batch path, score the
flags and health statuses against the scenario's ground truth.

Shared by the detection benchmark (``tests/bench/bench_detection.py``) and its small CI test
(``tests/aggregators/test_detection_quality.py``). The traffic comes from
:mod:`tilewatch.streams.dev.scenarios`; the baseline is built by the real ``tilewatch baseline``
code from the scenario's clean holdout; every window goes through
:meth:`tilewatch.streams.loop.Monitor.process` (decoding, drift encoding, ``ReplicaState.apply``)
exactly as ``tilewatch run`` applies a Kafka batch, only without Kafka; after each window
closes, the snapshot's drift flags and the health hierarchy's component statuses are read.

What counts:

- a **change is found** for a signal when its cell is flagged for that signal in some window
  from its onset on: the roll-up of a segment- or region-wide change (every leaf of which it
  touches), else the leaf it touches; the **delay** is the first such window minus the onset.
  A slow drift is expected within 10 windows, any other change within 2. The share of the
  touched leaves flagged within the deadline is reported beside it (tiny leaves of a wide
  change may lack the events to show a small shift on their own);
- a **false flag** is a flag in a clean cell-window: a cell (leaf or roll-up) that no active
  change touches (``Change.affected``), in a window it is tested in (``min_samples`` events);
  reported per 1,000 clean cell-windows per signal;
- a **red component** likewise, per component;
- a **detector** flags the window that holds the event time of its detection (a detection
  counts once; detections between two readings are all seen, the last one's time decides).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tilewatch.aggregators.cells.settings import ALL
from tilewatch.aggregators.health.settings import RED
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.app import baseline_thresholds, build_profile, running_detectors
from tilewatch.config import Config, parse_config
from tilewatch.exporters.prometheus.health_collector import HealthCollector
from tilewatch.holdout import read_inputs
from tilewatch.reference_file import build_baseline, write_baseline
from tilewatch.streams.dev.scenario_spec import Change
from tilewatch.streams.dev.scenarios import Scenario
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import KafkaSettings

__all__ = [
    "SIGNAL_DEADLINE",
    "Record",
    "Replay",
    "Report",
    "config_for",
    "replay",
    "score",
    "write_holdout_baseline",
]

#: Windows after the onset within which a change must be flagged, by change kind.
SIGNAL_DEADLINE = {"slow_drift": 10}
DEFAULT_DEADLINE = 2
#: Drift flag signals read from the snapshot.
DRIFT_SIGNALS = ("score_psi", "feature_psi", "class_shift", "missing")


@dataclass(frozen=True, slots=True)
class Record:
    """A stand-in for a Kafka consumer record (the fields the decoders read)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] | None = None


@dataclass(frozen=True, slots=True)
class _TopicPartition:
    topic: str
    partition: int


def write_holdout_baseline(scenario: Scenario, rows: int, folder: Path, seed: int = 1) -> Path:
    """The scenario's clean holdout as JSON Lines, and the baseline ``tilewatch baseline``
    builds from it (the real reader and builder); returns the baseline's path."""
    holdout = folder / "holdout.jsonl"
    with holdout.open("wb") as out:
        for event in scenario.holdout(rows, seed=seed):
            out.write(orjson.dumps(event) + b"\n")
    config = parse_config({}, "detection")
    data = read_inputs([str(holdout)], config.events)
    baseline = build_baseline(data, config.baseline, config.events, max_bad_share=0.0)
    path = folder / "baseline.json"
    write_baseline(baseline, str(path))
    return path


def config_for(scenario: Scenario, baseline: Path | None, **drift: Any) -> Config:
    """The default config with the scenario's window, a baseline and inline labels."""
    spec = scenario.spec
    tables: dict[str, Any] = {
        "kafka": {"topics": ["scenario"], "dead_letter_topic": ""},
        "cells": {"window": f"{spec.window_seconds:g}s", "grace": "5s"},
        "labels": {"source": "inline"},
        "drift": dict(drift),
    }
    if baseline is not None:
        tables["baseline"] = {"path": str(baseline)}
    return parse_config(tables, "detection")


@dataclass
class Replay:
    """Per reported window: cell keys, window counts, flags and component statuses."""

    keys: list[list[tuple[str, ...]]] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)
    tested: list[np.ndarray] = field(default_factory=list)
    flags: list[dict[str, np.ndarray]] = field(default_factory=list)
    red: list[dict[str, np.ndarray]] = field(default_factory=list)
    events: int = 0


def replay(scenario: Scenario, config: Config, windows: range | None = None) -> Replay:
    """Feed the scenario window by window; read flags and statuses as each window closes."""
    profile = build_profile(config)
    state = ReplicaState(
        config.cells, profile, labels=config.labels, thresholds=baseline_thresholds(profile)
    )
    kafka = KafkaSettings(topics=("scenario",), dead_letter_topic=None)
    monitor = Monitor(kafka, config.events, state)
    key = ("scenario", 0)
    state.assign(key)
    health = HealthCollector(
        state.snapshot,
        config.cells.dimensions,
        config.hierarchy,
        detectors=running_detectors(config),
    )
    tp = _TopicPartition(*key)
    out = Replay()
    offset = 0
    span = windows if windows is not None else range(scenario.spec.windows)
    last_reported: int | None = None
    seen: dict[tuple[tuple[str, ...], str], int] = {}
    detected: set[tuple[int, tuple[str, ...], str]] = set()
    for w in [*span, None]:
        if w is None:  # a closing event far ahead flushes the last window
            end = scenario.spec.start_time + (span.stop + 2) * scenario.spec.window_seconds
            event = {"model": scenario.spec.model, "score": 0.5, "timestamp": end}
            values = [orjson.dumps(event)]
        else:
            _, values = scenario.window(w).encode()
        records = [Record("scenario", 0, offset + i, None, None, v) for i, v in enumerate(values)]
        offset += len(records)
        out.events += len(records)
        monitor.process({tp: records})
        state.refresh()
        snap = state.snapshot()
        end = snap.window_end.get(scenario.spec.model)
        if end is None or snap.drift is None:
            continue
        reported = round((end - scenario.spec.start_time) / scenario.spec.window_seconds) - 1
        if reported == last_reported:
            continue
        last_reported = reported
        result = health.evaluate(snap, now=end + scenario.spec.window_seconds)
        out.windows.append(reported)
        out.keys.append(list(snap.keys))
        count = np.asarray(snap.window_count)
        out.counts.append(count)
        out.tested.append(count >= config.drift.min_samples)
        flags = {s: np.asarray(snap.drift.flags[s]) for s in DRIFT_SIGNALS}
        n = len(snap.keys)
        for detector in running_detectors(config):
            flags[f"detector:{detector}"] = np.zeros(n, dtype=bool)
        # New detections since the last reading, by the window of their event time: the data
        # read to close window w belongs to w + 1, so "active" at this reading would blame w.
        for (cell, detector), (count, last, _active) in snap.detections.items():
            key = snap.keys[cell]
            if count > seen.get((key, detector), 0) and math.isfinite(last):
                when = int((last - scenario.spec.start_time) // scenario.spec.window_seconds)
                detected.add((when, key, detector))
            seen[(key, detector)] = count
        perf_flags = getattr(snap.performance, "flags", None) if snap.performance else None
        if isinstance(perf_flags, dict):
            flags.update({s: np.asarray(v) for s, v in perf_flags.items()})
        out.flags.append(flags)
        out.red.append({c.name: np.asarray(c.status) == RED for c in result.components})
    for w, keys, flags in zip(out.windows, out.keys, out.flags, strict=True):
        for i, key in enumerate(keys):
            for name in flags:
                if name.startswith("detector:") and (w, key, name[9:]) in detected:
                    flags[name][i] = True
    return out


@dataclass
class Report:
    """Detection quality of one replay against the scenario's truth."""

    found: dict[tuple[str, str], int | None]  # (change kind, signal) -> delay, None: missed
    deadline: dict[str, int]
    false_flags: dict[str, tuple[int, int]]  # signal -> (flags, clean tested cell-windows)
    red: dict[str, tuple[int, int]]  # component -> (red, clean cell-windows with a status)
    changed_red: dict[str, bool]  # change kind -> a touched leaf went red in some component
    leaves_found: dict[tuple[str, str], float]  # share of touched leaves flagged in time

    def per_thousand(self, pair: tuple[int, int]) -> float:
        hits, total = pair
        return 1000.0 * hits / total if total else math.nan

    def lines(self) -> list[str]:
        out = ["change / signal                      found  delay  deadline  leaves in time"]
        for (kind, signal), delay in sorted(self.found.items()):
            got = "yes" if delay is not None else "NO"
            out.append(
                f"{kind + ' / ' + signal:36} {got:>5}  {'-' if delay is None else delay:>5}"
                f"  {self.deadline[kind]:>8}  {self.leaves_found[(kind, signal)]:>13.0%}"
            )
        out.append("signal          false flags per 1,000 clean cell-windows (flags / windows)")
        for signal, pair in sorted(self.false_flags.items()):
            out.append(f"{signal:15} {self.per_thousand(pair):8.2f}   ({pair[0]} / {pair[1]})")
        out.append("component       red per 1,000 clean cell-windows (red / windows)")
        for name, pair in sorted(self.red.items()):
            out.append(f"{name:15} {self.per_thousand(pair):8.2f}   ({pair[0]} / {pair[1]})")
        for kind, red in sorted(self.changed_red.items()):
            out.append(f"changed cells of {kind}: {'red' if red else 'NOT red'}")
        return out


def _cell(key: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(key[1:])


def _delay(run: Replay, change: Change, cell: tuple[str, ...], signal: str) -> int | None:
    """Windows from the onset to the first flag of ``signal`` in ``cell`` (None: never)."""
    for w, keys, flags in zip(run.windows, run.keys, run.flags, strict=True):
        if w < change.onset_window:
            continue
        for i, k in enumerate(keys):
            if _cell(k) == cell and bool(flags[signal][i]):
                return w - change.onset_window
    return None


def _covered(change: Change, scenario: Scenario) -> set[tuple[str, ...]]:
    """Roll-ups every leaf of which the change touches."""
    cells = set(change.cells)
    spec = scenario.spec
    out: set[tuple[str, ...]] = set()
    for seg in spec.segments:
        if all((seg, r) in cells for r in spec.regions):
            out.add((seg, ALL))
    for reg in spec.regions:
        if all((s, reg) in cells for s in spec.segments):
            out.add((ALL, reg))
    return out


def _affected(truth: Sequence[Change], w: int) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for change in truth:
        if change.active(w):
            out |= set(change.affected)
    return out


def score(scenario: Scenario, run: Replay) -> Report:
    """Found changes and their delays, false flags and red components on clean cell-windows."""
    truth = scenario.truth
    found: dict[tuple[str, str], int | None] = {}
    in_time: dict[tuple[str, str], float] = {}
    deadline = {c.kind: SIGNAL_DEADLINE.get(c.kind, DEFAULT_DEADLINE) for c in truth}
    signals = sorted({s for f in run.flags for s in f})
    detectors = [s for s in signals if s.startswith("detector:")]
    for change in truth:
        covered = _covered(change, scenario)
        # The change's own cell: the roll-up of a segment- or region-wide change, else the leaf.
        targets = sorted(covered) if covered else list(change.cells)
        for signal in change.signals:
            if signal not in signals:
                continue
            delays = [_delay(run, change, cell, signal) for cell in targets]
            found[(change.kind, signal)] = (
                None if any(d is None for d in delays) else max(d for d in delays if d is not None)
            )
            within = [_delay(run, change, leaf, signal) for leaf in change.cells]
            limit = deadline[change.kind]
            in_time[(change.kind, signal)] = sum(
                d is not None and d <= limit for d in within
            ) / len(within)
        # Any signal or detector: the change's own signals, or an active detector.
        delays_any = []
        for cell in targets:
            got = [
                _delay(run, change, cell, s) for s in (*change.signals, *detectors) if s in signals
            ]
            kept = [d for d in got if d is not None]
            delays_any.append(min(kept) if kept else None)
        found[(change.kind, "any")] = (
            None
            if any(d is None for d in delays_any)
            else max(d for d in delays_any if d is not None)
        )
        in_time[(change.kind, "any")] = math.nan
    false_flags: dict[str, list[int]] = {s: [0, 0] for s in signals}
    red: dict[str, list[int]] = {}
    changed_red = {c.kind: False for c in truth}
    for w, keys, tested, flags, reds in zip(
        run.windows, run.keys, run.tested, run.flags, run.red, strict=True
    ):
        affected = _affected(truth, w)
        clean = np.array([_cell(k) not in affected for k in keys], dtype=bool)
        for signal in signals:
            mask = clean & tested
            false_flags[signal][0] += int(flags[signal][mask].sum())
            false_flags[signal][1] += int(mask.sum())
        for name, is_red in reds.items():
            pair = red.setdefault(name, [0, 0])
            pair[0] += int(is_red[clean & tested].sum())
            pair[1] += int((clean & tested).sum())
        for change in truth:
            if change.active(w):
                leaves = [i for i, k in enumerate(keys) if _cell(k) in set(change.cells)]
                if any(bool(r[i]) for r in reds.values() for i in leaves):
                    changed_red[change.kind] = True
    return Report(
        found,
        deadline,
        {s: (a, b) for s, (a, b) in false_flags.items()},
        {s: (a, b) for s, (a, b) in red.items()},
        changed_red,
        in_time,
    )
