"""Each package lists its public names in a sorted, complete ``__all__`` (as httpx does).

"Sorted" is ruff's RUF022 isort-style order: SCREAMING_SNAKE_CASE first, then CamelCase, then
everything else, each group in natural order.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.test_architecture import MODULES

#: Every package and module by installed name (``tilewatch.streams.decoding``), from the source
#: folders: each is imported under that name only, never as a bare ``streams...`` copy.
PACKAGES = sorted(m for m, path in MODULES.items() if path.name == "__init__.py")
MODULES_WITH_FILES = sorted(m for m, path in MODULES.items() if path.name != "__init__.py")


def _sort_key(name: str) -> tuple[int, list[tuple[int, int | str]]]:
    if len(name) > 1 and name.isupper():
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    natural = [
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    ]
    return group, natural


def test_sort_key_matches_ruf022_examples() -> None:
    names = ["variance", "Snapshot", "ALL", "UNKNOWN", "ApplyResult", "x10", "x2", "__version__"]
    assert sorted(names, key=_sort_key) == [
        "ALL",
        "UNKNOWN",
        "ApplyResult",
        "Snapshot",
        "__version__",
        "variance",
        "x2",
        "x10",
    ]


def _literal_all(path: Path) -> list[str] | None:
    """The ``__all__`` assigned at module level in ``path`` (None if there is none)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = None
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = ast.literal_eval(node.value)  # type: ignore[arg-type]
            found = list(value)
    return found


def _package(name: str) -> tuple[ModuleType, list[str]]:
    declared = _literal_all(MODULES[name])
    if declared is None:
        pytest.fail(f"{name} (its __init__.py) does not define __all__")
    return importlib.import_module(name), declared


@pytest.mark.parametrize("name", PACKAGES)
def test_package_all_is_sorted(name: str) -> None:
    module, declared = _package(name)
    assert list(module.__all__) == declared
    assert declared == sorted(declared, key=_sort_key)
    assert len(set(declared)) == len(declared), "duplicates in __all__"


@pytest.mark.parametrize("name", PACKAGES)
def test_package_all_names_resolve(name: str) -> None:
    module, declared = _package(name)
    missing = [n for n in declared if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names that do not exist: {missing}"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # the star import must work
    assert set(declared) <= set(namespace)


@pytest.mark.parametrize("name", PACKAGES)
def test_package_all_is_complete(name: str) -> None:
    module, declared = _package(name)
    public = {
        attr
        for attr, obj in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and (getattr(obj, "__module__", "") or "").startswith(name + ".")
    }
    absent = sorted(public - set(declared))
    assert not absent, f"public names of {name} missing from __all__: {absent}"


@pytest.mark.parametrize("name", PACKAGES)
def test_package_docstring_says_what_may_be_imported(name: str) -> None:
    doc = importlib.import_module(name).__doc__ or ""
    assert doc.strip(), f"{name} has no docstring"
    if name != "tilewatch":
        assert "may import" in doc.lower(), f"{name}: the docstring does not say what it may import"


@pytest.mark.parametrize("modname", MODULES_WITH_FILES)
def test_module_all_sorted_and_resolves(modname: str) -> None:
    declared = _literal_all(MODULES[modname])
    if declared is None:
        pytest.skip(f"{modname} does not define __all__")
    assert declared == sorted(declared, key=_sort_key), f"{modname}.__all__ is not sorted"
    assert len(set(declared)) == len(declared), f"duplicates in {modname}.__all__"
    module = importlib.import_module(modname)
    missing = [n for n in declared if not hasattr(module, n)]
    assert not missing, f"{modname}.__all__ names that do not exist: {missing}"
