"""The TOML config file: schema, defaults and validation.

Each section is parsed by its own module of :mod:`tilewatch.config` into the frozen settings
dataclass of the package that uses it::

    [kafka]      config.kafka      -> tilewatch.streams.settings.KafkaSettings
    [events]     config.events     -> tilewatch.streams.settings.EventFields
    [cells]      config.cells      -> tilewatch.aggregators.cells.settings.CellSettings
    [drift]      config.drift      -> tilewatch.aggregators.drift.profile.DriftSettings
    [baseline]   config.baseline   -> tilewatch.aggregators.drift.reference.BaselineSettings
    [labels]     config.labels     -> tilewatch.aggregators.labels.settings.LabelSettings
    [labeling]   config.labeling   -> tilewatch.aggregators.labeling.settings.LabelingSettings
    [forecast]   config.forecast   -> tilewatch.aggregators.state.forecasts.ForecastSettings
    [state]      config.state      -> tilewatch.streams.settings.StateSettings
    [exporter]   config.exporter   -> tilewatch.exporters.prometheus.settings.ExporterSettings
    [hierarchy]  config.hierarchy  -> tilewatch.aggregators.health.settings.HierarchySettings

Every key is optional; a missing key takes the dataclass default. Everything else is checked
here, once, so the rest of tilewatch can trust its settings. Every error is a
:class:`ConfigError` naming the file, the key, what was expected and what was found::

    tilewatch.toml: [cells].window: expected a duration like "1m", got "soon"

The reference of every key is ``docs/configuration.md``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftSettings
from tilewatch.aggregators.drift.reference import BaselineSettings
from tilewatch.aggregators.health.settings import HierarchySettings
from tilewatch.aggregators.labeling.settings import LabelingSettings
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.aggregators.state.forecasts import ForecastSettings
from tilewatch.config.base import ConfigError, parse_duration
from tilewatch.config.base import show as _show
from tilewatch.config.base import toml_key as _key
from tilewatch.config.baseline import parse_baseline
from tilewatch.config.cells import parse_cells
from tilewatch.config.drift import parse_drift
from tilewatch.config.events import parse_events
from tilewatch.config.exporter import parse_exporter
from tilewatch.config.forecasting import parse_forecast
from tilewatch.config.hierarchy import parse_hierarchy
from tilewatch.config.kafka import parse_kafka
from tilewatch.config.labeling import parse_labeling
from tilewatch.config.labels import parse_labels
from tilewatch.config.state import parse_state
from tilewatch.exporters.generator_inputs import AlertSettings
from tilewatch.exporters.prometheus.settings import ExporterSettings
from tilewatch.streams.settings import EventFields, KafkaSettings, LabelTopic, StateSettings

__all__ = ["SECTIONS", "Config", "ConfigError", "load_config", "parse_config", "parse_duration"]


@dataclass(frozen=True, slots=True)
class Config:
    """A validated config: one settings object per section, and where it came from.

    ``source`` is the file path as given to :func:`load_config`, or ``"<string>"``.
    """

    kafka: KafkaSettings
    events: EventFields
    cells: CellSettings
    exporter: ExporterSettings
    state: StateSettings
    source: str
    baseline: BaselineSettings = field(default_factory=BaselineSettings)
    #: Drift and data-quality settings; ``drift_enabled`` says whether they are on.
    drift: DriftSettings = field(default_factory=DriftSettings)
    drift_enabled: bool = False
    #: Performance from labels (None: no [labels] section) and the outcomes topic, if any.
    labels: LabelSettings | None = None
    label_topic: LabelTopic | None = None
    #: The labeling queue (None: no [labeling] section).
    labeling: LabelingSettings | None = None
    #: Health hierarchy ([hierarchy]; parse_config fills in the default one) and alerting.
    hierarchy: HierarchySettings = field(default_factory=HierarchySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    #: Per-cell forecasts of window statistics ([forecast]; no statistics: off).
    forecast: ForecastSettings = field(default_factory=ForecastSettings)


SECTIONS = (
    "baseline",
    "cells",
    "drift",
    "events",
    "exporter",
    "forecast",
    "hierarchy",
    "kafka",
    "labeling",
    "labels",
    "state",
)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML config file.

    Parameters
    ----------
    path
        The file to read. It is named, as given, in every error message and in
        :attr:`Config.source`.

    Returns
    -------
    Config
        The validated settings.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not valid UTF-8 TOML, or does not validate.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: not UTF-8 at byte {exc.start}") from exc
    return parse_config(data, source)


def parse_config(data: Mapping[str, Any], source: str = "<string>") -> Config:
    """Validate an already parsed config (the dict ``tomllib`` returns).

    Parameters
    ----------
    data
        The top-level table, with optional ``kafka``, ``events``, ``cells`` and ``exporter``
        tables.
    source
        Where ``data`` came from, named in error messages.

    Returns
    -------
    Config
        The validated settings; every missing key takes its default.

    Raises
    ------
    ConfigError
        On an unknown section or key, or a value of the wrong type or out of range. String
        values of ``[kafka.client]`` of the form ``${env:NAME}`` are replaced by the
        environment variable ``NAME``; an unset variable is an error too.

    Examples
    --------
    >>> config = parse_config({"kafka": {"topics": "predictions", "poll_timeout": "250ms"}})
    >>> config.kafka.topics, config.kafka.poll_timeout_seconds
    (('predictions',), 0.25)
    >>> config.events.dimensions
    {'segment': 'segment', 'region': 'region'}
    >>> try:
    ...     parse_config({"cells": {"window": "soon"}}, "tilewatch.toml")
    ... except ConfigError as exc:
    ...     print(exc)
    tilewatch.toml: [cells].window: expected a duration like "1m", got "soon"
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a table of sections, got {_show(data)}")
    for name, value in data.items():
        if name not in SECTIONS:
            where, what = (
                (f"[{_key(name)}]", "section")
                if isinstance(value, Mapping)
                else (_key(name), "top-level key")
            )
            allowed = ", ".join(f"[{section}]" for section in SECTIONS)
            raise ConfigError(
                f"{source}: {where}: unknown {what}, expected one of the sections {allowed}"
            )
    tables = {name: _section(data, name, source) for name in SECTIONS}
    cells = parse_cells(tables["cells"], source)
    baseline = parse_baseline(tables["baseline"], source)
    kafka = parse_kafka(tables["kafka"], source)
    events = parse_events(tables["events"], source, cells.dimensions)
    labels, label_topic = parse_labels(
        tables["labels"],
        source,
        prediction_topics=kafka.topics,
        has_baseline=baseline.path is not None,
        score_range=(events.score_min, events.score_max),
    )
    drift = parse_drift(tables["drift"], tables["cells"], source, baseline)
    hierarchy, alerts = parse_hierarchy(
        tables["hierarchy"],
        source,
        cells=cells,
        drift=drift["drift"],
        drift_enabled=drift["drift_enabled"],
        has_baseline=baseline.path is not None,
        labels_enabled=labels is not None,
        label_min_samples=30 if labels is None else labels.performance.min_samples,
        regression=labels is not None and labels.performance.task == "regression",
        multiclass=events.scores is not None,
    )
    state = parse_state(tables["state"], source)
    labeling = parse_labeling(
        tables["labeling"],
        source,
        present="labeling" in data,
        labels=labels,
        has_baseline=baseline.path is not None,
        multiclass=events.scores is not None,
    )
    return Config(
        kafka=kafka,
        events=events,
        labels=labels,
        label_topic=label_topic,
        labeling=labeling,
        cells=cells,
        exporter=parse_exporter(tables["exporter"], source),
        state=state,
        source=source,
        baseline=baseline,
        hierarchy=hierarchy,
        alerts=alerts,
        forecast=parse_forecast(tables["forecast"], source),
        **drift,
    )


def _section(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [{name}]: expected a table, got {_show(value)}")
    return value
