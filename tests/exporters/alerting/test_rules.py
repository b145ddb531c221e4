"""Generated rules and Alertmanager config: promtool and amtool accept them, every alert has
a unit test per case (fires, ignores a blip shorter than ``for:``, resolves) that passes and
that fails when the rule loses its hysteresis, its threshold or its labels."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import get_args

import pytest
import yaml

from tilewatch.aggregators.health.settings import LOWER_IS_WORSE, BaseMetric, HierarchySettings
from tilewatch.config import load_config
from tilewatch.exporters.alerting.alertmanager import RECEIVERS, render_alertmanager
from tilewatch.exporters.alerting.definitions import alert_rules
from tilewatch.exporters.alerting.model import Alert
from tilewatch.exporters.alerting.recording_rules import recording_rules
from tilewatch.exporters.alerting.rule_file import render_rules
from tilewatch.exporters.alerting.rule_tests import render_rule_tests
from tilewatch.exporters.alerting.runbooks import render_runbooks
from tilewatch.exporters.generator_inputs import (
    RUNBOOK_BASE_URL,
    AlertSettings,
    GeneratorInputs,
    Severity,
)
from tilewatch.generate import generator_inputs

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = generator_inputs(load_config(ROOT / "deploy" / "tilewatch.toml"))
AMTOOL = "/usr/bin/amtool"
SEVERITIES = get_args(Severity)
#: A config like the end-to-end test's: seconds instead of minutes.
FAST = AlertSettings(for_critical=2, for_warning=4, for_info=8, rate_window=3, silent_lookback=60)
#: Base metrics on forecast statistics (none in the production config): the forecast alert.
FORECASTABLE = (
    BaseMetric("psi", "tilewatch_window_score_psi", amber=0.1, red=0.25),
    BaseMetric("acc", "tilewatch_window_accuracy_ratio", 0.9, 0.8, direction=LOWER_IS_WORSE),
)
CASES = {
    "production": DEPLOY,
    "fast, one dimension": dataclasses.replace(DEPLOY, dimensions=("segment",), alerts=FAST),
    "forecast thresholds": dataclasses.replace(
        DEPLOY,
        hierarchy=dataclasses.replace(
            DEPLOY.hierarchy, metrics=(*DEPLOY.hierarchy.metrics, *FORECASTABLE)
        ),
    ),
}


def _write(tmp_path: Path, case: str) -> Path:
    (tmp_path / "tilewatch.rules.yml").write_text(render_rules(CASES[case]))
    tests = tmp_path / "tilewatch.test.yml"
    tests.write_text(render_rule_tests(CASES[case]))
    return tests


def _alerts(inputs: GeneratorInputs) -> list[Alert]:
    return alert_rules(inputs.dimensions, inputs.hierarchy, inputs.alerts)


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.prometheus
@pytest.mark.parametrize("case", CASES)
def test_promtool_checks_the_rules(promtool_bin: str, tmp_path: Path, case: str) -> None:
    _write(tmp_path, case)
    proc = _promtool(promtool_bin, "check", "rules", "tilewatch.rules.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inputs = CASES[case]
    count = len(recording_rules(inputs.dimensions, inputs.alerts)) + len(_alerts(inputs))
    assert f"SUCCESS: {count} rules found" in proc.stdout


@pytest.mark.prometheus
@pytest.mark.parametrize("case", CASES)
def test_promtool_unit_tests_pass(promtool_bin: str, tmp_path: Path, case: str) -> None:
    tests = _write(tmp_path, case)
    proc = _promtool(promtool_bin, "test", "rules", tests.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_three_unit_tests_per_alert() -> None:
    tests = yaml.safe_load(render_rule_tests(DEPLOY))["tests"]
    names = [t["name"] for t in tests]
    for alert in _alerts(DEPLOY):
        cases = [n.removeprefix(alert.name + " ") for n in names if n.startswith(alert.name + " ")]
        assert cases == ["fires", "does not fire on a blip shorter than for", "resolves"]
        fires = next(t for t in tests if t["name"] == f"{alert.name} fires")
        (expected,) = fires["alert_rule_test"][0]["exp_alerts"]
        assert expected["exp_labels"]["severity"] == alert.severity
        blip = next(t for t in tests if t["name"].startswith(f"{alert.name} does not"))
        assert "pending" in blip["promql_expr_test"][0]["expr"]
        assert all(c["exp_alerts"] == [] for c in blip["alert_rule_test"])


def _mutate(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text()
    new = re.sub(pattern, replacement, text)
    assert new != text, f"{pattern!r} not found"
    path.write_text(new)


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("what", "pattern", "replacement", "failing"),
    [
        # without hysteresis, every blip fires
        ("no for", r"\n    for: \S+", "", "does not fire on a blip shorter than for"),
        # a wrong threshold never fires
        (
            "threshold",
            r"tilewatch_business_status\{job=\"tilewatch\"\}\) == 2",
            'tilewatch_business_status{job="tilewatch"}) == 3',
            "TilewatchBusinessIndicatorRed fires",
        ),
        # dropping the cell's labels is caught
        (
            "labels",
            r"max without\(instance, pod\) \(tilewatch_component_status",
            "max without(instance, pod, segment) (tilewatch_component_status",
            "TilewatchComponentRed fires",
        ),
    ],
)
def test_the_unit_tests_catch_a_broken_rule(
    promtool_bin: str, tmp_path: Path, what: str, pattern: str, replacement: str, failing: str
) -> None:
    tests = _write(tmp_path, "production")
    _mutate(tmp_path / "tilewatch.rules.yml", pattern, replacement)
    proc = _promtool(promtool_bin, "test", "rules", tests.name, cwd=tmp_path)
    assert proc.returncode != 0, f"{what}: promtool test still passes"
    assert "FAILED" in proc.stdout + proc.stderr


def test_alerts_are_named_labelled_and_annotated() -> None:
    rules = yaml.safe_load(render_rules(DEPLOY))
    groups = {g["name"]: g["rules"] for g in rules["groups"]}
    alerting = groups["tilewatch.alerts"]
    assert len(alerting) == len(_alerts(DEPLOY))
    for rule in alerting:
        assert re.fullmatch(r"Tilewatch(?:[A-Z][a-z]+)+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES
        assert rule["for"] in ("5m", "10m", "30m")
        assert set(rule["annotations"]) >= {"summary", "description", "runbook_url"}
        # An absolute link a notification can carry, to a runbook that exists in the repo.
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_BASE_URL}{rule['alert']}.md"
        assert url.startswith("https://") and url.endswith(f"/docs/runbooks/{rule['alert']}.md")
        assert (ROOT / "docs" / "runbooks" / f"{rule['alert']}.md").is_file()
    severities = {r["alert"]: r["labels"]["severity"] for r in alerting}
    assert severities["TilewatchBusinessIndicatorRed"] == "critical"
    assert severities["TilewatchBusinessIndicatorAmber"] == "warning"
    assert severities["TilewatchComponentRed"] == "warning"
    assert severities["TilewatchComponentAmber"] == "info"
    assert severities["TilewatchMonitorDown"] == "critical"
    assert severities["TilewatchModelSilent"] == "warning"
    component = next(a for a in _alerts(DEPLOY) if a.name == "TilewatchComponentRed")
    assert set(component.probe.labels) >= {"model", *DEPLOY.dimensions}
    assert all(r["record"].count(":") == 2 for r in groups["tilewatch.recording"])


def test_every_alert_has_a_runbook_with_two_queries() -> None:
    books = render_runbooks(DEPLOY)
    for alert in _alerts(DEPLOY):
        text = books[f"docs/runbooks/{alert.name}.md"]
        assert "## What it means" in text and "## What to do" in text
        assert text.count("```promql") == 3  # the expression and the two queries
    assert "docs/runbooks/README.md" in books


def test_alertmanager_routing_grouping_and_inhibition() -> None:
    alerts = AlertSettings(pager_url="http://pager.example/hook", ticket_url="http://t/x")
    config = yaml.safe_load(
        render_alertmanager(GeneratorInputs(("segment", "region"), alerts=alerts))
    )
    route = config["route"]
    assert route["group_by"] == ["alertname", "model"]
    assert {r["matchers"][0]: r["receiver"] for r in route["routes"]} == {
        f'severity="{s}"': RECEIVERS[s] for s in SEVERITIES
    }
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["tilewatch-pager"]["webhook_configs"] == [
        {"url": "http://pager.example/hook", "send_resolved": True}
    ]
    assert "webhook_configs" not in receivers["tilewatch-info"]
    page = config["inhibit_rules"][0]
    assert page["source_matchers"] == ['alertname="TilewatchBusinessIndicatorRed"']
    assert page["equal"] == ["model"]
    # every label an inhibition compares is carried by both its source and target alerts
    rules = {a.name: a for a in alert_rules(("segment", "region"), HierarchySettings(), alerts)}
    for rule in config["inhibit_rules"]:
        names = [
            re.search(r'"(.*)"', m)[1]
            for m in (*rule["source_matchers"], *rule["target_matchers"])  # type: ignore[index]
            if m.startswith("alertname")
        ]
        matched = [a for a in rules.values() if any(re.fullmatch(n, a.name) for n in names)]
        assert matched
        for alert in matched:
            assert set(rule["equal"]) <= set(alert.probe.labels), (alert.name, rule["equal"])


@pytest.mark.prometheus
def test_amtool_accepts_the_generated_config(tmp_path: Path) -> None:
    if shutil.which(AMTOOL) is None:
        pytest.fail(f"{AMTOOL} not found: run scripts/setup.sh")
    for alerts in (
        DEPLOY.alerts,
        AlertSettings(pager_url="http://127.0.0.1:1/p", info_url="https://x/y"),
    ):
        path = tmp_path / "alertmanager.yml"
        path.write_text(render_alertmanager(dataclasses.replace(DEPLOY, alerts=alerts)))
        proc = subprocess.run(
            [AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS" in proc.stdout
        assert "4 inhibit rules" in proc.stdout and "3 receivers" in proc.stdout


@pytest.mark.prometheus
def test_promtool_runs_the_checked_in_unit_tests(promtool_bin: str) -> None:
    """deploy/prometheus/tests/ is what operators run (`promtool test rules ...`)."""
    proc = _promtool(
        promtool_bin,
        "test",
        "rules",
        "tilewatch.rules.test.yml",
        cwd=ROOT / "deploy/prometheus/tests",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = _promtool(
        promtool_bin, "check", "rules", "tilewatch.rules.yml", cwd=ROOT / "deploy/prometheus/rules"
    )
    assert check.returncode == 0, check.stdout + check.stderr
