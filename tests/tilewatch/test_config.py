"""Tests of the TOML config schema (tilewatch.config.loader)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.drift.profile import DriftSettings
from tilewatch.aggregators.errors import TilewatchError
from tilewatch.config import Config, ConfigError, load_config, parse_config, parse_duration
from tilewatch.config.hierarchy import parse_hierarchy
from tilewatch.exporters.prometheus.settings import ExporterSettings
from tilewatch.streams.settings import EventFields, KafkaSettings, StateSettings

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "tilewatch.toml"


def error_of(data: dict[str, Any]) -> str:
    """The message of the ConfigError that parsing ``data`` raises."""
    with pytest.raises(ConfigError) as info:
        parse_config(data, SOURCE)
    return str(info.value)


def write(tmp_path: Path, text: str, name: str = "tilewatch.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("0ms", 0.0),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        (" 2m ", 120.0),
        (30, 30.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["soon", "", "1", "1 m", "1M", "1m30s", "-1s", "s", "1.s", ".5s", "1e3s", "1w", "1sec"],
)
def test_parse_duration_rejects_strings(text: str) -> None:
    with pytest.raises(ConfigError, match=r'^expected a duration like "1m", got "'):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, 'expected a duration like "1m", got true'),
        ([1], 'expected a duration like "1m", got [1]'),
        (-1, "expected a finite duration >= 0, got -1"),
        (float("inf"), "expected a finite duration >= 0, got inf"),
        (float("nan"), "expected a finite duration >= 0, got nan"),
    ],
)
def test_parse_duration_rejects_values(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value)
    assert str(info.value) == message


def test_config_error_is_a_tilewatch_error() -> None:
    assert issubclass(ConfigError, TilewatchError)


# --- whole configs ---------------------------------------------------------------------------


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, '[kafka]\nbootstrap_servers = "h:9092"\ntopics = ["p"]\n')
    config = load_config(path)
    assert config == Config(
        kafka=KafkaSettings(bootstrap_servers=("h:9092",), topics=("p",)),
        events=EventFields(),
        cells=CellSettings(),
        exporter=ExporterSettings(),
        state=StateSettings(),
        source=str(path),
        hierarchy=parse_hierarchy(
            {},
            str(path),
            cells=CellSettings(),
            drift=DriftSettings(),
            drift_enabled=False,
            has_baseline=False,
        )[0],
    )


@pytest.mark.parametrize("text", ["", "# nothing\n", "[kafka]\n[events]\n[cells]\n[exporter]\n"])
def test_empty_config_is_all_defaults(tmp_path: Path, text: str) -> None:
    config = load_config(write(tmp_path, text))
    assert (config.kafka, config.events, config.cells, config.exporter, config.state) == (
        KafkaSettings(),
        EventFields(),
        CellSettings(),
        ExporterSettings(),
        StateSettings(),
    )


def test_parse_config_source_defaults_to_string() -> None:
    assert parse_config({}).source == "<string>"


def test_example_file_loads_and_holds_the_defaults() -> None:
    path = ROOT / "examples" / "tilewatch.toml"
    config = load_config(path)
    assert config.source == str(path)
    assert (config.kafka, config.events, config.cells, config.exporter, config.state) == (
        KafkaSettings(),
        EventFields(),
        CellSettings(),
        ExporterSettings(),
        StateSettings(),
    )


def toml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", markdown, flags=re.DOTALL)


def test_docs_examples_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASSWORD", "hunter2")
    blocks = toml_blocks((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"))
    assert len(blocks) == 2
    minimal, full = (parse_config(tomllib.loads(block)) for block in blocks)
    assert minimal.kafka.bootstrap_servers == ("kafka-1:9092", "kafka-2:9092")
    assert full.events.dimensions == {"segment": "segment", "region": "meta.region"}
    assert full.kafka.client["sasl_plain_password"] == "hunter2"


def test_full_config_values() -> None:
    config = parse_config(
        {
            "kafka": {
                "bootstrap_servers": " a:1 , b:2 ",
                "topics": "events",
                "group_id": "g",
                "dead_letter_topic": "",
                "auto_offset_reset": "latest",
                "max_poll_records": 1,
                "poll_timeout": 2,
                "commit_interval": "0s",
                "client": {"security_protocol": "SSL", "session_timeout_ms": 10_000},
            },
            "events": {"score_min": -1, "score_max": 1, "latency": "timing.ms"},
            "cells": {
                "dimensions": [],
                "window": "5m",
                "grace": 0,
                "rolling_events": 2,
                "max_cells": 1,
                "label_max_length": 10,
            },
            "exporter": {"listen": "127.0.0.1:0"},
        },
        SOURCE,
    )
    assert config.kafka == KafkaSettings(
        bootstrap_servers=("a:1", "b:2"),
        topics=("events",),
        group_id="g",
        dead_letter_topic=None,
        auto_offset_reset="latest",
        max_poll_records=1,
        poll_timeout_seconds=2.0,
        commit_interval_seconds=0.0,
        client={"security_protocol": "SSL", "session_timeout_ms": 10_000},
    )
    assert config.events == EventFields(
        latency="timing.ms", dimensions={}, score_min=-1.0, score_max=1.0
    )
    assert isinstance(config.events.score_min, float)
    assert config.cells == CellSettings(
        dimensions=(),
        window_seconds=300.0,
        grace_seconds=0.0,
        rolling_events=2,
        max_cells=1,
        label_max_length=10,
    )
    assert config.exporter == ExporterSettings(host="127.0.0.1", port=0)


def test_bootstrap_servers_list() -> None:
    config = parse_config({"kafka": {"bootstrap_servers": ["a:1", "b:2"], "topics": ["x", "y"]}})
    assert config.kafka.bootstrap_servers == ("a:1", "b:2")
    assert config.kafka.topics == ("x", "y")


# --- dimensions and their paths --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "events", "expected"),
    [
        ({}, {}, {"segment": "segment", "region": "region"}),
        ({}, {"region": "meta.region"}, {"segment": "segment", "region": "meta.region"}),
        (
            {"dimensions": ["region", "country", "tier_2"]},
            {"country": "geo.country.code"},
            {"region": "region", "country": "geo.country.code", "tier_2": "tier_2"},
        ),
        ({"dimensions": []}, {}, {}),
        ({"dimensions": ["_a", "b", "c", "d"]}, {}, {"_a": "_a", "b": "b", "c": "c", "d": "d"}),
    ],
)
def test_dimension_paths(
    cells: dict[str, Any], events: dict[str, Any], expected: dict[str, str]
) -> None:
    config = parse_config({"cells": cells, "events": events})
    assert config.events.dimensions == expected
    assert list(config.events.dimensions) == list(config.cells.dimensions)


def test_dimension_path_of_unconfigured_dimension_is_unknown() -> None:
    message = error_of({"cells": {"dimensions": ["segment"]}, "events": {"region": "r"}})
    assert message.startswith(f"{SOURCE}: [events].region: unknown key, expected one of ")
    assert "segment" in message


# --- error messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"cells": {"window": "soon"}},
            '[cells].window: expected a duration like "1m", got "soon"',
        ),
        ({"cells": {"window": "0s"}}, '[cells].window: expected a duration > 0, got "0s"'),
        ({"cells": {"grace": -5}}, "[cells].grace: expected a finite duration >= 0, got -5"),
        ({"kafka": {"poll_timeout": 0}}, "[kafka].poll_timeout: expected a duration > 0, got 0"),
        (
            {"kafka": {"commit_interval": "1m30s"}},
            '[kafka].commit_interval: expected a duration like "1m", got "1m30s"',
        ),
        (
            {"cells": {"rolling_events": 1}},
            "[cells].rolling_events: expected an integer >= 2, got 1",
        ),
        (
            {"cells": {"label_max_length": 7.5}},
            "[cells].label_max_length: expected an integer >= 10, got 7.5",
        ),
        ({"cells": {"max_cells": "10"}}, '[cells].max_cells: expected an integer >= 1, got "10"'),
        (
            {"cells": {"dimensions": "region"}},
            '[cells].dimensions: expected a list of 0 to 4 dimension names, got "region"',
        ),
        (
            {"cells": {"dimensions": ["a", "b", "c", "d", "e"]}},
            "[cells].dimensions: expected a list of 0 to 4 dimension names, "
            'got ["a", "b", "c", "d", "e"]',
        ),
        (
            {"cells": {"dimensions": ["region", "Segment"]}},
            '[cells].dimensions[1]: expected a name matching ^[a-z_][a-z0-9_]*$, got "Segment"',
        ),
        (
            {"cells": {"dimensions": [1]}},
            "[cells].dimensions[0]: expected a name matching ^[a-z_][a-z0-9_]*$, got 1",
        ),
        (
            {"cells": {"dimensions": ["__all"]}},
            '[cells].dimensions[0]: expected a name not starting with "__", got "__all"',
        ),
        (
            {"cells": {"dimensions": ["model"]}},
            "[cells].dimensions[0]: expected a name other than model and the other "
            '[events] keys, got "model"',
        ),
        (
            {"cells": {"dimensions": ["a", "a"]}},
            '[cells].dimensions[1]: expected a name not listed before, got "a"',
        ),
        (
            {"events": {"score": ""}},
            "[events].score: expected a JSON path of dot-separated non-empty parts like "
            '"meta.region", got ""',
        ),
        (
            {"events": {"region": "meta..region"}},
            "[events].region: expected a JSON path of dot-separated non-empty parts like "
            '"meta.region", got "meta..region"',
        ),
        (
            {"events": {"timestamp": ["ts"]}},
            "[events].timestamp: expected a JSON path of dot-separated non-empty parts like "
            '"meta.region", got ["ts"]',
        ),
        (
            {"events": {"score_min": 1, "score_max": 0.5}},
            "[events].score_max: expected a number > score_min (1.0), got 0.5",
        ),
        (
            {"events": {"score_min": 1.0}},
            "[events].score_max: expected a number > score_min (1.0), got 1.0",
        ),
        (
            {"events": {"score_max": float("inf")}},
            "[events].score_max: expected a finite number, got inf",
        ),
        (
            {"events": {"max_event_bytes": 0}},
            "[events].max_event_bytes: expected an integer >= 1, got 0",
        ),
        (
            {"kafka": {"topics": []}},
            "[kafka].topics: expected a topic name or a non-empty list of them, got []",
        ),
        (
            {"kafka": {"topics": ["a", 2]}},
            "[kafka].topics[1]: expected a topic name, got 2",
        ),
        (
            {"kafka": {"topics": ["a", "b c"]}},
            "[kafka].topics[1]: expected a topic name of 1 to 249 characters from "
            'A-Z a-z 0-9 . _ -, got "b c"',
        ),
        (
            {"kafka": {"topics": ["a", "a"]}},
            '[kafka].topics[1]: expected a topic not listed before, got "a"',
        ),
        (
            {"kafka": {"bootstrap_servers": "a:1,,b:2"}},
            '[kafka].bootstrap_servers: expected "host:port" addresses separated by commas, '
            'got "a:1,,b:2"',
        ),
        (
            {"kafka": {"bootstrap_servers": ["a:1", ""]}},
            '[kafka].bootstrap_servers[1]: expected "host:port" addresses separated by '
            'commas, got ""',
        ),
        (
            {"kafka": {"group_id": " "}},
            '[kafka].group_id: expected a non-empty string, got " "',
        ),
        (
            {"kafka": {"auto_offset_reset": "newest"}},
            '[kafka].auto_offset_reset: expected "earliest" or "latest", got "newest"',
        ),
        (
            {"kafka": {"dead_letter_topic": False}},
            "[kafka].dead_letter_topic: expected a topic name of 1 to 249 characters from "
            'A-Z a-z 0-9 . _ -, or "", got false',
        ),
        (
            {"kafka": {"topics": "p", "dead_letter_topic": "p"}},
            '[kafka].dead_letter_topic: expected a topic not in [kafka].topics, got "p"',
        ),
        (
            {"kafka": {"client": "SSL"}},
            '[kafka].client: expected a table of kafka-python options, "kafka-python" or '
            '"confluent", got "SSL"',
        ),
        (
            {"kafka": {"client": {"group_id": "x"}}},
            "[kafka.client].group_id: expected a kafka-python option tilewatch does not set "
            'itself, got "group_id" (set [kafka].group_id instead)',
        ),
        (
            {"kafka": {"client": {"enable_auto_commit": True}}},
            "[kafka.client].enable_auto_commit: expected a kafka-python option tilewatch "
            'does not set itself, got "enable_auto_commit" (tilewatch commits offsets itself)',
        ),
        (
            {"kafka": 1},
            "[kafka]: expected a table, got 1",
        ),
    ],
)
def test_error_messages(data: dict[str, Any], message: str) -> None:
    assert error_of(data) == f"{SOURCE}: {message}"


def test_window_error_matches_the_conventions_example() -> None:
    message = error_of({"cells": {"window": "soon"}})
    assert message == 'tilewatch.toml: [cells].window: expected a duration like "1m", got "soon"'


def test_error_names_the_source_path_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, '[cells]\nwindow = "soon"\n', name="my.toml")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f'{path}: [cells].window: expected a duration like "1m", got "soon"'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"cells": {"windw": "1m"}},
            "[cells].windw: unknown key, expected one of dimensions, grace, label_max_length, "
            "max_cells, min_samples, rolling_events, window",
        ),
        (
            {"exporter": {"port": 9464}},
            "[exporter].port: unknown key, expected one of basic_auth_password, basic_auth_user, "
            "listen, max_exported_cells, tls_cert, tls_client_ca, tls_key",
        ),
        (
            {"cells": {"extra": {"a": 1}}},
            "[cells].extra: unknown key, expected one of dimensions, grace, label_max_length, "
            "max_cells, min_samples, rolling_events, window",
        ),
        (
            {"kafka": {"poll_timeout_seconds": 1}},
            "[kafka].poll_timeout_seconds: unknown key, expected one of auto_offset_reset, "
            "bootstrap_servers, client, client_library, commit_interval, dead_letter_topic, "
            "group_id, max_poll_records, poll_timeout, record_parser, topics",
        ),
        (
            {"events": {"a b": "x"}},
            '[events]."a b": unknown key, expected one of attributions, class_thresholds, classes, '
            "embedding, event_id, features, label, latency, max_classes, max_event_bytes, model, "
            "model_version, prediction, region, score, score_max, score_min, scores, segment, "
            "timestamp",
        ),
        (
            {"kafak": {}},
            "[kafak]: unknown section, expected one of the sections [baseline], [cells], "
            "[drift], [events], [exporter], [forecast], [hierarchy], [kafka], [labeling], "
            "[labels], [state]",
        ),
        (
            {"window": "1m"},
            "window: unknown top-level key, expected one of the sections [baseline], [cells], "
            "[drift], [events], [exporter], [forecast], [hierarchy], [kafka], [labeling], "
            "[labels], [state]",
        ),
    ],
)
def test_unknown_keys_and_sections(data: dict[str, Any], message: str) -> None:
    assert error_of(data) == f"{SOURCE}: {message}"


def test_kafka_client_keys_are_free() -> None:
    client = {"ssl_check_hostname": False, "api_version": [2, 8], "anything_else": {"x": 1}}
    assert parse_config({"kafka": {"client": client}}).kafka.client == client


def test_kafka_record_parser() -> None:
    assert parse_config({}).kafka.record_parser == "tilewatch"
    parsed = parse_config({"kafka": {"record_parser": "kafka-python"}})
    assert parsed.kafka.record_parser == "kafka-python"
    assert error_of({"kafka": {"record_parser": "fast"}}) == (
        f'{SOURCE}: [kafka].record_parser: expected "tilewatch" or "kafka-python", got "fast"'
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("kafka", "max_poll_records"),
        ("events", "max_event_bytes"),
        ("events", "score_min"),
        ("cells", "rolling_events"),
        ("cells", "max_cells"),
        ("cells", "label_max_length"),
        ("cells", "window"),
        ("kafka", "poll_timeout"),
    ],
)
def test_booleans_are_not_numbers(section: str, key: str) -> None:
    message = error_of({section: {key: True}})
    assert message.startswith(f"{SOURCE}: [{section}].{key}: expected ")
    assert message.endswith(", got true")


# --- environment variables in [kafka.client] -------------------------------------------------


def test_env_var_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_TEST_PASSWORD", "s3cret-value")
    monkeypatch.setenv("TW_TEST_USER", "svc")
    config = parse_config(
        {
            "kafka": {
                "client": {
                    "sasl_plain_password": "${env:TW_TEST_PASSWORD}",
                    "sasl_plain_username": "${env:TW_TEST_USER}",
                    "nested": ["${env:TW_TEST_USER}", {"deep": "${env:TW_TEST_USER}"}],
                    "not_a_reference": "prefix ${env:TW_TEST_USER}",
                    "security_protocol": "SASL_SSL",
                }
            }
        }
    )
    assert config.kafka.client == {
        "sasl_plain_password": "s3cret-value",
        "sasl_plain_username": "svc",
        "nested": ["svc", {"deep": "svc"}],
        "not_a_reference": "prefix ${env:TW_TEST_USER}",
        "security_protocol": "SASL_SSL",
    }


def test_missing_env_var_error_names_key_and_variable_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TW_TEST_MISSING", raising=False)
    monkeypatch.setenv("TW_TEST_PRESENT", "other-secret")
    path = write(
        tmp_path,
        "[kafka.client]\n"
        'sasl_plain_username = "${env:TW_TEST_PRESENT}"\n'
        'ssl_password = "literal-secret"\n'
        'sasl_plain_password = "${env:TW_TEST_MISSING}"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message == (
        f"{path}: [kafka.client].sasl_plain_password: expected the environment variable "
        "TW_TEST_MISSING to be set, got it unset"
    )
    assert "other-secret" not in message
    assert "literal-secret" not in message


def test_missing_env_var_in_a_list_names_the_item(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TW_TEST_MISSING", raising=False)
    message = error_of({"kafka": {"client": {"opts": ["a", "${env:TW_TEST_MISSING}"]}}})
    assert message.startswith(f"{SOURCE}: [kafka.client].opts[1]: expected the environment ")


@pytest.mark.parametrize("value", ["${env:}", "${env:BAD-NAME}", "${env:1X}", "${env:X"])
def test_malformed_env_reference(value: str) -> None:
    message = error_of({"kafka": {"client": {"sasl_plain_password": value}}})
    assert message.startswith(f"{SOURCE}: [kafka.client].sasl_plain_password: expected ")
    assert value not in message


# --- [exporter].listen -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("0.0.0.0:9464", "0.0.0.0", 9464),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("localhost:65535", "localhost", 65535),
        ("metrics.example.com:80", "metrics.example.com", 80),
        (":9464", "0.0.0.0", 9464),
        ("[::1]:9464", "::1", 9464),
        ("[::]:1", "::", 1),
        ("[fe80::1%eth0]:9464", "fe80::1%eth0", 9464),
    ],
)
def test_listen(listen: str, host: str, port: int) -> None:
    exporter = parse_config({"exporter": {"listen": listen}}).exporter
    assert exporter == ExporterSettings(host=host, port=port)


@pytest.mark.parametrize(
    ("listen", "found"),
    [
        ("9464", '"9464"'),
        ("host", '"host"'),
        ("host:", '"host:"'),
        ("host:65536", '"host:65536"'),
        ("host:-1", '"host:-1"'),
        ("host:http", '"host:http"'),
        ("::1:9464", '"::1:9464"'),
        ("[::1]9464", '"[::1]9464"'),
        ("[not-ipv6]:9464", '"[not-ipv6]:9464"'),
        ("[]:9464", '"[]:9464"'),
        ("bad host:1", '"bad host:1"'),
        ("", '""'),
        (9464, "9464"),
    ],
)
def test_listen_errors(listen: Any, found: str) -> None:
    assert error_of({"exporter": {"listen": listen}}) == (
        f'{SOURCE}: [exporter].listen: expected "host:port", "[ipv6]:port" or ":port" '
        f"with a port in 0..65535, got {found}"
    )


# --- reading files ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read the config file: No such file or directory"
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the config file"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    "text", ["[kafka\n", "[kafka]\ntopics = \n", 'a = "unterminated\n', "[cells]\n[cells]\n"]
)
def test_invalid_toml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: invalid TOML: ")
    assert isinstance(info.value.__cause__, tomllib.TOMLDecodeError)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[kafka]\ngroup_id = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"invalid TOML: not UTF-8 at byte 23$"):
        load_config(path)


def test_parse_config_rejects_non_tables() -> None:
    with pytest.raises(ConfigError, match=r"^<string>: expected a table of sections, got \[\]$"):
        parse_config([])  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    config = parse_config({})
    with pytest.raises(AttributeError):
        config.source = "x"  # type: ignore[misc]


def test_state_section(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[state]\ncheckpoints = false\nchangelog_topic = "cl"\n'
            'checkpoint_interval = "2s"\nrestore_timeout = "5s"\n',
        )
    )
    assert config.state == StateSettings(
        checkpoints=False,
        changelog_topic="cl",
        checkpoint_interval_seconds=2.0,
        restore_timeout_seconds=5.0,
    )
    assert config.state.topic_for("g") == "cl"
    assert StateSettings().topic_for("g") == "g-tilewatch-changelog"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checkpoints = 1", "[state].checkpoints: expected true or false, got 1"),
        ('changelog_topic = "a b"', '[state].changelog_topic: expected a Kafka topic name or ""'),
        ('checkpoint_interval = "0s"', "[state].checkpoint_interval: expected a duration > 0"),
        ("wat = 1", "[state].wat: unknown key"),
    ],
)
def test_state_section_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, f"[state]\n{text}\n"))


def test_embedding_and_attribution_paths_are_read_from_events(tmp_path: Any) -> None:
    from tilewatch.config import load_config

    path = tmp_path / "t.toml"
    path.write_text('[events]\nembedding = "vec.emb"\nattributions = "shap"\n')
    events = load_config(str(path)).events
    assert (events.embedding, events.attributions) == ("vec.emb", "shap")
    path.write_text("[events]\n")
    events = load_config(str(path)).events
    assert (events.embedding, events.attributions) == (None, None)
