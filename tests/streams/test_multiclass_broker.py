"""The planted multi-class changes through the real embedded broker and a running Monitor."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests import multiclass_scenario as sc
from tests.helpers import fast_client_settings, produce
from tests.streams.test_multiclass_flags import (
    FIELDS,
    check_per_class_metrics,
    flagged,
    multiclass_state,
)
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import KafkaSettings

WAIT_SECONDS = 90.0


@pytest.mark.broker
def test_changed_cells_flagged_through_the_broker(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    stream = sc.events()
    topic = make_topic(2)
    # Keyed by cell, the recommended set-up: each cell's events in one partition, in order.
    keys = [f"{e['segment']}|{e['region']}".encode() for e in stream]
    produce(broker.bootstrap, topic, [orjson.dumps(e) for e in stream], keys)
    kafka = KafkaSettings(
        bootstrap_servers=(broker.bootstrap,),
        topics=(topic,),
        group_id=f"g-{uuid.uuid4().hex}",
        dead_letter_topic=None,
        client=fast_client_settings(),
        commit_interval_seconds=0.2,
        poll_timeout_seconds=0.2,
    )
    state = multiclass_state()
    monitor = Monitor(kafka, FIELDS, state)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            monitor.run(stop)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="monitor", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            with state.lock:
                read = state.ingest.read
            if read >= len(stream) or errors or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not errors, errors
        assert read == len(stream), f"read {read} of {len(stream)} records"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    state.refresh()
    snap = state.snapshot()
    assert snap.ingest.invalid == {} and snap.ingest.class_scores == {}
    assert snap.window_end["intent"] == sc.T0 + (sc.CHANGED + 1) * sc.WINDOW
    shift, error_cells, drift = flagged(snap)
    assert shift == sc.CLASS_SHIFT_CELLS
    assert error_cells == sc.ERROR_CELLS
    assert drift == {"confidence": sc.UNSURE_CELLS, "margin": sc.UNSURE_CELLS}
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, ("segment", "region")))
    check_per_class_metrics(registry, stream)
