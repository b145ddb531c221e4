"""The promtool unit tests of the rule file: three tests per alert, built from its probe.

:func:`render_rule_tests` writes ``deploy/prometheus/tests/tilewatch.rules.test.yml`` (run
by ``promtool test rules``) from the same alert list as
:func:`~tilewatch.exporters.alerting.rule_file.render_rules`, with three tests per alert built
from its :class:`~tilewatch.exporters.alerting.model.Probe`:

- **fires**: the condition holds for longer than ``for:``; the alert fires with its labels
  (``model`` and the cell's dimensions where it has them) and annotations;
- **blip**: the condition holds for less than ``for:`` (``ALERTS{alertstate="pending"}``
  proves it held); the alert never fires;
- **resolves**: the condition holds, the alert fires, the condition ends; the alert is gone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tilewatch.exporters.alerting.definitions import alert_rules
from tilewatch.exporters.alerting.model import Alert, Probe
from tilewatch.exporters.alerting.promql import prom_duration, render_driver
from tilewatch.exporters.alerting.rule_file import HEADER, LABEL_REF
from tilewatch.exporters.generator_inputs import AlertSettings, GeneratorInputs
from tilewatch.exporters.yaml_output import to_yaml

__all__ = ["probe_step", "render_rule_tests"]


def probe_step(alerts: Sequence[Alert]) -> float:
    """Seconds between two samples (and evaluations) of the generated unit tests.

    A fifth of the shortest ``for:`` and of the shortest ``for:`` minus its alert's lag (in
    whole milliseconds): every ``for:`` spans five steps more than the lag after which its
    condition ends, so a blip can be shorter than ``for:`` and still be seen as pending.
    """
    spans = [a.for_seconds - a.probe.lag_off for a in alerts]
    if min(spans) <= 0:
        worst = min(alerts, key=lambda a: a.for_seconds - a.probe.lag_off)
        raise ValueError(
            f"{worst.name}: for: {prom_duration(worst.for_seconds)} is not longer than its "
            f"lag of {prom_duration(worst.probe.lag_off)}: any blip would fire it"
        )
    return max(0.001, math.floor(min(spans) / 5 * 1000) / 1000)


def _expand(template: str, labels: Mapping[str, str]) -> str:
    text = LABEL_REF.sub(lambda m: labels.get(m[1], ""), template)
    if "{{" in text:
        raise ValueError(f"template not expandable by the test generator: {template!r}")
    return text


def _values(probe: Probe, states: Sequence[bool]) -> list[dict[str, str]]:
    """Input series for a sequence of states (True: bad), one sample per step."""
    out = []
    for series in probe.series:
        values: list[str] = []
        total = 1000.0
        gone = False
        for bad in states:
            value = series.bad if bad else series.good
            if value is None:
                values.append("_" if gone else "stale")
                gone = True
                continue
            gone = False
            if series.counter:
                total += value
                value = total
            values.append(f"{value:g}")
        out.append({"series": series.selector, "values": " ".join(values)})
    return out


def _expected(alert: Alert, alerts: AlertSettings, dimensions: tuple[str, ...]) -> dict[str, Any]:
    labels = {**alert.probe.labels, "severity": alert.severity}
    annotations = {
        "summary": _expand(alert.summary, labels),
        "description": _expand(alert.description, labels),
    }
    if alert.driver:
        annotations["driver"] = render_driver(alert.probe.driver, dimensions)
    annotations["runbook_url"] = f"{alerts.runbook_base_url}{alert.name}.md"
    return {"exp_labels": labels, "exp_annotations": annotations}


def _cases(
    alert: Alert, alerts: AlertSettings, dimensions: tuple[str, ...], step: float
) -> list[dict[str, Any]]:
    probe = alert.probe
    on = math.ceil(probe.lag_on / step)
    off = math.ceil(probe.lag_off / step)
    f = math.ceil(alert.for_seconds / step)
    blip = max(1, (f - off - 2) // 2)
    if blip + off + 1 >= f:
        raise ValueError(
            f"{alert.name}: for: {prom_duration(alert.for_seconds)} is too short for a blip "
            f"test next to a lag of {prom_duration(probe.lag_off)}"
        )
    pre = max(on, off) + 2
    fire = on + f + 2
    interval = prom_duration(step)

    def at(index: int) -> str:
        return prom_duration(index * step)

    def case(name: str, states: list[bool]) -> dict[str, Any]:
        return {
            "name": f"{alert.name} {name}",
            "interval": interval,
            "input_series": _values(probe, states),
        }

    expected = _expected(alert, alerts, dimensions)
    fires = case("fires", [False] * pre + [True] * fire)
    fires["alert_rule_test"] = [
        {"eval_time": at(pre + fire - 1), "alertname": alert.name, "exp_alerts": [expected]}
    ]
    blip_end = pre + on + blip - 1
    blips = case(
        "does not fire on a blip shorter than for",
        [False] * pre + [True] * (on + blip) + [False] * (off + f + 2),
    )
    blips["promql_expr_test"] = [
        {
            "expr": f'count(ALERTS{{alertname="{alert.name}",alertstate="pending"}})',
            "eval_time": at(blip_end),
            "exp_samples": [{"labels": "{}", "value": 1}],
        }
    ]
    blips["alert_rule_test"] = [
        {"eval_time": at(t), "alertname": alert.name, "exp_alerts": []}
        for t in (blip_end, blip_end + off + 1, pre + on + blip + off + f + 1)
    ]
    resolves = case("resolves", [False] * pre + [True] * fire + [False] * (off + 3))
    resolves["alert_rule_test"] = [
        {"eval_time": at(pre + fire - 1), "alertname": alert.name, "exp_alerts": [expected]},
        {"eval_time": at(pre + fire + off + 2), "alertname": alert.name, "exp_alerts": []},
    ]
    return [fires, blips, resolves]


def render_rule_tests(inputs: GeneratorInputs, rule_file: str = "tilewatch.rules.yml") -> str:
    """The ``promtool test rules`` file of the rule file's alerts (three per alert).

    ``rule_file`` is the rule file's path relative to the test file.

    Examples
    --------
    >>> text = render_rule_tests(GeneratorInputs(("segment",)))
    >>> "- name: TilewatchMonitorDown fires" in text
    True
    """
    dims = inputs.dimensions
    rules = alert_rules(
        dims, inputs.hierarchy, inputs.alerts, inputs.forecasts, inputs.forecast_horizon
    )
    step = probe_step(rules)
    tests: list[dict[str, Any]] = []
    for alert in rules:
        tests.extend(_cases(alert, inputs.alerts, dims, step))
    body = {
        "rule_files": [rule_file],
        "evaluation_interval": prom_duration(step),
        "tests": tests,
    }
    return to_yaml(body, header=HEADER)
