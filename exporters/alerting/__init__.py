"""Alerting generated from the config: the rule file with its promtool tests, the Alertmanager
config and the runbooks.

- ``alerts``: every alerting rule (:func:`alert_rules`), with its documentation and test probe;
- ``recording_rules``: the roll-ups across replicas the alerts and runbooks read;
- ``model``: the records they are written with (:class:`Alert`, :class:`Probe`, ...);
- ``promql``: durations, selectors and the driver annotation;
- ``rule_file``, ``rule_tests``, ``alertmanager``, ``runbooks``: the generated files.

May import: ``tilewatch.aggregators`` (settings and names only),
``tilewatch.exporters.generator_inputs``, ``tilewatch.exporters.yaml_output``; not
``tilewatch.exporters.prometheus``, ``tilewatch.exporters.grafana``, ``tilewatch.streams`` or the
CLI and config modules.
"""

from __future__ import annotations

from tilewatch.exporters.alerting.alertmanager import render_alertmanager
from tilewatch.exporters.alerting.definitions import alert_rules
from tilewatch.exporters.alerting.model import Alert, Probe, ProbeSeries, RecordingRule
from tilewatch.exporters.alerting.recording_rules import recording_rules
from tilewatch.exporters.alerting.rule_file import render_rules
from tilewatch.exporters.alerting.rule_tests import render_rule_tests
from tilewatch.exporters.alerting.runbooks import render_runbooks

__all__ = [
    "Alert",
    "Probe",
    "ProbeSeries",
    "RecordingRule",
    "alert_rules",
    "recording_rules",
    "render_alertmanager",
    "render_rule_tests",
    "render_rules",
    "render_runbooks",
]
