"""Crash recovery with checkpoints: ``kill -9`` at random points, restart, and the final scrape
equals a clean run's; a corrupt or foreign checkpoint is refused, counted and never applied.

The runtime's delivery guarantee (``streams/loop.py``): with ``[state] checkpoints = true``
every valid event is counted exactly once in the cumulative and window statistics across
crashes, restarts and rebalances, because a partition's state and the offset it covers are
written together to the changelog and restored together.
"""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from tests.e2e.conftest import kafka_clients
from tests.e2e.support.config import override_client_settings, read_config
from tests.e2e.support.events import (
    BadRecord,
    Event,
    far_future_events,
    interleave,
    make_bad_records,
    make_stream,
    records_of,
)
from tests.e2e.support.layout import WINDOW_SECONDS, rollups
from tests.e2e.support.process import TilewatchProcess, settled_metrics
from tests.e2e.support.scrape import caught_up, compare_metrics, leaf_events_total, series, value
from tests.helpers import produce, read_changelog
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

PARTITIONS = 3
SEED = 20260303
N_EVENTS = 200_000
SPAN_SECONDS = 600.0  # 60 windows of 10 s
N_LATE = 60
N_BAD = 17
#: Where the three kills land, as fractions of the counted events (seeded draw per band).
KILL_BANDS = ((0.10, 0.30), (0.35, 0.55), (0.60, 0.80))
#: Shorter group timings for the crash runs: a restarted member's join waits until the
#: killed member's session expires, so this keeps each restart at about 5 s.
CRASH_CLIENT = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 600,
    "max_poll_interval_ms": 6000,
}
#: Refusals a kill can legitimately cause: a ``kill -9`` during a checkpoint write leaves a
#: slot whose chunks and manifest disagree; it is refused and the other slot is used.
TORN_WRITE_REASONS = {"corrupt", "incomplete"}


def _late_copy(i: int, event: Event) -> Event:
    """An event of the same cell four windows before ``event``: late once it arrives."""
    t = event.time - 4 * WINDOW_SECONDS
    payload = {**event.payload, "event_id": f"late{i}", "timestamp": t}
    if event.cell[2] == "unknown":
        payload.pop("region", None)
    return Event(f"late{i}", event.cell, t, event.score, payload)


