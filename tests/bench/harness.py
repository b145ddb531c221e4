"""What the benchmark scripts share: a broker with filled topics, the floor, timing, reports.

``bench_throughput.py`` (and its ``--profile labels``, ``bench_labels.py``) and ``soak.py`` are
scripts, run from the repository root (``python tests/bench/bench_throughput.py``); each puts
the root on ``sys.path`` so that ``tests.bench.harness`` imports. This module holds:

- **broker and topics**: :func:`broker_with_topics` (an embedded broker, always stopped),
  :func:`fill_topics` (a bulk producer sending chunks of records, failures counted) and
  :func:`produce_in_child` (a producer function run in a spawned process, so kafka-python's
  send buffer is not in the benchmark's RSS);
- **the spine's traffic**: :func:`spine_spec` (one model x segments x regions, keyed by cell),
  :data:`START_TIME`, :data:`CHUNK`, :func:`partition_of`;
- **the floor and the measured run**: :func:`run_floor` (poll and ``orjson.loads``, nothing
  else), :class:`AssignedConsumers` (the monitor's consumers, assigned without a group join) and
  :func:`run_measured` (a ``Monitor`` timed from its first non-empty poll to the batch that
  holds the N-th record, stopped by a watcher thread);
- **timing**: :class:`GcTimer`, :func:`rss_mb`, :func:`current_rss_mb`, :func:`timed`,
  :func:`time_calls`, :func:`time_loads`, :class:`Record` (an offline consumer record),
  :func:`measure_scrape`;
- **reporting**: :func:`summarize`, :func:`median_of`, :func:`compare_to_floor`,
  :func:`time_split`, :func:`print_rows`, :func:`write_json`, :func:`apply_gc`.
"""

from __future__ import annotations

import gc
import json
import math
import resource
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.traffic import TrafficSpec
from tilewatch.streams.settings import KafkaSettings

#: Epoch seconds of the first event (a minute boundary, 2026-01-01T00:00:00Z).
START_TIME = 1767225600.0
#: Events generated and handed to the producer at a time.
CHUNK = 50_000
#: Features of each event (fewer than the generator's default keeps events near 250 bytes).
FEATURES = ("tenure_months", "plan", "monthly_spend")
#: Give up on a measured run (or a producer) after this many seconds.
RUN_TIMEOUT = 300.0
#: The producer's bulk settings: large batches, no compression.
BULK_PRODUCER: dict[str, Any] = {
    "linger_ms": 50,
    "batch_size": 1 << 20,
    "max_request_size": 4 << 20,
    "compression_type": None,
}


# -- broker and topics ---------------------------------------------------------------------------


@contextmanager
def broker_with_topics(topics: dict[str, int]) -> Iterator[EmbeddedBroker]:
    """An embedded broker holding ``topics`` (name -> partitions); always stopped."""
    broker = EmbeddedBroker()
    try:
        broker.start()
        for name, partitions in topics.items():
            broker.create_topic(name, partitions)
        yield broker
    finally:
        broker.stop()


Chunk = tuple[Sequence[str], Sequence[bytes], Sequence[bytes]]


