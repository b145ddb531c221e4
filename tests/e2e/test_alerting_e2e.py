"""Alerting end to end, all real: embedded broker -> ``tilewatch run`` -> Prometheus (1 s scrape
and evaluation, the GENERATED rules) -> Alertmanager (the GENERATED config) -> a webhook
receiver inside the test.

Two models, traffic stamped with the current time, 2 s windows. Exactly one (segment, region)
cell, (s1, us), degrades in both models (its scores jump from about 0.2 to 0.9):

- alpha has 12 cells: the degraded cell's ``quality`` component turns red (a warning, routed to
  the ticket receiver, labelled with the cell) and 1/12 of the traffic is red (business amber);
- beta has 2 cells: half of its traffic is red, a business page (critical, to the pager, whose
  ``driver`` annotation names the degraded cell), which inhibits beta's component warnings.

Recovery sends the resolved notifications; no notification ever names a clean cell; stopping
the monitor pages ``TilewatchMonitorDown``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from tests.e2e.support.process import TilewatchProcess
from tests.e2e.support.scrape import value
from tests.helpers import PrometheusServer, free_port
from tilewatch.config import load_config
from tilewatch.exporters.generator_inputs import RUNBOOK_BASE_URL
from tilewatch.generate import ALERTMANAGER_PATH, GENERATORS, RULES_PATH, generator_inputs

pytestmark = [pytest.mark.broker, pytest.mark.prometheus, pytest.mark.timeout(240)]

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
CELLS = [("alpha", s, r) for s in ("s0", "s1", "s2", "s3") for r in ("eu", "us", "ap")] + [
    ("beta", "s0", "us"),
    ("beta", "s1", "us"),
]
#: The one (segment, region) cell that degrades, in both models.
DEGRADED = {("alpha", "s1", "us"), ("beta", "s1", "us")}
#: Bounds, in seconds, for each expected notification (window 2 s, for: 2-4 s, 1 s scrapes).
ALERT_WITHIN = 45.0


# -- the webhook receiver --------------------------------------------------------------------


@dataclass
class Notification:
    """One alert of one webhook post, with when it arrived and on which receiver path."""

    path: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    at: float


@dataclass
class Webhook:
    """An HTTP server that records Alertmanager's webhook posts."""

    notifications: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = field(default_factory=free_port)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def serve(self) -> ThreadingHTTPServer:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.monotonic()
                with hook.lock:
                    for alert in body["alerts"]:
                        hook.notifications.append(
                            Notification(
                                self.path.strip("/"),
                                alert["status"],
                                alert["labels"],
                                alert["annotations"],
                                now,
                            )
                        )
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def snapshot(self) -> list[Notification]:
        with self.lock:
            return list(self.notifications)

    def wait_for(
        self, what: str, match: Callable[[Notification], bool], timeout: float
    ) -> Notification:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.snapshot():
                if match(n):
                    return n
            time.sleep(0.1)
        shown = "\n".join(f"  {n.path} {n.status} {n.labels}" for n in self.snapshot())
        pytest.fail(f"no notification {what} within {timeout:g} s; received:\n{shown}")


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    server = hook.serve()
    yield hook
    server.shutdown()
    server.server_close()


# -- Alertmanager --------------------------------------------------------------------------


class Alertmanager:
    """``prometheus-alertmanager`` on a loopback port with its own storage, gossip off."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._tmp = tempfile.TemporaryDirectory(prefix="tilewatch-alertmanager-")
        self.log = Path(self._tmp.name) / "alertmanager.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    ALERTMANAGER_BIN,
                    f"--config.file={config}",
                    f"--storage.path={self._tmp.name}",
                    f"--web.listen-address={self.address}",
                    "--cluster.listen-address=",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"alertmanager exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://{self.address}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"alertmanager not ready:\n{self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._tmp.cleanup()


# -- traffic ---------------------------------------------------------------------------------


class Traffic:
    """Events for every cell, stamped now, 5 per cell every 0.2 s; ``degraded`` switches the
    DEGRADED cells' scores to about 0.9."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks=1)
        self.topic = topic
        self.degraded = threading.Event()
        self.stop = threading.Event()
        self.rng = np.random.default_rng(5)
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            for cell in CELLS:
                bad = self.degraded.is_set() and cell in DEGRADED
                for score in self._scores(bad):
                    model, segment, region = cell
                    event = {
                        "event_id": f"e{self.sent}",
                        "model": model,
                        "segment": segment,
                        "region": region,
                        "score": score,
                        "timestamp": now,
                    }
                    self.producer.send(
                        self.topic, json.dumps(event).encode(), key="|".join(cell).encode()
                    )
                    self.sent += 1
            self.producer.flush(timeout=10)
            self.stop.wait(0.2)

    def _scores(self, bad: bool) -> list[float]:
        low, high = (0.85, 0.95) if bad else (0.05, 0.35)
        return self.rng.uniform(low, high, 5).tolist()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.producer.close(timeout=5)


