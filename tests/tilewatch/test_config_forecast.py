"""``[forecast]``: which statistics each cell forecasts and how far ahead, through the whole
path: the replica's forecasts, the exported families, the dashboards and the forecast alert."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tilewatch.app import App
from tilewatch.config import ConfigError, parse_config
from tilewatch.exporters.prometheus.exposition import generate
from tilewatch.generate import render

SOURCE = "tilewatch.toml"
KAFKA = {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]}
#: A hierarchy metric on the window score mean, so the forecast alert has something to read.
HIERARCHY = {
    "metrics": {
        "score_mean": {
            "metric": "tilewatch_window_score_mean",
            "direction": "higher_is_worse",
            "amber": 0.6,
            "red": 0.8,
        }
    },
    "components": {"scores": {"members": ["score_mean"]}},
}


def config(forecast: dict[str, Any] | None) -> Any:
    data: dict[str, Any] = {"kafka": KAFKA, "hierarchy": HIERARCHY}
    if forecast is not None:
        data["forecast"] = forecast
    return parse_config(data, SOURCE)


@pytest.mark.parametrize(
    ("forecast", "message"),
    [
        (
            {"statistics": "score_mean"},
            'statistics: expected a list of statistic names, got "score_mean"',
        ),
        (
            {"statistics": ["latency"]},
            "statistics[0]: expected one of accuracy, score_mean, score_psi",
        ),
        (
            {"statistics": ["score_mean", "score_mean"]},
            "statistics: expected distinct statistic names",
        ),
        ({"horizon": 0}, "horizon: expected an integer >= 1, got 0"),
        ({"horizon": 21}, "horizon: expected an integer in 1..20, got 21"),
        ({"horizon": 2.5}, "horizon: expected an integer"),
        ({"window": 3}, "window: unknown key, expected one of horizon, statistics"),
    ],
)
def test_bad_forecast_keys_are_named(forecast: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(forecast)
    assert f"{SOURCE}: [forecast].{message}" in str(info.value)


def _scrape(forecast: dict[str, Any] | None) -> tuple[App, str]:
    """The app of the config fed eight 10 s windows of one rising cell, then scraped."""
    cfg = parse_config(
        {"kafka": KAFKA, "cells": {"window": "10s", "grace": "0s"}, "forecast": forecast or {}},
        SOURCE,
    )
    app = App(cfg)
    rng = np.random.default_rng(4)
    for w in range(8):
        keys = [("churn", "smb", "eu")] * 40
        scores = np.clip(0.2 + 0.03 * w + rng.normal(0, 0.02, 40), 0, 1)
        times = 1.7e9 + 10.0 * w + np.linspace(0, 9, 40)
        app.state.apply(("t", 0), keys, times, scores, next_offset=(w + 1) * 40)
        app.state.refresh()
    return app, generate(app.registry).decode()


def test_the_default_forecasts_three_statistics_five_windows_ahead() -> None:
    app, text = _scrape(None)
    assert app.state.forecasts is not None and app.state.forecasts.horizon == 5
    assert app.state.forecasts.statistics == ("accuracy", "score_mean", "score_psi")
    horizons = {
        line.split('horizon="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("tilewatch_forecast_score_mean{")
    }
    assert horizons == {"1", "2", "3", "4", "5"}


def test_fewer_statistics_and_a_shorter_horizon_are_what_is_exported() -> None:
    app, text = _scrape({"statistics": ["score_mean"], "horizon": 2})
    assert app.state.forecasts is not None and app.state.forecasts.statistics == ("score_mean",)
    lines = [x for x in text.splitlines() if x.startswith("tilewatch_forecast_")]
    assert lines and all(x.startswith("tilewatch_forecast_score_mean") for x in lines)
    assert {x.split('horizon="')[1][0] for x in lines} == {"1", "2"}


def test_no_statistics_turns_forecasts_off_everywhere() -> None:
    app, text = _scrape({"statistics": []})
    assert app.state.forecasts is None
    assert app.state.snapshot().forecasts is None
    assert "tilewatch_forecast_" not in text
    assert "tilewatch_window_score_mean{" in text  # the observed statistics stay
    on, off = render(config(None)), render(config({"statistics": []}))
    assert "TilewatchCellForecastRed" in on["deploy/prometheus/rules/tilewatch.rules.yml"]
    for path, body in off.items():
        assert "tilewatch_forecast_" not in body, path
        assert "TilewatchCellForecastRed" not in body, path
    assert any("tilewatch_forecast_" in body for p, body in on.items() if p.endswith(".json"))


def test_the_alert_names_the_configured_horizon() -> None:
    rules = render(config({"horizon": 3}))["deploy/prometheus/rules/tilewatch.rules.yml"]
    assert "up to 3 windows ahead" in rules
    assert (
        "up to 5 windows ahead"
        in render(config(None))["deploy/prometheus/rules/tilewatch.rules.yml"]
    )