def _crash_stream() -> tuple[list[Event | BadRecord], int, int]:
    """The stream, the number of events that count and the number that are late."""
    data = make_stream(SEED, N_EVENTS, SPAN_SECONDS)
    step = N_EVENTS // (N_LATE + 1)
    with_late: list[Event] = []
    for i, event in enumerate(data):
        with_late.append(event)
        if i and i % step == 0 and i // step <= N_LATE:
            with_late.append(_late_copy(i // step, event))
    far = far_future_events(data, first_index=N_EVENTS, after=1000.0)
    stream: list[Event | BadRecord] = [*interleave(SEED, with_late, make_bad_records(N_BAD)), *far]
    return stream, len(data) + len(far), len(with_late) - len(data)


def _errors(metrics: dict) -> dict[str, float]:
    return {
        dict(labels)["reason"]: v
        for labels, v in series(metrics, "tilewatch_checkpoint_errors_total").items()
    }


def _restores(metrics: dict) -> dict[str, float]:
    return {
        dict(labels)["result"]: v
        for labels, v in series(metrics, "tilewatch_checkpoint_restores_total").items()
    }


def _stderr(process: TilewatchProcess) -> str:
    return process.stderr_path.read_text(errors="replace")


@pytest.mark.parametrize("client", kafka_clients(slow=True))
def test_three_kill_9_then_restart_end_exactly_like_a_clean_run(
    client: str,
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    topic = make_topic(PARTITIONS)
    stream, counted, n_late = _crash_stream()
    assert n_late == N_LATE
    values, keys = records_of(stream)
    produce(broker.bootstrap, topic, values, keys, timeout=60)

    # The clean run and the crash runs use different groups, so they run side by side.
    clean = start_tilewatch(
        tilewatch_config(topic, kafka={"max_poll_records": 5000}, state={"checkpoints": False}),
        name="clean",
    )
    crash_config = override_client_settings(
        tilewatch_config(
            topic, kafka={"max_poll_records": 1000}, state={"checkpoint_interval": "300ms"}
        ),
        **CRASH_CLIENT,
    )
    rng = np.random.default_rng(SEED)
    targets = [int(rng.uniform(lo, hi) * counted) for lo, hi in KILL_BANDS]
    runs: list[tuple[TilewatchProcess, dict]] = []
    for i, target in enumerate(targets):
        run = start_tilewatch(crash_config, name=f"crash-{i}")
        metrics = run.wait_until(
            f"crash run {i}: {target} events counted (restored + read)",
            lambda m, target=target: leaf_events_total(m) >= target,
        )
        run.signal(signal.SIGKILL)
        assert run.wait_exit(10) == -signal.SIGKILL
        runs.append((run, metrics))
        assert leaf_events_total(metrics) < counted, "the kill should land inside the stream"

    final = start_tilewatch(crash_config, name="crash-final")
    got = settled_metrics(
        final,
        f"the last crash run caught up on all {PARTITIONS} partitions",
        lambda m: caught_up(m, PARTITIONS),
    )
    reference = settled_metrics(
        clean,
        f"the clean run read all {len(stream)} records",
        lambda m: (
            value(m, "tilewatch_read_events_total") == len(stream) and caught_up(m, PARTITIONS)
        ),
    )

    # The clean run is what the stream says.
    assert leaf_events_total(reference) == counted
    assert sum(series(reference, "tilewatch_late_events_total").values()) == N_LATE
    assert len(series(reference, "tilewatch_window_end_timestamp_seconds")) == 2

    # The crash runs restored checkpoints and never applied a refused one.
    for i, (run, metrics) in enumerate([*runs, (final, got)]):
        errors = _errors(metrics)
        assert set(errors) <= TORN_WRITE_REASONS and sum(errors.values()) <= 1, (
            f"run {i}: unexpected checkpoint errors {errors}\n{run.describe()}"
        )
        if i > 0:
            assert _restores(metrics).get("restored", 0) >= 1, (
                f"run {i} restored no checkpoint: {_restores(metrics)}\n{run.describe()}"
            )
            assert "restored up to offset" in _stderr(run)
        assert "Traceback" not in _stderr(run), run.describe()
    assert _restores(got).get("restored", 0) + _restores(got).get("empty", 0) == PARTITIONS

    # Every count exactly once, every statistic as in the clean run.
    assert leaf_events_total(got) == counted
    problems = compare_metrics(reference, got)
    assert not problems, f"{len(problems)} differences from the clean run:\n" + "\n".join(
        problems[:30]
    )


# -- refused checkpoints ----------------------------------------------------------------------


def _expected_counts(events: list[Event]) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = {}
    for e in events:
        for cell in rollups(e.cell):
            out[cell] = out.get(cell, 0) + 1
    return out


def _counts(metrics: dict) -> dict[tuple[str, str, str], float]:
    return {
        (d["model"], d["segment"], d["region"]): v
        for labels, v in series(metrics, "tilewatch_events_total").items()
        for d in [dict(labels)]
    }


def _manifests(bootstrap: str, changelog: str) -> dict[tuple[int, str], tuple[int, dict]]:
    """The latest manifest of each (source partition, slot): (changelog partition, manifest)."""
    out: dict[tuple[int, str], tuple[int, dict]] = {}
    for rec in read_changelog(bootstrap, changelog):
        if rec.key is not None and rec.key.endswith(b"/manifest"):
            parts = rec.key.decode().split("/")
            # Delta heads: topic/partition/d/h/slot/manifest; full slots: topic/partition/slot/.
            partition, slot = (parts[-5], parts[-2]) if parts[-4:-2] == ["d", "h"] else parts[-3:-1]
            out[(int(partition), slot)] = (rec.partition, orjson.loads(rec.value))
    return out


def _wait_committed(
    bootstrap: str, group_id: str, topic: str, total: int, run: TilewatchProcess
) -> None:
    """Wait until the group's committed offsets add up to ``total`` records."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + 60
        committed = 0
        while time.monotonic() < deadline:
            committed = sum(
                probe.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)
            )
            if committed == total:
                return
            time.sleep(0.2)
        pytest.fail(f"committed offsets cover {committed} of {total} records\n{run.describe()}")
    finally:
        probe.close()


def _checkpointed_twice(
    broker: EmbeddedBroker,
    topic: str,
    config: Path,
    start_tilewatch: Callable[..., TilewatchProcess],
) -> tuple[list[Event], dict, dict[tuple[int, str], tuple[int, dict]]]:
    """Run tilewatch over a stream in two halves, with a checkpoint round after each, and stop
    it gracefully. Returns the valid events, the last scrape and the changelog's manifests."""
    data = make_stream(SEED + 1, 12_000, 120.0)
    far = far_future_events(data, first_index=len(data), after=1000.0)
    halves = [data[:6000], [*data[6000:], *far]]
    run = start_tilewatch(config, name="checkpointing")
    read = 0
    for half in halves:
        values, keys = records_of(half)
        produce(broker.bootstrap, topic, values, keys)
        read += len(half)
        run.wait_read(read)
        # Offsets are committed only to checkpointed offsets, so committed offsets that cover
        # every record prove a checkpoint round after the half was read (a timestamp taken
        # after the read can miss a round written just before the scrape saw the count).
        _wait_committed(broker.bootstrap, run.group_id, topic, read, run)
    metrics = settled_metrics(
        run, "everything read", lambda m: value(m, "tilewatch_read_events_total") == read
    )
    run.signal(signal.SIGTERM)
    assert run.wait_exit(30) == 0, run.describe()
    manifests = _manifests(broker.bootstrap, f"{run.group_id}-tilewatch-changelog")
    for p in range(PARTITIONS):
        assert {(p, "a"), (p, "b")} <= set(manifests), f"partition {p}: {sorted(manifests)}"
    return [*data, *far], metrics, manifests


def test_a_corrupt_newest_checkpoint_is_refused_and_the_older_slot_is_replayed(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    topic = make_topic(PARTITIONS)
    config = tilewatch_config(topic, kafka={"max_poll_records": 500})
    events, reference, manifests = _checkpointed_twice(broker, topic, config, start_tilewatch)
    assert _counts(reference) == _expected_counts(events)

    # Overwrite the manifest of partition 1's newest slot: higher seq, wrong hash.
    victim = 1
    by_seq = sorted((manifests[(victim, s)][1]["seq"], s) for s in ("a", "b"))
    (_, older), (newest_seq, newest) = by_seq
    changelog_partition, manifest = manifests[(victim, newest)]
    older_offset = manifests[(victim, older)][1]["offset"]
    newest_offset = manifest["offset"]
    assert older_offset < newest_offset
    garbage = {**manifest, "seq": newest_seq + 1, "sha256": hashlib.sha256(b"x").hexdigest()}
    changelog = f"{read_config(config)['kafka']['group_id']}-tilewatch-changelog"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        producer.send(
            changelog,
            key=f"{topic}/{victim}/d/h/{newest}/manifest".encode(),
            value=orjson.dumps(garbage),
            partition=changelog_partition,
        ).get(timeout=30)
    finally:
        producer.close(timeout=5)

    restarted = start_tilewatch(config, name="after-corruption")
    metrics = settled_metrics(
        restarted, "caught up after the restore", lambda m: caught_up(m, PARTITIONS)
    )
    assert _errors(metrics) == {"corrupt": 1}
    assert _restores(metrics) == {"restored": PARTITIONS}
    stderr = _stderr(restarted)
    assert f"refused checkpoint {topic}/{victim} slot {newest} (corrupt)" in stderr
    assert f"partition {topic}/{victim}: restored up to offset {older_offset}" in stderr
    # Only the records after the older checkpoint were read again, and counted once.
    assert value(metrics, "tilewatch_read_events_total") == newest_offset - older_offset
    assert _counts(metrics) == _expected_counts(events)
    problems = compare_metrics(reference, metrics)
    assert not problems, "\n".join(problems[:30])


def test_a_foreign_checkpoint_is_refused_and_the_partition_starts_empty(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    topic = make_topic(PARTITIONS)
    config = tilewatch_config(topic, kafka={"max_poll_records": 500})
    _events, _reference, manifests = _checkpointed_twice(broker, topic, config, start_tilewatch)
    kafka = read_config(config)["kafka"]

    # Same group and changelog, other cell settings (window 20 s): every slot is foreign.
    other = tilewatch_config(
        topic,
        kafka={"group_id": kafka["group_id"], "dead_letter_topic": kafka["dead_letter_topic"]},
        cells={"window": "20s"},
    )
    restarted = start_tilewatch(other, name="foreign")
    metrics = restarted.wait_until(
        "every partition assigned",
        lambda m: (
            _restores(m).get("empty") == PARTITIONS
            and value(m, "tilewatch_partitions_assigned") == PARTITIONS
        ),
    )
    assert _errors(metrics) == {"foreign": len(manifests)}
    assert _stderr(restarted).count("(foreign)") == len(manifests)
    assert leaf_events_total(metrics) == 0

    # It started at the committed offsets: only new events are read and counted.
    new = make_stream(SEED + 2, 300, 10.0, start=time.time())
    values, keys = records_of(new)
    produce(broker.bootstrap, topic, values, keys)
    after = restarted.wait_read(len(new))
    assert leaf_events_total(after) == len(new)
    restarted.signal(signal.SIGTERM)
    assert restarted.wait_exit(30) == 0, restarted.describe()


def _units_written(bootstrap: str, changelog: str, after: dict[int, int]) -> dict[str, set[str]]:
    """Unit names (``block/c``, ``block/w<window>``) per source partition written to the
    changelog past the offsets ``after`` (changelog partition -> next offset)."""
    out: dict[str, set[str]] = {}
    for rec in read_changelog(bootstrap, changelog):
        if rec.offset < after.get(rec.partition, 0) or rec.key is None or rec.value is None:
            continue
        parts = rec.key.decode().split("/")  # topic/partition/d/u/block/unit/slot/chunk
        if parts[-6:-4] == ["d", "u"]:
            out.setdefault(parts[-7], set()).add("/".join(parts[-4:-2]))
    return out


def test_after_a_restore_a_round_writes_what_changed_not_every_unit(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
) -> None:
    """The first round after a restore writes the units of the cells that changed since, and
    names the restored ones for the rest; what it leaves restores exactly."""
    topic = make_topic(PARTITIONS)
    config = tilewatch_config(topic, kafka={"max_poll_records": 500})
    events, _reference, _manifests = _checkpointed_twice(broker, topic, config, start_tilewatch)
    changelog = f"{read_config(config)['kafka']['group_id']}-tilewatch-changelog"
    before = read_changelog(broker.bootstrap, changelog)
    ends: dict[int, int] = {}
    for rec in before:
        ends[rec.partition] = max(ends.get(rec.partition, 0), rec.offset + 1)
    restored_units = _units_written(broker.bootstrap, changelog, {})
    assert all(len(units) > 40 for units in restored_units.values()), restored_units

    restarted = start_tilewatch(config, name="after-restore")
    settled_metrics(restarted, "restored", lambda m: _restores(m) == {"restored": PARTITIONS})
    # One more event, of a cell in the open window: its four variants' blocks change.
    last = events[-1]
    extra = Event("extra", last.cell, last.time, last.score, {**last.payload, "event_id": "extra"})
    values, keys = records_of([extra])
    produce(broker.bootstrap, topic, values, keys)
    restarted.wait_read(1)
    _wait_committed(broker.bootstrap, restarted.group_id, topic, len(events) + 1, restarted)
    written = _units_written(broker.bootstrap, changelog, ends)
    assert len(written) == 1, written  # one source partition changed
    (units,) = written.values()
    windows = {u.split("/")[1] for u in units}
    assert 1 <= len(units) <= 8 and windows <= {"c", f"w{int(last.time // WINDOW_SECONDS)}"}, units
    restarted.signal(signal.SIGTERM)
    assert restarted.wait_exit(30) == 0, restarted.describe()

    # The heads that name restored and rewritten units restore exactly.
    again = start_tilewatch(config, name="restored-twice")
    metrics = settled_metrics(
        again, "restored again", lambda m: _restores(m) == {"restored": PARTITIONS}
    )
    assert _errors(metrics) == {}
    assert value(metrics, "tilewatch_read_events_total") == 0
    assert _counts(metrics) == _expected_counts([*events, extra])
    again.signal(signal.SIGTERM)
    assert again.wait_exit(30) == 0, again.describe()