def fill_topics(bootstrap: str, chunks: Iterator[Chunk]) -> dict[str, Any]:
    """Send ``(topics, keys, values)`` chunks with :data:`BULK_PRODUCER` and wait for every
    ack. Returns the seconds (generation of the chunks included, and apart), and per topic
    the records sent and their value bytes; raises if a record was not delivered."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, **BULK_PRODUCER)
    failures: list[BaseException] = []
    sent: dict[str, int] = {}
    size: dict[str, int] = {}
    gen_seconds = 0.0
    t0 = time.perf_counter()
    try:
        while True:
            g0 = time.perf_counter()
            chunk = next(chunks, None)
            gen_seconds += time.perf_counter() - g0
            if chunk is None:
                break
            send = producer.send
            for topic, key, value in zip(*chunk, strict=True):
                send(topic, key=key, value=value).add_errback(failures.append)
                sent[topic] = sent.get(topic, 0) + 1
                size[topic] = size.get(topic, 0) + len(value)
        producer.flush()
    finally:
        producer.close(timeout=10)
    seconds = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} records not delivered: {failures[0]!r}")
    return {"seconds": seconds, "generate_seconds": gen_seconds, "sent": sent, "bytes": size}


def _produce_child(target: Callable[..., dict[str, Any]], args: tuple[Any, ...], conn: Any) -> None:
    try:
        result = target(*args)
        result["producer_peak_rss_mb"] = rss_mb()["peak_rss_mb"]
        conn.send(("ok", result))
    except BaseException as exc:  # reported by the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


def produce_in_child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``target(*args)`` (a module-level producer function returning its figures) in a spawned
    process, so that kafka-python's unbounded send buffer does not count in this process's
    peak RSS; adds the producer's own peak RSS."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_produce_child, args=(target, args, sender), name="producer")
    proc.start()
    sender.close()
    try:
        if not receiver.poll(RUN_TIMEOUT):
            raise RuntimeError(f"the producer did not finish within {RUN_TIMEOUT} s")
        status, payload = receiver.recv()
    except EOFError:
        raise RuntimeError(f"the producer process died (exit code {proc.exitcode})") from None
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if status != "ok":
        raise RuntimeError(f"producing failed: {payload}")
    return payload  # type: ignore[no-any-return]


# -- the spine's traffic ----------------------------------------------------------------------


def cell_layout(cells: int) -> tuple[int, int]:
    """``(segments, regions)`` with ``segments * regions == cells``, shaped about 40 x 25."""
    target = math.sqrt(1.6 * cells)
    divisors = [d for d in range(1, cells + 1) if cells % d == 0]
    segments = min(divisors, key=lambda d: (abs(d - target), d))
    return segments, cells // segments


def spine_spec(cells: int, features: tuple[str, ...] = FEATURES) -> TrafficSpec:
    """The generator's spec: one model x :func:`cell_layout` segments x regions, ``features``,
    no degrading cell, no invalid record, seed 7."""
    segments, regions = cell_layout(cells)
    return TrafficSpec(
        models=("churn",),
        segments=tuple(f"seg-{i:02d}" for i in range(segments)),
        regions=tuple(f"reg-{i:02d}" for i in range(regions)),
        features=features,
        degrade_cell=None,
        seed=7,
        invalid_share=0.0,
    )


def partition_of(key: bytes, partitions: int) -> int:
    """Partition kafka-python's default partitioner picks for ``key``."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


# -- consumers: the floor and the measured monitor --------------------------------------------


def bench_settings(bootstrap: str, topics: tuple[str, ...]) -> KafkaSettings:
    """The monitor's defaults, pointed at the benchmark topics, a fresh group, no dead letters."""
    return KafkaSettings(
        bootstrap_servers=(bootstrap,),
        topics=topics,
        group_id=f"tilewatch-bench-{uuid.uuid4().hex[:8]}",
        dead_letter_topic=None,
    )


def consumer_config(settings: KafkaSettings, group: bool) -> dict[str, Any]:
    from tilewatch.streams.clients import kafka_client_config

    config = kafka_client_config(settings, "consumer")
    if not group:
        config["group_id"] = None
    return config


def all_partitions(consumer: Any, topics: Sequence[str]) -> list[Any]:
    from kafka import TopicPartition

    out = []
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise RuntimeError(f"no partitions known for topic {topic!r}")
        out.extend(TopicPartition(topic, p) for p in sorted(parts))
    return out


