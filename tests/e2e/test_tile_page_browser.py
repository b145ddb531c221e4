"""The tile page in a real browser: demo traffic and hostile names through the broker and
``tilewatch run``, the page in headless Chromium.

Checks what a person would see: the degrading demo cell drawn red, a click opening its history
(which shows the jump), the normalisation switch, the time views, literal hostile names with
nothing executed, and no console errors. The screenshot is saved beside the test's files, and
to ``$TILEWATCH_README_SCREENSHOT`` when set (how ``docs/images/tile-page.png`` is made).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.support.browser import chromium, console_errors
from tests.e2e.support.config import add_tables
from tests.e2e.support.process import TilewatchProcess
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.producer import produce_events, produce_traffic
from tilewatch.streams.dev.traffic import TrafficSpec

pytestmark = [pytest.mark.broker, pytest.mark.browser]

HOSTILE = ("<img src=x onerror=alert(1)>", '"><script>window.__xss=1</script>')
RED = (242, 73, 92)
DIVERGING = {
    (84, 39, 136),
    (128, 115, 172),
    (178, 171, 210),
    (216, 218, 235),
    (247, 247, 247),
    (254, 224, 182),
    (253, 184, 99),
    (224, 130, 20),
    (179, 88, 6),
    (200, 200, 200),
}
# The degrading cell (smb, eu-west) gets 0.5% of the traffic: at 6,000 events/s a 4 s window
# holds about 120 of its events, all labeled (see TrafficSpec below).
DEGRADE_AFTER = 20.0
WINDOW = 4.0
RATE = 6000.0


def _rgb(css: str) -> tuple[int, ...]:
    """``rgb(r, g, b)`` or ``rgba(r, g, b, a)`` -> ``(r, g, b)``."""
    return tuple(int(v) for v in re.findall(r"[\d.]+", css)[:3])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _hostile_events(now: float) -> tuple[list[bytes], list[bytes]]:
    keys, values = [], []
    for segment in HOSTILE:
        for i in range(60):
            event = {
                "event_id": f"x{i}-{len(segment)}",
                "model": "churn",
                "segment": segment,
                "region": "eu-west",
                "score": 0.3 + 0.004 * i,
                "timestamp": now + i * 0.01,
                "label": i % 2,
            }
            keys.append(f"churn|{segment}|eu-west".encode())
            values.append(orjson.dumps(event))
    return keys, values


def _tile(driver: Any, key: list[str]) -> Any:
    """The grid's tile of ``key``, found in one call (the grid redraws every few seconds: a
    loop over every tile's attribute could meet a redrawn, stale, element)."""
    wanted = json.dumps(key, separators=(",", ":"))
    tile = driver.execute_script(
        "return [...document.querySelectorAll('#grid .tile')]"
        ".find(e => e.getAttribute('data-key') === arguments[0]) || null",
        wanted,
    )
    if tile is None:
        raise AssertionError(f"no tile {key} in the grid")
    return tile


def _click_tile(driver: Any, key: list[str]) -> None:
    """Click the tile of ``key``, looking it up again if a redraw replaced it meanwhile."""
    for _attempt in range(5):
        try:
            _tile(driver, key).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"the tile {key} kept being redrawn")


def _styles(driver: Any, selector: str) -> list[str]:
    """The computed background colours of the elements matching ``selector``, read at once."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(e => getComputedStyle(e).backgroundColor)",
            selector,
        )
    )


def _titles(driver: Any, selector: str) -> list[str]:
    """The ``title`` attributes of the elements matching ``selector``, read at once."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.title || '')",
            selector,
        )
    )


def _wait_refresh(driver: Any, since: str | None) -> str:
    def ready(d: Any) -> str | None:
        value = d.execute_script("return document.body.dataset.ready || null")
        return value if value and value != since else None

    return WebDriverWait(driver, 20).until(ready)


