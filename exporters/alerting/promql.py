"""PromQL and Go-template pieces shared by the rules: durations, selectors, driver annotations.

Examples
--------
>>> job_selector("tilewatch", 'segment="__all__"')
'{job="tilewatch",segment="__all__"}'
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "WORST_OVER_REPLICAS",
    "driver_annotation",
    "job_selector",
    "prom_duration",
    "render_driver",
]

#: The worst value over replicas (``instance``/``pod`` maxed away).
WORST_OVER_REPLICAS = "max without(instance, pod)"


def prom_duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds`` (``"5m"``, ``"90s"``, ``"1500ms"``, ``"1d"``).

    Examples
    --------
    >>> [prom_duration(s) for s in (300, 90, 1.5, 86400, 7200, 0)]
    ['5m', '90s', '1500ms', '1d', '2h', '0s']
    """
    ms = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0 and ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms else "0s"


def job_selector(job: str, *matchers: str) -> str:
    """A label selector ``{job="JOB",...}`` with extra matchers."""
    return "{" + ",".join((f'job="{job}"', *matchers)) + "}"


def driver_annotation(level: str, keys: tuple[str, ...], dimensions: tuple[str, ...]) -> str:
    """An annotation template naming the driver of a status, read from
    ``tilewatch_health_driver_info`` when the alert is evaluated.

    ``keys`` are the alert labels that select the info series (e.g. ``indicator``, ``model``).
    """
    matchers = ",".join([f'level=\\"{level}\\"', *(f'{k}=\\"%s\\"' for k in keys)])
    args = " ".join(f"$labels.{k}" for k in keys)
    cell = " ".join(f"{d}={{{{ .Labels.{d} }}}}" for d in dimensions)
    return (
        f'{{{{ with printf "tilewatch_health_driver_info{{{matchers}}}" {args} | query }}}}'
        "{{ with first . }}"
        "base metric {{ .Labels.driver }} ({{ .Labels.statistic }})"
        "{{ if .Labels.component }} via component {{ .Labels.component }}{{ end }}"
        f" in cell model={{{{ .Labels.model }}}} {cell}"
        "{{ end }}{{ end }}"
    )


def render_driver(driver: Mapping[str, str], dimensions: tuple[str, ...]) -> str:
    """What :func:`driver_annotation` renders to for one info series' labels."""
    if not driver:
        return ""
    via = f" via component {driver['component']}" if driver.get("component") else ""
    cell = " ".join(f"{d}={driver.get(d, '')}" for d in dimensions)
    return (
        f"base metric {driver['driver']} ({driver['statistic']}){via} "
        f"in cell model={driver['model']} {cell}"
    )
