"""The README documents every metric, rejection reason, config key and command."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from exporters.collector import METRICS
from streams.decode import REASONS
from tilewatch.cli import _parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [m.name for m in METRICS])
def test_every_metric_is_in_the_readme_table(name: str) -> None:
    assert f"| `{name}` |" in README


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_rejection_reason_is_documented(reason: str) -> None:
    assert f"| `{reason}` |" in README


def _config_keys() -> list[tuple[str, str]]:
    from aggregators.settings import CellSettings
    from streams.settings import EventFields, KafkaSettings

    keys = [
        ("kafka", k)
        for k in (
            "bootstrap_servers",
            "topics",
            "group_id",
            "dead_letter_topic",
            "auto_offset_reset",
            "max_poll_records",
            "poll_timeout",
            "commit_interval",
        )
    ]
    keys += [("events", f.name) for f in dataclasses.fields(EventFields) if f.name != "dimensions"]
    keys += [
        ("cells", k)
        for k in (
            "dimensions",
            "window",
            "grace",
            "rolling_events",
            "max_cells",
            "label_max_length",
        )
    ]
    keys += [
        ("state", k)
        for k in ("checkpoints", "changelog_topic", "checkpoint_interval", "restore_timeout")
    ]
    keys += [
        ("exporter", k)
        for k in (
            "listen",
            "tls_cert",
            "tls_key",
            "tls_client_ca",
            "basic_auth_user",
            "basic_auth_password",
        )
    ]
    # Every settings field is reachable from some documented key.
    assert {f.name for f in dataclasses.fields(CellSettings)} <= {
        "dimensions",
        "window_seconds",
        "grace_seconds",
        "rolling_events",
        "max_cells",
        "label_max_length",
    }
    assert len(dataclasses.fields(KafkaSettings)) == 9
    return keys


@pytest.mark.parametrize(("section", "key"), _config_keys())
def test_every_config_key_is_in_the_readme(section: str, key: str) -> None:
    body = README.split(f"### `[{section}]`", 1)
    assert len(body) == 2, f"README has no [{section}] section"
    section_text = re.split(r"\n### ", body[1], maxsplit=1)[0]
    assert f"| `{key}` |" in section_text


def test_every_command_is_in_the_readme() -> None:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"`tilewatch {name}" in README, name


def test_readme_has_no_unfilled_placeholders() -> None:
    assert "@@" not in README
