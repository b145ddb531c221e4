"""The ``[baseline]`` section: the reference file and how ``tilewatch baseline`` builds it.

Maps to :class:`tilewatch.aggregators.drift.reference.BaselineSettings`; reference in
``docs/configuration.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilewatch.aggregators.drift.reference import BaselineSettings
from tilewatch.aggregators.stats.threshold import THRESHOLD_RULES
from tilewatch.config.base import ConfigError, Table

__all__ = ["KEYS", "parse_baseline"]

KEYS = (
    "cost_ratio",
    "feature_bins",
    "path",
    "score_bins",
    "threshold_rule",
    "top_categories",
)


def parse_baseline(data: Mapping[str, Any], source: str) -> BaselineSettings:
    table = Table(source, "baseline", data, KEYS)
    defaults = BaselineSettings()
    rule = table.data.get("threshold_rule", defaults.threshold_rule)
    if rule not in THRESHOLD_RULES:
        raise table.error("threshold_rule", '"max_f1", "youden" or "cost"', rule)
    cost_ratio = None
    if "cost_ratio" in table.data:
        cost_ratio = table.number("cost_ratio", 1.0)
        if cost_ratio <= 0:
            raise table.error("cost_ratio", "a number > 0", table.data["cost_ratio"])
    elif rule == "cost":
        raise ConfigError(
            f"{table.where('cost_ratio')}: expected a number > 0 (cost of a false negative / "
            'cost of a false positive) since threshold_rule is "cost", got no key'
        )
    return BaselineSettings(
        path=table.string("path", "-") if "path" in table.data else None,
        score_bins=table.integer("score_bins", defaults.score_bins, 1),
        feature_bins=table.integer("feature_bins", defaults.feature_bins, 1),
        top_categories=table.integer("top_categories", defaults.top_categories, 1),
        threshold_rule=rule,
        cost_ratio=cost_ratio,
    )
