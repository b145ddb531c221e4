"""Shared fixtures: the embedded broker, fresh topics, and the Prometheus binary.

Tests that need the broker or Prometheus mark themselves (``@pytest.mark.broker``,
``@pytest.mark.prometheus``); the helpers they use live in ``tests/helpers.py``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import PROMETHEUS_BIN
from tilewatch.streams.dev.broker import EmbeddedBroker

SETUP_HINT = "run scripts/setup.sh (it installs the Debian prometheus packages)"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker on a free loopback port for the session; always stopped."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def make_topic(broker: EmbeddedBroker) -> Callable[..., str]:
    """Factory: ``make_topic(partitions=3) -> name`` creates a fresh uniquely named topic."""

    def make(partitions: int = 3) -> str:
        name = f"test-{uuid.uuid4().hex}"
        broker.create_topic(name, partitions)
        return name

    return make


@pytest.fixture
def topic(make_topic: Callable[..., str]) -> str:
    """A fresh topic with 3 partitions on the session broker."""
    return make_topic()


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the Prometheus server binary; fails (does not skip) when it is missing."""
    if shutil.which(PROMETHEUS_BIN) is None:
        pytest.fail(f"{PROMETHEUS_BIN} not found: {SETUP_HINT}")
    return PROMETHEUS_BIN


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    """Path of ``promtool`` (``check metrics``, ``test rules``); fails when it is missing."""
    path = "/usr/bin/promtool"
    if shutil.which(path) is None:
        pytest.fail(f"{path} not found: {SETUP_HINT}")
    return path
