"""The exporters package keeps its rooms: what each part may import, small modules, and a
sorted, complete ``__all__`` in every package."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPORTERS = ROOT / "exporters"
#: The ``tilewatch`` modules each part of ``exporters/`` may import (prefixes), by the part's
#: path. Everything else of ``tilewatch`` (streams, the CLI, the config) is out of bounds.
ALLOWED = {
    "prometheus": ("tilewatch.aggregators", "tilewatch.exporters.prometheus"),
    "grafana": (
        "tilewatch.aggregators",
        "tilewatch.exporters.generator_inputs",
        "tilewatch.exporters.yaml_output",
        "tilewatch.exporters.grafana",
    ),
    "alerting": (
        "tilewatch.aggregators",
        "tilewatch.exporters.generator_inputs",
        "tilewatch.exporters.yaml_output",
        "tilewatch.exporters.alerting",
    ),
    "generator_inputs.py": ("tilewatch.aggregators",),
    "yaml_output.py": (),
    "terminal.py": ("tilewatch.aggregators",),
    "__init__.py": ("tilewatch.exporters",),
}
PACKAGES = ["exporters", "exporters.prometheus", "exporters.grafana", "exporters.alerting"]
MAX_LINES = 450


def _modules() -> list[Path]:
    return sorted(p for p in EXPORTERS.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_part_imports_only_what_it_may(path: Path) -> None:
    part = path.relative_to(EXPORTERS).parts[0]
    allowed = ALLOWED[part]
    bad = [
        name
        for name in _imports(path)
        if name.split(".")[0] in ("tilewatch", "streams", "aggregators", "exporters")
        and not name.startswith(allowed)
    ]
    assert not bad, f"{path.relative_to(ROOT)} may import only {allowed}, imports {bad}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines, split it by concept"


@pytest.mark.parametrize("name", PACKAGES)
def test_package_all_resolves_and_is_complete(name: str) -> None:
    module = importlib.import_module(f"tilewatch.{name}")
    declared = list(module.__all__)
    assert len(set(declared)) == len(declared)
    assert [n for n in declared if not hasattr(module, n)] == []
    public = {
        attr
        for attr, obj in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith("tilewatch.")
    }
    assert sorted(public - set(declared)) == []
    assert module.__doc__ is not None and "May import" in module.__doc__
