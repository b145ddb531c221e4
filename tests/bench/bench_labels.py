"""The label join profile of the throughput benchmark (``bench_throughput.py --profile labels``).

A predictions topic and a co-partitioned outcomes topic (same partition count, each label keyed
like its prediction) on the embedded broker, and a :class:`~tilewatch.streams.loop.Monitor` joining
them (``label_topic=LabelTopic(...)``, ``LabelSettings(source="topic")``):

* ``--events`` predictions of the spine's traffic (1 model x segments x regions, 3 features),
  spread over :data:`SPAN_SECONDS` of event time (longer than the TTL, so expiry runs and the
  join reaches its steady state), without an inline label;
* a label for :data:`LABEL_SHARE` of them (about 450,000 for 500,000 predictions), 0/1 drawn
  from the score (calibrated). :data:`LATE_SHARE` of the labels come an hour after their
  prediction (event time ``t + 3600 + U(0, 60) s``), the others ``U(1, 5) s`` after;
* both topics written in arrival order (a prediction at its event time, a label at its own),
  so the topics are interleaved as a live producer would write them;
* ``[labels]`` grace 1 h, TTL 2 h, threshold 0.5, the default DDM error detector.

The floor reads and ``orjson.loads`` the records of both topics. events/s counts predictions
plus labels. Besides the throughput figures it reports the join's occupancy at its peak
(pending predictions, held labels, recently joined ids, :meth:`LabelJoin.nbytes`), a separate
tracemalloc measure of the bytes per pending prediction, and an offline per-stage breakdown.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from tests.bench.harness import (  # noqa: E402
    CHUNK,
    START_TIME,
    AssignedConsumers,
    Record,
    apply_gc,
    bench_settings,
    broker_with_topics,
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
)
from tilewatch.aggregators.cells.settings import CellSettings  # noqa: E402
from tilewatch.aggregators.labels.join import JoinSettings, LabelJoin  # noqa: E402
from tilewatch.aggregators.labels.settings import LabelSettings  # noqa: E402
from tilewatch.aggregators.state.replica import ReplicaState  # noqa: E402
from tilewatch.streams.decoding.outcomes import LabelDecoder  # noqa: E402
from tilewatch.streams.decoding.predictions import EventDecoder  # noqa: E402
from tilewatch.streams.dev.traffic import TrafficGenerator  # noqa: E402
from tilewatch.streams.settings import EventFields, KafkaSettings, LabelTopic  # noqa: E402

#: Event time covered by the predictions: three hours (longer than the 2 h TTL).
SPAN_SECONDS = 3 * 3600.0
#: Share of predictions that get a label.
LABEL_SHARE = 0.9
#: Share of labels that arrive an hour after their prediction (event time).
LATE_SHARE = 0.1
LATE_DELAY = 3600.0
#: Quick labels arrive ``U(QUICK_DELAY)`` seconds after their prediction.
QUICK_DELAY = (1.0, 5.0)
#: The ``[labels]`` settings of the run.
LABELS = LabelSettings(
    source="topic",
    grace_seconds=3600.0,
    threshold=0.5,
    join=JoinSettings(ttl_seconds=7200.0),
)
PREDICTIONS_TOPIC = "bench-predictions"
OUTCOMES_TOPIC = "bench-outcomes"
#: Columns the monitor's decoder collects with labels from a topic.
DECODER_COLUMNS = ("latency", "model_version", "event_id")

# -- traffic ---------------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    """``orjson.dumps`` copied to an exact-size ``bytes``: orjson's own result keeps a buffer
    of about 4 KiB per value, so 950,000 values would take about 4 GB (offline breakdown)."""
    return bytes(memoryview(orjson.dumps(obj)))


def label_chunks(events: int, cells: int) -> Iterator[tuple[list[int], list[bytes], list[bytes]]]:
    """``(topic, key, value)`` columns in arrival order (topic 0: predictions, 1: outcomes).

    The same on every call. A chunk holds :data:`CHUNK` predictions and the labels that arrive
    within their event-time span; labels due later wait for a later chunk.
    """
    spec = dataclasses.replace(spine_spec(cells), label_share=LABEL_SHARE)
    gen = TrafficGenerator(spec, start_time=START_TIME)
    rng = np.random.default_rng([spec.seed, 3])
    dumps = _dumps
    n_chunks = max(1, math.ceil(events / CHUNK))
    spread = SPAN_SECONDS / n_chunks
    waiting_t = np.zeros(0)
    waiting: list[tuple[bytes, bytes]] = []
    for i in range(n_chunks):
        n = min(CHUNK, events - i * CHUNK)
        t_end = START_TIME + (i + 1) * spread
        rows = gen.events(n, event_time=START_TIME + i * spread, spread_seconds=spread)
        p_t = np.array([e["timestamp"] for e in rows])
        p_recs: list[tuple[bytes, bytes]] = []
        l_recs: list[tuple[bytes, bytes]] = []
        l_t: list[float] = []
        late = rng.random(n) < LATE_SHARE
        delay = np.where(late, LATE_DELAY + rng.uniform(0, 60, n), rng.uniform(*QUICK_DELAY, n))
        for e, d in zip(rows, delay.tolist(), strict=True):
            key = TrafficGenerator.key_for(e)
            label = e.pop("label")
            p_recs.append((key, dumps(e)))
            if label is not None:
                t = e["timestamp"] + d
                l_t.append(t)
                l_recs.append(
                    (key, dumps({"event_id": e["event_id"], "label": label, "timestamp": t}))
                )
        pool_t = np.r_[waiting_t, np.array(l_t)]
        pool = waiting + l_recs
        order = np.argsort(pool_t, kind="stable")
        due = int(np.searchsorted(pool_t[order], t_end)) if i < n_chunks - 1 else len(pool)
        now, later = order[:due], order[due:]
        waiting_t, waiting = pool_t[later], [pool[j] for j in later.tolist()]
        times = np.r_[p_t, pool_t[now]]
        recs = p_recs + [pool[j] for j in now.tolist()]
        topics = [0] * n + [1] * len(now)
        merged = np.argsort(times, kind="stable").tolist()
        yield (
            [topics[j] for j in merged],
            [recs[j][0] for j in merged],
            [recs[j][1] for j in merged],
        )


def label_topic() -> LabelTopic:
    """The outcomes topic, with the default field names."""
    return LabelTopic(topic=OUTCOMES_TOPIC)


def produce_labels(bootstrap: str, events: int, cells: int) -> dict[str, Any]:
    """Send both topics' records in arrival order; rates, counts and mean value sizes."""
    names = (PREDICTIONS_TOPIC, OUTCOMES_TOPIC)
    chunks = (
        ([names[t] for t in topics], keys, values)
        for topics, keys, values in label_chunks(events, cells)
    )
    fill = fill_topics(bootstrap, chunks)
    sent = [fill["sent"].get(name, 0) for name in names]
    size = [fill["bytes"].get(name, 0) for name in names]
    total = sent[0] + sent[1]
    return {
        "seconds": fill["seconds"],
        "events_per_second": total / fill["seconds"],
        "generate_seconds": fill["generate_seconds"],
        "predictions": sent[0],
        "labels": sent[1],
        "mean_prediction_bytes": size[0] / max(sent[0], 1),
        "mean_label_bytes": size[1] / max(sent[1], 1),
    }


