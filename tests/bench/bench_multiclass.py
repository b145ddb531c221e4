"""Throughput of a multi-class model (10 class probabilities per event) against the binary spine.

Usage: ``python tests/bench/bench_multiclass.py [--events 200000] [--cells 1000]
[--partitions 4] [--classes 10] [--repeat 3] [--json PATH]``

Two topics on one embedded broker hold the same traffic (the spine's events of
``bench_throughput.py``, keyed by cell): ``bench-binary`` as generated (one score per event),
``bench-multiclass`` with the score (and the binary prediction) replaced by ``probs``, a list
of ``--classes`` probabilities (Dirichlet draws rounded to 6 digits), read with
``[events] scores = "probs"`` and ``classes`` configured, so every event goes through the class
table and the predicted-class, confidence, margin and label-rank histograms of its window. A
Monitor reads each topic in turn (``--repeat`` rounds, alternating), timed like
``bench_throughput.py`` (from the first non-empty poll to the batch holding the N-th record);
the report gives events/s of both and their ratio (target: multi-class within 25% of binary).

Each round also reads each topic with the floor (poll + ``orjson.loads``, nothing else; the
same records, just before tilewatch reads them), since the multi-class events are larger and
slower to parse whatever reads them: the report gives each one's ratio to its own floor too, and
the multi-class ratio over the binary one (how much of the floor tilewatch keeps with ten class
probabilities, against one score).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/bench_multiclass.py``
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from tests.bench.bench_throughput import traffic_chunks  # noqa: E402
from tests.bench.harness import (  # noqa: E402
    AssignedConsumers,
    apply_gc,
    bench_settings,
    broker_with_topics,
    fill_topics,
    produce_in_child,
    run_floor,
    run_measured,
    summarize,
    write_json,
)
from tilewatch.aggregators.cells.classes import ClassVocabulary  # noqa: E402
from tilewatch.aggregators.cells.settings import CellSettings  # noqa: E402
from tilewatch.aggregators.state.replica import ReplicaState  # noqa: E402
from tilewatch.streams.settings import EventFields  # noqa: E402

BINARY, MULTICLASS = "bench-binary", "bench-multiclass"


def class_names(k: int) -> tuple[str, ...]:
    return tuple(f"class_{i:02d}" for i in range(k))


def as_multiclass(values: list[bytes], k: int, rng: np.random.Generator) -> list[bytes]:
    """The spine events with the score (and the binary prediction) replaced by ``probs``, ``k``
    class probabilities (Dirichlet draws rounded to 6 digits; the argmax names the class)."""
    probs = np.round(rng.dirichlet(np.full(k, 0.3), len(values)), 6)
    multi = []
    for value, row in zip(values, probs.tolist(), strict=True):
        obj = orjson.loads(value)
        del obj["score"]
        obj.pop("prediction", None)
        obj["probs"] = row
        multi.append(orjson.dumps(obj))
    return multi


def produce_multiclass(
    bootstrap: str, topic: str, events: int, cells: int, k: int
) -> dict[str, Any]:
    """Fill ``topic`` with the benchmark's traffic as ``k``-class events (bench_process's
    ``multiclass`` profile)."""
    rng = np.random.default_rng(17)
    chunks = (
        ([topic] * len(keys), keys, as_multiclass(values, k, rng))
        for keys, values in traffic_chunks(events, cells)
    )
    fill = fill_topics(bootstrap, chunks)
    return {"records": {topic: fill["sent"][topic]}, "bytes": fill["bytes"][topic]}


def produce_both(bootstrap: str, events: int, cells: int, k: int) -> dict[str, Any]:
    """Fill both topics with the same traffic; the multi-class copy with ``k`` probabilities."""
    rng = np.random.default_rng(17)

    def chunks() -> Any:
        for keys, values in traffic_chunks(events, cells):
            yield [BINARY] * len(keys), keys, values
            yield [MULTICLASS] * len(keys), keys, as_multiclass(values, k, rng)

    fill = fill_topics(bootstrap, chunks())
    return {
        "sent": fill["sent"],
        "mean_event_bytes": {t: fill["bytes"][t] / fill["sent"][t] for t in fill["sent"]},
    }


def run_one(
    bootstrap: str, topic: str, fields: EventFields, cells: CellSettings, events: int
) -> dict[str, Any]:
    from tilewatch.streams.loop import Monitor

    classes = ClassVocabulary(fields.max_classes, fields.classes) if fields.scores else None
    state = ReplicaState(cells, classes=classes)
    settings = bench_settings(bootstrap, (topic,))
    consumers = AssignedConsumers(settings)
    monitor = Monitor(settings, fields, state, consumer_factory=consumers)  # type: ignore[arg-type]
    summary, timing = run_measured(monitor, consumers, events, lambda: monitor.summary.read)
    if summary.valid != events or summary.invalid or state.ingest.class_scores:
        raise RuntimeError(
            f"{topic}: valid {summary.valid}, invalid {summary.invalid}, "
            f"class scores {state.ingest.class_scores}"
        )
    return timing


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--cells", type=int, default=1000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n, k = args.events, args.classes
    names = class_names(k)
    binary = EventFields()
    multi = EventFields(scores="probs", classes=names, max_classes=max(k, 2))
    cells = CellSettings(
        dimensions=tuple(binary.dimensions), max_cells=max(CellSettings().max_cells, args.cells)
    )
    result: dict[str, Any] = {
        "load_average_at_start": os.getloadavg(),
        "events": n,
        "cells": args.cells,
        "classes": k,
        "partitions": args.partitions,
    }
    with broker_with_topics({BINARY: args.partitions, MULTICLASS: args.partitions}) as broker:
        result["produce"] = produce_in_child(produce_both, broker.bootstrap, n, args.cells, k)
        apply_gc("tuned")
        sizes = result["produce"]["mean_event_bytes"]
        print(f"events {n}, cells {args.cells}, classes {k}, bytes per event {sizes}", flush=True)
        rates: dict[str, list[float]] = {BINARY: [], MULTICLASS: []}
        floors: dict[str, list[float]] = {BINARY: [], MULTICLASS: []}
        for i in range(args.repeat):
            for topic, fields in ((BINARY, binary), (MULTICLASS, multi)):
                gc.collect()
                floor = run_floor(bench_settings(broker.bootstrap, (topic,)), n)
                floors[topic].append(floor["events_per_second"])
                gc.collect()
                timing = run_one(broker.bootstrap, topic, fields, cells, n)
                rates[topic].append(timing["events_per_second"])
                print(
                    f"[{i + 1}/{args.repeat}] {topic:<17} {timing['events_per_second']:>10,.0f} "
                    f"events/s ({timing['seconds']:.2f} s), floor "
                    f"{floor['events_per_second']:>10,.0f}: "
                    f"{timing['events_per_second'] / floor['events_per_second']:.2f} of it",
                    flush=True,
                )
    for topic, name in ((BINARY, "binary"), (MULTICLASS, "multiclass")):
        result[name] = summarize(rates[topic])
        result[f"{name}_floor"] = summarize(floors[topic])
        result[f"{name}_of_floor"] = summarize(
            [r / f for r, f in zip(rates[topic], floors[topic], strict=True)]
        )
    ratio = result["multiclass"]["median"] / result["binary"]["median"]
    result["multiclass_over_binary"] = ratio
    of_floor = result["multiclass_of_floor"]["median"] / result["binary_of_floor"]["median"]
    result["multiclass_over_binary_of_floor"] = of_floor
    print(
        f"median: binary {result['binary']['median']:,.0f} events/s "
        f"({result['binary_of_floor']['median']:.2f} of its floor), multi-class "
        f"{result['multiclass']['median']:,.0f} events/s "
        f"({result['multiclass_of_floor']['median']:.2f} of its floor): {ratio:.0%} of binary, "
        f"{of_floor:.0%} of binary's share of the floor",
        flush=True,
    )
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
