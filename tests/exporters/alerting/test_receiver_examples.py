"""deploy/alertmanager/receivers.example.yml: a Slack, a PagerDuty and a webhook version of the
three generated receivers, which amtool accepts, under the generated receivers' names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tilewatch.exporters.alerting.alertmanager import RECEIVER_EXAMPLES, RECEIVERS

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "deploy" / "alertmanager" / "receivers.example.yml"
GENERATED = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
AMTOOL = "/usr/bin/amtool"


def test_the_examples_replace_the_generated_receivers_by_name() -> None:
    examples = yaml.safe_load(EXAMPLES.read_text())
    generated = yaml.safe_load(GENERATED.read_text())
    names = [r["name"] for r in examples["receivers"]]
    assert sorted(names) == sorted(RECEIVERS.values())
    assert sorted(names) == sorted(r["name"] for r in generated["receivers"])
    kinds = {r["name"]: {k for k in r if k.endswith("_configs")} for r in examples["receivers"]}
    assert kinds == {
        RECEIVERS["critical"]: {"pagerduty_configs"},
        RECEIVERS["warning"]: {"slack_configs"},
        RECEIVERS["info"]: {"webhook_configs"},
    }
    # The same routing as the generated file, so the example can stand in for it.
    route, example_route = generated["route"], examples["route"]
    assert example_route["receiver"] == route["receiver"]
    assert [(r["receiver"], r["matchers"]) for r in example_route["routes"]] == [
        (r["receiver"], r["matchers"]) for r in route["routes"]
    ]
    # Every integration links the runbook and resolves.
    for receiver in examples["receivers"]:
        (configs,) = (receiver[k] for k in receiver if k.endswith("_configs"))
        assert all(c["send_resolved"] is True for c in configs)
    text = EXAMPLES.read_text()
    assert text.count("runbook_url") >= 2
    assert text.count("\n#") >= 8, "the examples are commented"
    assert RECEIVER_EXAMPLES in GENERATED.read_text().replace("\n# ", " ")


@pytest.mark.prometheus
def test_amtool_accepts_the_examples() -> None:
    if shutil.which(AMTOOL) is None:
        pytest.fail(f"{AMTOOL} not found: run scripts/setup.sh")
    proc = subprocess.run(
        [AMTOOL, "check-config", str(EXAMPLES)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "3 receivers" in proc.stdout