# -- the measured runs -------------------------------------------------------------------------


def _joins(state: ReplicaState) -> list[LabelJoin]:
    return [p.labels.join for p in state.partitions.values() if p.labels and p.labels.join]


def join_counters(state: ReplicaState) -> dict[str, int]:
    """The join's counters and occupancy, summed over the partitions."""
    names = ("joined", "expired", "evicted", "orphaned", "duplicate_predictions")
    names += ("duplicate_labels", "missing_id", "pending", "held", "recent")
    joins = _joins(state)
    out = {name: sum(getattr(j, name) for j in joins) for name in names}
    out["nbytes"] = sum(j.nbytes() for j in joins)
    return out


def run_tilewatch_labels(
    bootstrap: str, cells: CellSettings, fields: EventFields, predictions: int, labels: int
) -> tuple[dict[str, Any], ReplicaState]:
    """The Monitor on both topics, stopped once it has processed every record of both."""
    from tilewatch.streams.loop import Monitor

    settings = bench_settings(bootstrap, (PREDICTIONS_TOPIC,))
    state = ReplicaState(cells, None, labels=LABELS)
    consumers = AssignedConsumers(settings)
    monitor = Monitor(
        settings,
        fields,
        state,
        consumer_factory=consumers,  # type: ignore[arg-type]
        label_topic=label_topic(),
    )
    total = predictions + labels
    ingest = state.ingest
    # The join at the largest number of pending predictions, and at its largest nbytes().
    peak: dict[str, Any] = {"pending": -1}
    peak_bytes: dict[str, Any] = {"nbytes": -1}
    polls = {"prediction_batches": 0, "label_batches": 0, "instrument_seconds": 0.0}
    rss = {"max_mb": 0.0}

    def instrument(batch: Any) -> None:  # after every batch, until the last record is in state
        t0 = time.perf_counter()
        for tp in batch:
            polls["label_batches" if tp.topic == OUTCOMES_TOPIC else "prediction_batches"] += 1
        joins = _joins(state)
        now = {
            "pending": sum(j.pending for j in joins),
            "nbytes": sum(j.nbytes() for j in joins),  # O(1): it samples 64 ids per index
        }
        if now["pending"] > peak["pending"] or now["nbytes"] > peak_bytes["nbytes"]:
            now.update(
                held=sum(j.held for j in joins),
                recent=sum(j.recent for j in joins),
                read_predictions=monitor.summary.read,
                read_labels=ingest.label_records,
            )
            if now["pending"] > peak["pending"]:
                peak.update(now)
            if now["nbytes"] > peak_bytes["nbytes"]:
                peak_bytes.update(now)
        polls["instrument_seconds"] += time.perf_counter() - t0

    def sample_rss() -> None:
        rss["max_mb"] = max(rss["max_mb"], rss_mb()["current_rss_mb"])

    summary, timing = run_measured(
        monitor,
        consumers,
        total,
        lambda: monitor.summary.read + ingest.label_records,
        after_batch=instrument,
        sample=sample_rss,
    )
    return {
        **timing,
        "read": summary.read,
        "valid": summary.valid,
        "late": summary.late,
        "invalid": summary.invalid,
        "label_records": ingest.label_records,
        "invalid_labels": dict(ingest.invalid_labels),
        "records_per_apply": summary.read / max(ingest.batches, 1),
        "labels_per_apply": ingest.label_records / max(polls["label_batches"], 1),
        **polls,
        "peak": peak,
        "peak_bytes": peak_bytes,
        "join_at_end": join_counters(state),
        "rss_max_in_run_mb": rss["max_mb"],
        "rss_at_end_mb": rss_mb()["current_rss_mb"],
        "label_state": label_state_bytes(state),
    }, state