def test_tile_page_in_chromium(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    tmp_path: Path,
) -> None:
    topic = make_topic(3)
    config = tilewatch_config(topic, cells={"window": f"{WINDOW:g}s", "grace": "1s"})
    add_tables(config, labels={"threshold": 0.5, "min_samples": 30, "error_detector": "hddm_a"})
    proc = start_tilewatch(config)
    base = proc.url.removesuffix("metrics")
    stop = threading.Event()
    # Every event labelled: the degraded cell (0.5 % of the traffic) then has ~120 labels per
    # window, enough for its miscalibration to be significant against every cell of the grid.
    spec = TrafficSpec(degrade_after_seconds=DEGRADE_AFTER, invalid_share=0.01, label_share=1.0)
    producer = threading.Thread(
        target=produce_traffic,
        args=(broker.bootstrap, topic),
        kwargs={"spec": spec, "rate": RATE, "stop": stop},
        daemon=True,
    )
    producer.start()
    try:
        keys, values = _hostile_events(time.time())
        produce_events(broker.bootstrap, topic, values, keys)
        cell = f"{base}api/cell?model=churn&segment=smb&region=eu-west&statistic=score_mean"
        deadline = time.monotonic() + DEGRADE_AFTER + 8 * WINDOW + 30
        while True:  # until the strip holds two windows after the degradation
            try:
                strip = _get(cell)["history"]["windows"]
            except (OSError, ValueError, KeyError, TypeError):
                strip = []
            known = [w["value"] for w in strip if w["value"] is not None]
            if len(known) >= 7 and max(known) - min(known) > 0.15 and known[-1] > known[0] + 0.15:
                break
            assert time.monotonic() < deadline, f"no degradation seen: {strip}\n{proc.describe()}"
            time.sleep(1.0)

        with chromium() as driver:
            driver.get(base)
            ready = _wait_refresh(driver, None)

            # Hostile names: shown literally, nothing executed, nothing injected.
            with pytest.raises(NoAlertPresentException):
                driver.switch_to.alert  # noqa: B018
            assert driver.execute_script("return window.__xss === undefined")
            assert driver.execute_script("return document.querySelectorAll('img').length") == 0
            scripts = driver.execute_script(
                "return [...document.scripts].map(s => s.getAttribute('src'))"
            )
            assert scripts == ["/static/tiles.js"]
            labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#grid .row-label")]
            for name in HOSTILE:
                assert name in labels, labels
                assert _tile(driver, [name, "eu-west"]).get_attribute("data-status") is not None

            # Health view: the degrading cell is drawn red (CRIT), with its text in the title.
            degraded = _tile(driver, ["smb", "eu-west"])
            assert _rgb(degraded.value_of_css_property("background-color")) == RED
            assert "health: CRIT" in degraded.get_attribute("title")

            # Score mean: a click opens the cell's history, which shows the jump.
            Select(driver.find_element(By.ID, "statistic")).select_by_value("score_mean")
            ready = _wait_refresh(driver, ready)
            _click_tile(driver, ["smb", "eu-west"])
            WebDriverWait(driver, 10).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, "#strip .tile")) == 30
            )
            assert driver.find_element(By.ID, "cell-title").text == (
                "churn: segment = smb, region = eu-west"
            )
            strip = [
                float(m[1])
                for title in _titles(driver, "#strip .tile")
                if (m := re.search(r"Score mean: (\d\.\d+)", title))
            ]
            assert len(strip) >= 7 and max(strip) - strip[0] > 0.15, strip
            # the forecast of the next 5 windows, apart from the observed strip
            ahead = _titles(driver, "#forecast-strip .tile")
            assert len(ahead) == 5 and all(t.startswith("FORECAST, ") for t in ahead), ahead
            components = [
                [c.text for c in r.find_elements(By.TAG_NAME, "td")]
                for r in driver.find_elements(By.CSS_SELECTOR, "#components tbody tr")
            ]
            assert [c[0] for c in components] == ["performance", "latency", "aging"]
            # Red because its labels stopped following its scores: judged against the cell's own
            # past (no baseline here), its error excess or its calibration test is flagged.
            assert components[0][1] == "CRIT", components
            assert "error_excess" in components[0][3] or "calibration" in components[0][3]

            # The normalisation switch: z, then change; diverging colours, text on the page.
            driver.find_element(By.CSS_SELECTOR, "input[name=norm][value=z]").click()
            ready = _wait_refresh(driver, ready)
            assert driver.find_element(By.ID, "transform").text.startswith("z = (value")
            # Read in one script call: the page may redraw between finding and reading tiles.
            colours = {_rgb(c) for c in _styles(driver, "#grid .tile:not(.empty)")}
            assert colours <= DIVERGING, colours
            zs = [
                float(m[1])
                for title in _titles(driver, "#strip .tile")
                if (m := re.search(r"\nz: (-?\d+\.\d+)", title))
            ]
            assert zs and max(zs) >= 3.0, zs
            timeline = driver.find_elements(By.CSS_SELECTOR, "#timeline-0 .row-label")
            assert "smb" in [e.text for e in timeline]
            shot = tmp_path / "tile-page.png"
            driver.save_screenshot(str(shot))
            driver.find_element(By.CSS_SELECTOR, "input[name=norm][value=change]").click()
            _wait_refresh(driver, ready)
            assert driver.find_element(By.ID, "transform").text.startswith("change = value")

            errors = console_errors(driver)
            assert errors == [], errors
        if os.environ.get("TILEWATCH_README_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["TILEWATCH_README_SCREENSHOT"])
    finally:
        stop.set()
        producer.join(timeout=30)
