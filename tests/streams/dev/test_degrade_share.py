"""The degrading cell's traffic share: settable, so the demo's degrading cell has enough
labelled events per window for every statistic to show it (not a '-' below min_samples)."""

from __future__ import annotations

import numpy as np
import pytest

from tilewatch.config import parse_config
from tilewatch.demo import DEGRADE_CELL_SHARE, demo_config
from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec

CELL = ("churn", "smb", "eu-west")


def test_share_replaces_the_seeded_weight_and_keeps_the_others_in_proportion() -> None:
    base = TrafficGenerator(TrafficSpec(), 0.0).cell_weights
    moved = TrafficGenerator(TrafficSpec(degrade_cell_share=0.1), 0.0).cell_weights
    assert base[CELL] < 0.01  # what the seed gives it
    assert moved[CELL] == pytest.approx(0.1)
    assert sum(moved.values()) == pytest.approx(1.0)
    others = [k for k in base if k != CELL]
    ratio = np.array([moved[k] / base[k] for k in others])
    assert np.allclose(ratio, 0.9 / (1.0 - base[CELL]))


def test_drawn_traffic_follows_the_share() -> None:
    gen = TrafficGenerator(TrafficSpec(degrade_cell_share=0.1, seed=3), 0.0)
    events = gen.events(20_000)
    share = np.mean([(e["model"], e["segment"], e["region"]) == CELL for e in events])
    assert share == pytest.approx(0.1, abs=0.01)


def test_default_traffic_is_unchanged() -> None:
    a = TrafficGenerator(TrafficSpec(seed=5), 0.0).batch(50)
    b = TrafficGenerator(TrafficSpec(seed=5, degrade_cell_share=None), 0.0).batch(50)
    assert a == b


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1])
def test_share_is_validated(share: float) -> None:
    with pytest.raises(ValueError, match="degrade_cell_share"):
        TrafficSpec(degrade_cell_share=share)
    with pytest.raises(ValueError, match="degrade_cell_share"):
        TrafficSpec(degrade_cell=None, degrade_cell_share=0.1)


def test_the_demo_cell_has_several_times_min_samples_labelled_events_per_window() -> None:
    cfg = parse_config(demo_config("127.0.0.1:1", 0), source="<demo>")
    assert cfg.labels is not None
    rate = 2000.0  # the demo's default --rate
    labelled = rate * cfg.cells.window_seconds * DEGRADE_CELL_SHARE * TrafficSpec().label_share
    assert labelled >= 4 * cfg.labels.performance.min_samples
