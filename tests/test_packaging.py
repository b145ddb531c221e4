"""The installed layout: one top-level package, ``tilewatch``, built from the design card's folders.

pyproject.toml maps ``aggregators/``, ``streams/`` and ``exporters/`` to ``tilewatch.aggregators``
and so on (``[tool.setuptools.package-dir]``) and lists every package. These tests build a real
wheel from a copy of the sources and check what it holds, and that the list of packages names
every package folder, so a new subpackage cannot be left out of the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_folders() -> dict[str, Path]:
    """Every package (a folder with ``__init__.py``) under the mapped folders, by installed name."""
    found: dict[str, Path] = {}
    for package, folder in SETUPTOOLS["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found[".".join([package, *rel.parts])] = init.parent
    return found


def test_every_package_folder_is_listed_and_every_listed_package_exists() -> None:
    folders = _package_folders()
    assert sorted(SETUPTOOLS["packages"]) == sorted(folders)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built by pip from a clean copy of the sources (no build isolation: offline)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in set(SETUPTOOLS["package-dir"].values()):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("tilewatch-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == {"tilewatch"}
    top_level = wheel.read(f"{dist_info.pop()}/top_level.txt").decode().split()
    assert top_level == ["tilewatch"]


def test_the_wheel_holds_every_source_module_at_its_installed_path(
    wheel: zipfile.ZipFile,
) -> None:
    names = set(wheel.namelist())
    expected = set()
    for package, folder in _package_folders().items():
        for module in folder.glob("*.py"):
            expected.add("/".join([*package.split("."), module.name]))
    assert expected, "no source modules found"
    assert expected <= names, sorted(expected - names)
    assert not any(
        n.startswith(("tests/", "streams/", "aggregators/", "exporters/")) for n in names
    )


def test_the_wheel_holds_the_tile_page_assets(wheel: zipfile.ZipFile) -> None:
    from tilewatch.exporters.web.server import ASSETS

    static = ROOT / "exporters" / "web" / "static"
    assert sorted(p.name for p in static.iterdir()) == sorted(ASSETS)
    for name in ASSETS:
        inside = f"tilewatch/exporters/web/static/{name}"
        assert wheel.read(inside) == (static / name).read_bytes(), inside