def label_state_bytes(state: ReplicaState) -> dict[str, Any]:
    """Bytes of the label side's numpy state: performance windows (open and final) and joins."""
    windows = perf_bytes = 0
    for part in state.partitions.values():
        if part.labels is None:
            continue
        for acc in (*part.labels.perf.values(), *part.labels.final.values()):
            windows += 1
            arrays = (acc._counts, acc._sums, acc._bin_count, acc._bin_pos, acc._bin_score)
            perf_bytes += sum(a.nbytes for a in arrays)
    return {
        "performance_windows": windows,
        "performance_bytes": perf_bytes,
        "join_nbytes": sum(j.nbytes() for j in _joins(state)),
    }


# -- offline breakdown -------------------------------------------------------------------------


def offline_label_batches(
    events: int, cells: int, partitions: int, per_batch: int, per_label_batch: int
) -> list[tuple[int, int, list[Record]]]:
    """``(topic, partition, records)`` batches, in the order their last record arrives.

    Each (topic, partition) is cut into runs of ``per_batch`` predictions or
    ``per_label_batch`` labels: the monitor's view when it keeps up with both topics.
    """
    names = (PREDICTIONS_TOPIC, OUTCOMES_TOPIC)
    streams: dict[tuple[int, int], list[tuple[int, Record]]] = {}
    part_of: dict[bytes, int] = {}
    seq = 0
    for topics, keys, values in label_chunks(events, cells):
        for topic, key, value in zip(topics, keys, values, strict=True):
            p = part_of.get(key)
            if p is None:
                p = part_of[key] = partition_of(key, partitions)
            recs = streams.setdefault((topic, p), [])
            recs.append((seq, Record(names[topic], p, len(recs), key, value)))
            seq += 1
    out: list[tuple[int, int, int, list[Record]]] = []
    for (topic, p), recs in streams.items():
        size = per_batch if topic == 0 else per_label_batch
        for i in range(0, len(recs), size):
            run = recs[i : i + size]
            out.append((run[-1][0], topic, p, [r for _s, r in run]))
    out.sort(key=lambda b: b[0])
    return [(topic, p, recs) for _s, topic, p, recs in out]


