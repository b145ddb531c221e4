"""Warming a scrape: a newly reported window's families formatted while the consumer is idle."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from tests.exporters.prometheus.test_collector import DIMS
from tests.exporters.prometheus.test_exposition import assert_same, parse
from tests.exporters.prometheus.test_health_collector import _profile as health_profile
from tests.exporters.prometheus.test_health_collector import _state as health_state
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.exporters.prometheus.exposition import CellFamily, generate


def _window_families(registry: CollectorRegistry) -> dict[str, CellFamily]:
    return {
        f.name: f
        for f in registry.collect()
        if isinstance(f, CellFamily) and f.name.startswith("tilewatch_window_")
    }


def test_warm_formats_the_new_window_so_the_next_scrape_keeps_it() -> None:
    state = health_state(health_profile())
    collector = CellCollector(state.snapshot, DIMS)
    registry = CollectorRegistry()
    registry.register(collector)
    generate(registry)
    scrapes = collector.scrapes
    # The next window closes: without a warm the next scrape would format every window family.
    state.apply(("t", 0), [("m", "a", "x")], np.array([35.0]), np.array([0.5]), 10_001)
    state.refresh()
    assert collector.warm() > 0
    assert collector.scrapes == scrapes  # a warm is not a scrape
    families = _window_families(registry)
    assert families and all(f.kept is not None for f in families.values())
    # What it kept is what a fresh writer says.
    fresh = CollectorRegistry()
    fresh.register(CellCollector(state.snapshot, DIMS))
    assert_same(parse(generate(registry).decode()), parse(generate(fresh).decode()))
    assert collector.warm() == 0  # nothing new to format