class AssignedConsumer:
    """A ``KafkaConsumer`` whose ``subscribe()`` assigns every partition from the beginning.

    Avoids the consumer-group join (several seconds on the embedded broker) and records when
    the first non-empty poll returned. Everything else is delegated.
    """

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.first_poll: float | None = None
        self.first_poll_cpu = 0.0

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None:
        partitions = all_partitions(self._consumer, topics)
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)
        if listener is not None:
            listener.on_partitions_assigned(partitions)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        batch = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        if batch and self.first_poll is None:
            self.first_poll = time.perf_counter()
            self.first_poll_cpu = time.thread_time()
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class AssignedConsumers:
    """The monitor's ``consumer_factory``: real consumers wrapped in :class:`AssignedConsumer`,
    kept in :attr:`made` (the first one's first poll starts the clock)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.made: list[AssignedConsumer] = []

    def __call__(self) -> AssignedConsumer:
        from kafka import KafkaConsumer

        self.made.append(AssignedConsumer(KafkaConsumer(**consumer_config(self.settings, True))))
        return self.made[-1]


def run_floor(settings: KafkaSettings, events: int) -> dict[str, Any]:
    """Poll and ``orjson.loads`` every value until ``events`` records were read."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**consumer_config(settings, group=False))
    loads = orjson.loads
    timeout_ms = int(settings.poll_timeout_seconds * 1000)
    per_partition: dict[int, int] = {}
    count = 0
    gc_timer = GcTimer()
    try:
        partitions = all_partitions(consumer, settings.topics)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + RUN_TIMEOUT
        t0 = None
        cpu0 = 0.0
        with gc_timer:
            while count < events:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"floor: read {count} of {events} records in {RUN_TIMEOUT} s"
                    )
                batch = consumer.poll(timeout_ms=timeout_ms, max_records=settings.max_poll_records)
                if not batch:
                    continue
                if t0 is None:
                    t0 = time.perf_counter()
                    cpu0 = time.thread_time()
                for tp, records in batch.items():
                    for rec in records:
                        loads(rec.value)
                    count += len(records)
                    per_partition[tp.partition] = per_partition.get(tp.partition, 0) + len(records)
            t1 = time.perf_counter()
            cpu1 = time.thread_time()
    finally:
        consumer.close(autocommit=False)
    assert t0 is not None
    if count != events:
        raise RuntimeError(f"floor: read {count} records, expected {events}")
    return {
        "seconds": t1 - t0,
        "events_per_second": events / (t1 - t0),
        "main_thread_cpu_share": (cpu1 - cpu0) / (t1 - t0),
        **gc_timer.figures(),
        "per_partition": per_partition,
    }