def label_breakdown(
    events: int,
    cells: int,
    partitions: int,
    per_batch: int,
    per_label_batch: int,
    cell_settings: CellSettings,
    fields: EventFields,
) -> dict[str, Any]:
    """Seconds per record of each step of ``Monitor.process`` on both topics, offline."""
    from kafka import TopicPartition

    from tilewatch.streams.loop import Monitor

    batches = offline_label_batches(events, cells, partitions, per_batch, per_label_batch)
    n_pred = sum(len(r) for t, _p, r in batches if t == 0)
    n_lab = sum(len(r) for t, _p, r in batches if t == 1)
    # The monitor's records live for one batch; these live for the whole breakdown, so keep
    # them out of the collector's passes (as tune_gc freezes the start-up objects).
    gc.collect()
    gc.freeze()
    t_loads = time_loads([(p, recs) for _t, p, recs in batches])
    decoder = EventDecoder(fields, columns=DECODER_COLUMNS)
    label_decoder = LabelDecoder(label_topic(), classification=True)
    state = ReplicaState(cell_settings, None, labels=LABELS)
    steps = ("decode", "label_decode", "columns", "apply", "apply_labels", "refresh")
    inner = ("side_predictions", "side_labels", "join_add_predictions", "join_add_labels")
    t = dict.fromkeys(steps + inner + ("join_expire", "detectors"), 0.0)
    for p in range(partitions):
        side = state.assign((PREDICTIONS_TOPIC, p)).labels
        assert side is not None and side.join is not None
        time_calls(side, "predictions", t, "side_predictions")
        time_calls(side, "labels", t, "side_labels")
        time_calls(side.join, "add_predictions", t, "join_add_predictions")
        time_calls(side.join, "add_labels", t, "join_add_labels")
        time_calls(side.join, "expire", t, "join_expire")
        if side.detectors is not None:
            time_calls(side.detectors, "update", t, "detectors")
    clock = time.perf_counter
    gc.collect()
    for topic, p, recs in batches:
        key = (PREDICTIONS_TOPIC, p)
        nxt = recs[-1].offset + 1
        if topic == 0:
            t0 = clock()
            d = decoder.decode(recs)
            t1 = clock()
            times = np.array(d.event_times, dtype=np.float64)
            scores = np.array(d.scores, dtype=np.float64)
            t2 = clock()
            state.apply(
                key,
                d.keys,
                times,
                scores,
                nxt,
                event_ids=d.event_ids,
                latencies=d.latencies,
                versions=d.model_versions,
            )
            t3 = clock()
            t["decode"] += t1 - t0
            t["apply"] += t3 - t2
        else:
            t0 = clock()
            ld = label_decoder.decode(recs)
            t1 = clock()
            times = np.array(ld.times, dtype=np.float64)
            t2 = clock()
            state.apply_labels(key, ld.event_ids, ld.labels, times, nxt)
            t3 = clock()
            t["label_decode"] += t1 - t0
            t["apply_labels"] += t3 - t2
        t["columns"] += t2 - t1
        state.refresh()  # after every batch: an upper bound of the monitor's 1/s refresh
        t["refresh"] += clock() - t3
    snap = state.snapshot()
    valid = int(snap.events_total[snap.is_leaf].sum())
    counters = join_counters(state)
    if valid != n_pred or counters["joined"] + counters["held"] + counters["orphaned"] != n_lab:
        raise RuntimeError(f"offline breakdown: {valid} valid events, join {counters}")
    del state, snap

    settings = KafkaSettings(topics=(PREDICTIONS_TOPIC,), dead_letter_topic=None)
    monitor = Monitor(
        settings,
        fields,
        ReplicaState(cell_settings, None, labels=LABELS),
        label_topic=label_topic(),
    )
    for p in range(partitions):
        monitor.state.assign((PREDICTIONS_TOPIC, p))
    tps = {
        (topic, p): TopicPartition((PREDICTIONS_TOPIC, OUTCOMES_TOPIC)[topic], p)
        for topic in (0, 1)
        for p in range(partitions)
    }
    gc.collect()
    t0 = clock()
    for topic, p, recs in batches:
        monitor.process({tps[topic, p]: recs})
    t_process = clock() - t0
    if monitor.summary.valid != n_pred or monitor.state.ingest.label_records != n_lab:
        raise RuntimeError(f"offline process: {monitor.summary}, {monitor.state.ingest}")
    per = 1e6 / (n_pred + n_lab)
    n_pb = sum(1 for t_, _p, _r in batches if t_ == 0)
    n_batches = len(batches)
    del batches, monitor  # frozen objects are still freed by reference counting
    return {
        "records_per_batch": per_batch,
        "labels_per_batch": per_label_batch,
        "batches": n_batches,
        "loads_us_per_record": t_loads * per,
        **{f"{name}_us_per_record": t[name] * per for name in t},
        "decode_us_per_prediction": 1e6 * t["decode"] / n_pred,
        "label_decode_us_per_label": 1e6 * t["label_decode"] / n_lab,
        "apply_us_per_prediction": 1e6 * t["apply"] / n_pred,
        "side_predictions_us_per_prediction": 1e6 * t["side_predictions"] / n_pred,
        "apply_labels_us_per_label": 1e6 * t["apply_labels"] / n_lab,
        "join_add_labels_us_per_label": 1e6 * t["join_add_labels"] / n_lab,
        "join_add_predictions_us_per_prediction": 1e6 * t["join_add_predictions"] / n_pred,
        "detectors_us_per_label": 1e6 * t["detectors"] / n_lab,
        "refresh_ms_per_call": 1e3 * t["refresh"] / n_batches,
        "apply_ms_per_batch": 1e3 * t["apply"] / max(n_pb, 1),
        "process_us_per_record": t_process * per,
        "join_offline": counters,
    }


