"""The endpoint exports prometheus-client's process_* and python_* metrics, and the generated
alerts use them: memory above [hierarchy.alerts] memory_high_bytes, and a crash loop."""

from __future__ import annotations

import platform
import sys

import pytest
from prometheus_client import generate_latest

from tilewatch.app import App
from tilewatch.config import ConfigError, parse_config
from tilewatch.exporters.alerting.definitions import alert_rules
from tilewatch.generate import generator_inputs


def test_the_registry_carries_process_and_python_metrics() -> None:
    app = App(parse_config({"exporter": {"listen": "127.0.0.1:0"}}, source="<test>"))
    registry = app.registry
    rss = registry.get_sample_value("process_resident_memory_bytes")
    assert rss is not None and rss > 10 * (1 << 20)
    start = registry.get_sample_value("process_start_time_seconds")
    assert start is not None and start > 1.6e9
    info = {
        "implementation": platform.python_implementation(),
        "major": str(sys.version_info.major),
        "minor": str(sys.version_info.minor),
        "patchlevel": str(sys.version_info.micro),
        "version": platform.python_version(),
    }
    assert registry.get_sample_value("python_info", info) == 1.0
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None
    text = generate_latest(registry).decode()
    assert "# TYPE process_cpu_seconds_total counter" in text
    assert "tilewatch_read_events_total" in text  # beside tilewatch's own


def _alerts(extra: dict[str, object] | None = None) -> dict[str, object]:
    cfg = parse_config({"hierarchy": {"alerts": extra or {}}}, source="<test>")
    inputs = generator_inputs(cfg)
    return {a.name: a for a in alert_rules(inputs.dimensions, inputs.hierarchy, inputs.alerts)}


def test_generated_alerts_use_the_process_metrics() -> None:
    alerts = _alerts({"memory_high_bytes": 512 * (1 << 20), "job": "tw"})
    memory = alerts["TilewatchMemoryHigh"]
    assert memory.expr == 'process_resident_memory_bytes{job="tw"} > 536870912'  # type: ignore[attr-defined]
    assert "512 MiB" in memory.summary  # type: ignore[attr-defined]
    restarting = alerts["TilewatchRestarting"]
    assert restarting.expr == 'changes(process_start_time_seconds{job="tw"}[5m]) > 0'  # type: ignore[attr-defined]
    assert restarting.for_seconds == 600.0  # type: ignore[attr-defined]


def test_default_memory_bound_is_two_gib() -> None:
    assert _alerts()["TilewatchMemoryHigh"].expr.endswith("> 2147483648")  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [0, 1000, "2GiB", -1])
def test_memory_bound_is_validated(value: object) -> None:
    with pytest.raises(ConfigError, match=r"memory_high_bytes"):
        _alerts({"memory_high_bytes": value})
