"""Helpers shared by the integration tests: Kafka round trips and a throwaway Prometheus.

Plain functions and one class, imported by the tests (``from tests.helpers import produce``), so
they can also be used outside fixtures, e.g. in a benchmark script.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

__all__ = [
    "PROMETHEUS_BIN",
    "PrometheusServer",
    "consume_all",
    "fast_client_settings",
    "free_port",
    "produce",
    "read_changelog",
]

PROMETHEUS_BIN = "/usr/bin/prometheus"

Header = tuple[str, bytes]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that the OS reported free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def fast_client_settings() -> dict[str, int]:
    """Consumer-group timings that keep Tansu's group join at about 3 s.

    Tansu answers a join after about half of ``session_timeout_ms``; kafka-python needs
    ``heartbeat_interval_ms < session_timeout_ms <= max_poll_interval_ms``.
    """
    return {
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 2000,
        "max_poll_interval_ms": 10000,
    }


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[Sequence[Header] | None] | None = None,
    *,
    timeout: float = 30.0,
    timestamps_ms: Sequence[int] | None = None,
) -> None:
    """Send ``values`` (with matching ``keys`` / ``headers`` / record ``timestamps_ms``) to
    ``topic`` and wait for acks.

    Fails the test if any record is not acknowledged within ``timeout`` seconds.
    """
    if keys is not None and len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys for {len(values)} values")
    if headers is not None and len(headers) != len(values):
        raise ValueError(f"{len(headers)} header lists for {len(values)} values")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = []
        for i, value in enumerate(values):
            record_headers = None if headers is None else headers[i]
            futures.append(
                producer.send(
                    topic,
                    value=value,
                    key=None if keys is None else keys[i],
                    headers=None if record_headers is None else list(record_headers),
                    timestamp_ms=None if timestamps_ms is None else timestamps_ms[i],
                )
            )
        producer.flush(timeout=timeout)
        for future in futures:
            future.get(timeout=timeout)
    finally:
        producer.close(timeout=5)


def consume_all(
    bootstrap: str, topic: str, expected: int, timeout: float = 30.0
) -> list[ConsumerRecord]:
    """Read ``topic`` from the beginning of every partition until ``expected`` records arrived.

    Uses ``assign()`` without a group, so there is no join wait. Records come back in arrival
    order (ordered within each partition). Stops on the record count, never on
    ``end_offsets()``, which Tansu answers too low. Fails the test after ``timeout`` seconds.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        partitions: set[int] | None = None
        while not partitions:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                if time.monotonic() >= deadline:
                    pytest.fail(f"topic {topic!r} has no partitions on {bootstrap}")
                time.sleep(0.05)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        while len(records) < expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(
                    f"consume_all: got {len(records)} of {expected} records from topic "
                    f"{topic!r} on {bootstrap} within {timeout:g} s"
                )
            batches = consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000))
            for batch in batches.values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