# -- memory micro-measure ----------------------------------------------------------------------


def join_memory(events: int, cells: int, pending: int, batch: int = 2000) -> dict[str, Any]:
    """Bytes per pending prediction of one :class:`LabelJoin`, by tracemalloc and nbytes().

    ``pending`` predictions of the benchmark's own records are registered (no label, no
    expiry), their ids decoded from the record values batch by batch, as the decoder makes
    them: the traced memory left after the batches are dropped is the join with its id strings.
    """
    values = [
        v
        for topics, _keys, vals in label_chunks(min(events, pending), cells)
        for tp, v in zip(topics, vals, strict=True)
        if tp == 0
    ][:pending]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    join = LabelJoin(JoinSettings(max_pending=2 * len(values)))
    loads = orjson.loads
    for s in range(0, len(values), batch):
        rows = [loads(v) for v in values[s : s + batch]]
        ids = [r["event_id"] for r in rows]
        n = len(ids)
        join.add_predictions(ids, np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n))
        del rows, ids
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    n = join.pending
    return {
        "pending": n,
        "tracemalloc_bytes_per_pending": held / n,
        "nbytes_per_pending": join.nbytes() / n,
        "id_bytes": sys.getsizeof(loads(values[0])["event_id"]),
    }


# -- main --------------------------------------------------------------------------------------


