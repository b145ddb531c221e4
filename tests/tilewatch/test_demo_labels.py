"""The demo measures performance: inline labels, accuracy heatmap, performance metrics;
``produce-demo --labels-topic`` options."""

from __future__ import annotations

import io
import re
import threading
import time
import urllib.request

import pytest

import tilewatch.demo
from tilewatch.cli import _parser
from tilewatch.config import parse_config


def test_demo_config_measures_performance() -> None:
    cfg = parse_config(tilewatch.demo.demo_config("127.0.0.1:9092", 0, "2s"), "<demo>")
    assert cfg.labels is not None and cfg.labels.source == "inline"
    assert cfg.labels.threshold == 0.5 and cfg.label_topic is None


def test_produce_demo_label_options() -> None:
    args = _parser().parse_args(
        ["produce-demo", "--bootstrap", "h:1", "--labels-topic", "outcomes", "--label-delay", "2.5"]
    )
    assert (args.labels_topic, args.label_delay) == ("outcomes", 2.5)
    args = _parser().parse_args(["produce-demo", "--bootstrap", "h:1"])
    assert (args.labels_topic, args.label_delay) == (None, 5.0)


@pytest.mark.parametrize("delay", ["-1", "soon", "nan"])
def test_produce_demo_bad_label_delay(delay: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["produce-demo", "--bootstrap", "h:1", "--label-delay", delay])
    assert info.value.code == 2
    assert "expected a number of seconds >= 0" in capsys.readouterr().err


@pytest.mark.broker
def test_demo_shows_accuracy_and_exports_performance() -> None:
    out = io.StringIO()
    scraped: list[str] = []

    def scrape() -> None:
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            found = re.search(r"^metrics at (http://\S+)", out.getvalue(), re.MULTILINE)
            if found:
                try:
                    with urllib.request.urlopen(found[1], timeout=2) as response:
                        text = response.read().decode()
                except OSError:
                    text = ""
                if "tilewatch_window_accuracy_ratio{" in text:
                    scraped.append(text)
                    return
            time.sleep(0.5)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    code = tilewatch.demo.run_demo(
        duration=14,
        statistic="window_accuracy",
        port=0,
        rate=2000,
        window="2s",
        refresh=2,
        out=out,
        color=False,
    )
    scraper.join()
    text = out.getvalue()
    assert code == 0, text
    frames = [f for f in text.split("\n\n") if "window_accuracy" in f]
    assert frames, text
    last = frames[-1]
    assert re.match(
        r"\S+: window_accuracy   \(performance window ends \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)",
        last,
    ), last
    assert re.search(r" 0\.\d{3} ", last), last  # accuracy tiles with values
    # The multi-class model's heatmap shows its own accuracy (top class = label), with values.
    intent = [f for f in text.split("\n\n") if f.startswith("intent: window_class_accuracy")]
    assert intent and re.search(r" 0\.\d{3} ", intent[-1]), text
    assert scraped, "no scrape exported tilewatch_window_accuracy_ratio"
    assert "tilewatch_labeled_events_total{" in scraped[0]
    assert "tilewatch_window_estimated_accuracy_ratio{" in scraped[0]
