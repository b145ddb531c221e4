"""``tilewatch check-config``: the config, and every file it refers to, loaded as ``run`` would.

Parsing a config checks its values; the files it names (the baseline, the endpoint's TLS
certificate and key, Kafka's TLS material) are only opened when ``run`` starts. Here each one
is loaded the way ``run`` loads it, so "ok" means ``run`` will not fail on a file.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tilewatch.config import Config
from tilewatch.config.base import ConfigError

__all__ = ["KAFKA_FILES", "check_files"]

#: ``[kafka.client]`` keys that name files kafka-python reads when it connects.
KAFKA_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_crlfile")


def _where(config: Config, key: str) -> str:
    return f"{config.source}: {key}"


def _baseline(config: Config) -> Iterator[str]:
    if config.baseline.path is None:
        return
    from tilewatch.app import build_profile
    from tilewatch.reference_file import load_baseline

    path = config.baseline.path
    try:
        baseline = load_baseline(path)
        if config.drift_enabled:
            build_profile(config)  # the baseline against this config's features and scores
    except Exception as exc:  # BaselineError, or a profile that refuses this baseline
        raise ConfigError(f"{_where(config, '[baseline].path')}: {exc}") from exc
    models = ", ".join(sorted(baseline.models)) or "none"
    yield f"baseline: {Path(path).resolve()} loads (models: {models})"


def _exporter_tls(config: Config) -> Iterator[str]:
    tls = config.exporter.tls
    if tls is None:
        return
    from tilewatch.exporters.prometheus.http import ExporterError, _ssl_context

    try:
        _ssl_context(tls)
    except ExporterError as exc:
        raise ConfigError(f"{_where(config, '[exporter] tls_cert/tls_key')}: {exc}") from exc
    ca = "" if tls.client_ca is None else f", client CA {tls.client_ca}"
    yield f"exporter TLS: certificate {tls.cert} and key {tls.key} load{ca}"


def _kafka_tls(config: Config) -> Iterator[str]:
    client = config.kafka.client
    files = {k: client[k] for k in KAFKA_FILES if client.get(k)}
    if not files:
        return
    for key, path in files.items():
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"{_where(config, f'[kafka.client].{key}')}: cannot read {path!r}: "
                f"{exc.strerror or exc}"
            ) from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if "ssl_cafile" in files:
            context.load_verify_locations(cafile=files["ssl_cafile"])
        if "ssl_certfile" in files:
            context.load_cert_chain(
                files["ssl_certfile"],
                files.get("ssl_keyfile"),
                password=client.get("ssl_password"),
            )
        if "ssl_crlfile" in files:
            context.load_verify_locations(cafile=files["ssl_crlfile"])
    except (ssl.SSLError, ValueError) as exc:
        keys = "/".join(f"[kafka.client].{k}" for k in files)
        raise ConfigError(f"{_where(config, keys)}: cannot load the TLS files: {exc}") from exc
    if "ssl_keyfile" in files and "ssl_certfile" not in files:
        raise ConfigError(
            f"{_where(config, '[kafka.client].ssl_keyfile')}: set ssl_certfile too "
            "(the key is loaded with its certificate)"
        )
    yield "kafka TLS: " + ", ".join(f"{k} {p}" for k, p in files.items()) + " load"


def _kafka_client(config: Config) -> Iterator[str]:
    """With confluent-kafka: the library imports and librdkafka accepts the translated
    options (names, values, TLS files) of the consumer and the producer."""
    if config.kafka.client_library != "confluent":
        return
    from tilewatch.streams.confluent_options import librdkafka_config

    where = _where(config, '[kafka].client_library = "confluent"')
    try:
        import confluent_kafka
    except ImportError as exc:
        raise ConfigError(
            f"{where}: confluent-kafka is not installed (pip install 'tilewatch[confluent]')"
        ) from exc
    quiet = logging.getLogger("tilewatch.check.librdkafka")
    quiet.setLevel(logging.CRITICAL)
    quiet.propagate = False
    for kind, make in (
        ("consumer", confluent_kafka.Consumer),
        ("producer", confluent_kafka.Producer),
    ):
        options = librdkafka_config(config.kafka, kind)
        options["logger"] = quiet  # connection attempts to the brokers are not checked here
        try:
            client: Any = make(options)
        except (confluent_kafka.KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(
                f"{_where(config, '[kafka.client]')}: librdkafka refuses the {kind} "
                f"configuration: {exc}"
            ) from exc
        if kind == "consumer":
            client.close()
        else:
            client.flush(0)
    yield (
        f"kafka client: confluent-kafka {confluent_kafka.__version__} (librdkafka "
        f"{confluent_kafka.libversion()[0]}) accepts the [kafka.client] options"
    )


def check_files(config: Config) -> list[str]:
    """Load every file ``config`` refers to; one line per file group, or a ConfigError naming
    the file, the key and what went wrong."""
    return [*_baseline(config), *_exporter_tls(config), *_kafka_tls(config), *_kafka_client(config)]
