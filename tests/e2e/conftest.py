"""Fixtures of the end-to-end tests: a config writer and ``tilewatch run`` subprocesses.

Every process started through :func:`start_tilewatch` is stopped at teardown (SIGTERM, then
SIGKILL after 15 s), whatever the test did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support.config import write_config
from tests.e2e.support.process import TilewatchProcess
from tilewatch.streams.dev.broker import EmbeddedBroker

#: The Kafka clients the broker tests run against (``[kafka] client_library``).
KAFKA_CLIENTS = ("kafka-python", "confluent")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out tests marked ``bench`` unless the ``-m`` expression names them (``-m bench``):
    slow copies that would push the suite past its time budget."""
    if "bench" in (config.getoption("markexpr") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("bench") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def kafka_clients(*, slow: bool = False) -> list[Any]:
    """``parametrize`` values over :data:`KAFKA_CLIENTS`; with ``slow`` the confluent copy is
    marked ``bench`` (left out of the suite, run with ``-m bench``) to keep the suite short."""
    return [
        pytest.param(client, marks=[pytest.mark.bench] if slow and client != "kafka-python" else [])
        for client in KAFKA_CLIENTS
    ]


@pytest.fixture
def tilewatch_config(
    broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., Path]:
    """Factory: ``tilewatch_config(topic, kafka={...}, cells={...}) -> path`` of a new config.

    Unique group id and dead-letter topic, fast group-join timings, ``commit_interval`` 200 ms,
    10 s windows, 1 s grace, 100 rolling events, metrics on a free loopback port. In a test
    parametrized over ``client`` (:func:`kafka_clients`), ``[kafka] client_library`` is that
    client.
    """
    count = 0
    callspec = getattr(request.node, "callspec", None)
    client = None if callspec is None else callspec.params.get("client")

    def make(topic: str, **overrides: Any) -> Path:
        nonlocal count
        count += 1
        if client is not None:
            overrides["kafka"] = {"client_library": client, **(overrides.get("kafka") or {})}
        return write_config(
            tmp_path / f"tilewatch-{count}.toml", broker.bootstrap, topic, **overrides
        )

    return make


@pytest.fixture
def start_tilewatch(tmp_path: Path) -> Iterator[Callable[..., TilewatchProcess]]:
    """Factory: ``start_tilewatch(config, name=...)`` starts ``tilewatch run --config FILE``."""
    started: list[TilewatchProcess] = []

    def start(config: Path, name: str = "tilewatch") -> TilewatchProcess:
        process = TilewatchProcess(config, name=f"{name}-{len(started)}")
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
