"""Headless Chromium for the page tests: Debian's ``chromium`` driven through ``chromium-driver``.

The flags keep the browser off the network (this machine refuses background connections) and
the profile fresh; the browser log (console messages) is captured for the tests to read.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@contextmanager
def chromium(width: int = 1500, height: int = 1100) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile; always quit."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            pytest.fail(
                f"{path} not found: run scripts/setup.sh (Debian chromium, chromium-driver)"
            )
    profile = tempfile.mkdtemp(prefix="tilewatch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """Browser log entries of level SEVERE (console errors, failed loads, CSP violations)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
