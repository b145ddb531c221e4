"""The ``[forecast]`` section: per-cell forecasts of window statistics (``docs/forecast.md``).

::

    [forecast]
    statistics = ["accuracy", "score_mean", "score_psi"]   # [] turns forecasts off
    horizon = 5                                            # windows ahead, 1..20

Maps to :class:`tilewatch.aggregators.state.forecasts.ForecastSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilewatch.aggregators.state.forecasts import (
    FORECAST_STATISTICS,
    MAX_HORIZON,
    ForecastSettings,
)
from tilewatch.config.base import Table

__all__ = ["KEYS", "parse_forecast"]

KEYS = ("horizon", "statistics")


def parse_forecast(data: Mapping[str, Any], source: str) -> ForecastSettings:
    """The ``[forecast]`` table as settings; a bad key raises ConfigError.

    Examples
    --------
    >>> parse_forecast({"statistics": ["score_mean"], "horizon": 3}, "t.toml")
    ForecastSettings(statistics=('score_mean',), horizon=3)
    >>> parse_forecast({"statistics": []}, "t.toml").build() is None
    True
    >>> parse_forecast({"horizon": 30}, "t.toml")
    Traceback (most recent call last):
    ...
    tilewatch.config.base.ConfigError: t.toml: [forecast].horizon: expected an integer in ...
    """
    table = Table(source, "forecast", data, KEYS)
    defaults = ForecastSettings()
    value = table.data.get("statistics", list(defaults.statistics))
    if not isinstance(value, list):
        raise table.error("statistics", "a list of statistic names", value)
    known = ", ".join(FORECAST_STATISTICS)
    for i, name in enumerate(value):
        if name not in FORECAST_STATISTICS:
            raise table.error(f"statistics[{i}]", f"one of {known}", name)
    if len(set(value)) != len(value):
        raise table.error("statistics", "distinct statistic names", value)
    horizon = table.integer("horizon", defaults.horizon, 1)
    if horizon > MAX_HORIZON:
        raise table.error("horizon", f"an integer in 1..{MAX_HORIZON}", horizon)
    ordered = tuple(s for s in FORECAST_STATISTICS if s in value)
    return ForecastSettings(statistics=ordered, horizon=horizon)
