"""``[kafka] client_library = "confluent"``: the option translation and the config checks."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from tilewatch.cli import main
from tilewatch.config import ConfigError, parse_config
from tilewatch.streams.confluent_options import (
    FETCH_QUEUE,
    REJECTED,
    RESERVED,
    TRANSLATIONS,
    librdkafka_config,
    untranslatable,
)
from tilewatch.streams.settings import KafkaSettings

SECURITY = {
    "security_protocol": "SASL_SSL",
    "ssl_cafile": "/etc/kafka/ca.pem",
    "ssl_certfile": "/etc/kafka/client.pem",
    "ssl_keyfile": "/etc/kafka/client.key",
    "ssl_password": "secret",
    "ssl_crlfile": "/etc/kafka/crl.pem",
    "ssl_ciphers": "ECDHE-RSA-AES256-GCM-SHA384",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "monitor",
    "sasl_plain_password": "hunter2",
    "sasl_kerberos_service_name": "kafka",
}
LIBRDKAFKA_SECURITY = {
    "security.protocol": "SASL_SSL",
    "ssl.ca.location": "/etc/kafka/ca.pem",
    "ssl.certificate.location": "/etc/kafka/client.pem",
    "ssl.key.location": "/etc/kafka/client.key",
    "ssl.key.password": "secret",
    "ssl.crl.location": "/etc/kafka/crl.pem",
    "ssl.cipher.suites": "ECDHE-RSA-AES256-GCM-SHA384",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "monitor",
    "sasl.password": "hunter2",
    "sasl.kerberos.service.name": "kafka",
}


def _settings(**client: Any) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=("k1:9092", "k2:9092"),
        group_id="g",
        client=client,
        client_library="confluent",
    )


@pytest.mark.parametrize("kind", ["consumer", "restore", "producer"])
def test_security_settings_reach_every_client_under_librdkafka_names(kind: str) -> None:
    config = librdkafka_config(_settings(**SECURITY), kind)
    assert {k: config[k] for k in LIBRDKAFKA_SECURITY} == LIBRDKAFKA_SECURITY
    assert not set(SECURITY) & set(config), "a kafka-python name leaked through"


@pytest.mark.parametrize(("check", "algorithm"), [(True, "https"), (False, "none")])
def test_hostname_check_becomes_the_identification_algorithm(check: bool, algorithm: str) -> None:
    config = librdkafka_config(_settings(ssl_check_hostname=check), "consumer")
    assert config["ssl.endpoint.identification.algorithm"] == algorithm


def test_group_timings_reach_the_group_consumer_only() -> None:
    settings = _settings(session_timeout_ms=6000, heartbeat_interval_ms=2000, linger_ms=5)
    consumer = librdkafka_config(settings, "consumer")
    assert (consumer["session.timeout.ms"], consumer["heartbeat.interval.ms"]) == (6000, 2000)
    assert "linger.ms" not in consumer
    restore = librdkafka_config(settings, "restore")
    assert "session.timeout.ms" not in restore and "heartbeat.interval.ms" not in restore
    producer = librdkafka_config(settings, "producer")
    assert producer["linger.ms"] == 5 and "session.timeout.ms" not in producer


def test_what_the_guarantee_rests_on_cannot_be_overridden() -> None:
    consumer = librdkafka_config(_settings(**{"enable.auto.commit": True}), "consumer")
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["group.id"] == "g"
    assert consumer["bootstrap.servers"] == "k1:9092,k2:9092"
    restore = librdkafka_config(_settings(), "restore")
    assert restore["group.id"] != "g", "the restore consumer must not use the group"
    assert restore["enable.auto.commit"] is False


def test_dotted_librdkafka_options_pass_through() -> None:
    config = librdkafka_config(_settings(**{"fetch.wait.max.ms": 50}), "consumer")
    assert config["fetch.wait.max.ms"] == 50


def test_consumers_prefetch_without_the_one_second_queue_backoff() -> None:
    """librdkafka's default backoff (1 s once 100,000 records are queued) halved floor B's
    rate on a backlog: both consumers get tilewatch's prefetch, a dotted option overrides it."""
    assert FETCH_QUEUE["fetch.queue.backoff.ms"] < 100
    for kind in ("consumer", "restore"):
        config = librdkafka_config(_settings(), kind)
        assert {k: config[k] for k in FETCH_QUEUE} == FETCH_QUEUE
    assert not FETCH_QUEUE.keys() & librdkafka_config(_settings(), "producer").keys()
    own = librdkafka_config(_settings(**{"fetch.queue.backoff.ms": 1000}), "consumer")
    assert own["fetch.queue.backoff.ms"] == 1000


