"""The TOML config file: schema, defaults and validation.

A config file has four sections, each mapped onto the frozen settings dataclass of the package
that uses it::

    [kafka]      -> tilewatch.streams.settings.KafkaSettings      ([kafka.client] ->
    KafkaSettings.client) [events]     -> tilewatch.streams.settings.EventFields [cells]      ->
    tilewatch.aggregators.cells.settings.CellSettings [exporter]   ->
    tilewatch.exporters.prometheus.settings.ExporterSettings [baseline]   ->
    tilewatch.aggregators.drift.reference.BaselineSettings

Every key is optional; a missing key takes the dataclass default. Everything else is checked
here, once, so the rest of tilewatch can trust its settings. Every error is a
:class:`ConfigError` naming the file, the key, what was expected and what was found::

    tilewatch.toml: [cells].window: expected a duration like "1m", got "soon"

The reference of every key is ``docs/configuration.md``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftSettings
from tilewatch.aggregators.drift.reference import THRESHOLD_RULES, BaselineSettings
from tilewatch.aggregators.health.settings import HierarchySettings
from tilewatch.aggregators.labels.state import LabelSettings
from tilewatch.config.base import ConfigError, parse_duration
from tilewatch.config.base import Table as _Table
from tilewatch.config.base import show as _show
from tilewatch.config.base import toml_key as _key
from tilewatch.config.hierarchy import parse_hierarchy
from tilewatch.config.labels import parse_labels
from tilewatch.exporters.generator_inputs import AlertSettings
from tilewatch.exporters.prometheus.settings import BasicAuth, ExporterSettings, TLSFiles
from tilewatch.streams.settings import EventFields, KafkaSettings, LabelTopic, StateSettings

__all__ = ["Config", "ConfigError", "load_config", "parse_config", "parse_duration"]


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
    #: Health hierarchy ([hierarchy]; parse_config fills in the default one) and alerting.
    hierarchy: HierarchySettings = field(default_factory=HierarchySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)


_SECTIONS = (
    "baseline",
    "cells",
    "drift",
    "events",
    "exporter",
    "hierarchy",
    "kafka",
    "labels",
    "state",
)
_KAFKA_KEYS = (
    "auto_offset_reset",
    "bootstrap_servers",
    "client",
    "commit_interval",
    "dead_letter_topic",
    "group_id",
    "max_poll_records",
    "poll_timeout",
    "topics",
)
#: [events] keys holding a JSON path, besides one key per cell dimension.
_EVENT_PATHS = (
    "event_id",
    "timestamp",
    "model",
    "model_version",
    "score",
    "prediction",
    "label",
    "latency",
    "features",
)
_EVENT_KEYS = (*_EVENT_PATHS, "score_min", "score_max", "max_event_bytes")
_CELL_KEYS = (
    "dimensions",
    "window",
    "grace",
    "rolling_events",
    "max_cells",
    "label_max_length",
    "min_samples",
)
_DRIFT_KEYS = (
    "adwin_delta",
    "detectors",
    "enabled",
    "fdr_rate",
    "features",
    "max_features",
    "missing_alert",
    "ph_delta",
    "ph_threshold",
    "psi_alert",
    "score_bins",
)
_DETECTORS = ("adwin", "page_hinkley")
_EXPORTER_KEYS = (
    "listen",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "basic_auth_user",
    "basic_auth_password",
)
_STATE_KEYS = ("changelog_topic", "checkpoint_interval", "checkpoints", "restore_timeout")
_BASELINE_KEYS = (
    "cost_ratio",
    "feature_bins",
    "path",
    "score_bins",
    "threshold_rule",
    "top_categories",
)
#: kafka-python options that tilewatch sets itself, with the reason they may not be overridden.
_CLIENT_RESERVED = {
    "bootstrap_servers": "set [kafka].bootstrap_servers instead",
    "group_id": "set [kafka].group_id instead",
    "auto_offset_reset": "set [kafka].auto_offset_reset instead",
    "max_poll_records": "set [kafka].max_poll_records instead",
    "enable_auto_commit": "tilewatch commits offsets itself",
}
_MAX_DIMENSIONS = 4

_DIMENSION = re.compile(r"[a-z_][a-z0-9_]*")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_TOPIC_EXPECTED = "a topic name of 1 to 249 characters from A-Z a-z 0-9 . _ -"
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_LISTEN_EXPECTED = '"host:port", "[ipv6]:port" or ":port" with a port in 0..65535'


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
        if name not in _SECTIONS:
            where, what = (
                (f"[{_key(name)}]", "section")
                if isinstance(value, Mapping)
                else (_key(name), "top-level key")
            )
            allowed = ", ".join(f"[{section}]" for section in _SECTIONS)
            raise ConfigError(
                f"{source}: {where}: unknown {what}, expected one of the sections {allowed}"
            )
    tables = {name: _section(data, name, source) for name in _SECTIONS}
    cells = _parse_cells(tables["cells"], source)
    baseline = _parse_baseline(tables["baseline"], source)
    kafka = _parse_kafka(tables["kafka"], source)
    events = _parse_events(tables["events"], source, cells.dimensions)
    labels, label_topic = parse_labels(
        tables["labels"],
        source,
        prediction_topics=kafka.topics,
        has_baseline=baseline.path is not None,
        score_range=(events.score_min, events.score_max),
    )
    drift = _parse_drift(tables["drift"], tables["cells"], source, baseline)
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
    )
    return Config(
        kafka=kafka,
        events=events,
        labels=labels,
        label_topic=label_topic,
        cells=cells,
        exporter=_parse_exporter(tables["exporter"], source),
        state=_parse_state(tables["state"], source),
        source=source,
        baseline=baseline,
        hierarchy=hierarchy,
        alerts=alerts,
        **drift,
    )


def _section(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: [{name}]: expected a table, got {_show(value)}")
    return value


def _parse_kafka(data: Mapping[str, Any], source: str) -> KafkaSettings:
    table = _Table(source, "kafka", data, _KAFKA_KEYS)
    defaults = KafkaSettings()
    servers: list[str] = []
    for where, item in table.strings("bootstrap_servers", defaults.bootstrap_servers, "string"):
        parts = item.split(",") if where == "bootstrap_servers" else [item]
        for part in parts:
            address = part.strip()
            if not address or any(char.isspace() for char in address):
                raise table.error(where, '"host:port" addresses separated by commas', item)
            servers.append(address)
    topics: list[str] = []
    for where, topic in table.strings("topics", defaults.topics, "topic name"):
        if _TOPIC.fullmatch(topic) is None or topic in {".", ".."}:
            raise table.error(where, _TOPIC_EXPECTED, topic)
        if topic in topics:
            raise table.error(where, "a topic not listed before", topic)
        topics.append(topic)
    dead_letter: str | None = table.data.get("dead_letter_topic", defaults.dead_letter_topic)
    if dead_letter == "":
        dead_letter = None
    elif not isinstance(dead_letter, str) or _TOPIC.fullmatch(dead_letter) is None:
        raise table.error("dead_letter_topic", f'{_TOPIC_EXPECTED}, or ""', dead_letter)
    elif dead_letter in topics:
        raise table.error("dead_letter_topic", "a topic not in [kafka].topics", dead_letter)
    offset_reset = table.data.get("auto_offset_reset", defaults.auto_offset_reset)
    if offset_reset not in ("earliest", "latest"):
        raise table.error("auto_offset_reset", '"earliest" or "latest"', offset_reset)
    client = table.data.get("client", {})
    if not isinstance(client, Mapping):
        raise table.error("client", "a table of kafka-python options", client)
    return KafkaSettings(
        bootstrap_servers=tuple(servers),
        topics=tuple(topics),
        group_id=table.string("group_id", defaults.group_id),
        dead_letter_topic=dead_letter,
        auto_offset_reset=offset_reset,
        max_poll_records=table.integer("max_poll_records", defaults.max_poll_records, 1),
        poll_timeout_seconds=table.duration(
            "poll_timeout", defaults.poll_timeout_seconds, positive=True
        ),
        commit_interval_seconds=table.duration(
            "commit_interval", defaults.commit_interval_seconds, positive=False
        ),
        client=_parse_client(client, source),
    )


def _parse_client(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    client: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{source}: [kafka.client].{_key(key)}"
        if key in _CLIENT_RESERVED:
            raise ConfigError(
                f"{where}: expected a kafka-python option tilewatch does not set itself, "
                f"got {_show(key)} ({_CLIENT_RESERVED[key]})"
            )
        client[key] = _resolve_env(value, where)
    return client


def _resolve_env(value: Any, where: str) -> Any:
    """Replace every string of the form ``${env:NAME}`` in ``value`` by that variable.

    Error messages name the variable, never the value of any option or variable.
    """
    if isinstance(value, str):
        if not value.startswith("${env:"):
            return value
        match = _ENV.fullmatch(value)
        if match is None:
            raise ConfigError(
                f"{where}: expected a reference like ${{env:NAME}} with NAME made of "
                "A-Z a-z 0-9 _, got a malformed ${env:...} reference"
            )
        name = match[1]
        if name not in os.environ:
            raise ConfigError(
                f"{where}: expected the environment variable {name} to be set, got it unset"
            )
        return os.environ[name]
    if isinstance(value, list):
        return [_resolve_env(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {key: _resolve_env(item, f"{where}.{_key(key)}") for key, item in value.items()}
    return value


def _parse_cells(data: Mapping[str, Any], source: str) -> CellSettings:
    table = _Table(source, "cells", data, _CELL_KEYS)
    defaults = CellSettings()
    names = table.data.get("dimensions", list(defaults.dimensions))
    if not isinstance(names, list | tuple) or len(names) > _MAX_DIMENSIONS:
        raise table.error("dimensions", f"a list of 0 to {_MAX_DIMENSIONS} dimension names", names)
    dimensions: list[str] = []
    for index, name in enumerate(names):
        where = f"dimensions[{index}]"
        if not isinstance(name, str) or _DIMENSION.fullmatch(name) is None:
            raise table.error(where, "a name matching ^[a-z_][a-z0-9_]*$", name)
        if name.startswith("__"):
            raise table.error(where, 'a name not starting with "__"', name)
        if name in _EVENT_KEYS:
            raise table.error(where, "a name other than model and the other [events] keys", name)
        if name in dimensions:
            raise table.error(where, "a name not listed before", name)
        dimensions.append(name)
    return CellSettings(
        dimensions=tuple(dimensions),
        window_seconds=table.duration("window", defaults.window_seconds, positive=True),
        grace_seconds=table.duration("grace", defaults.grace_seconds, positive=False),
        rolling_events=table.integer("rolling_events", defaults.rolling_events, 2),
        max_cells=table.integer("max_cells", defaults.max_cells, 1),
        label_max_length=table.integer("label_max_length", defaults.label_max_length, 10),
    )


def _parse_events(data: Mapping[str, Any], source: str, dimensions: Sequence[str]) -> EventFields:
    table = _Table(source, "events", data, (*_EVENT_KEYS, *dimensions))
    defaults = EventFields()
    paths = {key: table.path(key, getattr(defaults, key)) for key in _EVENT_PATHS}
    score_min = table.number("score_min", defaults.score_min)
    score_max = table.number("score_max", defaults.score_max)
    if score_max <= score_min:
        found = table.data.get("score_max", defaults.score_max)
        raise table.error("score_max", f"a number > score_min ({score_min!r})", found)
    return EventFields(
        **paths,
        dimensions={name: table.path(name, name) for name in dimensions},
        score_min=score_min,
        score_max=score_max,
        max_event_bytes=table.integer("max_event_bytes", defaults.max_event_bytes, 1),
    )


def _parse_drift(
    data: Mapping[str, Any], cells: Mapping[str, Any], source: str, baseline: BaselineSettings
) -> dict[str, Any]:
    table = _Table(source, "drift", data, _DRIFT_KEYS)
    cells_table = _Table(source, "cells", cells, _CELL_KEYS)
    d = DriftSettings()
    features: list[str] = []
    if "features" in table.data:
        value = table.data["features"]
        if not isinstance(value, list) or not all(isinstance(f, str) and f for f in value):
            raise table.error("features", "a list of feature names", value)
        features = list(dict.fromkeys(value))
    detectors: list[str] = list(d.detectors)
    if "detectors" in table.data:
        value = table.data["detectors"]
        if not isinstance(value, list) or not all(v in _DETECTORS for v in value):
            raise table.error("detectors", f"a list of {', '.join(_DETECTORS)}", value)
        detectors = list(dict.fromkeys(value))

    def ratio(key: str, default: float) -> float:
        value = table.number(key, default)
        if not 0.0 < value < 1.0:
            raise table.error(key, "a number between 0 and 1", table.data[key])
        return value

    def positive(key: str, default: float) -> float:
        value = table.number(key, default)
        if value <= 0:
            raise table.error(key, "a number > 0", table.data[key])
        return value

    def nonnegative(key: str, default: float) -> float:
        value = table.number(key, default)
        if value < 0:
            raise table.error(key, "a number >= 0", table.data[key])
        return value

    settings = DriftSettings(
        features=tuple(features),
        max_features=table.integer("max_features", d.max_features, 1),
        min_samples=cells_table.integer("min_samples", d.min_samples, 1),
        fdr_rate=ratio("fdr_rate", d.fdr_rate),
        psi_alert=positive("psi_alert", d.psi_alert),
        missing_alert=ratio("missing_alert", d.missing_alert),
        score_bins=table.integer("score_bins", d.score_bins, 1),
        detectors=tuple(detectors),
        adwin_delta=ratio("adwin_delta", d.adwin_delta),
        ph_threshold=positive("ph_threshold", d.ph_threshold),
        ph_delta=nonnegative("ph_delta", d.ph_delta),
    )
    auto = baseline.path is not None or bool(features)
    enabled = table.data.get("enabled", auto)
    if not isinstance(enabled, bool):
        raise table.error("enabled", "true or false", enabled)
    return {"drift": settings, "drift_enabled": enabled}


def _parse_baseline(data: Mapping[str, Any], source: str) -> BaselineSettings:
    table = _Table(source, "baseline", data, _BASELINE_KEYS)
    defaults = BaselineSettings()
    rule = table.data.get("threshold_rule", defaults.threshold_rule)
    if rule not in THRESHOLD_RULES:
        raise table.error("threshold_rule", '"max_f1", "youden" or "cost"', rule)
    cost_ratio = None
    if "cost_ratio" in table.data:
        cost_ratio = table.number("cost_ratio", 1.0)
        if cost_ratio <= 0:
            raise table.error("cost_ratio", "a number > 0", table.data["cost_ratio"])
    elif rule == "cost":
        raise ConfigError(
            f"{table.where('cost_ratio')}: expected a number > 0 (cost of a false negative / "
            'cost of a false positive) since threshold_rule is "cost", got no key'
        )
    return BaselineSettings(
        path=table.string("path", "-") if "path" in table.data else None,
        score_bins=table.integer("score_bins", defaults.score_bins, 1),
        feature_bins=table.integer("feature_bins", defaults.feature_bins, 1),
        top_categories=table.integer("top_categories", defaults.top_categories, 1),
        threshold_rule=rule,
        cost_ratio=cost_ratio,
    )


def _parse_state(data: Mapping[str, Any], source: str) -> StateSettings:
    table = _Table(source, "state", data, _STATE_KEYS)
    defaults = StateSettings()
    topic = table.data.get("changelog_topic", "")
    if not isinstance(topic, str) or (topic and _TOPIC.fullmatch(topic) is None):
        raise table.error("changelog_topic", 'a Kafka topic name or ""', topic)
    return StateSettings(
        checkpoints=table.boolean("checkpoints", defaults.checkpoints),
        changelog_topic=topic or None,
        checkpoint_interval_seconds=table.duration(
            "checkpoint_interval", defaults.checkpoint_interval_seconds, positive=True
        ),
        restore_timeout_seconds=table.duration(
            "restore_timeout", defaults.restore_timeout_seconds, positive=True
        ),
    )


def _parse_exporter(data: Mapping[str, Any], source: str) -> ExporterSettings:
    table = _Table(source, "exporter", data, _EXPORTER_KEYS)
    defaults = ExporterSettings()
    host, port = defaults.host, defaults.port
    if "listen" in table.data:
        listen = table.data["listen"]
        address = _parse_listen(listen) if isinstance(listen, str) else None
        if address is None:
            raise table.error("listen", _LISTEN_EXPECTED, listen)
        host, port = address[0] or defaults.host, address[1]
    return ExporterSettings(
        host=host, port=port, tls=_parse_exporter_tls(table), basic_auth=_parse_basic_auth(table)
    )


def _parse_exporter_tls(table: _Table) -> TLSFiles | None:
    cert, key, client_ca = (
        _readable_file(table, k) for k in ("tls_cert", "tls_key", "tls_client_ca")
    )
    if (cert is None) != (key is None):
        present, missing = ("tls_cert", "tls_key") if key is None else ("tls_key", "tls_cert")
        raise ConfigError(
            f"{table.where(missing)}: expected a PEM file path since {present} is set, got no key"
        )
    if cert is None or key is None:
        if client_ca is not None:
            raise ConfigError(
                f"{table.where('tls_client_ca')}: expected tls_cert and tls_key to be set too "
                "(client certificates need TLS), got neither"
            )
        return None
    return TLSFiles(cert=cert, key=key, client_ca=client_ca)


def _readable_file(table: _Table, key: str) -> str | None:
    """A path that names a readable file, or ``None`` when ``key`` is absent."""
    if key not in table.data:
        return None
    path = table.data[key]
    if not isinstance(path, str) or not path.strip():
        raise table.error(key, "a path to a PEM file", path)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise table.error(key, f"a readable PEM file ({exc.strerror or exc})", path) from None
    return path


def _parse_basic_auth(table: _Table) -> BasicAuth | None:
    """``basic_auth_user`` and ``basic_auth_password``, both or neither; ``${env:NAME}`` allowed.

    Errors never show the password, nor the value of an environment variable.
    """
    user = _resolve_env(table.data.get("basic_auth_user"), table.where("basic_auth_user"))
    password = _resolve_env(
        table.data.get("basic_auth_password"), table.where("basic_auth_password")
    )
    if user is None and password is None:
        return None
    if user is None:
        raise ConfigError(
            f"{table.where('basic_auth_user')}: expected a user name since "
            "basic_auth_password is set, got no key"
        )
    if not isinstance(user, str) or not user or ":" in user or not user.isprintable():
        raise ConfigError(
            f"{table.where('basic_auth_user')}: expected a non-empty printable user name "
            "without ':', got another value"
        )
    if password is None:
        raise ConfigError(
            f"{table.where('basic_auth_password')}: expected a password (or "
            '"${env:NAME}") since basic_auth_user is set, got no key'
        )
    if not isinstance(password, str) or not password:
        raise ConfigError(
            f"{table.where('basic_auth_password')}: expected a non-empty string, got another value"
        )
    return BasicAuth(user=user, password=password)


def _parse_listen(text: str) -> tuple[str, int] | None:
    """Split ``host:port``, ``[ipv6]:port`` or ``:port``; ``None`` if it is none of them."""
    if text.startswith("["):
        host, bracket, port_text = text[1:].partition("]:")
        if not bracket:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or (host and _HOST.fullmatch(host) is None):
            return None
    if _PORT.fullmatch(port_text) is None or int(port_text) > 65535:
        return None
    return host, int(port_text)
