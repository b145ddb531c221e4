"""The series budget: roll-ups always, then flagged or unhealthy leaf cells, then by volume;
the rest counted in tilewatch_cells_unexported; both collectors export the same cells."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.exporters.prometheus.test_health_collector import HIERARCHY, NOW
from tilewatch.aggregators.cells.settings import ALL, CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.config.loader import parse_config
from tilewatch.exporters.prometheus.budget import CellBudget
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.exporters.prometheus.exposition import generate
from tilewatch.exporters.prometheus.health_collector import HealthCollector

DIMS = ("segment", "region")


def make_state() -> tuple[ReplicaState, list[tuple[str, str, str]]]:
    """40 leaf cells of model m (s00..s07 x r0..r4); cell i gets i + 1 events in window 0,
    scoring 0.9 in cells 10 and 11 (red in HIERARCHY's quality component) and 0.1 elsewhere,
    and every cell one event in window 1 (which closes window 0)."""
    state = ReplicaState(CellSettings(dimensions=DIMS, window_seconds=10, grace_seconds=0))
    keys = [("m", f"s{i:02d}", f"r{j}") for i in range(8) for j in range(5)]
    batch = [k for i, k in enumerate(keys) for _ in range(i + 1)]
    scores = np.array(
        [0.9 if i in (10, 11) else 0.1 for i, _ in enumerate(keys) for _ in range(i + 1)]
    )
    state.apply(("t", 0), batch, np.full(len(batch), 1.0), scores, len(batch))
    state.apply(("t", 0), keys, np.full(len(keys), 15.0), np.full(len(keys), 0.5), 1000)
    state.refresh()
    return state, keys


def exported_cells(registry: CollectorRegistry, family: str) -> set[tuple[str, str, str]]:
    text = generate(registry).decode()
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            return {
                (s.labels["model"], s.labels["segment"], s.labels["region"]) for s in fam.samples
            }
    raise AssertionError(f"no family {family}")


def test_without_a_binding_budget_every_cell_is_exported() -> None:
    state, _keys = make_state()
    snap = state.snapshot()
    exported, unexported = CellBudget(40).select(snap)
    assert unexported == 0 and (exported == (snap.events_total > 0)).all()
    exported, unexported = CellBudget(0).select(snap)
    assert unexported == 0 and exported.sum() == len(snap.keys)


def test_rollups_always_then_the_busiest_leaf_cells() -> None:
    state, keys = make_state()
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, DIMS, CellBudget(5)))
    cells = exported_cells(registry, "tilewatch_events")
    leaves = {c for c in cells if ALL not in c}
    assert leaves == set(keys[-5:])  # the most events in the reported window
    rollups = {c for c in cells if ALL in c}
    snap = state.snapshot()
    assert rollups == {k for k, leaf in zip(snap.keys, snap.is_leaf, strict=True) if not leaf}
    assert registry.get_sample_value("tilewatch_cells_unexported") == 35
    assert registry.get_sample_value("tilewatch_cells", {"kind": "leaf"}) == 40
    # every per-cell family follows the same choice
    assert {
        c for c in exported_cells(registry, "tilewatch_rolling_score_mean") if ALL not in c
    } == (leaves)


def test_flagged_or_unhealthy_cells_come_before_volume() -> None:
    state, keys = make_state()
    quiet = [1, 2]  # few events, but unhealthy

    def unhealthy(snap: Snapshot) -> np.ndarray:
        bad = np.zeros(len(snap.keys), dtype=bool)
        bad[[snap.keys.index(keys[i]) for i in quiet]] = True
        return bad

    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, DIMS, CellBudget(4, unhealthy)))
    leaves = {c for c in exported_cells(registry, "tilewatch_events") if ALL not in c}
    assert leaves == {keys[1], keys[2], keys[38], keys[39]}


def test_both_collectors_export_the_same_cells_and_the_unhealthy_first() -> None:
    state, keys = make_state()
    health = HealthCollector(state.snapshot, DIMS, HIERARCHY, clock=lambda: NOW)
    budget = CellBudget(3, health.unhealthy)
    health.budget = budget
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, DIMS, budget))
    registry.register(health)
    cell_side = exported_cells(registry, "tilewatch_events")
    health_side = exported_cells(registry, "tilewatch_component_score")
    assert cell_side == health_side
    assert len({c for c in cell_side if ALL not in c}) == 3
    assert {c for c in cell_side if ALL not in c} == {keys[10], keys[11], keys[39]}
    snap = state.snapshot()
    bad = health.unhealthy(snap)
    assert {snap.keys[i] for i in np.flatnonzero(bad & snap.is_leaf)} == {keys[10], keys[11]}


def test_the_health_collector_chooses_its_cells_from_its_own_evaluation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a binding budget the health collector evaluates the hierarchy once per scrape
    (its budget choice reads that evaluation, at the same clock reading) and exports the
    cells the budget chooses from a fresh evaluation."""
    state, keys = make_state()
    health = HealthCollector(state.snapshot, DIMS, HIERARCHY, clock=lambda: NOW)
    health.budget = CellBudget(3, health.unhealthy)
    calls: list[float | None] = []
    evaluate = health.evaluate

    def counting(snap: Snapshot, now: float | None = None) -> object:
        calls.append(now)
        return evaluate(snap, now)

    monkeypatch.setattr(health, "evaluate", counting)
    registry = CollectorRegistry()
    registry.register(health)
    leaves = {c for c in exported_cells(registry, "tilewatch_component_score") if ALL not in c}
    assert calls == [NOW]
    assert leaves == {keys[10], keys[11], keys[39]}


def test_the_config_key() -> None:
    base = {"kafka": {"bootstrap_servers": "127.0.0.1:9092", "topics": ["t"]}}
    assert parse_config(base).exporter.max_exported_cells == 10_000
    cfg = parse_config({**base, "exporter": {"max_exported_cells": 0}})
    assert cfg.exporter.max_exported_cells == 0
    from tilewatch.config.base import ConfigError

    with pytest.raises(ConfigError, match=r"\[exporter\].max_exported_cells"):
        parse_config({**base, "exporter": {"max_exported_cells": -1}})
