"""The checked-in generated files (rules, Alertmanager config, runbooks, ...) are up to date
with deploy/tilewatch.toml, and ``tilewatch generate --check`` notices stale ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tilewatch import generate
from tilewatch.cli import main
from tilewatch.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "tilewatch.toml"


def test_checked_in_files_are_up_to_date() -> None:
    old = generate.stale(load_config(CONFIG), ROOT)
    assert not old, (
        f"stale generated files {old}: run "
        ".venv/bin/tilewatch generate --config deploy/tilewatch.toml"
    )


def test_no_orphan_runbooks() -> None:
    files = generate.render(load_config(CONFIG))
    on_disk = {f"docs/runbooks/{p.name}" for p in (ROOT / "docs" / "runbooks").glob("*.md")}
    assert on_disk == {p for p in files if p.startswith("docs/runbooks/")}


def test_generate_check_exits_1_on_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["generate", "--config", str(CONFIG), "--root", str(tmp_path)]
    assert main([*args, "--check"]) == 1  # nothing written yet: everything is missing
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--check"]) == 0
    rules = tmp_path / generate.RULES_PATH
    rules.write_text(rules.read_text().replace("for: 5m", "for: 1m", 1))
    (tmp_path / generate.ALERTMANAGER_PATH).unlink()
    assert main([*args, "--check"]) == 1
    out = capsys.readouterr().out
    assert f"stale: {generate.RULES_PATH}" in out
    assert f"stale: {generate.ALERTMANAGER_PATH}" in out
    assert main(args) == 0
    assert f"wrote {rules}" in capsys.readouterr().out
    assert main([*args, "--check"]) == 0


def test_two_generators_may_not_write_the_same_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        generate.GENERATORS, "copy", lambda inputs: {generate.RULES_PATH: "another text"}
    )
    with pytest.raises(ValueError, match="another one wrote"):
        generate.render(load_config(CONFIG))
