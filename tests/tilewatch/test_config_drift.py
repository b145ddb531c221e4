"""The [drift] section, [cells] min_samples, and when drift is on."""

from __future__ import annotations

from typing import Any

import pytest

from tilewatch.aggregators.drift.profile import DriftSettings
from tilewatch.app import build_profile
from tilewatch.config import ConfigError, parse_config

SRC = "tilewatch.toml"


def test_defaults() -> None:
    config = parse_config({}, SRC)
    assert config.drift == DriftSettings()
    assert config.drift_enabled is False
    assert build_profile(config) is None
    d = config.drift
    assert (d.features, d.max_features, d.min_samples, d.fdr_rate) == ((), 10, 30, 0.01)
    assert (d.psi_alert, d.class_alert, d.missing_alert, d.score_bins) == (0.25, 0.05, 0.5, 20)
    assert (d.reference, d.trailing_windows, d.trailing_gap, d.prior_strength) == (
        "baseline",
        10,
        1,
        20.0,
    )
    assert d.detectors == ("adwin", "page_hinkley")
    assert (d.adwin_delta, d.ph_threshold, d.ph_delta) == (0.002, 10.0, 0.5)


@pytest.mark.parametrize(
    ("data", "enabled"),
    [
        ({}, False),
        ({"drift": {"features": ["x"]}}, True),
        ({"drift": {"features": []}}, False),
        ({"baseline": {"path": "b.json"}}, True),
        ({"baseline": {"path": "b.json"}, "drift": {"enabled": False}}, False),
        ({"drift": {"features": ["x"], "enabled": False}}, False),
        ({"drift": {"enabled": True}}, True),
        ({"drift": {"score_bins": 5}}, False),
    ],
)
def test_drift_enabled_auto(data: dict[str, Any], enabled: bool) -> None:
    assert parse_config(data, SRC).drift_enabled is enabled


def test_explicit_enabled_without_baseline_builds_profile() -> None:
    config = parse_config({"drift": {"enabled": True, "features": ["a", "b", "a"]}}, SRC)
    assert config.drift.features == ("a", "b")  # duplicates dropped, order kept
    profile = build_profile(config)
    assert profile is not None and profile.baseline is None
    assert profile.hist_bins == {"score": 20, "class": 3, "f:a": 2, "f:b": 2}
    assert profile.score_range == (0.0, 1.0)


def test_all_keys() -> None:
    config = parse_config(
        {
            "cells": {"min_samples": 5},
            "drift": {
                "enabled": True,
                "features": ["x"],
                "max_features": 3,
                "fdr_rate": 0.1,
                "psi_alert": 0.1,
                "missing_alert": 0.2,
                "score_bins": 7,
                "detectors": ["page_hinkley"],
                "adwin_delta": 0.01,
                "ph_threshold": 1,
                "ph_delta": 0,
            },
        },
        SRC,
    )
    assert config.drift == DriftSettings(
        features=("x",),
        max_features=3,
        min_samples=5,
        fdr_rate=0.1,
        psi_alert=0.1,
        missing_alert=0.2,
        score_bins=7,
        detectors=("page_hinkley",),
        adwin_delta=0.01,
        ph_threshold=1.0,
        ph_delta=0.0,
    )
    assert isinstance(config.drift.ph_threshold, float)
    assert parse_config({"drift": {"detectors": []}}, SRC).drift.detectors == ()


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("drift", "features", "x", 'expected a list of feature names, got "x"'),
        ("drift", "features", ["x", ""], 'expected a list of feature names, got ["x", ""]'),
        ("drift", "features", [1], "expected a list of feature names, got [1]"),
        ("drift", "max_features", 0, "expected an integer >= 1, got 0"),
        ("drift", "max_features", True, "expected an integer >= 1, got true"),
        ("drift", "fdr_rate", 0, "expected a number between 0 and 1, got 0"),
        ("drift", "fdr_rate", 1.0, "expected a number between 0 and 1, got 1.0"),
        ("drift", "fdr_rate", "x", 'expected a finite number, got "x"'),
        ("drift", "psi_alert", 0, "expected a number > 0, got 0"),
        ("drift", "psi_alert", -1.5, "expected a number > 0, got -1.5"),
        ("drift", "missing_alert", 1, "expected a number between 0 and 1, got 1"),
        ("drift", "score_bins", 0, "expected an integer >= 1, got 0"),
        ("drift", "score_bins", 2.5, "expected an integer >= 1, got 2.5"),
        (
            "drift",
            "detectors",
            ["adwin", "kswin"],
            'expected a list of adwin, page_hinkley, got ["adwin", "kswin"]',
        ),
        ("drift", "detectors", "adwin", 'expected a list of adwin, page_hinkley, got "adwin"'),
        ("drift", "adwin_delta", 0, "expected a number between 0 and 1, got 0"),
        ("drift", "ph_threshold", 0, "expected a number > 0, got 0"),
        ("drift", "ph_delta", "small", 'expected a finite number, got "small"'),
        ("drift", "ph_delta", float("nan"), "expected a finite number, got nan"),
        ("drift", "enabled", "yes", 'expected true or false, got "yes"'),
        ("drift", "enabled", 1, "expected true or false, got 1"),
        ("cells", "min_samples", 0, "expected an integer >= 1, got 0"),
        ("cells", "min_samples", "30", 'expected an integer >= 1, got "30"'),
    ],
)
def test_validation_messages(section: str, key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({section: {key: value}}, SRC)
    assert str(info.value) == f"{SRC}: [{section}].{key}: {message}"


def test_unknown_drift_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"drift": {"psi": 0.1}}, SRC)
    assert str(info.value) == (
        f"{SRC}: [drift].psi: unknown key, expected one of adwin_delta, class_alert, detectors, "
        "enabled, fdr_rate, features, max_features, missing_alert, ph_delta, ph_threshold, "
        "prior_strength, psi_alert, reference, score_bins, trailing_gap, trailing_windows"
    )


def test_drift_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"drift": 3}, SRC)
    assert str(info.value) == f"{SRC}: [drift]: expected a table, got 3"


def test_min_samples_in_cells() -> None:
    config = parse_config({"cells": {"min_samples": 1, "window": "30s"}}, SRC)
    assert config.drift.min_samples == 1
    assert config.cells.window_seconds == 30.0
    assert not hasattr(config.cells, "min_samples")