def run_measured(
    monitor: Any,
    consumers: AssignedConsumers,
    total: int,
    progress: Callable[[], int],
    *,
    after_batch: Callable[[Any], None] | None = None,
    sample: Callable[[], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Run ``monitor`` until ``progress() >= total`` records; returns its summary and timing.

    Timed from the first non-empty poll to the end of the batch that reached ``total`` (taken
    in the monitor's thread, right after ``Monitor.process``); ``after_batch(batch)`` runs
    after every batch until then (instrumentation, timed within the run). A watcher thread
    stops the monitor, calling ``sample()`` every 50 ms meanwhile; after :data:`RUN_TIMEOUT`
    seconds it gives up and this raises.
    """
    done_at: list[float] = []
    done_cpu: list[float] = []
    process = monitor.process

    def timed_process(batch: Any) -> None:
        process(batch)
        if done_at:
            return
        if progress() >= total:
            done_at.append(time.perf_counter())
            done_cpu.append(time.thread_time())
        if after_batch is not None:
            after_batch(batch)

    monitor.process = timed_process
    stop = threading.Event()
    timed_out = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not stop.is_set():
            if progress() >= total:
                break
            if time.monotonic() > deadline:
                timed_out.set()
                break
            if sample is not None:
                sample()
            # Coarse on purpose: the end time is taken exactly in timed_process, and a thread
            # waking every few ms would contend for the GIL with the loop it measures.
            time.sleep(0.05)
        stop.set()

    watcher = threading.Thread(target=watch, name="bench-watcher", daemon=True)
    watcher.start()
    try:
        with GcTimer() as gc_timer:
            summary = monitor.run(stop)
    finally:
        stop.set()
        watcher.join()
    if timed_out.is_set():
        raise RuntimeError(f"tilewatch: read {progress()} of {total} records in {RUN_TIMEOUT} s")
    first = consumers.made[0]
    t0, t1 = first.first_poll, done_at[0]
    assert t0 is not None
    return summary, {
        "seconds": t1 - t0,
        "events_per_second": total / (t1 - t0),
        "main_thread_cpu_share": (done_cpu[0] - first.first_poll_cpu) / (t1 - t0),
        **gc_timer.figures(),
    }


# -- timing ----------------------------------------------------------------------------------


class GcTimer:
    """Counts the garbage collector's passes and their time while active."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            gen = int(info["generation"])
            self.passes[gen] += 1
            self.seconds[gen] += time.perf_counter() - self._start

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def figures(self) -> dict[str, Any]:
        return {
            "gc_passes": sum(self.passes),
            "gc_seconds": sum(self.seconds),
            "gc_passes_by_generation": list(self.passes),
            "gc_seconds_by_generation": list(self.seconds),
        }


def current_rss_mb(pid: int | str = "self") -> float:
    """``VmRSS`` of ``pid`` (this process by default) in MB; NaN once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


def rss_mb() -> dict[str, float]:
    """This process's peak (``ru_maxrss``) and current RSS in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return {"peak_rss_mb": peak, "current_rss_mb": current_rss_mb()}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` took, and its result."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def time_calls(obj: Any, method: str, acc: dict[str, float], name: str) -> None:
    """Wrap ``obj.method`` so the time of its calls adds up in ``acc[name]``."""
    fn = getattr(obj, method)

    def timed_call(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] += time.perf_counter() - t0

    setattr(obj, method, timed_call)


class Record:
    """Just enough of a ConsumerRecord for the decoders (offline breakdowns)."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: bytes) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value = key, value
        self.timestamp = None
        self.headers: list[tuple[str, bytes]] = []


def time_loads(batches: Iterable[tuple[Any, list[Any]]]) -> float:
    """Seconds to ``orjson.loads`` every record value of the batches, nothing else."""
    gc.collect()
    loads = orjson.loads
    t0 = time.perf_counter()
    for _p, recs in batches:
        for rec in recs:
            loads(rec.value)
    return time.perf_counter() - t0


class _FixedFamilies:
    """A collector yielding given metric families (to time formatting a subset)."""

    def __init__(self) -> None:
        self.families: list[Any] = []

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


def measure_scrape(state: ReplicaState, dims: tuple[str, ...]) -> dict[str, Any]:
    """Median of 5 scrapes of ``state`` (a fresh registry holding its ``CellCollector``, written
    by the endpoint's bulk writer; one prometheus-client ``generate_latest`` for comparison) and of
    5 snapshots; with a drift profile also a snapshot recomputing the window statistics and
    the drift families alone."""
    from prometheus_client import CollectorRegistry, generate_latest

    from tilewatch.exporters.prometheus.cell_collector import CellCollector
    from tilewatch.exporters.prometheus.drift_families import drift_families
    from tilewatch.exporters.prometheus.exposition import generate
    from tilewatch.exporters.prometheus.families import CellRows

    registry = CollectorRegistry()
    collector = CellCollector(state.snapshot, dims)
    registry.register(collector)
    times = []
    text = b""
    for _ in range(5):  # what the endpoint serves (the bulk writer)
        t0 = time.perf_counter()
        text = generate(registry)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    generate_latest(registry)  # prometheus-client's own formatting, for comparison
    client_seconds = time.perf_counter() - t0
    samples = sum(len(m.samples) for m in registry.collect())
    snaps = []
    for _ in range(5):
        t0 = time.perf_counter()
        state.snapshot()
        snaps.append(time.perf_counter() - t0)
    out: dict[str, Any] = {
        "scrape_seconds_median": statistics.median(times),
        "prometheus_client_seconds": client_seconds,
        "snapshot_seconds_median": statistics.median(snaps),
        "exposition_bytes": len(text),
        "samples": samples,
    }
    if state.profile is not None:
        # The window statistics are cached per set of reported windows (refresh() computes
        # them when a window closes); clearing the cache times a snapshot that recomputes
        # them, as the first one after a window closes does.
        uncached = []
        for _ in range(5):
            state.window_cache = None
            t0 = time.perf_counter()
            state.snapshot()
            uncached.append(time.perf_counter() - t0)
        # The drift families alone (window statistics, violations, detections): built from a
        # snapshot and formatted.
        snap = state.snapshot()
        drift_registry = CollectorRegistry()
        fixed = _FixedFamilies()
        drift_registry.register(fixed)
        drift_times = []
        drift_text = b""
        for _ in range(5):
            t0 = time.perf_counter()
            fixed.families = list(drift_families(snap, CellRows(snap, ["model", *dims])))
            drift_text = generate(drift_registry)
            drift_times.append(time.perf_counter() - t0)
        out.update(
            snapshot_uncached_seconds_median=statistics.median(uncached),
            drift_families_seconds_median=statistics.median(drift_times),
            drift_samples=sum(len(m.samples) for m in fixed.families),
            drift_exposition_bytes=len(drift_text),
        )
    return out


# -- reporting ---------------------------------------------------------------------------------


def apply_gc(mode: str) -> None:
    """``tuned``: what ``tilewatch run`` does (``tilewatch.app.tune_gc``); ``default``: nothing."""
    if mode == "tuned":
        from tilewatch.app import tune_gc

        tune_gc()


def summarize(rates: list[float]) -> dict[str, Any]:
    return {"best": max(rates), "median": statistics.median(rates), "runs": rates}


def median_of(section: dict[str, Any], key: str) -> float:
    """The median of ``key`` over a section's per-run ``details``."""
    return float(statistics.median(d[key] for d in section["details"]))


def compare_to_floor(floors: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``floor`` and ``tilewatch`` (best, median, runs, details) and their ratios."""
    floor = {**summarize([f["events_per_second"] for f in floors]), "details": floors}
    tilewatch = {**summarize([t["events_per_second"] for t in runs]), "details": runs}
    return {
        "floor": floor,
        "tilewatch": tilewatch,
        "ratio_best": tilewatch["best"] / floor["best"],
        "ratio_median": tilewatch["median"] / floor["median"],
    }


def time_split(
    floor_rate: float, tilewatch_rate: float, loads_us: float, process_us: float, refresh_ms: float
) -> dict[str, float]:
    """Where an end-to-end record's time goes, in us: Kafka fetch (floor minus loads), the
    offline ``Monitor.process``, refresh at 1/s, and the rest (loop, commit, GC)."""
    fl_us = 1e6 / floor_rate
    tw_us = 1e6 / tilewatch_rate
    refresh = 1e3 * refresh_ms / tilewatch_rate
    return {
        "floor": fl_us,
        "tilewatch": tw_us,
        "kafka_fetch_estimate": fl_us - loads_us,
        "process_offline": process_us,
        "refresh_at_1hz": refresh,
        "unexplained": tw_us - (fl_us - loads_us) - process_us - refresh,
    }


def print_rows(title: str, rows: Iterable[tuple[str, str]], width: int = 26) -> None:
    """``== title`` and one aligned ``name value`` line per row."""
    print(f"\n== {title}")
    for name, value in rows:
        print(f"  {name:<{width}} {value}")


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    """Write every figure to ``path`` (``--json``), if given."""
    if path is not None:
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {path}")