def test_producer_units_and_names() -> None:
    config = librdkafka_config(
        _settings(buffer_memory=32 * 1024 * 1024, max_request_size=2_000_000, acks=1),
        "producer",
    )
    assert config["queue.buffering.max.kbytes"] == 32 * 1024
    assert config["message.max.bytes"] == 2_000_000
    assert config["acks"] == "1"


def test_no_key_is_both_translated_and_rejected() -> None:
    assert all(t.name and "_" not in t.name for t in TRANSLATIONS.values())
    assert not set(TRANSLATIONS) & set(REJECTED)
    assert all(untranslatable(key) is not None for key in [*REJECTED, *RESERVED])


def _load(client: Any, **kafka: Any) -> KafkaSettings:
    return parse_config({"kafka": {"client": client, **kafka}}, "tw.toml").kafka


def test_config_selects_the_library_beside_a_client_table() -> None:
    kafka = _load({"ssl_cafile": "/ca.pem"}, client_library="confluent")
    assert kafka.client_library == "confluent"
    assert kafka.client == {"ssl_cafile": "/ca.pem"}


def test_config_client_string_selects_the_library() -> None:
    assert _load("confluent").client_library == "confluent"
    assert _load("kafka-python").client_library == "kafka-python"
    assert parse_config({}, "tw.toml").kafka.client_library == "kafka-python"


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        (
            {"client": {"ssl_context": "x"}, "client_library": "confluent"},
            "tw.toml: [kafka.client].ssl_context: expected a kafka-python option with a "
            'librdkafka equivalent, or a librdkafka option (client_library = "confluent"), got '
            '"ssl_context" (librdkafka cannot take a Python SSLContext: use ssl_cafile, '
            "ssl_certfile, ssl_keyfile and ssl_password (or librdkafka's ssl.* options))",
        ),
        (
            {"client": {"sasl_kerberos_domain_name": "x"}, "client_library": "confluent"},
            "[kafka.client].sasl_kerberos_domain_name: expected a kafka-python option",
        ),
        (
            {"client": {"group.id": "x"}, "client_library": "confluent"},
            '"group.id" (set [kafka].group_id instead)',
        ),
        (
            {"client": {"not_an_option": 1}, "client_library": "confluent"},
            '"not_an_option" (not a kafka-python option tilewatch can translate',
        ),
        (
            {"client_library": "librdkafka"},
            '[kafka].client_library: expected "kafka-python" or "confluent", got "librdkafka"',
        ),
        (
            {"client": "confluent", "client_library": "kafka-python"},
            '[kafka].client: expected "kafka-python" as in [kafka].client_library, got "confluent"',
        ),
    ],
)
def test_config_errors_name_the_option(kafka: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"kafka": kafka}, "tw.toml")
    assert message in str(info.value)


def test_kafka_python_keeps_accepting_its_own_options() -> None:
    kafka = _load({"ssl_context": "x"})
    assert kafka.client_library == "kafka-python" and kafka.client == {"ssl_context": "x"}


def _check(tmp_path: Path, client: str) -> tuple[int, str, str]:
    path = tmp_path / "tilewatch.toml"
    path.write_text(
        '[kafka]\nbootstrap_servers = "127.0.0.1:9"\nclient_library = "confluent"\n'
        f"[kafka.client]\n{client}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", "--config", str(path)])
    return code, out.getvalue(), err.getvalue()


def test_check_config_has_librdkafka_accept_the_translated_options(tmp_path: Path) -> None:
    code, out, _ = _check(tmp_path, '"fetch.wait.max.ms" = 50\nsession_timeout_ms = 6000')
    assert code == 0
    assert "kafka client: confluent-kafka " in out and "accepts the [kafka.client] options" in out


def test_check_config_reports_an_option_librdkafka_refuses(tmp_path: Path) -> None:
    code, _, err = _check(tmp_path, '"fetch.wait.max.msx" = 50')
    assert code == 2
    assert "[kafka.client]: librdkafka refuses the consumer configuration" in err
    assert "fetch.wait.max.msx" in err