def labels_main(args: Any, cell_settings: CellSettings, fields: EventFields) -> dict[str, Any]:
    """Run the labels profile for ``bench_throughput.main``; returns every figure."""
    n, c = args.events, args.cells
    result: dict[str, Any] = {
        "load_average_at_start": os.getloadavg(),
        "events": n,
        "cells": c,
        "partitions": args.partitions,
        "repeat": args.repeat,
        "gc": args.gc,
        "profile": "labels",
        "span_seconds": SPAN_SECONDS,
        "label_settings": {
            "grace_seconds": LABELS.grace_seconds,
            "ttl_seconds": LABELS.join.ttl_seconds,
            "orphan_ttl_seconds": LABELS.join.orphan_ttl_seconds,
            "error_detector": LABELS.error_detector,
        },
    }
    floors: list[dict[str, Any]] = []
    tws: list[dict[str, Any]] = []
    topics = {PREDICTIONS_TOPIC: args.partitions, OUTCOMES_TOPIC: args.partitions}
    with broker_with_topics(topics) as broker:
        prod = result["produce"] = produce_in_child(produce_labels, broker.bootstrap, n, c)
        apply_gc(args.gc)
        n_lab = prod["labels"]
        total = n + n_lab
        print(
            f"produced {n} predictions of {prod['mean_prediction_bytes']:.0f} B and {n_lab} "
            f"labels of {prod['mean_label_bytes']:.0f} B in {prod['seconds']:.1f} s",
            flush=True,
        )
        floor_settings = bench_settings(broker.bootstrap, (PREDICTIONS_TOPIC, OUTCOMES_TOPIC))
        state: ReplicaState | None = None
        for i in range(args.repeat):
            gc.collect()
            floor = run_floor(floor_settings, total)
            floors.append(floor)
            print(
                f"[{i + 1}/{args.repeat}] floor     {floor['events_per_second']:>10,.0f} "
                f"records/s ({floor['seconds']:.2f} s)",
                flush=True,
            )
            if i == 0:
                result["rss_before_tilewatch"] = rss_mb()
            state = None
            gc.collect()
            tw, state = run_tilewatch_labels(broker.bootstrap, cell_settings, fields, n, n_lab)
            tws.append(tw)
            pk = tw["peak"]
            print(
                f"[{i + 1}/{args.repeat}] tilewatch {tw['events_per_second']:>10,.0f} "
                f"records/s ({tw['seconds']:.2f} s, main thread CPU "
                f"{tw['main_thread_cpu_share']:.0%}); join peak {pk['pending']:,} pending, "
                f"{pk['held']:,} held, {pk['recent']:,} recent, {pk['nbytes'] / 1e6:.1f} MB",
                flush=True,
            )
        assert state is not None
        result["rss_after_tilewatch"] = rss_mb()
        snap = state.snapshot()
        leaf_events = int(snap.events_total[snap.is_leaf].sum())
        last = tws[-1]
        if leaf_events != n or last["late"] or last["invalid"] or last["label_records"] != n_lab:
            raise RuntimeError(f"final state: {leaf_events} leaf events (expected {n}), {last}")
        perf = snap.performance
        result["final_state"] = {
            "leaf_events_total": leaf_events,
            "cells_total": len(snap.keys),
            "labels_late": None if perf is None else perf.counters["late"],
            "leaf_labeled_total": None
            if perf is None
            else int(perf.labeled_total[snap.is_leaf].sum()),
            "models_with_performance": None if perf is None else len(perf.window_end),
        }
        result.update(compare_to_floor(floors, tws))
        result["scrape"] = measure_scrape(state, cell_settings.dimensions)
        del snap, state

    for name, key in (("join_peak", "peak"), ("join_peak_bytes", "peak_bytes")):
        runs = sorted((t[key] for t in tws), key=lambda p: p["pending"])
        mid = runs[len(runs) // 2]
        entries = mid["pending"] + mid["held"] + mid["recent"]
        result[name] = {
            **mid,
            "nbytes_per_pending": mid["nbytes"] / max(mid["pending"], 1),
            "nbytes_per_entry": mid["nbytes"] / max(entries, 1),
        }
    mid = result["join_peak"]
    gc.collect()
    result["join_memory"] = join_memory(n, c, mid["pending"])
    per_batch = max(1, round(statistics.median(t["records_per_apply"] for t in tws)))
    per_label = max(1, round(statistics.median(t["labels_per_apply"] for t in tws)))
    gc.collect()
    bd = result["breakdown"] = label_breakdown(
        n, c, args.partitions, per_batch, per_label, cell_settings, fields
    )
    result["per_event_us"] = time_split(
        result["floor"]["median"],
        result["tilewatch"]["median"],
        bd["loads_us_per_record"],
        bd["process_us_per_record"],
        bd["refresh_ms_per_call"],
    )
    result["load_average_at_end"] = os.getloadavg()
    report_labels(result)
    return result


def report_labels(r: dict[str, Any]) -> None:
    """Print the labels profile's figures."""
    fl, tw, bd, pe = r["floor"], r["tilewatch"], r["breakdown"], r["per_event_us"]
    pk, mem, pr, sc = r["join_peak"], r["join_memory"], r["produce"], r["scrape"]
    end = tw["details"][-1]["join_at_end"]
    pb, ls = r["join_peak_bytes"], tw["details"][-1]["label_state"]
    rows: list[tuple[str, str]] = [
        ("profile", f"labels ({r['span_seconds'] / 3600:.0f} h of event time)"),
        ("records", f"{pr['predictions']:,} predictions + {pr['labels']:,} labels"),
        ("sizes", f"{pr['mean_prediction_bytes']:.0f} B / {pr['mean_label_bytes']:.0f} B"),
        ("floor", f"best {fl['best']:,.0f}  median {fl['median']:,.0f} records/s"),
        ("tilewatch", f"best {tw['best']:,.0f}  median {tw['median']:,.0f} records/s"),
        ("ratio tilewatch/floor", f"best {r['ratio_best']:.2f}  median {r['ratio_median']:.2f}"),
        (
            "main-thread CPU share",
            f"floor {median_of(fl, 'main_thread_cpu_share'):.2f}  "
            f"tilewatch {median_of(tw, 'main_thread_cpu_share'):.2f}",
        ),
        ("GC time in run", f"tilewatch {1e3 * median_of(tw, 'gc_seconds'):.0f} ms"),
        (
            "instrumentation in run",
            f"{1e3 * median_of(tw, 'instrument_seconds'):.1f} ms (included)",
        ),
        (
            "records per apply",
            f"{median_of(tw, 'records_per_apply'):.0f} predictions, "
            f"{median_of(tw, 'labels_per_apply'):.0f} labels",
        ),
        (
            "peak RSS after tilewatch",
            f"{r['rss_after_tilewatch']['peak_rss_mb']:.0f} MB (before the first run "
            f"{r['rss_before_tilewatch']['peak_rss_mb']:.0f} MB)",
        ),
        (
            "RSS during the last run",
            f"max {tw['details'][-1]['rss_max_in_run_mb']:.0f} MB, at its end "
            f"{tw['details'][-1]['rss_at_end_mb']:.0f} MB; label side at the end: "
            f"{ls['performance_windows']} performance windows "
            f"{ls['performance_bytes'] / 1e6:.0f} MB, joins {ls['join_nbytes'] / 1e6:.0f} MB",
        ),
        (
            "join at most pending",
            f"{pk['pending']:,} pending, {pk['held']:,} held, {pk['recent']:,} recent; "
            f"nbytes {pk['nbytes'] / 1e6:.1f} MB = {pk['nbytes_per_pending']:.0f} B per pending "
            f"prediction ({pk['nbytes_per_entry']:.0f} B per entry)",
        ),
        (
            "join at most bytes",
            f"{pb['pending']:,} pending, {pb['held']:,} held, {pb['recent']:,} recent; "
            f"nbytes {pb['nbytes'] / 1e6:.1f} MB = {pb['nbytes_per_entry']:.0f} B per entry",
        ),
        (
            "  tracemalloc (1 join)",
            f"{mem['tracemalloc_bytes_per_pending']:.0f} B per pending prediction at "
            f"{mem['pending']:,} (nbytes {mem['nbytes_per_pending']:.0f}; id {mem['id_bytes']} B)",
        ),
        (
            "join at the end",
            ", ".join(f"{k} {end[k]:,}" for k in ("joined", "expired", "pending", "held"))
            + f", orphaned {end['orphaned']:,}, duplicates "
            f"{end['duplicate_predictions'] + end['duplicate_labels']}",
        ),
        (
            "labels credited / late",
            f"{r['final_state']['leaf_labeled_total']:,} in leaf labeled_total, "
            f"{r['final_state']['labels_late']:,} late (window already final)",
        ),
        (
            "scrape (median of 5)",
            f"{1e3 * sc['scrape_seconds_median']:.1f} ms, {sc['samples']:,} samples",
        ),
        (
            "load average (1 min)",
            f"{r['load_average_at_start'][0]:.2f} at start, {r['load_average_at_end'][0]:.2f} "
            "at end",
        ),
    ]
    print_rows("results", rows)
    print(
        f"\n== offline breakdown per record (predictions + labels; batches of "
        f"{bd['records_per_batch']} predictions / {bd['labels_per_batch']} labels, no Kafka)"
    )
    for name, key in (
        ("orjson.loads only", "loads"),
        ("EventDecoder.decode", "decode"),
        ("LabelDecoder.decode", "label_decode"),
        ("np.array columns", "columns"),
        ("ReplicaState.apply", "apply"),
        ("  label side of apply", "side_predictions"),
        ("    LabelJoin.add_predictions", "join_add_predictions"),
        ("ReplicaState.apply_labels", "apply_labels"),
        ("  PartitionLabels.labels", "side_labels"),
        ("    LabelJoin.add_labels", "join_add_labels"),
        ("    ErrorDetectors (DDM)", "detectors"),
        ("LabelJoin.expire (both)", "join_expire"),
        ("refresh after every batch", "refresh"),
        ("Monitor.process (all)", "process"),
    ):
        print(f"  {name:<30} {bd[key + '_us_per_record']:7.2f} us")
    print(
        f"  per prediction: decode {bd['decode_us_per_prediction']:.2f}, apply "
        f"{bd['apply_us_per_prediction']:.2f} us; per label: decode "
        f"{bd['label_decode_us_per_label']:.2f}, apply_labels "
        f"{bd['apply_labels_us_per_label']:.2f} us; refresh {bd['refresh_ms_per_call']:.2f} ms"
    )
    print("\n== where an end-to-end record's time goes (medians)")
    for name, key in (
        ("tilewatch end to end", "tilewatch"),
        ("  kafka fetch (floor-loads)", "kafka_fetch_estimate"),
        ("  Monitor.process offline", "process_offline"),
        ("  refresh at 1/s", "refresh_at_1hz"),
        ("  rest (loop, commit, GC)", "unexplained"),
        ("floor end to end", "floor"),
    ):
        print(f"  {name:<28} {pe[key]:7.2f} us")
