"""The import rules that the docstrings of ``streams/`` and its subpackages state.

``tilewatch.streams`` may import ``tilewatch.aggregators``, never ``tilewatch.exporters`` nor
the ``tilewatch`` CLI and config modules; ``decoding/`` and ``changelog/`` import only a few
``streams`` modules, and only ``dev/`` (not used by ``tilewatch run``) imports ``dev/``.
Checked on the source (every ``import`` statement, also those inside functions).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STREAMS = Path(__file__).resolve().parents[2] / "streams"

#: Subpackage -> the tilewatch.streams modules (prefixes) it may import besides itself.
ALLOWED_IN_STREAMS: dict[str, tuple[str, ...]] = {
    "decoding": ("tilewatch.streams.errors", "tilewatch.streams.settings"),
    "changelog": ("tilewatch.streams.errors",),
}


def _modules() -> list[Path]:
    return sorted(p for p in STREAMS.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [n for n in names if n == "tilewatch" or n.startswith("tilewatch.")]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(STREAMS)))
def test_streams_imports_follow_the_rules(path: Path) -> None:
    rel = path.relative_to(STREAMS)
    sub = rel.parts[0] if len(rel.parts) > 1 else None
    for name in _imports(path):
        assert _within(name, "tilewatch.aggregators") or _within(name, "tilewatch.streams"), (
            f"{rel} imports {name}: streams may import only tilewatch.aggregators"
        )
        if sub != "dev":
            assert not _within(name, "tilewatch.streams.dev"), f"{rel} imports dev-only {name}"
        if sub in ALLOWED_IN_STREAMS and _within(name, "tilewatch.streams"):
            allowed = (f"tilewatch.streams.{sub}", *ALLOWED_IN_STREAMS[sub])
            assert any(_within(name, a) for a in allowed), f"{rel} may not import {name}"
