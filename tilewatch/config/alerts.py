"""The ``[hierarchy.alerts]`` table: timings, thresholds and receivers of the generated alerts.

Maps to :class:`tilewatch.exporters.generator_inputs.AlertSettings`; reference in
``docs/configuration.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tilewatch.config.base import ConfigError, Table, show
from tilewatch.exporters.generator_inputs import AlertSettings

__all__ = ["ALERT_KEYS", "parse_alerts"]

ALERT_KEYS = (
    "dead_letter_ratio",
    "for_critical",
    "for_info",
    "for_warning",
    "group_interval",
    "group_wait",
    "info_url",
    "job",
    "memory_high_bytes",
    "pager_url",
    "pipeline_lag",
    "rate_window",
    "repeat_interval",
    "runbook_base_url",
    "silent_lookback",
    "ticket_url",
)
_URL = re.compile(r"https?://[^\s\"'\\]+")


def parse_alerts(source: str, value: Any) -> AlertSettings:
    """Validate ``[hierarchy.alerts]`` (``value``: the table, ``{}`` when absent).

    Examples
    --------
    >>> parse_alerts("t.toml", {"for_critical": "1m"}).for_critical
    60.0
    """
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [hierarchy.alerts]: expected a table, got {show(value)}")
    table = Table(source, "hierarchy.alerts", value, ALERT_KEYS)
    d = AlertSettings()
    durations = {
        key: table.duration(key, getattr(d, key), positive=True)
        for key in (
            "for_critical",
            "for_warning",
            "for_info",
            "rate_window",
            "silent_lookback",
            "pipeline_lag",
            "group_wait",
            "group_interval",
            "repeat_interval",
        )
    }
    if durations["for_warning"] <= durations["rate_window"]:
        raise table.error(
            "for_warning",
            f"a duration longer than rate_window ({durations['rate_window']:g}s): the "
            "rate-based warnings would fire on any blip",
            table.data.get("for_warning", "10m"),
        )
    if durations["silent_lookback"] <= durations["rate_window"]:
        raise table.error(
            "silent_lookback",
            "a duration longer than rate_window",
            table.data.get("silent_lookback", "1d"),
        )
    ratio = table.number("dead_letter_ratio", d.dead_letter_ratio)
    if not 0 < ratio < 1:
        raise table.error("dead_letter_ratio", "a number between 0 and 1", ratio)
    job = table.string("job", d.job)
    if any(c in job for c in '"\\{}') or not job.isprintable():
        raise table.error("job", "a Prometheus job name without quotes, backslashes or braces", job)
    urls: dict[str, str] = {}
    for key in ("pager_url", "ticket_url", "info_url"):
        url = table.data.get(key, "")
        if not isinstance(url, str) or (url and _URL.fullmatch(url) is None):
            raise table.error(key, 'an http:// or https:// URL, or ""', url)
        urls[key] = url
    base = table.data.get("runbook_base_url", d.runbook_base_url)
    if not isinstance(base, str) or not base or any(c in base for c in "\"'\\ "):
        raise table.error("runbook_base_url", "a URL or path prefix without quotes or spaces", base)
    memory = table.number("memory_high_bytes", d.memory_high_bytes)
    if not memory >= 1 << 20:
        raise table.error("memory_high_bytes", "a number of bytes >= 1048576 (1 MiB)", memory)
    return AlertSettings(
        job=job,
        memory_high_bytes=round(memory),
        dead_letter_ratio=ratio,
        runbook_base_url=base,
        pager_url=urls["pager_url"],
        ticket_url=urls["ticket_url"],
        info_url=urls["info_url"],
        for_critical=durations["for_critical"],
        for_warning=durations["for_warning"],
        for_info=durations["for_info"],
        rate_window=durations["rate_window"],
        silent_lookback=durations["silent_lookback"],
        pipeline_lag=durations["pipeline_lag"],
        group_wait=durations["group_wait"],
        group_interval=durations["group_interval"],
        repeat_interval=durations["repeat_interval"],
    )
