"""The Alertmanager configuration of tilewatch's alerts: routing, grouping, inhibition.

- **Routing by severity:** ``critical`` pages (receiver ``tilewatch-pager``), ``warning``
  opens a ticket (``tilewatch-ticket``, also the default), ``info`` goes to a low-priority
  receiver (``tilewatch-info``). Each receiver posts to its ``[hierarchy.alerts]`` webhook
  URL (with resolved notifications), or has no integration when the URL is empty.
- **Grouping** by ``alertname`` and ``model``: one notification per alert and model, listing
  the cells.
- **Inhibition** (each rule with labels present on both sides): a red business indicator
  silences the component alerts (warning, info) of the same ``model`` and the amber alert of
  the same indicator; a red component silences its amber alert in the same cell; a replica
  down or cut from Kafka silences the silence-of-traffic alerts of the same ``job``.
"""

from __future__ import annotations

from typing import Any

from tilewatch.exporters.alerting.promql import prom_duration
from tilewatch.exporters.alerting.rule_file import HEADER
from tilewatch.exporters.generator_inputs import GeneratorInputs, Severity
from tilewatch.exporters.yaml_output import to_yaml

__all__ = ["RECEIVERS", "RECEIVER_EXAMPLES", "inhibit_rules", "render_alertmanager"]

#: Where the Slack, PagerDuty and webhook examples of the three receivers are (tested).
RECEIVER_EXAMPLES = (
    "Slack, PagerDuty and webhook receivers to copy over these: "
    "deploy/alertmanager/receivers.example.yml"
)

#: Receiver name by severity.
RECEIVERS: dict[Severity, str] = {
    "critical": "tilewatch-pager",
    "warning": "tilewatch-ticket",
    "info": "tilewatch-info",
}


def inhibit_rules(dimensions: tuple[str, ...]) -> list[dict[str, Any]]:
    """The inhibition rules (source and target matchers, and the labels both must share)."""
    return [
        {
            "source_matchers": ['alertname="TilewatchBusinessIndicatorRed"'],
            "target_matchers": [
                'alertname=~"TilewatchComponent.*"',
                'severity=~"warning|info"',
            ],
            "equal": ["model"],
        },
        {
            "source_matchers": ['alertname="TilewatchBusinessIndicatorRed"'],
            "target_matchers": ['alertname="TilewatchBusinessIndicatorAmber"'],
            "equal": ["model", "indicator"],
        },
        {
            "source_matchers": ['alertname="TilewatchComponentRed"'],
            "target_matchers": ['alertname="TilewatchComponentAmber"'],
            "equal": ["model", "component", *dimensions],
        },
        {
            "source_matchers": ['alertname=~"TilewatchMonitorDown|TilewatchKafkaDown"'],
            "target_matchers": ['alertname=~"TilewatchModelSilent|TilewatchComponentNoVerdict"'],
            "equal": ["job"],
        },
    ]


def render_alertmanager(inputs: GeneratorInputs) -> str:
    """The ``alertmanager.yml`` text.

    Examples
    --------
    >>> from tilewatch.exporters.generator_inputs import AlertSettings
    >>> hooks = AlertSettings(pager_url="http://pager/hook")
    >>> text = render_alertmanager(GeneratorInputs(("segment",), alerts=hooks))
    >>> "- receiver: tilewatch-pager" in text, "- url: http://pager/hook" in text
    (True, True)
    """
    alerts = inputs.alerts
    timing = {
        "group_wait": prom_duration(alerts.group_wait),
        "group_interval": prom_duration(alerts.group_interval),
        "repeat_interval": prom_duration(alerts.repeat_interval),
    }
    routes = [
        {"receiver": receiver, "matchers": [f'severity="{severity}"']}
        for severity, receiver in RECEIVERS.items()
    ]
    receivers: list[dict[str, Any]] = []
    for severity, name in RECEIVERS.items():
        receiver: dict[str, Any] = {"name": name}
        if alerts.url(severity):
            receiver["webhook_configs"] = [{"url": alerts.url(severity), "send_resolved": True}]
        receivers.append(receiver)
    config = {
        "route": {
            "receiver": RECEIVERS["warning"],
            "group_by": ["alertname", "model"],
            **timing,
            "routes": routes,
        },
        "inhibit_rules": inhibit_rules(inputs.dimensions),
        "receivers": receivers,
    }
    return to_yaml(config, header=f"{HEADER}\n{RECEIVER_EXAMPLES}")
