"""The tile page's HTTP side on a real monitor (``App``) fed events through ``ReplicaState``:
routes beside ``/metrics``, security headers, basic auth, bad query parameters, bounded pages,
and a 300 x 300 grid (API and Chromium).

No Kafka here: the state is the real replica fed by ``apply``; ``tests/e2e/
test_tile_page_browser.py`` runs the whole path through the broker and ``tilewatch run``.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import generate_latest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.support.browser import chromium, console_errors
from tests.e2e.support.scrape import parse_metrics
from tilewatch.aggregators.stats.forecast import DampedTrend
from tilewatch.app import HISTORY_WINDOWS, App
from tilewatch.config import parse_config
from tilewatch.exporters.web import CSP

WINDOW = 10.0
T0 = 1_800_000_000.0
#: What prometheus-client answers a client that asks for no particular format.
PLAIN_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _config(**exporter: Any) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["predictions"]},
        "cells": {"window": "10s", "grace": "0s", "max_cells": 100_000},
        "exporter": {"listen": "127.0.0.1:0", **exporter},
    }


def _feed(app: App, segments: int, regions: int, windows: int, per_cell: int = 1) -> None:
    """``per_cell`` events per leaf cell per window, window after window; refresh after each."""
    keys = [
        ("churn", f"s{s:03d}", f"r{r:03d}") for s in range(segments) for r in range(regions)
    ] * per_cell
    rng = np.random.default_rng(3)
    for w in range(windows):
        times = np.full(len(keys), T0 + w * WINDOW + 1.0)
        app.state.apply(("predictions", 0), keys, times, rng.random(len(keys)), next_offset=w)
        app.state.refresh()
    closing = np.array([T0 + windows * WINDOW + 1.0])
    app.state.apply(("predictions", 0), [keys[0]], closing, np.array([0.5]), next_offset=windows)
    app.state.refresh()


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def small() -> Iterator[App]:
    app = App(parse_config(_config(), source="<test>"))
    _feed(app, 4, 3, windows=5, per_cell=40)
    app.serve()
    yield app
    app.server.stop()


def test_metrics_answer_as_before_and_the_page_is_beside_them(small: App) -> None:
    base = small.server.page_url
    status, headers, body = _get(small.server.url)
    assert status == 200 and headers["Content-Type"] == PLAIN_TEXT
    scraped = parse_metrics(body.decode())
    direct = parse_metrics(generate_latest(small.registry).decode())
    assert set(scraped) == set(direct)
    assert "tilewatch_window_events" in {name for name, _labels in scraped}
    # Paths that are not the page's still answer with the metrics, as before.
    assert _get(base + "other")[1]["Content-Type"] == PLAIN_TEXT

    status, headers, body = _get(base)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b'<script src="/static/tiles.js" defer></script>' in body
    for asset, kind in (("tiles.js", "text/javascript"), ("tiles.css", "text/css")):
        status, headers, body = _get(base + "static/" + asset)
        assert status == 200 and headers["Content-Type"].startswith(kind) and body
        assert headers["Content-Security-Policy"] == CSP
    script = _get(base + "static/tiles.js")[2]
    for sink in (b"innerHTML", b"outerHTML", b"insertAdjacentHTML", b"document.write", b"eval("):
        assert sink not in script, sink
    assert _get(base + "static/index.html")[0] == 404
    assert _get(base + "static/../auth.py")[0] == 404


def test_the_api_reads_the_snapshot(small: App) -> None:
    base = small.server.page_url
    meta = json.loads(_get(base + "api/meta")[2])
    assert meta["dimensions"] == ["segment", "region"]
    assert meta["models"][0]["name"] == "churn" and meta["models"][0]["leaf_cells"] == 12
    assert meta["history_depth"] == HISTORY_WINDOWS
    assert [s["key"] for s in meta["statistics"]][:2] == ["health", "score_mean"]
    grid = json.loads(_get(base + "api/grid?model=churn&statistic=score_mean")[2])
    assert grid["rows"] == ["s000", "s001", "s002", "s003"]
    assert grid["cols"] == ["r000", "r001", "r002"]
    tile = grid["tiles"][0][0]
    snap = small.state.snapshot()
    i = snap.cell(("churn", "s000", "r000"))
    assert tile["value"] == pytest.approx(float(snap.window_mean[i]))
    assert tile["n"] == 40 and tile["lower"] < tile["value"] < tile["upper"]
    assert grid["tiles"][-1][-1]["key"] == ["__all__", "__all__"]
    assert grid["tiles"][-1][-1]["n"] == 480
    cell = json.loads(
        _get(base + "api/cell?model=churn&segment=s000&region=r000&statistic=score_mean")[2]
    )
    known = [w for w in cell["history"]["windows"] if w["value"] is not None]
    assert len(known) == 5 and known[-1]["value"] == pytest.approx(tile["value"], rel=1e-6)
    assert [w["n"] for w in known] == [40.0] * 5
    # the forecast of the next windows: the replica's forecaster on the same five windows
    reference = DampedTrend(1)
    for w in known:
        reference.update(np.array([w["value"]]))
    mean, lower, upper = (a[:, 0] for a in reference.forecast(5))
    assert [f["horizon"] for f in cell["forecast"]] == [1, 2, 3, 4, 5]
    for f, m, lo, hi in zip(cell["forecast"], mean, lower, upper, strict=True):
        assert (f["value"], f["lower"], f["upper"]) == pytest.approx((m, lo, hi), rel=1e-5)
        assert f["lower"] < f["value"] < f["upper"]
    z = json.loads(
        _get(base + "api/cell?model=churn&segment=s000&region=r000&statistic=score_mean&norm=z")[2]
    )
    values = np.array([w["value"] for w in known])
    expected = (values[-1] - values[:-1].mean()) / values[:-1].std(ddof=1)
    assert z["tile"]["norm"] == pytest.approx(expected, rel=1e-4)
    change = json.loads(
        _get(base + "api/cells?model=churn&segment=s000&statistic=score_mean&norm=change")[2]
    )
    assert [c["key"] for c in change["cells"]] == [["s000", f"r00{r}"] for r in range(3)]
    assert change["cells"][0]["norm"] == pytest.approx(values[-1] - values[-2], rel=1e-4)
    timeline = json.loads(
        _get(base + "api/timeline?model=churn&dimension=region&statistic=score_mean")[2]
    )
    assert [r["value"] for r in timeline["rows"]] == ["r000", "r001", "r002"]
    health = json.loads(_get(base + "api/health?model=churn")[2])
    assert [c["name"] for c in health["components"]] == ["latency", "aging"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("meta?x=1", "unknown query parameter 'x'"),
        ("grid", "missing query parameter 'model'"),
        ("grid?model=nope", "no model named 'nope'"),
        ("grid?model=churn&statistic=psi", "statistic: expected one of health, score_mean"),
        ("grid?model=churn&norm=z", "the health status has no normalisation"),
        ("grid?model=churn&statistic=score_mean&norm=log", "norm: expected one of raw, z, change"),
        ("grid?model=churn&page_size=0", "page_size: expected an integer from 1 to 100"),
        ("grid?model=churn&page_size=101", "page_size: expected an integer from 1 to 100"),
        ("grid?model=churn&row_page=-1", "row_page: expected an integer"),
        ("grid?model=churn&row_page=1", "row_page: expected an integer from 0 to 0"),
        ("grid?model=churn&rows=region&cols=region", "two different dimensions"),
        ("cells?model=churn&model=churn", "given more than once"),
        ("cells?model=churn&color=red", "unknown query parameter 'color'"),
        ("cell?model=churn&segment=s000", "missing region"),
        ("cell?model=churn&segment=s000&region=zz", "no such cell"),
        ("timeline?model=churn", "need a statistic, not the health status"),
        ("cells?model=" + "x" * 600, "too long"),
    ],
)
def test_bad_query_parameters_get_400_and_a_reason(small: App, query: str, reason: str) -> None:
    status, headers, body = _get(small.server.page_url + "api/" + query)
    assert status == 400, body
    assert headers["Content-Type"] == "application/json"
    assert reason in json.loads(body)["error"]


def test_unknown_endpoints_and_methods(small: App) -> None:
    status, _headers, body = _get(small.server.page_url + "api/nothing")
    assert status == 404 and "endpoints: meta, cells" in json.loads(body)["error"]
    request = urllib.request.Request(small.server.page_url + "api/meta", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    with info.value as error:
        assert error.code == 405


def test_page_and_api_sit_behind_the_same_basic_auth() -> None:
    app = App(
        parse_config(
            _config(basic_auth_user="prometheus", basic_auth_password="s3cret"), source="<t>"
        )
    )
    app.serve()
    try:
        base = app.server.page_url
        for path in ("", "api/meta", "static/tiles.js", "metrics"):
            assert _get(base + path)[0] == 401
            assert _get(base + path, ("prometheus", "wrong"))[0] == 401
            assert _get(base + path, ("prometheus", "s3cret"))[0] == 200
    finally:
        app.server.stop()


def test_300_by_300_cells_stay_usable() -> None:
    app = App(parse_config(_config(), source="<test>"))
    _feed(app, 300, 300, windows=3)
    history = app.state.history
    assert history is not None
    leaves = 300 * 300
    # The history's cost per leaf cell (roll-ups included, capacity grown by doubling).
    assert history.nbytes / leaves <= 4096, history.nbytes / leaves
    app.serve()
    try:
        base = app.server.page_url
        status, _h, body = _get(base + "api/grid?model=churn&statistic=score_mean&page_size=100")
        grid = json.loads(body)
        assert status == 200 and grid["row_total"] == 300 and grid["col_total"] == 300
        assert len(grid["tiles"]) == 101 and len(grid["tiles"][0]) == 101
        assert len(body) < 2_000_000
        cells = json.loads(_get(base + "api/cells?model=churn&page=899&page_size=100")[2])
        assert cells["total"] == leaves and cells["pages"] == 900 and len(cells["cells"]) == 100
        assert cells["cells"][-1]["key"] == ["s299", "r299"]
        with chromium() as driver:
            started = time.monotonic()
            driver.get(base)
            WebDriverWait(driver, 30).until(
                lambda d: d.execute_script("return document.body.dataset.ready || null")
            )
            tiles = driver.find_elements(By.CSS_SELECTOR, "#grid .tile")
            assert len(tiles) == 31 * 31
            assert driver.find_element(By.ID, "row-info").text == "segment page 1 / 10 (300)"
            driver.find_element(By.ID, "row-next").click()
            WebDriverWait(driver, 30).until(
                lambda d: d.find_element(By.ID, "row-info").text.startswith("segment page 2 ")
            )
            labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#grid .row-label")]
            assert labels[0] == "s030"
            assert console_errors(driver) == []
            print(f"300 x 300: page and one page turn in {time.monotonic() - started:.1f} s")
    finally:
        app.server.stop()
