"""``tilewatch generate``: the files derived from the config, written into the repository.

:func:`generator_inputs` reads, once, what the generators need from a
:class:`~tilewatch.config.loader.Config` into a typed
:class:`~tilewatch.exporters.generator_inputs.GeneratorInputs`; each generator maps it to
``{path relative to the repository root: file text}``, and :data:`GENERATORS` lists them by
name. The checked-in files under ``deploy/`` and ``docs/runbooks/`` come from
``deploy/tilewatch.toml``; a test regenerates them and fails when they are stale, so a metric
cannot be renamed without its rules, alerts and dashboards following.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tilewatch.config import Config
from tilewatch.deploy import render_k8s_config
from tilewatch.exporters.alerting.alertmanager import render_alertmanager
from tilewatch.exporters.alerting.rule_file import render_rules
from tilewatch.exporters.alerting.rule_tests import render_rule_tests
from tilewatch.exporters.alerting.runbooks import render_runbooks
from tilewatch.exporters.generator_inputs import DriftInputs, GeneratorInputs, LabelInputs, Task
from tilewatch.exporters.grafana.render import render_dashboards

__all__ = [
    "ALERTMANAGER_PATH",
    "GENERATORS",
    "RULES_PATH",
    "RULE_TESTS_PATH",
    "Generator",
    "generator_inputs",
    "render",
    "stale",
    "write",
]

#: path relative to the repository root -> file text
Generator = Callable[[GeneratorInputs], dict[str, str]]

RULES_PATH = "deploy/prometheus/rules/tilewatch.rules.yml"
RULE_TESTS_PATH = "deploy/prometheus/tests/tilewatch.rules.test.yml"
ALERTMANAGER_PATH = "deploy/alertmanager/alertmanager.yml"


def generator_inputs(config: Config) -> GeneratorInputs:
    """What the generators read from ``config``: the one place they see the config."""
    drift = None
    if config.drift_enabled:
        drift = DriftInputs(
            psi_alert=config.drift.psi_alert,
            missing_alert=config.drift.missing_alert,
            has_features=bool(config.drift.features),
            has_baseline=config.baseline.path is not None,
            has_detectors=bool(config.drift.detectors),
        )
    labels = None
    if config.labels is not None:
        labels = LabelInputs(
            task=Task(config.labels.performance.task),
            min_samples=config.labels.performance.min_samples,
            has_error_detector=config.labels.error_detector is not None,
        )
    return GeneratorInputs(
        dimensions=tuple(config.cells.dimensions),
        score_range=(float(config.events.score_min), float(config.events.score_max)),
        min_samples=config.drift.min_samples,
        hierarchy=config.hierarchy,
        alerts=config.alerts,
        drift=drift,
        labels=labels,
        multiclass=config.events.scores is not None,
        labeling=config.labeling is not None,
        embeddings=config.events.embedding is not None,
        attributions=config.events.attributions is not None,
        source=config.source,
        forecasts=config.forecast.statistics,
        forecast_horizon=config.forecast.horizon,
    )


def _rules(inputs: GeneratorInputs) -> dict[str, str]:
    return {
        RULES_PATH: render_rules(inputs),
        RULE_TESTS_PATH: render_rule_tests(inputs, rule_file="../rules/tilewatch.rules.yml"),
    }


def _alertmanager(inputs: GeneratorInputs) -> dict[str, str]:
    return {ALERTMANAGER_PATH: render_alertmanager(inputs)}


GENERATORS: dict[str, Generator] = {
    "rules": _rules,
    "alertmanager": _alertmanager,
    "runbooks": render_runbooks,
    "dashboards": render_dashboards,
    "kubernetes": render_k8s_config,
}


def render(config: Config) -> dict[str, str]:
    """Every generated file of ``config``, by path relative to the repository root.

    Raises
    ------
    ValueError
        If two generators claim the same path.
    """
    inputs = generator_inputs(config)
    out: dict[str, str] = {}
    for name, generator in GENERATORS.items():
        for path, text in generator(inputs).items():
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