# -- the test ------------------------------------------------------------------------------


HIERARCHY = """
[hierarchy.metrics.score_mean]
metric = "tilewatch_window_score_mean"
amber = 0.5
red = 0.7
min_samples = 5

[hierarchy.components.quality]
members = ["score_mean"]

[hierarchy.indicators.red_traffic_share]
amber = 0.05
red = 0.3

[hierarchy.alerts]
job = "tilewatch"
for_critical = "2s"
for_warning = "4s"
for_info = "30s"
rate_window = "3s"
silent_lookback = "1m"
pager_url = "{pager}"
ticket_url = "{ticket}"
info_url = "{info}"
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"
"""


def _rules_loaded(prom: PrometheusServer) -> bool:
    with urllib.request.urlopen(f"{prom.url}/api/v1/rules", timeout=5) as resp:
        groups = json.load(resp)["data"]["groups"]
    return {g["name"] for g in groups} == {"tilewatch.recording", "tilewatch.alerts"}


def _cell(n: Notification) -> tuple[str, str, str] | None:
    if "segment" not in n.labels:
        return None
    return (n.labels["model"], n.labels["segment"], n.labels["region"])


def test_degraded_cell_pages_and_tickets_then_resolves_and_a_stopped_monitor_pages(
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    broker: Any,
    webhook: Webhook,
    tmp_path: Path,
    prometheus_bin: str,
) -> None:
    if shutil.which(ALERTMANAGER_BIN) is None:
        pytest.fail(f"{ALERTMANAGER_BIN} not found: run scripts/setup.sh")
    topic = make_topic(partitions=2)
    path = tilewatch_config(
        topic,
        kafka={"dead_letter_topic": ""},
        cells={"window": "2s", "grace": "500ms"},
        state={"checkpoints": False},
    )
    hooks = {name: webhook.url(name) for name in ("pager", "ticket", "info")}
    path.write_text(path.read_text() + HIERARCHY.format(**hooks))
    config = load_config(path)
    # the same generators as the checked-in files
    inputs = generator_inputs(config)
    files = {**GENERATORS["rules"](inputs), **GENERATORS["alertmanager"](inputs)}
    rules = tmp_path / "tilewatch.rules.yml"
    rules.write_text("groups: []\n")
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(files[ALERTMANAGER_PATH])

    traffic = Traffic(broker.bootstrap, topic)
    alertmanager = Alertmanager(am_config)
    prometheus: PrometheusServer | None = None
    try:
        monitor = start_tilewatch(path)
        monitor.wait_until(
            "Kafka up and every cell reported",
            lambda m: (
                value(m, "tilewatch_kafka_up") == 1
                and all(
                    value(m, "tilewatch_window_events", model=c[0], segment=c[1], region=c[2])
                    for c in CELLS
                )
            ),
        )
        target = monitor.url.removeprefix("http://").removesuffix("/metrics")
        prometheus = PrometheusServer(
            [target], rule_files=[rules], alertmanagers=[alertmanager.address]
        ).start()
        # Load the rules only once the first scrape landed: until then `up` does not exist
        # and TilewatchMonitorAbsent would (rightly) page with a 2 s for:.
        prometheus.wait_for('up{job="tilewatch"}', lambda r: len(r) == 1, timeout=30)
        rules.write_text(files[RULES_PATH])
        prometheus.reload()
        deadline = time.monotonic() + 20
        while not _rules_loaded(prometheus):
            assert time.monotonic() < deadline, "Prometheus did not load the generated rules"
            time.sleep(0.2)

        # Clean traffic: every leaf cell has a green verdict, and nothing is notified.
        prometheus.wait_for(
            'count(cell:tilewatch_component_status:max{segment!="__all__",region!="__all__"} == 0)',
            lambda r: bool(r) and float(r[0]["value"][1]) == len(CELLS),
            timeout=30,
        )
        time.sleep(config.alerts.for_warning + 3)
        assert webhook.snapshot() == [], "clean traffic raised alerts"

        # Degrade one cell per model.
        traffic.degraded.set()
        started = time.monotonic()
        page = webhook.wait_for(
            "paging beta's red business indicator",
            lambda n: (
                n.path == "pager"
                and n.status == "firing"
                and n.labels["alertname"] == "TilewatchBusinessIndicatorRed"
                and n.labels["model"] == "beta"
            ),
            ALERT_WITHIN,
        )
        assert page.labels["severity"] == "critical"
        assert page.labels["indicator"] == "red_traffic_share"
        assert "model=beta segment=s1 region=us" in page.annotations["driver"], page.annotations
        assert "base metric score_mean" in page.annotations["driver"]
        assert (
            page.annotations["runbook_url"] == f"{RUNBOOK_BASE_URL}TilewatchBusinessIndicatorRed.md"
        )
        ticket = webhook.wait_for(
            "a ticket for alpha's red cell",
            lambda n: (
                n.path == "ticket"
                and n.status == "firing"
                and n.labels["alertname"] == "TilewatchComponentRed"
            ),
            ALERT_WITHIN,
        )
        assert ticket.labels == {
            "alertname": "TilewatchComponentRed",
            "severity": "warning",
            "job": "tilewatch",
            "component": "quality",
            "model": "alpha",
            "segment": "s1",
            "region": "us",
        }
        assert "segment=s1 region=us" in ticket.annotations["driver"]
        print(f"degradation -> page {page.at - started:.1f} s, ticket {ticket.at - started:.1f} s")
        amber = webhook.wait_for(
            "alpha's amber business indicator",
            lambda n: n.labels["alertname"] == "TilewatchBusinessIndicatorAmber",
            ALERT_WITHIN,
        )
        assert (amber.path, amber.labels["model"], amber.labels["severity"]) == (
            "ticket",
            "alpha",
            "warning",
        )
        time.sleep(3)  # beta's component warning is pending by now: it must stay inhibited

        # Recover.
        traffic.degraded.clear()
        recovered = time.monotonic()
        resolved_page = webhook.wait_for(
            "the page resolved",
            lambda n: (
                n.path == "pager"
                and n.status == "resolved"
                and n.labels["alertname"] == "TilewatchBusinessIndicatorRed"
            ),
            ALERT_WITHIN,
        )
        resolved_ticket = webhook.wait_for(
            "the ticket resolved",
            lambda n: (
                n.path == "ticket"
                and n.status == "resolved"
                and n.labels["alertname"] == "TilewatchComponentRed"
            ),
            ALERT_WITHIN,
        )
        assert resolved_ticket.labels == ticket.labels
        print(
            f"recovery -> resolved page {resolved_page.at - recovered:.1f} s, "
            f"ticket {resolved_ticket.at - recovered:.1f} s"
        )

        # Stop the monitor: absent data pages.
        monitor.stop()
        stopped = time.monotonic()
        down = webhook.wait_for(
            "paging the stopped monitor",
            lambda n: (
                n.path == "pager"
                and n.status == "firing"
                and n.labels["alertname"] == "TilewatchMonitorDown"
            ),
            ALERT_WITHIN,
        )
        assert down.labels["instance"] == target
        print(f"monitor stopped -> page {down.at - stopped:.1f} s")

        # Over the whole run: only degraded cells were named, and beta's component alerts
        # were silenced by its business page.
        notes = webhook.snapshot()
        named = {_cell(n) for n in notes} - {None}
        assert named <= DEGRADED, f"clean cells alerted: {named - DEGRADED}"
        beta_components = [
            n
            for n in notes
            if n.status == "firing"
            and n.labels["alertname"].startswith("TilewatchComponent")
            and n.labels.get("model") == "beta"
        ]
        assert beta_components == [], "the business page did not inhibit beta's components"
        assert all(n.path != "info" for n in notes)
    finally:
        traffic.close()
        if prometheus is not None:
            prometheus.stop()
        alertmanager.stop()
