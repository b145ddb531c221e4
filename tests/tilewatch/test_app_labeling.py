"""The wiring of [labeling] in App: the stage, the collector, and each cell's health status."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from prometheus_client import generate_latest

from tilewatch.app import App
from tilewatch.config import parse_config


def test_app_wires_the_queue_and_reads_health_status_per_leaf_cell() -> None:
    config = parse_config(
        {
            "exporter": {"listen": "127.0.0.1:0"},
            "cells": {"dimensions": ["segment"], "window": "1m", "grace": "0s"},
            "labels": {"threshold": 0.5},
            "labeling": {"reasons": ["least_confident"]},
        },
        source="<test>",
    )
    app = App(config)
    stage = app.monitor.labeling
    assert stage is not None and stage.topic_of("predictions") == "predictions.labeling"
    assert app.state.labeling == config.labeling
    text = generate_latest(app.registry).decode()
    assert "tilewatch_labeling_failures_total 0.0" in text

    # Health status of leaf cells: none before any verdict, then the worst component's.
    state = app.state
    state.assign(("predictions", 0))
    rng = np.random.default_rng(0)
    keys = [("m", "a")] * 300 + [("m", "b")] * 300
    times = np.sort(rng.uniform(0, 59, 600)) + 1767225600.0
    state.apply(("predictions", 0), keys, times, rng.uniform(size=600), next_offset=600)
    state.apply(
        ("predictions", 0), [("m", "a")], np.array([1767225600.0 + 130]), np.array([0.5]), 601
    )
    leaf = state.registry.index_many([("m", "a"), ("m", "b")])
    status = app._cell_status(leaf)
    assert status.dtype == np.int64 and status.shape == (2,)
    snap = state.snapshot()
    result = app.health.evaluate(snap)
    worst = {
        key: max([-1, *(int(c.status[i]) for c in result.components)])
        for i, key in enumerate(snap.keys)
    }
    assert status.tolist() == [worst[("m", "a")], worst[("m", "b")]]

    # The worst component per cell, evaluated at most once per STATUS_MAX_AGE.
    order = {key: i for i, key in enumerate(snap.keys)}
    first = np.full(len(snap.keys), 0)
    second = np.full(len(snap.keys), -1)
    first[order[("m", "a")]], second[order[("m", "a")]] = 1, 0
    second[order[("m", "b")]] = 2
    calls = []

    def evaluate(s: object) -> SimpleNamespace:
        calls.append(s)
        return SimpleNamespace(
            components=[SimpleNamespace(status=first), SimpleNamespace(status=second)]
        )

    app.health.evaluate = evaluate  # type: ignore[method-assign]
    app._status = None
    assert app._cell_status(leaf).tolist() == [1, 2]
    assert app._cell_status(leaf[::-1]).tolist() == [2, 1]
    assert len(calls) == 1