def read_changelog(bootstrap: str, topic: str, timeout: float = 30.0) -> list[ConsumerRecord]:
    """Every record of a changelog topic, read without a group up to each partition's high
    watermark as reported by fetch responses (never ``end_offsets()``)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() >= deadline:
                pytest.fail(f"changelog topic {topic!r} has no partitions")
            time.sleep(0.05)
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while True:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            if all(
                (hw := consumer.highwater(tp)) is not None and consumer.position(tp) >= hw
                for tp in tps
            ):
                return records
            if time.monotonic() >= deadline:
                pytest.fail(f"could not read changelog {topic!r} to its end in {timeout:g} s")
    finally:
        consumer.close()


class PrometheusServer:
    """A throwaway Prometheus scraping ``targets`` every second, for integration tests.

    Storage, config and log live in a temporary directory removed by :meth:`stop`. ``port``
    may be chosen up front with :func:`free_port` (e.g. to let Prometheus scrape itself).
    ``blocks`` (TSDB block folders) are loaded from the start.
    ``rule_files`` are copied into the config's ``rule_files`` (evaluated every second; after
    changing them, :meth:`reload`); alerts go to the ``alertmanagers`` (``host:port``).
    Prometheus is ready in ~50 ms, but its target discovery is throttled to 5 s, so the
    first scrape lands about 5 s after start: give :meth:`wait_for` a timeout above that.
    """

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        binary: str = PROMETHEUS_BIN,
        port: int | None = None,
        rule_files: Sequence[str | Path] = (),
        job: str = "tilewatch",
        start_timeout: float = 30.0,
        alertmanagers: Sequence[str] = (),
        blocks: Sequence[str | Path] = (),
    ) -> None:
        self.targets = list(targets)
        #: TSDB block folders copied into the storage before the start (a backfill's output).
        self.blocks = [Path(b) for b in blocks]
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.rule_files = [str(Path(f).resolve()) for f in rule_files]
        self.job = job
        self.start_timeout = start_timeout
        self.alertmanagers = list(alertmanagers)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` where Prometheus listens."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL of the HTTP API and UI."""
        return f"http://{self.address}"

    def config(self) -> dict[str, Any]:
        """The configuration written to ``prometheus.yml`` (JSON is valid YAML)."""
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": self.rule_files,
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": self.targets}]},
            ],
        }
        if self.alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]
            }
        return config

    def reload(self) -> None:
        """Ask Prometheus to re-read its config and rule files (SIGHUP)."""
        if self._process is None or self._process.poll() is not None:
            pytest.fail(f"prometheus is not running:\n{self._log_tail()}")
        self._process.send_signal(signal.SIGHUP)

    def start(self) -> PrometheusServer:
        """Start Prometheus and wait until ``/-/ready`` answers 200."""
        if self._process is not None:
            raise RuntimeError("Prometheus is already started")
        if shutil.which(self.binary) is None:
            pytest.fail(f"{self.binary} not found: run scripts/setup.sh")
        self._tmp = tempfile.TemporaryDirectory(prefix="tilewatch-prometheus-")
        tmp = Path(self._tmp.name)
        (tmp / "prometheus.yml").write_text(json.dumps(self.config(), indent=2))
        for block in self.blocks:
            shutil.copytree(block, tmp / "data" / block.name)
        log_path = self.log_path = tmp / "prometheus.log"
        command = [
            self.binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address={self.address}",
        ]
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                pytest.fail(
                    f"prometheus exited with code {self._process.returncode}:\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"prometheus not ready at {self.url} within {self.start_timeout:g} s:\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self, lines: int = 30) -> str:
        if self.log_path is None:
            return "(no log)"
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Evaluate an instant query (at ``at``, epoch seconds; default now); return the result
        list (``metric`` and ``value`` dicts).

        A scalar or string result is wrapped as ``[{"metric": {}, "value": [t, v]}]``.
        Fails the test when Prometheus rejects the query.
        """
        query = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        params = urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{params}", timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            exc.close()
            pytest.fail(f"prometheus rejected {promql!r}: HTTP {exc.code} {detail}")
        if body.get("status") != "success":
            pytest.fail(f"prometheus query {promql!r} failed: {body}")
        data = body["data"]
        if data["resultType"] in ("vector", "matrix"):
            result: list[dict[str, Any]] = data["result"]
            return result
        return [{"metric": {}, "value": data["result"]}]

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 30.0,
        interval: float = 0.25,
    ) -> list[dict[str, Any]]:
        """Query ``promql`` until ``predicate(result)`` is true; return that result.

        Fails the test with the last result after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                pytest.fail(f"{promql!r} did not match within {timeout:g} s; last result: {result}")
            time.sleep(interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate Prometheus (kill after ``timeout`` s) and remove its directory; idempotent."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def promtool_check_metrics(promtool_bin: str, text: str | bytes) -> tuple[int, str, str]:
    """``promtool check metrics`` on an exposition: (exit code, stdout, stderr); a clean
    exposition gives ``(0, "", "")``."""
    data = text.decode() if isinstance(text, bytes) else text
    done = subprocess.run(
        [promtool_bin, "check", "metrics"],
        input=data,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr
