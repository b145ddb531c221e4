"""The docs document every metric, rejection reason, config key and command; the generated pages
are current; README.md is a short front page; every link between the pages resolves."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from tilewatch.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _gen_docs() -> ModuleType:
    """scripts/gen_docs.py, which writes the generated pages and knows the metric catalog."""
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN_DOCS = _gen_docs()


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name", [m.name for docs in GEN_DOCS.metric_tables().values() for m in docs]
)
def test_every_metric_is_in_the_metrics_page(name: str) -> None:
    assert f"| `{name}` |" in _page("metrics.md")


@pytest.mark.parametrize("reason", sorted(GEN_DOCS.rejection_reasons()))
def test_every_rejection_reason_is_documented(reason: str) -> None:
    assert f"| `{reason}` |" in _page("events.md")


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
    from tilewatch.config import forecasting as config_forecasting
    from tilewatch.config import hierarchy as config_hierarchy
    from tilewatch.config import labeling as config_labeling
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
        "labeling": config_labeling.KEYS,
        "forecast": config_forecasting.KEYS,
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
def test_every_config_key_is_in_the_configuration_page(section: str, key: str) -> None:
    body = _page("configuration.md").split(f"\n## `[{section}]`", 1)
    assert len(body) == 2, f"docs/configuration.md has no [{section}] section"
    section_text = re.split(r"\n## ", body[1], maxsplit=1)[0]
    assert f"| `{key}` |" in section_text


def test_every_command_is_documented() -> None:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"`tilewatch {name}" in _page("commands.md"), name


def test_generated_pages_have_no_unfilled_placeholders() -> None:
    for page in GEN_DOCS.PAGES:
        assert "@@" not in (ROOT / page).read_text(encoding="utf-8"), page


def test_generated_pages_are_current() -> None:
    """docs/events.md and docs/metrics.md are written by scripts/gen_docs.py; run it after
    changing a template, a metric or a rejection reason."""
    for page, text in GEN_DOCS.render().items():
        on_disk = (ROOT / page).read_text(encoding="utf-8")
        assert text == on_disk, f"{page} is stale: run scripts/gen_docs.py"


def test_readme_is_a_short_front_page() -> None:
    """What it is, the two commands, what you will see, your own Kafka, links: no reference."""
    assert len(README.splitlines()) <= 250
    assert "bash scripts/demo.sh" in README and "bash scripts/test.sh" in README
    assert "tilewatch run --config" in README
    assert "| `tilewatch_" not in README, "metric tables belong in docs/metrics.md"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", path.read_text(encoding="utf-8"))
    return {_anchor(m[1]) for m in re.finditer(r"(?m)^#+ (.*)$", text)}


PAGES = [ROOT / "README.md", *sorted(p for p in DOCS.glob("*.md") if ".template." not in p.name)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_pages_resolve(page: Path) -> None:
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text(encoding="utf-8"))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        missing_anchor = bool(anchor) and path.suffix == ".md" and path.exists()
        if not path.exists() or (missing_anchor and anchor not in _anchors(path)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"
