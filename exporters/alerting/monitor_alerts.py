"""Alerts on the monitor process itself, from prometheus-client's ``process_*`` metrics: memory
growing past a bound, and a replica that keeps restarting (a crash loop)."""

from __future__ import annotations

from tilewatch.exporters.alerting.model import Alert, Probe, ProbeSeries
from tilewatch.exporters.alerting.promql import job_selector, prom_duration
from tilewatch.exporters.generator_inputs import AlertSettings

__all__ = ["process_alerts"]


def _series(name: str, job: str) -> str:
    return f'{name}{{job="{job}",instance="tw-0:9464"}}'


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n:g} bytes"


def process_alerts(alerts: AlertSettings) -> list[Alert]:
    """``TilewatchMemoryHigh`` and ``TilewatchRestarting`` (their ``for:`` is set by the caller).

    Examples
    --------
    >>> [a.name for a in process_alerts(AlertSettings())]
    ['TilewatchMemoryHigh', 'TilewatchRestarting']
    """
    job = alerts.job
    limit = alerts.memory_high_bytes
    # The window a restart is looked for in: ``rate_window``, which the config keeps shorter
    # than the warnings' ``for:``, so one restart alone never fires the alert.
    window = prom_duration(alerts.rate_window)
    memory = Alert(
        name="TilewatchMemoryHigh",
        severity="warning",
        expr=f"process_resident_memory_bytes{job_selector(job)} > {limit:d}",
        summary="tilewatch replica {{ $labels.instance }} uses more than " + _bytes(limit),
        description="The resident memory of tilewatch replica {{ $labels.instance }} is above "
        f"{_bytes(limit)} ([hierarchy.alerts] memory_high_bytes): state grows with the cells "
        "and their windows, and an out-of-memory kill loses the work since the last checkpoint.",
        meaning="The monitor's memory is past the configured bound.",
        actions=(
            "Check the number of cells (tilewatch_cells) and [cells] max_cells, window and "
            "retention: state grows with cells x windows.",
            "Scale out (more replicas share the partitions) or raise the memory limit and "
            "memory_high_bytes together.",
        ),
        queries=(
            ("Resident memory per replica", f'process_resident_memory_bytes{{job="{job}"}}'),
            ("Cells per replica", f'tilewatch_cells{{job="{job}"}}'),
        ),
        probe=Probe(
            series=(
                ProbeSeries(_series("process_resident_memory_bytes", job), limit / 4, 2 * limit),
            ),
            labels={"job": job, "instance": "tw-0:9464"},
        ),
        labels=("instance",),
    )
    restarting = Alert(
        name="TilewatchRestarting",
        severity="warning",
        expr=f"changes(process_start_time_seconds{job_selector(job)}[{window}]) > 0",
        summary="tilewatch replica {{ $labels.instance }} keeps restarting",
        description="tilewatch replica {{ $labels.instance }} restarted in every "
        f"{window} window for a while: a crash loop. Each restart replays from the last "
        "checkpoint and leaves its tiles stale meanwhile.",
        meaning=f"The process start time changed at least once in every {window} window "
        "for the alert's for: duration.",
        actions=(
            "Read the logs of the previous run (kubectl logs --previous): `tilewatch run` "
            "prints the reason it stopped as its last line.",
            "Look for out-of-memory kills (TilewatchMemoryHigh, the pod's last state).",
        ),
        queries=(
            ("Restarts per replica", f'changes(process_start_time_seconds{{job="{job}"}}[1h])'),
            ("Start time per replica", f'process_start_time_seconds{{job="{job}"}}'),
        ),
        probe=Probe(
            # A start time that moves at every sample: a restart between any two scrapes.
            series=(ProbeSeries(_series("process_start_time_seconds", job), 0.0, 60.0, True),),
            labels={"job": job, "instance": "tw-0:9464"},
            lag_off=alerts.rate_window,
        ),
        labels=("instance",),
    )
    return [memory, restarting]
