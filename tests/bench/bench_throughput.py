"""Throughput benchmark: tilewatch end to end against a bare Kafka consumer (the floor).

Run from the repository root (it is a script, not a pytest test; see tests/bench/README.md)::

    python tests/bench/bench_throughput.py [--events 500000] [--cells 1000] [--partitions 4]
                                           [--repeat 1] [--profile spine|drift|labels]
                                           [--json out.json]

What it does:

1. Starts an :class:`~tilewatch.streams.dev.broker.EmbeddedBroker`, creates a topic with
   ``--partitions`` partitions and produces ``--events`` synthetic events over ``--cells`` cells
   (one model x segments x regions), keyed by cell, event time spread over ten minutes so that
   one-minute windows close. Values come from
   :class:`~tilewatch.streams.dev.traffic.TrafficGenerator` (orjson, in chunks, so the process never
   holds all of them at once).
2. Alternately ``--repeat`` times: the floor (a group-less ``KafkaConsumer`` that polls and
   ``orjson.loads`` every value, nothing else) and tilewatch end to end (a
   :class:`~tilewatch.streams.loop.Monitor` with a
   :class:`~tilewatch.aggregators.state.replica.ReplicaState`). Both read the topic from the
   beginning with ``assign()`` (no group join), with the monitor's consumer settings, and are timed
   from the first non-empty poll to the N-th record processed.
3. Prints events/s of both and their ratio, the peak RSS, the cost of one Prometheus scrape of
   the final state, and an offline per-event breakdown (decode, columns, apply, refresh) on the
   same record values without Kafka. ``--json PATH`` writes every figure.

``--profile drift`` runs the same measurement with the drift and data-quality stages on: events
carry ten features (five numeric, five categorical) and a prediction, a baseline is built in-process
from a separate sample of the same generator, and the monitor's
:class:`~tilewatch.aggregators.state.replica.ReplicaState` gets a
:class:`~tilewatch.aggregators.drift.profile.DriftProfile` with the ten features and the ``adwin``
and ``page_hinkley`` detectors. Its breakdown adds the feature capture, ``DriftProfile.encode``, the
histograms in ``apply`` and the detectors' share.

``--profile labels`` adds a co-partitioned outcomes topic and joins the labels on it with the
predictions (``tests/bench/bench_labels.py``): N predictions and about 0.9 N labels.

The script checks that the final state holds exactly N valid events (sum of the leaf cells'
``events_total``) and always stops the broker.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # run as ``python tests/bench/bench_throughput.py``
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from tests.bench.harness import (  # noqa: E402
    CHUNK,
    FEATURES,
    START_TIME,
    AssignedConsumers,
    Record,
    apply_gc,
    bench_settings,
    broker_with_topics,
    cell_layout,
    compare_to_floor,
    fill_topics,
    measure_scrape,
    median_of,
    partition_of,
    print_rows,
    produce_in_child,
    rss_mb,
    run_floor,
    run_measured,
    spine_spec,
    time_calls,
    time_loads,
    time_split,
    timed,
    write_json,
)
from tilewatch.aggregators.cells.settings import CellSettings  # noqa: E402
from tilewatch.aggregators.drift.profile import DriftProfile, DriftSettings  # noqa: E402
from tilewatch.aggregators.drift.reference import (  # noqa: E402
    Baseline,
    BaselineSettings,
    ModelColumns,
    build_model_baseline,
)
from tilewatch.aggregators.state.replica import ReplicaState  # noqa: E402
from tilewatch.streams.decoding.predictions import EventDecoder  # noqa: E402
from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec  # noqa: E402
from tilewatch.streams.settings import EventFields, KafkaSettings  # noqa: E402

#: Event time covered by the whole run: ten one-minute windows.
SPAN_SECONDS = 600.0
#: ``--profile`` values: the spine (no drift stage), the drift and data-quality stages, and
#: the label join (``bench_labels.py``).
PROFILES = ("spine", "drift", "labels")
#: Drift profile: numeric features (the generator's realistic ones; the last two, names it does
#: not know, are standard normal numbers).
DRIFT_NUMERIC = ("tenure_months", "monthly_spend", "tickets_30d", "usage_z", "engagement_z")
#: Drift profile: categorical features (``plan`` and ``channel`` from the generator, the others
#: drawn here per cell; ``country`` has more values than the baseline's 20 top categories).
DRIFT_CATEGORICAL = ("plan", "channel", "device", "country", "payment")
DRIFT_EXTRA_CATEGORIES: dict[str, tuple[str, ...]] = {
    "device": ("ios", "android", "web", "desktop", "tv"),
    "country": tuple(f"c{i:02d}" for i in range(30)),
    "payment": ("card", "invoice", "paypal", "transfer"),
}
DRIFT_FEATURES = DRIFT_NUMERIC + DRIFT_CATEGORICAL
#: Events of the in-process baseline sample (drift profile).
BASELINE_EVENTS = 50_000


# -- traffic -----------------------------------------------------------------------------------


def traffic_spec(cells: int, profile: str = "spine") -> TrafficSpec:
    """The spine's spec; with the drift profile, the generator's own features (the extra
    categorical ones are added by :class:`DriftTrafficGenerator`)."""
    if profile == "drift":
        return spine_spec(
            cells, tuple(f for f in DRIFT_FEATURES if f not in DRIFT_EXTRA_CATEGORIES)
        )
    return spine_spec(cells, FEATURES)


class DriftTrafficGenerator(TrafficGenerator):
    """The generator plus the categorical features of :data:`DRIFT_EXTRA_CATEGORIES`.

    Each extra feature has a per-cell category distribution (a Dirichlet draw per cell, from
    its own seeded stream, so cells differ but do not depend on ``stream``). ``stream`` selects
    the per-event random stream: 0 is the benchmark's traffic, another value an independent
    sample of the same distributions (the baseline's).
    """

    def __init__(self, spec: TrafficSpec, start_time: float, stream: int = 0) -> None:
        super().__init__(spec, start_time)
        if stream:
            self._rng = np.random.default_rng([spec.seed, 100 + stream])
        n_cells = len(self._cell_names)
        rng = np.random.default_rng([spec.seed, 2])
        self._extra = {
            name: (values, np.cumsum(rng.dirichlet(np.full(len(values), 2.0), n_cells), axis=1))
            for name, values in DRIFT_EXTRA_CATEGORIES.items()
        }

    def _features(self, cell: np.ndarray, degraded: np.ndarray, n: int) -> dict[str, list[Any]]:
        out = super()._features(cell, degraded, n)
        for name, (values, cdf) in self._extra.items():
            u = self._rng.random((n, 1))
            idx = np.minimum((u >= cdf[cell]).sum(axis=1), len(values) - 1)
            out[name] = [values[i] for i in idx.tolist()]
        return out


def make_generator(cells: int, profile: str, start_time: float, stream: int = 0) -> Any:
    spec = traffic_spec(cells, profile)
    if profile == "drift":
        return DriftTrafficGenerator(spec, start_time, stream)
    return TrafficGenerator(spec, start_time=start_time)


def traffic_chunks(
    events: int, cells: int, profile: str = "spine", start: float = START_TIME
) -> Iterator[tuple[list[bytes], list[bytes]]]:
    """``(keys, values)`` chunks of the benchmark's traffic (event times from ``start`` over
    :data:`SPAN_SECONDS`), the same on every call."""
    gen = make_generator(cells, profile, start)
    n_chunks = max(1, math.ceil(events / CHUNK))
    spread = SPAN_SECONDS / n_chunks
    for i in range(n_chunks):
        n = min(CHUNK, events - i * CHUNK)
        yield gen.keyed_batch(n, event_time=start + i * spread, spread_seconds=spread)


def produce(
    bootstrap: str,
    topic: str,
    events: int,
    cells: int,
    profile: str = "spine",
    start: float = START_TIME,
) -> dict[str, Any]:
    """Send the traffic; returns rates and the average value size."""
    chunks = (
        ([topic] * len(keys), keys, values)
        for keys, values in traffic_chunks(events, cells, profile, start)
    )
    fill = fill_topics(bootstrap, chunks)
    seconds, gen_seconds = fill["seconds"], fill["generate_seconds"]
    if fill["sent"].get(topic, 0) != events:
        raise RuntimeError(f"sent {fill['sent']} records, expected {events}")
    return {
        "seconds": seconds,
        "events_per_second": events / seconds,
        "generate_seconds": gen_seconds,
        "send_events_per_second": events / max(seconds - gen_seconds, 1e-9),
        "mean_event_bytes": fill["bytes"][topic] / events,
    }


# -- drift profile ---------------------------------------------------------------------------


def build_bench_baseline(cells: int, fields: EventFields) -> tuple[Baseline, dict[str, Any]]:
    """A baseline of :data:`BASELINE_EVENTS` events of an independent sample of the traffic.

    Built with :func:`tilewatch.aggregators.drift.reference.build_model_baseline` (what ``tilewatch
    baseline`` runs per model) and passed through ``to_dict``/``from_dict`` as ``load_baseline``
    would.
    """
    t0 = time.perf_counter()
    gen = make_generator(cells, "drift", START_TIME - 3600.0, stream=1)
    cols = ModelColumns()
    for e in gen.events(BASELINE_EVENTS, spread_seconds=600.0):
        cols.scores.append(e["score"])
        cols.labels.append(e["label"])
        cols.predictions.append(e["prediction"])
        cols.features.append(e["features"])
    settings = BaselineSettings()
    model = build_model_baseline(cols, settings, fields.score_min, fields.score_max)
    built = Baseline(
        created_at="2026-01-01T00:00:00Z",
        sources=[{"path": "<bench sample>", "format": "generated", "rows": BASELINE_EVENTS}],
        score_range=(fields.score_min, fields.score_max),
        settings=settings,
        models={"churn": model},
        rows_read=BASELINE_EVENTS,
    )
    baseline = Baseline.from_dict(orjson.loads(orjson.dumps(built.to_dict())))
    kinds = {name: f.kind for name, f in baseline.models["churn"].features.items()}
    return baseline, {
        "events": BASELINE_EVENTS,
        "seconds": time.perf_counter() - t0,
        "feature_kinds": kinds,
        "notes": list(model.notes),
    }


def drift_profile(
    baseline: Baseline, fields: EventFields, detectors: tuple[str, ...] = ("adwin", "page_hinkley")
) -> DriftProfile:
    """The ten features, on the baseline, with ``detectors``."""
    settings = DriftSettings(features=DRIFT_FEATURES, detectors=detectors)
    return DriftProfile(settings, (fields.score_min, fields.score_max), baseline)


# -- consumers ---------------------------------------------------------------------------------


def run_tilewatch(
    settings: KafkaSettings,
    cells: CellSettings,
    fields: EventFields,
    events: int,
    profile: DriftProfile | None = None,
) -> tuple[dict[str, Any], ReplicaState]:
    """A Monitor on a fresh ReplicaState (with ``profile``), stopped by a watcher thread at
    ``events`` records."""
    from tilewatch.streams.loop import Monitor

    state = ReplicaState(cells, profile)
    consumers = AssignedConsumers(settings)
    monitor = Monitor(settings, fields, state, consumer_factory=consumers)  # type: ignore[arg-type]
    summary, timing = run_measured(monitor, consumers, events, lambda: monitor.summary.read)
    return {
        **timing,
        "read": summary.read,
        "valid": summary.valid,
        "late": summary.late,
        "invalid": summary.invalid,
        "apply_calls": state.ingest.batches,
        "records_per_apply": summary.read / max(state.ingest.batches, 1),
    }, state


# -- scrape and offline breakdown --------------------------------------------------------------


def offline_batches(
    events: int, cells: int, partitions: int, per_batch: int, profile: str = "spine"
) -> list[tuple[int, list[Record]]]:
    """The traffic as the consumer sees it: per-partition runs of ``per_batch`` records,
    interleaved round-robin across partitions, each partition in offset order."""
    by_part: list[list[Record]] = [[] for _ in range(partitions)]
    part_of: dict[bytes, int] = {}
    for keys, values in traffic_chunks(events, cells, profile):
        for key, value in zip(keys, values, strict=True):
            p = part_of.get(key)
            if p is None:
                p = part_of[key] = partition_of(key, partitions)
            recs = by_part[p]
            recs.append(Record("bench", p, len(recs), key, value))
    runs = [
        [(p, recs[i : i + per_batch]) for i in range(0, len(recs), per_batch)]
        for p, recs in enumerate(by_part)
    ]
    out: list[tuple[int, list[Record]]] = []
    for i in range(max(map(len, runs))):
        out.extend(run[i] for run in runs if i < len(run))
    return out


def breakdown(
    events: int,
    cells: int,
    partitions: int,
    per_batch: int,
    cell_settings: CellSettings,
    fields: EventFields,
) -> dict[str, Any]:
    """Seconds per event of each step of ``Monitor.process``, offline on the same values."""
    from kafka import TopicPartition

    from tilewatch.streams.loop import Monitor

    batches = offline_batches(events, cells, partitions, per_batch)
    t_loads = time_loads(batches)

    # One batch at a time, dropping each result as the monitor does (keeping every decoded
    # batch alive would make the garbage collector's passes, and the timings, grow).
    decoder = EventDecoder(fields)
    state = ReplicaState(cell_settings)
    t_decode = t_columns = t_apply = t_refresh = 0.0
    clock = time.perf_counter
    for p, recs in batches:
        t0 = clock()
        decoded = decoder.decode(recs)
        t1 = clock()
        times = np.array(decoded.event_times, dtype=np.float64)
        scores = np.array(decoded.scores, dtype=np.float64)
        t2 = clock()
        state.apply(("bench", p), decoded.keys, times, scores, next_offset=recs[-1].offset + 1)
        t3 = clock()
        state.refresh()  # after every batch: an upper bound of the monitor's 1/s refresh
        t4 = clock()
        t_decode += t1 - t0
        t_columns += t2 - t1
        t_apply += t3 - t2
        t_refresh += t4 - t3
    snap = state.snapshot()
    valid = int(snap.events_total[snap.is_leaf].sum())
    if valid != events:
        raise RuntimeError(f"offline breakdown: {valid} valid events, expected {events}")
    del decoded, state, snap

    # The whole of Monitor.process (decode + columns + apply under the lock + counters).
    settings = KafkaSettings(topics=("bench",), dead_letter_topic=None)
    monitor = Monitor(settings, fields, ReplicaState(cell_settings))
    tps = [TopicPartition("bench", p) for p in range(partitions)]
    for tp in tps:  # Monitor.process skips partitions the state does not own
        monitor.state.assign((tp.topic, tp.partition))
    gc.collect()
    t_process, _ = timed(lambda: [monitor.process({tps[p]: recs}) for p, recs in batches])
    if monitor.summary.valid != events:
        raise RuntimeError(f"offline process: {monitor.summary.valid} valid, expected {events}")
    per = 1e6 / events
    per_partition: dict[int, int] = {}
    for p, recs in batches:
        per_partition[p] = per_partition.get(p, 0) + len(recs)
    return {
        "per_partition": per_partition,
        "records_per_batch": per_batch,
        "batches": len(batches),
        "loads_us_per_event": t_loads * per,
        "decode_us_per_event": t_decode * per,
        "columns_us_per_event": t_columns * per,
        "apply_us_per_event": t_apply * per,
        "apply_ms_per_batch": 1e3 * t_apply / len(batches),
        "refresh_ms_per_call": 1e3 * t_refresh / len(batches),
        "refresh_us_per_event_every_batch": t_refresh * per,
        "process_us_per_event": t_process * per,
    }


def _time_detectors(detectors: Any, acc: dict[str, float]) -> None:
    """Wrap a partition's ``CellDetectors`` updates so their time adds up in ``acc``."""
    time_calls(detectors, "update_scores", acc, "adwin")
    time_calls(detectors, "update_windows", acc, "page_hinkley")


