"""The ``[drift]`` section: which features, which tests and detectors, and their thresholds.

Maps to :class:`tilewatch.aggregators.drift.profile.DriftSettings`; reference in
``docs/configuration.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilewatch.aggregators.drift.profile import REFERENCE_MODES, DriftSettings
from tilewatch.aggregators.drift.reference import BaselineSettings
from tilewatch.config import cells as cells_section
from tilewatch.config.base import Table

__all__ = ["DETECTORS", "KEYS", "parse_drift"]

KEYS = (
    "adwin_delta",
    "class_alert",
    "detectors",
    "enabled",
    "fdr_rate",
    "features",
    "max_features",
    "missing_alert",
    "ph_delta",
    "ph_threshold",
    "prior_strength",
    "psi_alert",
    "reference",
    "score_bins",
    "trailing_gap",
    "trailing_windows",
)
DETECTORS = ("adwin", "page_hinkley")


def parse_drift(
    data: Mapping[str, Any], cells: Mapping[str, Any], source: str, baseline: BaselineSettings
) -> dict[str, Any]:
    table = Table(source, "drift", data, KEYS)
    cells_table = Table(source, "cells", cells, cells_section.KEYS)
    d = DriftSettings()
    features: list[str] = []
    if "features" in table.data:
        value = table.data["features"]
        if not isinstance(value, list) or not all(isinstance(f, str) and f for f in value):
            raise table.error("features", "a list of feature names", value)
        features = list(dict.fromkeys(value))
    detectors: list[str] = list(d.detectors)
    if "detectors" in table.data:
        value = table.data["detectors"]
        if not isinstance(value, list) or not all(v in DETECTORS for v in value):
            raise table.error("detectors", f"a list of {', '.join(DETECTORS)}", value)
        detectors = list(dict.fromkeys(value))

    def ratio(key: str, default: float) -> float:
        value = table.number(key, default)
        if not 0.0 < value < 1.0:
            raise table.error(key, "a number between 0 and 1", table.data[key])
        return value

    def positive(key: str, default: float) -> float:
        value = table.number(key, default)
        if value <= 0:
            raise table.error(key, "a number > 0", table.data[key])
        return value

    def nonnegative(key: str, default: float) -> float:
        value = table.number(key, default)
        if value < 0:
            raise table.error(key, "a number >= 0", table.data[key])
        return value

    reference = table.data.get("reference", d.reference)
    if reference not in REFERENCE_MODES:
        raise table.error("reference", '"baseline" or "trailing"', reference)
    settings = DriftSettings(
        features=tuple(features),
        max_features=table.integer("max_features", d.max_features, 1),
        min_samples=cells_table.integer("min_samples", d.min_samples, 1),
        fdr_rate=ratio("fdr_rate", d.fdr_rate),
        psi_alert=positive("psi_alert", d.psi_alert),
        class_alert=positive("class_alert", d.class_alert),
        missing_alert=ratio("missing_alert", d.missing_alert),
        reference=reference,
        trailing_windows=table.integer("trailing_windows", d.trailing_windows, 1),
        trailing_gap=table.integer("trailing_gap", d.trailing_gap, 0),
        prior_strength=positive("prior_strength", d.prior_strength),
        score_bins=table.integer("score_bins", d.score_bins, 1),
        detectors=tuple(detectors),
        adwin_delta=ratio("adwin_delta", d.adwin_delta),
        ph_threshold=positive("ph_threshold", d.ph_threshold),
        ph_delta=nonnegative("ph_delta", d.ph_delta),
    )
    auto = baseline.path is not None or bool(features) or reference == "trailing"
    enabled = table.data.get("enabled", auto)
    if not isinstance(enabled, bool):
        raise table.error("enabled", "true or false", enabled)
    return {"drift": settings, "drift_enabled": enabled}
