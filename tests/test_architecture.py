"""The rooms of docs/architecture.md, enforced: what each package may import, module sizes, names.

The table "Rooms and what they may import" in ``docs/architecture.md`` is the single statement
of the import rules; this test parses it and checks every ``import`` statement of every
production module against it (also those inside functions, which run later but are
dependencies all the same). ``tests/aggregators/test_purity.py`` checks the same boundary at
run time for ``tilewatch.aggregators``.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
FOLDERS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "setuptools"
]["package-dir"]
#: Production modules stay below about this many lines (CONVENTIONS: "past ~400 lines, split").
MAX_LINES = 450
#: File names that may repeat because they do the same job in each package.
SHARED_NAMES = {"__init__.py", "settings.py", "errors.py"}


@dataclass(frozen=True)
class Room:
    package: str
    may: tuple[str, ...]
    never: tuple[str, ...]


def _names(cell: str) -> tuple[str, ...]:
    return tuple(re.findall(r"`([A-Za-z_][\w.]*)`", cell))


def rooms() -> dict[str, Room]:
    """The rows of the rooms table, by package."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index("| package | holds | may import | never imports |")
    out: dict[str, Room] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a row of the rooms table has {len(cells)} columns: {line}"
        (package,) = _names(cells[0])
        out[package] = Room(package, _names(cells[2]), _names(cells[3]))
    return out


def modules() -> dict[str, Path]:
    """Every production module by installed name (``tilewatch.streams.loop``)."""
    out = {}
    for package, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            out[".".join([package, *(p for p in rel if p != "__init__")])] = path
    return out


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def room_of(module: str, table: dict[str, Room]) -> Room:
    holders = [p for p in table if _within(module, p)]
    assert holders, f"{module}: no row of the rooms table holds it"
    return table[max(holders, key=len)]


def imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


MODULES = modules()
TABLE = rooms()


def test_the_table_has_a_row_for_every_package_and_names_real_packages() -> None:
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert packages - set(TABLE) == set(), "package folders without a row"
    for room in TABLE.values():
        assert room.package in MODULES, f"the table names {room.package}, which does not exist"
        for name in room.may:
            assert name in MODULES, f"{room.package} may import {name}, which does not exist"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_what_its_room_may(module: str) -> None:
    room = room_of(module, TABLE)
    for name in imports(MODULES[module]):
        banned = [n for n in room.never if _within(name, n)]
        assert not banned, f"{module} imports {name}: {room.package} never imports {banned[0]}"
        if not _within(name, "tilewatch"):
            continue
        allowed = (room.package, *room.may)
        assert any(_within(name, p) for p in allowed), (
            f"{module} imports {name}; {room.package} may import only "
            f"{', '.join(room.may) or 'nothing else of tilewatch'} (docs/architecture.md)"
        )


def test_the_rules_catch_a_wrong_import() -> None:
    """The checker itself: a pure module importing the exporters is refused."""
    room = room_of("tilewatch.aggregators.stats.moments", TABLE)
    assert not any(_within("tilewatch.exporters", p) for p in (room.package, *room.may))
    assert any(_within("kafka.consumer", n) for n in room.never)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by concept"


def test_no_two_modules_share_a_file_name_for_different_jobs() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for module, path in MODULES.items():
        by_name[path.name].append(module)
    repeated = {n: ms for n, ms in by_name.items() if len(ms) > 1 and n not in SHARED_NAMES}
    assert not repeated, repeated


def test_tests_and_scripts_import_the_installed_names_only() -> None:
    """``import streams`` would load a second, never-installed copy of ``tilewatch.streams``."""
    bare = tuple(folder for package, folder in FOLDERS.items() if package != "tilewatch")
    offenders = []
    for path in [*(ROOT / "tests").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]:
        for name in imports(path):
            if any(_within(name, b) for b in bare):
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, offenders
