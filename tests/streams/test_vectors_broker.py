"""Embedding and attribution drift through the real embedded broker and a running Monitor.

Four cells; from window 2 on, one cell's embeddings are rotated (a quarter turn in the plane of
its mean) and another cell's attributions move from feature f0 to f2. Exactly those cells are
flagged (for embeddings, for explanations) within 2 windows, no clean cell in any window, and
the reservoir sample holds offline projections of the group's own vectors.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.helpers import fast_client_settings, produce
from tilewatch.aggregators.cells.settings import ALL, CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.vectors.settings import VectorSettings
from tilewatch.aggregators.vectors.tracker import VectorTracker
from tilewatch.aggregators.vectors.vector_reference import build_model_vectors
from tilewatch.exporters.prometheus.vector_families import VectorCollector
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings

DIM, WINDOW, PER_WINDOW, T0 = 32, 60.0, 120, 1_767_225_600.0
CELLS = [("s0", "r0"), ("s0", "r1"), ("s1", "r0"), ("s1", "r1")]
ROTATED, SHIFTED = ("s0", "r0"), ("s1", "r1")
CHANGED_FROM = 2  # windows 0, 1 clean; 2, 3 changed
ATTR = np.array([1.0, 0.5, 0.25, 0.1])
FIELDS = EventFields(
    embedding="emb", attributions="shap", dimensions={"segment": "segment", "region": "region"}
)


def _rows(rng: np.random.Generator, cell: tuple[str, str], n: int, changed: bool) -> Any:
    axis = CELLS.index(cell) * 2
    x = rng.normal(size=(n, DIM))
    x[:, axis] += 3.0
    if changed and cell == ROTATED:  # a quarter turn in the plane (axis, axis + 1)
        x[:, [axis, axis + 1]] = np.column_stack([-x[:, axis + 1], x[:, axis]])
    a = ATTR * rng.uniform(0.5, 1.5, size=(n, 4))
    if changed and cell == SHIFTED:
        a[:, [0, 2]] = a[:, [2, 0]]
    signs = rng.choice([-1.0, 1.0], size=a.shape)
    shap = [{f"f{j}": float(v) for j, v in enumerate(row)} for row in a * signs]
    classes = ["a" if i % 2 else "b" for i in range(n)]
    return x, shap, classes


def _stream() -> tuple[list[dict[str, Any]], dict[tuple[Any, ...], np.ndarray]]:
    rng = np.random.default_rng(19)
    events, sent = [], {}
    for w in range(4):
        for cell in CELLS:
            x, shap, classes = _rows(rng, cell, PER_WINDOW, w >= CHANGED_FROM)
            x32 = x.astype(np.float32)
            sent[(w, cell)] = x32
            for i in range(PER_WINDOW):
                events.append(
                    {
                        "model": "m",
                        "segment": cell[0],
                        "region": cell[1],
                        "score": 0.5,
                        "prediction": classes[i],
                        "timestamp": T0 + w * WINDOW + i * 0.4,
                        "emb": x32[i].tolist(),
                        "shap": shap[i],
                    }
                )
    for cell in CELLS:  # closes window 3
        events.append(
            {
                "model": "m",
                "segment": cell[0],
                "region": cell[1],
                "score": 0.5,
                "timestamp": T0 + 4 * WINDOW + 1.0,
            }
        )
    return events, sent


def _reference() -> Any:
    rng = np.random.default_rng(7)
    xs, shaps, cells, classes = [], [], [], []
    for cell in CELLS:
        x, shap, cls = _rows(rng, cell, 400, changed=False)
        xs.append(x)
        shaps += shap
        cells += [cell] * 400
        classes += cls
    return build_model_vectors(
        VectorSettings(), cells, classes, np.concatenate(xs), range(len(cells)), shaps
    )


def _flagged(tracker: VectorTracker, end: float, signals: tuple[str, ...]) -> set[Any]:
    d = tracker.history["m"][end].decisions
    return {cell for i, (cell, _cls) in enumerate(d.keys) if any(d.flags[s][i] for s in signals)}


@pytest.mark.broker
def test_rotated_and_shifted_cells_flagged_through_the_broker(
    broker: EmbeddedBroker, make_topic: Callable[..., str]
) -> None:
    stream, sent = _stream()
    topic = make_topic(2)
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
    state = ReplicaState(
        CellSettings(dimensions=("segment", "region"), window_seconds=WINDOW, grace_seconds=0.0)
    )
    reference = _reference()
    tracker = VectorTracker(VectorSettings(), {"m": reference}, WINDOW)
    monitor = Monitor(kafka, FIELDS, state, vectors=tracker)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            monitor.run(stop)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, name="monitor", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60.0
        while True:
            with state.lock:
                read, judged = state.ingest.read, len(tracker.history.get("m", {}))
                pending = tracker.due(T0 + 4 * WINDOW)  # windows 0..3 judged, none dirty
            done = read >= len(stream) and judged >= 4 and not pending
            if done or errors or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not errors, errors
        assert read == len(stream) and judged == 4, (read, judged)
    finally:
        stop.set()
        thread.join(30)
    assert tracker.skipped == {} and tracker.bad_embeddings == {}
    ends = [T0 + (w + 1) * WINDOW for w in range(4)]
    embedding, explanation = ("embedding_psi", "embedding_distance"), ("attribution_shift",)
    top = (ALL, ALL)
    for w, end in enumerate(ends):
        emb, expl = _flagged(tracker, end, embedding), _flagged(tracker, end, explanation)
        if w < CHANGED_FROM:
            assert emb == set() and expl == set(), (w, emb, expl)
        else:  # the changed leaf cells (and the model-wide roll-up holding them) only
            assert emb - {top} == {ROTATED}, (w, emb)
            assert expl - {top} == {SHIFTED}, (w, expl)
    # The sampled points of the rotated cell's class-a group: offline projections of its own
    # vectors of the last window.
    last = tracker.history["m"][ends[-1]]
    points = last.points[(ROTATED, "a")]
    x = sent[(3, ROTATED)][1::2]  # class "a": the odd events
    assert reference.projection is not None
    offline = (
        x.astype(np.float64) - reference.projection.center
    ) @ reference.projection.components[:2].T
    assert len(points) == len(x)  # fewer than the reservoir size: every point kept
    gap = np.abs(points[:, None, :] - offline[None, :, :]).max(axis=2).min(axis=1)
    assert gap.max() < 1e-3
    registry = CollectorRegistry()
    registry.register(VectorCollector(tracker, state.lock, ("segment", "region")))
    flag = registry.get_sample_value(
        "tilewatch_window_vector_flag",
        {
            "model": "m",
            "segment": "s1",
            "region": "r1",
            "class": "__all__",
            "signal": "attribution_shift",
        },
    )
    assert flag == 1.0
