"""``tilewatch generate``: the files derived from the config, written into the repository.

Each generator maps a :class:`~tilewatch.config.loader.Config` to ``{path relative to the repository
root: file text}``; :data:`GENERATORS` lists them by name. The checked-in files under
``deploy/`` and ``docs/runbooks/`` come from ``deploy/tilewatch.toml``; a test regenerates them
and fails when they are stale, so a metric cannot be renamed without its rules, alerts and
dashboards following.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tilewatch.config.loader import Config

__all__ = [
    "ALERTMANAGER_PATH",
    "GENERATORS",
    "RULES_PATH",
    "RULE_TESTS_PATH",
    "Generator",
    "render",
    "stale",
    "write",
]

#: path relative to the repository root -> file text
Generator = Callable[[Config], dict[str, str]]

RULES_PATH = "deploy/prometheus/rules/tilewatch.rules.yml"
RULE_TESTS_PATH = "deploy/prometheus/tests/tilewatch.rules.test.yml"
ALERTMANAGER_PATH = "deploy/alertmanager/alertmanager.yml"


def _rules(config: Config) -> dict[str, str]:
    from tilewatch.exporters.alerting.rule_files import render_rule_tests, render_rules

    dims = config.cells.dimensions
    return {
        RULES_PATH: render_rules(dims, config.hierarchy, config.alerts),
        RULE_TESTS_PATH: render_rule_tests(
            dims, config.hierarchy, config.alerts, rule_file="../rules/tilewatch.rules.yml"
        ),
    }


def _alertmanager(config: Config) -> dict[str, str]:
    from tilewatch.exporters.alerting.alertmanager import render_alertmanager

    return {ALERTMANAGER_PATH: render_alertmanager(config.cells.dimensions, config.alerts)}


def _runbooks(config: Config) -> dict[str, str]:
    from tilewatch.exporters.alerting.runbooks import render_runbooks

    return render_runbooks(config.cells.dimensions, config.hierarchy, config.alerts)


def _dashboards(config: Config) -> dict[str, str]:
    from tilewatch.exporters.grafana.render import render_dashboards

    return render_dashboards(config)


def _kubernetes(config: Config) -> dict[str, str]:
    from tilewatch.deploy import render_k8s_config

    return render_k8s_config(config)


GENERATORS: dict[str, Generator] = {
    "rules": _rules,
    "alertmanager": _alertmanager,
    "runbooks": _runbooks,
    "dashboards": _dashboards,
    "kubernetes": _kubernetes,
}


def render(config: Config) -> dict[str, str]:
    """Every generated file of ``config``, by path relative to the repository root.

    Raises
    ------
    ValueError
        If two generators claim the same path.
    """
    out: dict[str, str] = {}
    for name, generator in GENERATORS.items():
        for path, text in generator(config).items():
            if path in out:
                raise ValueError(f"generator {name!r} writes {path}, which another one wrote")
            out[path] = text
    return dict(sorted(out.items()))


def write(config: Config, root: Path) -> list[Path]:
    """Write every generated file under ``root``; returns the files that changed."""
    changed: list[Path] = []
    for rel, text in render(config).items():
        path = root / rel
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed


def stale(config: Config, root: Path) -> list[str]:
    """Paths (relative to ``root``) of generated files that are missing or differ."""
    out = []
    for rel, text in render(config).items():
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(rel)
    return out
