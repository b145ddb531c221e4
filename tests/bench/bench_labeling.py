"""The labeling queue's cost: ``Monitor.process`` with and without ``[labeling]``, no broker.

The same records (``--events`` binary events with inline labels over ``--cells`` leaf cells,
``--window`` seconds of event time per window, poll batches of ``--batch`` records) go through a
Monitor with the queue off and on (all five reasons; the producer is a sink that acknowledges
at once), alternately ``--repeat`` times. Reports microseconds per event of each, the
difference, the records selected and the most candidates (and their event bytes) the queue held
at any batch: what its memory bound is made of.

    .venv/bin/python tests/bench/bench_labeling.py --events 200000 --cells 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from kafka import TopicPartition  # noqa: E402

from tilewatch.aggregators.cells.settings import CellSettings  # noqa: E402
from tilewatch.aggregators.labeling.settings import REASONS, LabelingSettings  # noqa: E402
from tilewatch.aggregators.labels.settings import LabelSettings  # noqa: E402
from tilewatch.aggregators.state.replica import ReplicaState  # noqa: E402
from tilewatch.streams.labeling_sink import LabelingStage  # noqa: E402
from tilewatch.streams.loop import Monitor  # noqa: E402
from tilewatch.streams.settings import EventFields, KafkaSettings  # noqa: E402

T0 = 1767225600.0


class Done:
    is_done = True
    exception = None

    def succeeded(self) -> bool:
        return True


class Sink:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, topic: str, value: Any = None, key: Any = None, headers: Any = None) -> Done:
        self.sent += 1
        return Done()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def records(n: int, cells: int, per_second: float, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, cells, n)
    scores = rng.beta(2, 5, n).round(4)
    labels = (rng.uniform(size=n) < scores).astype(int)
    out = []
    for i in range(n):
        obj = {
            "model": "m",
            "score": float(scores[i]),
            "segment": f"s{seg[i] // 10}",
            "region": f"r{seg[i] % 10}",
            "timestamp": T0 + i / per_second,
            "label": int(labels[i]),
        }
        out.append(
            SimpleNamespace(
                topic="p",
                partition=0,
                offset=i,
                key=None,
                value=orjson.dumps(obj),
                headers=[],
                timestamp=None,
            )
        )
    return out


def run(recs: list[Any], batch: int, window: float, labeling: bool) -> dict[str, float]:
    state = ReplicaState(
        CellSettings(window_seconds=window, grace_seconds=5, max_cells=1_000_000),
        labels=LabelSettings(source="inline", threshold=0.3),
    )
    settings = LabelingSettings(
        reasons=REASONS, rate=0.01, max_per_window=500, cell_share=0.02, flagged_cell_share=0.1
    )
    sink = Sink()
    if labeling:
        state.labeling = settings
    mon = Monitor(
        KafkaSettings(topics=("p",), dead_letter_topic=None),
        EventFields(),
        state,
        producer_factory=lambda: sink,
        labeling=(lambda f: LabelingStage(settings, state, f)) if labeling else None,
    )
    state.assign(("p", 0))
    tp = TopicPartition("p", 0)
    peak, peak_bytes = 0, 0
    seconds = 0.0
    for i in range(0, len(recs), batch):
        start = time.perf_counter()
        mon.process({tp: recs[i : i + batch]})
        seconds += time.perf_counter() - start
        queue = state.partitions[("p", 0)].labeling
        if queue is not None and (i // batch) % 20 == 0:
            held = queue.candidates()
            if held > peak:
                peak = held
                peak_bytes = sum(
                    len(v or b"")
                    for ts in queue.tables.values()
                    for t in ts.values()
                    for _k, v in t.payload
                )
    return {"us": seconds / len(recs) * 1e6, "sent": sink.sent, "peak": peak, "bytes": peak_bytes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="events per event-time second")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    recs = records(args.events, args.cells, args.rate)
    off, on = [], []
    for _ in range(args.repeat):
        off.append(run(recs, args.batch, args.window, False))
        on.append(run(recs, args.batch, args.window, True))
    us_off = statistics.median(r["us"] for r in off)
    us_on = statistics.median(r["us"] for r in on)
    last = on[-1]
    print(
        f"events={args.events} cells={args.cells} batch={args.batch} window={args.window:g}s "
        f"({args.window * args.rate:g} events/window)"
    )
    print(f"process, queue off: {us_off:.2f} us/event")
    print(
        f"process, queue on:  {us_on:.2f} us/event (+{us_on - us_off:.2f} us/event, "
        f"+{(us_on / us_off - 1) * 100:.0f} %)"
    )
    print(
        f"records selected: {last['sent']:.0f}; candidates held at most: {last['peak']:.0f} "
        f"({last['bytes'] / 1e6:.2f} MB of event bytes)"
    )


if __name__ == "__main__":
    main()
