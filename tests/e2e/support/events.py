"""Factories of the e2e stream: valid events (and what the decoder must make of them) and bad
records of every rejection reason, with their Kafka values and keys.

Event times rise with a jitter below half the grace, so no event of the main stream is late.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tests.e2e.support.layout import JITTER_SECONDS, T0, WINDOW_SECONDS, Cell, leaf_cells


@dataclass
class Event:
    """One valid event as produced, and what the decoder must make of it."""

    event_id: str
    cell: Cell  # (model, segment, region) after decoding
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


def make_event(rng: np.random.Generator, index: int, cell: Cell, t: float, score: float) -> Event:
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
    """Values and keys to hand to ``tests.helpers.produce``."""
    values: list[bytes | None] = [r.value for r in stream]
    keys = [r.key for r in stream]
    return values, keys