def drift_breakdown(
    events: int,
    cells: int,
    partitions: int,
    per_batch: int,
    cell_settings: CellSettings,
    fields: EventFields,
    baseline: Baseline,
) -> dict[str, Any]:
    """Seconds per event of each step of ``Monitor.process`` with the drift profile.

    Decode with capture, ``DriftProfile.encode``, ``ReplicaState.apply`` with the histograms,
    once with the detectors on (their updates timed inside) and once with them off, and the
    whole ``Monitor.process``; one batch at a time, as the monitor does.
    """
    from kafka import TopicPartition

    from tilewatch.streams.loop import Monitor

    batches = offline_batches(events, cells, partitions, per_batch, "drift")
    t_loads = time_loads(batches)
    plain = EventDecoder(fields)
    t0 = time.perf_counter()
    for _p, recs in batches:
        plain.decode(recs)
    t_plain = time.perf_counter() - t0

    clock = time.perf_counter

    def one_pass(detectors: tuple[str, ...]) -> tuple[dict[str, float], dict[str, Any]]:
        profile = drift_profile(baseline, fields, detectors)
        decoder = EventDecoder(fields, capture=True)
        state = ReplicaState(cell_settings, profile)
        t = dict.fromkeys(
            ("decode", "columns", "encode", "apply", "refresh", "adwin", "page_hinkley"), 0.0
        )
        for p in sorted({p for p, _recs in batches}):
            part = state.assign(("bench", p))
            if part.detectors is not None:
                _time_detectors(part.detectors, t)
        gc.collect()
        for p, recs in batches:
            t0 = clock()
            decoded = decoder.decode(recs)
            t1 = clock()
            scores = np.array(decoded.scores, dtype=np.float64)
            times = np.array(decoded.event_times, dtype=np.float64)
            t2 = clock()
            bins, violations = profile.encode(
                [k[0] for k in decoded.keys], scores, decoded.predictions, decoded.features
            )
            t3 = clock()
            state.apply(
                ("bench", p),
                decoded.keys,
                times,
                scores,
                next_offset=recs[-1].offset + 1,
                bins=bins,
                violations=violations,
            )
            t4 = clock()
            state.refresh()  # after every batch: an upper bound of the monitor's 1/s refresh
            t5 = clock()
            t["decode"] += t1 - t0
            t["columns"] += t2 - t1
            t["encode"] += t3 - t2
            t["apply"] += t4 - t3
            t["refresh"] += t5 - t4
        snap = state.snapshot()
        valid = int(snap.events_total[snap.is_leaf].sum())
        if valid != events:
            raise RuntimeError(f"drift breakdown: {valid} valid events, expected {events}")
        by_kind: dict[str, int] = {}
        for (_m, _f, kind), count in snap.violations.items():
            by_kind[kind] = by_kind.get(kind, 0) + count
        info = {
            "violations_by_kind": by_kind,
            "detections": {
                name: sum(n for (_c, d), (n, _w, _a) in snap.detections.items() if d == name)
                for name in detectors
            },
            "flagged_cells": {
                signal: int(mask.sum()) for signal, mask in (snap.drift.flags.items())
            }
            if snap.drift is not None
            else {},
        }
        return t, info

    t_on, info = one_pass(("adwin", "page_hinkley"))
    t_off, _ = one_pass(())

    settings = KafkaSettings(topics=("bench",), dead_letter_topic=None)
    monitor = Monitor(
        settings, fields, ReplicaState(cell_settings, drift_profile(baseline, fields))
    )
    tps = [TopicPartition("bench", p) for p in range(partitions)]
    for tp in tps:  # Monitor.process skips partitions the state does not own
        monitor.state.assign((tp.topic, tp.partition))
    gc.collect()

    def process_all() -> None:
        for p, recs in batches:
            monitor.process({tps[p]: recs})

    t_process, _ = timed(process_all)
    if monitor.summary.valid != events:
        raise RuntimeError(f"offline process: {monitor.summary.valid} valid, expected {events}")
    per = 1e6 / events
    per_partition: dict[int, int] = {}
    for p, recs in batches:
        per_partition[p] = per_partition.get(p, 0) + len(recs)
    return {
        "per_partition": per_partition,
        "records_per_batch": per_batch,
        "batches": len(batches),
        "loads_us_per_event": t_loads * per,
        "decode_no_capture_us_per_event": t_plain * per,
        "decode_us_per_event": t_on["decode"] * per,
        "columns_us_per_event": t_on["columns"] * per,
        "encode_us_per_event": t_on["encode"] * per,
        "encode_ms_per_batch": 1e3 * t_on["encode"] / len(batches),
        "apply_us_per_event": t_on["apply"] * per,
        "apply_ms_per_batch": 1e3 * t_on["apply"] / len(batches),
        "apply_no_detectors_us_per_event": t_off["apply"] * per,
        "detectors_us_per_event": (t_on["apply"] - t_off["apply"]) * per,
        "detectors_share_of_apply": (t_on["apply"] - t_off["apply"]) / t_on["apply"],
        "adwin_us_per_event": t_on["adwin"] * per,
        "page_hinkley_us_per_event": t_on["page_hinkley"] * per,
        "refresh_ms_per_call": 1e3 * t_on["refresh"] / len(batches),
        "refresh_us_per_event_every_batch": t_on["refresh"] * per,
        "refresh_no_detectors_ms_per_call": 1e3 * t_off["refresh"] / len(batches),
        "process_us_per_event": t_process * per,
        **info,
    }


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500_000, help="events to produce")
    parser.add_argument("--cells", type=int, default=1000, help="leaf cells (1 model)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions")
    parser.add_argument("--repeat", type=int, default=1, help="floor/tilewatch rounds")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="spine",
        help="'spine': counts, windows and rolling statistics only (3 features per event); "
        "'drift': 10 features, a baseline, the drift profile and its detectors; "
        "'labels': predictions and an outcomes topic joined by event id (bench_labels.py)",
    )
    parser.add_argument(
        "--gc",
        choices=["tuned", "default"],
        default="tuned",
        help="garbage collector settings for both runs: 'tuned' is what `tilewatch run` uses "
        "(tilewatch.app.tune_gc), 'default' is CPython's",
    )
    args = parser.parse_args(argv)
    for name in ("events", "cells", "partitions", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    n, c = args.events, args.cells
    segments, regions = cell_layout(c)
    fields = EventFields()  # segment and region dimensions, the generator's schema
    cell_settings = CellSettings(
        dimensions=tuple(fields.dimensions), max_cells=max(CellSettings().max_cells, c)
    )
    if args.profile == "labels":
        from tests.bench.bench_labels import labels_main

        write_json(args.json, labels_main(args, cell_settings, fields))
        return 0
    topic = "bench-predictions"
    result: dict[str, Any] = {
        "load_average_at_start": os.getloadavg(),
        "events": n,
        "cells": c,
        "layout": {"models": 1, "segments": segments, "regions": regions},
        "partitions": args.partitions,
        "repeat": args.repeat,
        "gc": args.gc,
        "profile": args.profile,
    }
    print(
        f"events {n}, cells {c} (1 model x {segments} segments x {regions} regions), "
        f"partitions {args.partitions}, repeat {args.repeat}, profile {args.profile}",
        flush=True,
    )
    baseline: Baseline | None = None
    profile: DriftProfile | None = None
    if args.profile == "drift":
        baseline, result["baseline"] = build_bench_baseline(c, fields)
        profile = drift_profile(baseline, fields)
        result["drift_hist_bins"] = dict(profile.hist_bins)
        print(
            f"baseline of {BASELINE_EVENTS} events built in {result['baseline']['seconds']:.1f} s; "
            f"histograms {profile.hist_bins}",
            flush=True,
        )

    with broker_with_topics({topic: args.partitions}) as broker:
        prod = produce_in_child(produce, broker.bootstrap, topic, n, c, args.profile)
        apply_gc(args.gc)
        result["produce"] = prod
        print(
            f"produced {n} events of {prod['mean_event_bytes']:.0f} B in {prod['seconds']:.1f} s: "
            f"{prod['events_per_second']:,.0f} events/s "
            f"(generation {prod['generate_seconds']:.1f} s, "
            f"send only {prod['send_events_per_second']:,.0f} events/s)",
            flush=True,
        )

        expected_parts: dict[int, int] = {}
        floors: list[dict[str, Any]] = []
        tws: list[dict[str, Any]] = []
        state: ReplicaState | None = None
        for i in range(args.repeat):
            gc.collect()
            floor = run_floor(bench_settings(broker.bootstrap, (topic,)), n)
            floors.append(floor)
            print(
                f"[{i + 1}/{args.repeat}] floor     {floor['events_per_second']:>10,.0f} events/s "
                f"({floor['seconds']:.2f} s, main thread CPU {floor['main_thread_cpu_share']:.0%})",
                flush=True,
            )
            if i == 0:
                result["rss_before_tilewatch"] = rss_mb()
                expected_parts = floor["per_partition"]
            state = None
            gc.collect()
            tw, state = run_tilewatch(
                bench_settings(broker.bootstrap, (topic,)), cell_settings, fields, n, profile
            )
            tws.append(tw)
            print(
                f"[{i + 1}/{args.repeat}] tilewatch {tw['events_per_second']:>10,.0f} events/s "
                f"({tw['seconds']:.2f} s, main thread CPU {tw['main_thread_cpu_share']:.0%}, "
                f"{tw['records_per_apply']:.0f} records per apply)",
                flush=True,
            )
        assert state is not None
        result["rss_after_tilewatch"] = rss_mb()

        snap = state.snapshot()
        leaf_events = int(snap.events_total[snap.is_leaf].sum())
        leaf_cells = int((snap.events_total[snap.is_leaf] > 0).sum())
        last = tws[-1]
        if leaf_events != n or last["valid"] != n or last["late"] or last["invalid"]:
            raise RuntimeError(
                f"final state: {leaf_events} leaf events (expected {n}), summary {last}"
            )
        result["final_state"] = {
            "leaf_events_total": leaf_events,
            "leaf_cells_with_events": leaf_cells,
            "cells_total": len(snap.keys),
            "closed_window_end": snap.window_end,
        }
        result.update(compare_to_floor(floors, tws))
        result["scrape"] = measure_scrape(state, cell_settings.dimensions)
        del snap, state

    per_batch = max(1, round(tws[-1]["records_per_apply"]))
    gc.collect()
    if baseline is not None:
        bd = drift_breakdown(n, c, args.partitions, per_batch, cell_settings, fields, baseline)
    else:
        bd = breakdown(n, c, args.partitions, per_batch, cell_settings, fields)
    result["breakdown"] = bd
    if bd.pop("per_partition") != expected_parts:  # the offline layout must match Kafka's
        print(f"warning: offline partition layout differs from the broker's: {expected_parts}")
    result["per_event_us"] = time_split(
        result["floor"]["median"],
        result["tilewatch"]["median"],
        bd["loads_us_per_event"],
        bd["process_us_per_event"],
        bd["refresh_ms_per_call"],
    )
    result["per_partition"] = expected_parts

    result["load_average_at_end"] = os.getloadavg()
    report(result)
    write_json(args.json, result)
    return 0


def report(r: dict[str, Any]) -> None:
    fl, tw, bd, pe = r["floor"], r["tilewatch"], r["breakdown"], r["per_event_us"]
    sc, fs = r["scrape"], r["final_state"]
    rows = [
        ("profile", r["profile"]),
        ("events", f"{r['events']:,}"),
        ("cells (leaf)", f"{r['cells']:,}  ({fs['cells_total']:,} with roll-ups)"),
        ("partitions", str(r["partitions"])),
        (
            "produce",
            f"{r['produce']['events_per_second']:,.0f} events/s "
            f"({r['produce']['mean_event_bytes']:.0f} B/event)",
        ),
        ("floor", f"best {fl['best']:,.0f}  median {fl['median']:,.0f} events/s"),
        ("tilewatch", f"best {tw['best']:,.0f}  median {tw['median']:,.0f} events/s"),
        ("ratio tilewatch/floor", f"best {r['ratio_best']:.2f}  median {r['ratio_median']:.2f}"),
        (
            "main-thread CPU share",
            f"floor {median_of(fl, 'main_thread_cpu_share'):.2f}  "
            f"tilewatch {median_of(tw, 'main_thread_cpu_share'):.2f}",
        ),
        (
            "GC time in run",
            f"floor {1e3 * median_of(fl, 'gc_seconds'):.0f} ms  "
            f"tilewatch {1e3 * median_of(tw, 'gc_seconds'):.0f} ms",
        ),
        (
            "peak RSS after tilewatch",
            f"{r['rss_after_tilewatch']['peak_rss_mb']:.0f} MB "
            f"(current {r['rss_after_tilewatch']['current_rss_mb']:.0f} MB;"
            f" peak before 1st tilewatch run "
            f"{r['rss_before_tilewatch']['peak_rss_mb']:.0f} MB)",
        ),
        (
            "scrape (median of 5)",
            f"{1e3 * sc['scrape_seconds_median']:.1f} ms, "
            f"{sc['exposition_bytes']:,} B, {sc['samples']:,} samples "
            f"(snapshot alone {1e3 * sc['snapshot_seconds_median']:.1f} ms; prometheus-client "
            f"{1e3 * sc['prometheus_client_seconds']:.1f} ms)",
        ),
        *(
            [
                (
                    "  with drift statistics",
                    f"snapshot recomputing them {1e3 * sc['snapshot_uncached_seconds_median']:.1f}"
                    f" ms; drift families alone {1e3 * sc['drift_families_seconds_median']:.1f}"
                    f" ms, {sc['drift_samples']:,} samples, {sc['drift_exposition_bytes']:,} B",
                )
            ]
            if "drift_samples" in sc
            else []
        ),
        (
            "load average (1 min)",
            f"{r['load_average_at_start'][0]:.2f} at start, "
            f"{r['load_average_at_end'][0]:.2f} at end (2 cores; busy above ~1.2)",
        ),
        (
            "leaf events_total",
            f"{fs['leaf_events_total']:,} (== events: {fs['leaf_events_total'] == r['events']})",
        ),
    ]
    print_rows("results", rows)
    print(
        f"\n== offline breakdown per event (batches of {bd['records_per_batch']} records, no Kafka)"
    )
    if r["profile"] == "drift":
        steps: tuple[tuple[str, str], ...] = (
            ("orjson.loads only", "loads_us_per_event"),
            ("decode without capture", "decode_no_capture_us_per_event"),
            ("decode with capture", "decode_us_per_event"),
            ("np.array columns", "columns_us_per_event"),
            ("DriftProfile.encode", "encode_us_per_event"),
            ("apply with bins", "apply_us_per_event"),
            ("  without detectors", "apply_no_detectors_us_per_event"),
            ("  detectors (difference)", "detectors_us_per_event"),
            ("  ADWIN (timed inside)", "adwin_us_per_event"),
            ("  PageHinkley (inside)", "page_hinkley_us_per_event"),
            ("refresh after every batch", "refresh_us_per_event_every_batch"),
            ("Monitor.process (all)", "process_us_per_event"),
        )
    else:
        steps = (
            ("orjson.loads only", "loads_us_per_event"),
            ("EventDecoder.decode", "decode_us_per_event"),
            ("np.array columns", "columns_us_per_event"),
            ("ReplicaState.apply", "apply_us_per_event"),
            ("refresh after every batch", "refresh_us_per_event_every_batch"),
            ("Monitor.process (all)", "process_us_per_event"),
        )
    for name, key in steps:
        print(f"  {name:<26} {bd[key]:7.2f} us")
    if r["profile"] == "drift":
        print(f"  {'detectors share of apply':<26} {bd['detectors_share_of_apply']:7.0%}")
        print(f"  {'encode per batch':<26} {bd['encode_ms_per_batch']:7.2f} ms")
    print(f"  {'apply per batch':<26} {bd['apply_ms_per_batch']:7.2f} ms")
    print(f"  {'refresh per call':<26} {bd['refresh_ms_per_call']:7.2f} ms")
    if r["profile"] == "drift":
        print(f"  {'  without detectors':<26} {bd['refresh_no_detectors_ms_per_call']:7.2f} ms")
        print(
            f"  violations {bd['violations_by_kind']}, detections {bd['detections']}, "
            f"flagged leaf+roll-up cells {bd['flagged_cells']}"
        )
    print("\n== where an end-to-end event's time goes (medians)")
    print(f"  {'tilewatch end to end':<26} {pe['tilewatch']:7.2f} us")
    print(f"  {'  kafka fetch (floor-loads)':<26} {pe['kafka_fetch_estimate']:7.2f} us")
    print(f"  {'  Monitor.process offline':<26} {pe['process_offline']:7.2f} us")
    print(f"  {'  refresh at 1/s':<26} {pe['refresh_at_1hz']:7.2f} us")
    print(f"  {'  rest (loop, commit, GC)':<26} {pe['unexplained']:7.2f} us")
    print(f"  {'floor end to end':<26} {pe['floor']:7.2f} us")


if __name__ == "__main__":
    sys.exit(main())
