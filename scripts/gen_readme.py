"""Write README.md from docs/readme.template.md, docs/configuration.md and the metric tables.

The config tables come from docs/configuration.md, the metric tables from
tilewatch.exporters.prometheus.catalog (METRICS, DRIFT_METRICS, ...) and the rejection reasons from
tilewatch.streams.decoding.events.REASONS, so the README cannot drift from the code.
tests/test_docs.py fails when README.md is stale. Run: .venv/bin/python scripts/gen_readme.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def render() -> str:
    """The README text."""
    sys.path.insert(0, str(ROOT))
    from tilewatch.exporters.prometheus.catalog import (
        DRIFT_METRICS,
        HEALTH_METRICS,
        METRICS,
        PERFORMANCE_METRICS,
    )
    from tilewatch.streams.decoding.events import REASONS

    conf = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    tables = conf[conf.index("## `[kafka]`") : conf.index("## Minimal example")]
    tables = tables.replace("## `[", "### `[").replace(
        "### `[kafka.client]`", "#### `[kafka.client]`"
    )

    def rows(docs: tuple) -> str:  # type: ignore[type-arg]
        return "".join(f"| `{m.name}` | {m.kind} | {m.labels or '—'} | {m.help} |\n" for m in docs)

    template = (ROOT / "docs" / "readme.template.md").read_text(encoding="utf-8")
    return (
        template.replace("@@TABLES@@", tables)
        .replace("@@REASONS@@", "".join(f"| `{k}` | {v} |\n" for k, v in REASONS.items()))
        .replace("@@METRICS@@", rows(METRICS))
        .replace("@@DRIFT_METRICS@@", rows(DRIFT_METRICS))
        .replace("@@HEALTH_METRICS@@", rows(HEALTH_METRICS))
        .replace("@@PERFORMANCE_METRICS@@", rows(PERFORMANCE_METRICS))
    )


if __name__ == "__main__":
    (ROOT / "README.md").write_text(render(), encoding="utf-8")
