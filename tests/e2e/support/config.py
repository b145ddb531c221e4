"""A ``tilewatch run`` config for the e2e tests: written for a topic, then edited in place.

:func:`write_config` writes ``[kafka]``, ``[kafka.client]``, ``[cells]``, ``[state]`` and
``[exporter]``; the other functions add keys or tables to such a file.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.support.layout import GRACE_SECONDS, ROLLING_EVENTS, WINDOW_SECONDS
from tests.helpers import fast_client_settings, free_port


def write_config(
    path: Path,
    bootstrap: str,
    topic: str,
    *,
    kafka: dict[str, Any] | None = None,
    cells: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a tilewatch TOML config for ``topic`` with a unique group and dead-letter topic.

    Checkpoints are on (the default) with a short interval unless ``state`` says otherwise.
    """
    tag = uuid.uuid4().hex[:12]
    kafka_table: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topics": [topic],
        "group_id": f"e2e-{tag}",
        "dead_letter_topic": f"e2e-dlq-{tag}",
        "commit_interval": "200ms",
        "poll_timeout": "100ms",
        **(kafka or {}),
    }
    cells_table: dict[str, Any] = {
        "window": f"{WINDOW_SECONDS:g}s",
        "grace": f"{GRACE_SECONDS:g}s",
        "rolling_events": ROLLING_EVENTS,
        **(cells or {}),
    }
    lines = ["[kafka]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in kafka_table.items()]
    lines += ["", "[kafka.client]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in fast_client_settings().items()]
    lines += ["", "[cells]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in cells_table.items()]
    state_table: dict[str, Any] = {"checkpoint_interval": "300ms", **(state or {})}
    lines += ["", "[state]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in state_table.items()]
    lines += ["", "[exporter]", f'listen = "127.0.0.1:{free_port()}"', ""]
    path.write_text("\n".join(lines))
    return path


def toml_value(value: Any) -> str:
    """A TOML value for the few types a config uses (JSON spelling is valid TOML for them)."""
    if not isinstance(value, str | int | float | list):
        raise TypeError(f"no TOML spelling for {value!r}")
    return json.dumps(value)


def read_config(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def extend_config(
    path: Path,
    *,
    client: dict[str, Any] | None = None,
    events: dict[str, Any] | None = None,
) -> Path:
    """Add keys to the ``[kafka.client]`` table of a :func:`write_config` file, and an
    ``[events]`` table, in place; returns ``path``."""
    text = path.read_text()
    if client:
        extra = "".join(f"{k} = {toml_value(v)}\n" for k, v in client.items())
        assert text.count("[kafka.client]\n") == 1, f"no [kafka.client] table in {path}"
        text = text.replace("[kafka.client]\n", "[kafka.client]\n" + extra)
    if events:
        text += "\n[events]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in events.items())
    path.write_text(text)
    return path


def override_client_settings(path: Path, **settings: int) -> Path:
    """Replace values in the ``[kafka.client]`` table of a :func:`write_config` file (keys
    already there, e.g. ``session_timeout_ms``, are rewritten, others added); returns ``path``."""
    lines = path.read_text().split("\n")
    start = lines.index("[kafka.client]") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    table = {line.split(" = ", 1)[0]: line for line in lines[start:end]}
    table.update({k: f"{k} = {toml_value(v)}" for k, v in settings.items()})
    lines[start:end] = list(table.values())
    path.write_text("\n".join(lines))
    return path


def add_tables(path: Path, **tables: dict[str, Any] | None) -> Path:
    """Append tables (``labels={...}``, ``drift={...}``; None or empty: skipped) to a
    :func:`write_config` file, which must not hold them yet; returns ``path``."""
    text = path.read_text()
    for name, table in tables.items():
        if table:
            assert f"[{name}]" not in text, f"{path} already has a [{name}] table"
            text += f"\n[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
    path.write_text(text)
    return path


def add_drift_config(
    path: Path,
    *,
    baseline: dict[str, Any] | None = None,
    drift: dict[str, Any] | None = None,
) -> Path:
    """Append a ``[baseline]`` and a ``[drift]`` table to a :func:`write_config` file (neither
    is written by it); returns ``path``."""
    return add_tables(path, baseline=baseline, drift=drift)
