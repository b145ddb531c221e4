"""The README documents every metric, rejection reason, config key and command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tilewatch.cli import _parser
from tilewatch.exporters.prometheus.catalog import (
    DRIFT_METRICS,
    HEALTH_METRICS,
    METRICS,
    PERFORMANCE_METRICS,
)
from tilewatch.streams.decoding.events import REASONS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name", [m.name for m in (*METRICS, *DRIFT_METRICS, *HEALTH_METRICS, *PERFORMANCE_METRICS)]
)
def test_every_metric_is_in_the_readme_table(name: str) -> None:
    assert f"| `{name}` |" in README


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_rejection_reason_is_documented(reason: str) -> None:
    assert f"| `{reason}` |" in README


def _config_keys() -> list[tuple[str, str]]:
    """Every key the config parser accepts, by section (read from the schema itself)."""
    from tilewatch.config import (
        baseline,
        cells,
        drift,
        events,
        exporter,
        kafka,
        loader,
        state,
    )
    from tilewatch.config import hierarchy as config_hierarchy
    from tilewatch.config import labels as config_labels

    tables = {
        "kafka": kafka.KEYS,
        "events": events.KEYS,
        "cells": cells.KEYS,
        "state": state.KEYS,
        "exporter": exporter.KEYS,
        "drift": drift.KEYS,
        "baseline": baseline.KEYS,
        "hierarchy": config_hierarchy.HIERARCHY_KEYS,
        "labels": config_labels.LABEL_KEYS,
    }
    assert set(tables) == set(loader.SECTIONS)
    tables.update(
        {
            "hierarchy.metrics.<name>": config_hierarchy.METRIC_KEYS,
            "hierarchy.components.<name>": config_hierarchy.COMPONENT_KEYS,
            "hierarchy.indicators.<name>": config_hierarchy.INDICATOR_KEYS,
            "hierarchy.alerts": config_hierarchy.ALERT_KEYS,
        }
    )
    return [
        (section, key)
        for section, keys in tables.items()
        for key in keys
        if (section, key) != ("kafka", "client")  # the [kafka.client] pass-through table
    ]


@pytest.mark.parametrize(("section", "key"), _config_keys())
def test_every_config_key_is_in_the_readme(section: str, key: str) -> None:
    body = README.split(f"### `[{section}]`", 1)
    assert len(body) == 2, f"README has no [{section}] section"
    section_text = re.split(r"\n### ", body[1], maxsplit=1)[0]
    assert f"| `{key}` |" in section_text


def test_every_command_is_in_the_readme() -> None:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"`tilewatch {name}" in README, name


def test_readme_has_no_unfilled_placeholders() -> None:
    assert "@@" not in README


def test_readme_is_generated_from_the_current_sources() -> None:
    """README.md is written by scripts/gen_readme.py; run it after changing docs or metrics."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_readme", ROOT / "scripts" / "gen_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == README, "README.md is stale: run scripts/gen_readme.py"
