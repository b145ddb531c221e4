"""OpenMetrics text with timestamps, for ``promtool tsdb create-blocks-from openmetrics``.

A backfill collects the same metric families a scrape would, once per closed window, and stamps
each sample with the end of its model's window. OpenMetrics wants every family in one block of
lines (families never interleave) and each series' samples in time order, so
:class:`TimestampedFamilies` keeps the lines of each family apart and writes them family by
family; the caller flushes it every block range (2 h) so memory follows one block, not the
whole history.

A series gets a sample only when its timestamp moved forward (a model without a new window,
or a family without a ``model`` label, repeats no sample at an older or equal time: Prometheus
would reject it as out of order or duplicate). ``_created`` samples are left out: a backfill has
no meaningful creation time.

Examples
--------
>>> from prometheus_client.core import GaugeMetricFamily, CounterMetricFamily
>>> fams = TimestampedFamilies()
>>> g = GaugeMetricFamily("tw_mean", "Mean.", labels=["model"])
>>> g.add_metric(["a"], 0.5)
>>> c = CounterMetricFamily("tw_events", "Events.", labels=["model"])
>>> c.add_metric(["a"], 3)
>>> fams.add([g, c], lambda labels: 60.0)
2
>>> fams.add([g, c], lambda labels: 60.0)  # same time: nothing new
0
>>> print(fams.text(), end="")
# HELP tw_mean Mean.
# TYPE tw_mean gauge
tw_mean{model="a"} 0.5 60
# HELP tw_events Events.
# TYPE tw_events counter
tw_events_total{model="a"} 3.0 60
# EOF
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import Metric

__all__ = ["TimestampedFamilies", "format_sample"]

_TYPES = {"gauge", "counter", "histogram", "summary", "info", "stateset", "gaugehistogram"}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _time(t: float) -> str:
    return str(int(t)) if float(t).is_integer() else repr(float(t))


def format_sample(name: str, labels: Mapping[str, str], value: float, timestamp: float) -> str:
    """One OpenMetrics sample line (without the newline).

    >>> format_sample("x", {"a": 'q"'}, 1, 1.5)
    'x{a="q\\\\""} 1.0 1.5'
    """
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    where = f"{{{inner}}}" if inner else ""
    return f"{name}{where} {_value(value)} {_time(timestamp)}"


class TimestampedFamilies:
    """Metric families collected at several times, kept as OpenMetrics lines per family."""

    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        #: Labels added to every sample (a scrape's ``job`` and ``instance``).
        self.labels = dict(labels or {})
        self._header: dict[str, str] = {}
        self._lines: dict[str, list[str]] = {}
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._lines.values())

    def add(self, families: Iterable[Metric], stamp: Callable[[Mapping[str, str]], float]) -> int:
        """Add every sample of ``families`` at the time ``stamp(labels)`` gives (NaN: skip the
        sample); returns the samples added."""
        added = 0
        for fam in families:
            kind = fam.type if fam.type in _TYPES else "unknown"
            lines = self._lines.get(fam.name)
            if lines is None:
                lines = self._lines[fam.name] = []
                help_text = fam.documentation.replace("\\", r"\\").replace("\n", r"\n")
                self._header[fam.name] = (
                    f"# HELP {fam.name} {help_text}\n# TYPE {fam.name} {kind}\n"
                )
            for sample in fam.samples:
                if sample.name == fam.name + "_created":
                    continue
                t = stamp(sample.labels)
                if math.isnan(t):
                    continue
                labels = {**sample.labels, **self.labels} if self.labels else sample.labels
                key = (sample.name, tuple(sorted(labels.items())))
                if self._last.get(key, -math.inf) >= t:
                    continue
                self._last[key] = t
                lines.append(format_sample(sample.name, labels, sample.value, t))
                added += 1
        return added

    def text(self) -> str:
        """The OpenMetrics text of what was added since the last :meth:`clear`."""
        out = [
            self._header[name] + "".join(line + "\n" for line in lines)
            for name, lines in self._lines.items()
            if lines
        ]
        return "".join(out) + "# EOF\n"

    def clear(self) -> None:
        """Forget the lines (not the series' last times, so later samples still move on)."""
        for lines in self._lines.values():
            lines.clear()
