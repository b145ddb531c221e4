"""The runtime warms a scrape while idle: once per reported window, only once something scrapes."""

from __future__ import annotations

import numpy as np
import pytest

from tilewatch.app import App
from tilewatch.config.loader import parse_config
from tilewatch.exporters.prometheus.exposition import generate


def _feed(app: App, t0: float, n: int = 200) -> None:
    rng = np.random.default_rng(int(t0))
    keys = [("churn", f"s{i % 7}") for i in range(n)]
    times = t0 + np.sort(rng.uniform(0, 50, n))
    app.state.apply(("t", 0), keys, times, rng.random(n), int(t0) + n)
    app.state.refresh()


def test_idle_warms_once_per_window_and_only_after_a_scrape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = parse_config(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]},
            "cells": {"dimensions": ["segment"], "window": "60s", "grace": "0s"},
        },
        source="<test>",
    )
    app = App(cfg)
    assert app.monitor.on_idle == app._warm_scrape
    warms: list[int] = []
    real = app.cells.warm
    monkeypatch.setattr(app.cells, "warm", lambda: warms.append(real()) or warms[-1])
    _feed(app, 1_000_000.0)
    _feed(app, 1_000_060.0)  # the first window closes and is reported
    assert app.state.window_cache is not None
    app._warm_scrape()
    assert warms == []  # nothing scrapes: nothing is formatted ahead
    generate(app.registry)  # a scrape
    app._warm_scrape()  # that scrape formatted the reported window: nothing to warm
    assert warms == [0]
    warms.clear()
    _feed(app, 1_000_120.0)  # a new reported window
    app._warm_scrape()
    app._warm_scrape()
    assert len(warms) == 1 and warms[0] > 0
    _feed(app, 1_000_180.0)  # another window, but no scrape since the last warm
    app._warm_scrape()
    assert len(warms) == 1
    generate(app.registry)
    _feed(app, 1_000_240.0)
    app._warm_scrape()
    assert len(warms) == 2
