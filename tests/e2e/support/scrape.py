"""A scrape of ``/metrics`` as a dict of samples, and comparisons between two scrapes.

A scrape is ``{(sample name, frozenset(labels.items())): value}`` (:data:`Sample` keys), so a
test reads one sample with :func:`value` and a family with :func:`series`.
"""

from __future__ import annotations

import math
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support.layout import ALL

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(url: str, timeout: float = 5.0) -> str:
    """GET the exposition text at ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def scrape_gzip(url: str, timeout: float = 5.0) -> bytes:
    """GET ``url`` as Prometheus does (``Accept-Encoding: gzip``); the body as sent."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
    return body


def parse_metrics(text: str) -> dict[Sample, float]:
    """``{(sample name, frozenset(labels.items())): value}`` of an exposition text."""
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict[Sample, float], name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


def series(metrics: dict[Sample, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of ``name``, by label set."""
    return {labels: v for (n, labels), v in metrics.items() if n == name}


def summarize(metrics: dict[Sample, float]) -> str:
    keep = ("tilewatch_read_events_total", "tilewatch_dead_letter_events_total")
    shown = {n: v for (n, labels), v in metrics.items() if n in keep and not labels}
    return f"{shown} ({len(metrics)} samples)"


def leaf_events_total(metrics: dict[Sample, float]) -> float:
    """Sum of ``tilewatch_events_total`` over leaf cells (no ``__all__`` label value)."""
    return sum(
        v
        for labels, v in series(metrics, "tilewatch_events_total").items()
        if ALL not in dict(labels).values()
    )


def caught_up(metrics: dict[Sample, float], partitions: int) -> bool:
    """Whether the replica owns ``partitions`` partitions, each with a lag of 0."""
    lag = series(metrics, "tilewatch_consumer_lag_events")
    return (
        value(metrics, "tilewatch_partitions_assigned") == partitions
        and len(lag) == partitions
        and all(v == 0 for v in lag.values())
    )


#: Families compared between two replicas' scrapes: exactly, or within 1e-9 relative (float
#: merge order may differ between runs that cut batches and checkpoints at other offsets).
EXACT_FAMILIES = (
    "tilewatch_events_total",
    "tilewatch_window_events",
    "tilewatch_rolling_events",
    "tilewatch_late_events_total",
    "tilewatch_window_end_timestamp_seconds",
    "tilewatch_last_event_timestamp_seconds",
)
CLOSE_FAMILIES = (
    "tilewatch_window_score_mean",
    "tilewatch_window_score_variance",
    "tilewatch_rolling_score_mean",
    "tilewatch_rolling_score_variance",
)


def _same(a: float, b: float, rel: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def compare_metrics(
    reference: dict[Sample, float], actual: dict[Sample, float], rel: float = 1e-9
) -> list[str]:
    """Every difference between two scrapes in the cell and model families, as lines."""
    problems: list[str] = []
    for name in (*EXACT_FAMILIES, *CLOSE_FAMILIES):
        want, got = series(reference, name), series(actual, name)
        for labels in sorted(set(want) | set(got), key=sorted):
            w, g = want.get(labels), got.get(labels)
            exact = name in EXACT_FAMILIES
            if w is None or g is None or not (w == g if exact else _same(w, g, rel)):
                problems.append(f"{name}{dict(labels)}: reference {w!r}, got {g!r}")
    return problems
