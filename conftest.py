"""Doctests of the source folders, imported under their installed names.

The folders ``aggregators/``, ``streams/`` and ``exporters/`` are installed as
``tilewatch.aggregators`` and so on (``[tool.setuptools.package-dir]`` in pyproject.toml).
pytest's own ``--doctest-modules`` would import ``streams/decode.py`` as ``streams.decode``, a
second copy of the module under a name that is never installed; this hook collects the same
doctests from the module that ``import tilewatch.streams...`` returns.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest
from _pytest.doctest import DoctestModule

ROOT = Path(__file__).resolve().parent
SOURCE_FOLDERS = {
    "aggregators": "tilewatch.aggregators",
    "exporters": "tilewatch.exporters",
    "streams": "tilewatch.streams",
    "tilewatch": "tilewatch",
}


def installed_name(path: Path) -> str | None:
    """``tilewatch.streams.loop`` for ``streams/loop.py``; None outside the source folders."""
    try:
        parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    except ValueError:
        return None
    if len(parts) < 2 or parts[0] not in SOURCE_FOLDERS:
        return None
    tail = [p for p in parts[1:] if p != "__init__"]
    return ".".join([SOURCE_FOLDERS[parts[0]], *tail])


class InstalledDoctestModule(DoctestModule):
    """A doctest module imported by its installed name, not by its path."""

    def _getobj(self) -> ModuleType:
        name = installed_name(self.path)
        assert name is not None
        return importlib.import_module(name)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".py" and installed_name(file_path) is not None:
        return InstalledDoctestModule.from_parent(parent, path=file_path)
    return None
