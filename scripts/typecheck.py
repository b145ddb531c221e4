"""Run mypy on the installed layout: ``tilewatch.*`` built from the repository's folders.

mypy names a module after its path (``streams/loop.py`` -> ``streams.loop``) and cannot see
setuptools' package-dir mapping or the editable install's import hook. So this script builds
the installed layout out of symbolic links in a temporary folder (``tilewatch/`` holding the
files of ``tilewatch/`` plus ``aggregators``, ``exporters`` and ``streams``), runs mypy on it with
the repository's ``[tool.mypy]`` settings, and prints the findings with repository paths.

Usage: ``.venv/bin/python scripts/typecheck.py [mypy options]``; exits with mypy's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_tree(into: Path) -> Path:
    """The installed layout of ``tilewatch`` under ``into``, made of links to ``ROOT``."""
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    top = into / "tilewatch"
    top.mkdir()
    for entry in (ROOT / folders["tilewatch"]).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in folders.items():
        if package != "tilewatch":
            (into / package.replace(".", "/")).symlink_to(ROOT / folder)
    return top


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="tilewatch-mypy-") as tmp:
        tree = build_tree(Path(tmp))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--config-file",
                str(ROOT / "pyproject.toml"),
                "--cache-dir",
                str(ROOT / ".mypy_cache"),
                *argv,
                str(tree),
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        prefix = str(Path(tmp) / "tilewatch") + os.sep
        out = proc.stdout + proc.stderr
        for package in ("aggregators", "exporters", "streams"):
            out = out.replace(f"{prefix}{package}{os.sep}", f"{package}{os.sep}")
            out = out.replace(f"tilewatch{os.sep}{package}{os.sep}", f"{package}{os.sep}")
        out = out.replace(prefix, f"tilewatch{os.sep}")
        sys.stdout.write(out)
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
