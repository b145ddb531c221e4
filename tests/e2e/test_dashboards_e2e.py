"""Every query of every generated dashboard runs against a real Prometheus and finds data.

Embedded broker -> ``tilewatch run`` (drift with a baseline, inline labels, the default hierarchy)
-> Prometheus (1 s scrape, the generated recording rules evaluated every second). Synthetic traffic
(``tilewatch.streams.dev.traffic``: one model, 3 segments x 2 regions, labels, latency, features, a
few invalid records, the busiest cell degrading half way so detectors fire) covers the last ~70 s of
event time, so Prometheus's time axis and the event time agree.

Then, for each generated dashboard, every template variable is resolved through Prometheus
the way Grafana would (``label_values`` -> the values present; the default if it is among them,
else the first; every option of a custom variable for the panels that use it), and every panel
target is run (a range query for time series, an instant query for instant/table targets), as
is every annotation. A target fails when it returns no series, when no series has a finite
value, or when a series lacks a label that the panel's legend, transformations or data links
use. All failures are reported together, each with its dashboard, panel and query.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.support.config import add_drift_config
from tests.e2e.support.process import TilewatchProcess
from tests.helpers import PrometheusServer, produce
from tilewatch import cli
from tilewatch.config import load_config
from tilewatch.generate import render
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec

pytestmark = [pytest.mark.broker, pytest.mark.prometheus, pytest.mark.timeout(300)]

SEGMENTS = ("consumer", "smb", "enterprise")
REGIONS = ("us-east", "eu-west")
FEATURES = ("tenure_months", "plan", "monthly_spend", "tickets_30d", "channel")
SPAN = 70  # seconds of event time, ending now
RATE = 250  # events per second of event time
DEGRADE_AFTER = 35.0
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_FIELD_LABEL = re.compile(r"\$\{__field\.labels\.(\w+)\}")
_DATA_FIELD = re.compile(r"\$\{__data\.fields\.(\w+)\}")


def _spec(**overrides: Any) -> TrafficSpec:
    base: dict[str, Any] = {
        "segments": SEGMENTS,
        "regions": REGIONS,
        "features": FEATURES,
        "label_share": 0.5,
        "seed": 11,
        "invalid_share": 0.01,
        "degrade_after_seconds": DEGRADE_AFTER,
    }
    return TrafficSpec(**{**base, **overrides})


def _busiest_cell() -> tuple[str, str]:
    weights = TrafficGenerator(_spec(degrade_cell=None), start_time=0.0).cell_weights
    _model, segment, region = max(weights, key=lambda c: weights[c])
    return segment, region


def _write_config(
    path: Path, bootstrap: str, topic: str, baseline: Path, make: Callable[..., Path]
) -> Path:
    config = make(topic, cells={"window": "2s", "grace": "500ms", "min_samples": 10})
    add_drift_config(config, baseline={"path": str(baseline)}, drift={"features": list(FEATURES)})
    with config.open("a") as out:
        out.write('\n[labels]\nsource = "inline"\nmin_samples = 5\n')
    return config


def _build_baseline(tmp: Path, config: Path, baseline: Path) -> None:
    """``tilewatch baseline`` on a clean, fully labeled holdout of the same traffic."""
    holdout = tmp / "holdout.jsonl"
    gen = TrafficGenerator(
        _spec(degrade_cell=None, label_share=1.0, invalid_share=0.0, seed=12),
        start_time=time.time() - 86_400,
    )
    with holdout.open("wb") as out:
        for event in gen.events(12_000, spread_seconds=600.0):
            out.write(orjson.dumps(event) + b"\n")
    code = cli.main(
        ["baseline", "--config", str(config), "--input", str(holdout), "--output", str(baseline)]
    )
    assert code == 0


def _produce_traffic(bootstrap: str, topic: str, degrade: tuple[str, str]) -> int:
    """``SPAN`` s of traffic ending now, keyed by cell; returns the records produced."""
    start = math.floor(time.time()) - SPAN
    gen = TrafficGenerator(_spec(degrade_cell=degrade), start_time=start)
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    for _ in range(SPAN):
        k, v = gen.keyed_batch(RATE, spread_seconds=1.0)
        keys += k
        values += v
    produce(bootstrap, topic, values, keys)
    return len(values)


# -- talking to Prometheus the way Grafana does -----------------------------------------------


def _get(prometheus: PrometheusServer, path: str, **params: str) -> Any:
    url = f"{prometheus.url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        exc.close()
        return {"status": "error", "error": f"HTTP {exc.code}: {detail}"}
    return body


def _run(prometheus: PrometheusServer, expr: str, instant: bool) -> tuple[list[Any], str]:
    """``(result, error)`` of an instant query, or a range query over the last two minutes."""
    now = time.time()
    if instant:
        body = _get(prometheus, "/api/v1/query", query=expr, time=f"{now:.3f}")
    else:
        body = _get(
            prometheus,
            "/api/v1/query_range",
            query=expr,
            start=f"{now - 120:.3f}",
            end=f"{now:.3f}",
            step="5",
        )
    if body.get("status") != "success":
        return [], str(body.get("error", body))
    data = body["data"]
    if data["resultType"] not in ("vector", "matrix"):
        return [{"metric": {}, "value": data["result"]}], ""
    return data["result"], ""


def _values(series: dict[str, Any]) -> list[float]:
    pairs = series["values"] if "values" in series else [series["value"]]
    return [float(v) for _t, v in pairs]


def _substitute(text: str, values: dict[str, str], texts: dict[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        name = match[1] or match[3]
        if name in BUILTINS:
            return BUILTINS[name]
        if match[2] == "text":
            return texts[name]
        return values[name]

    return _VAR.sub(repl, text)


def _resolve(
    prometheus: PrometheusServer, dashboard: dict[str, Any]
) -> tuple[dict[str, str], dict[str, str], dict[str, list[tuple[str, str]]], list[str]]:
    """Values of the query variables (in order, each may use the ones before), and the
    options of the custom ones."""
    values: dict[str, str] = {}
    texts: dict[str, str] = {}
    custom: dict[str, list[tuple[str, str]]] = {}
    problems: list[str] = []
    for var in dashboard["templating"]["list"]:
        name = var["name"]
        if var["type"] == "custom":
            custom[name] = [(o["text"], o["value"]) for o in var["options"]]
            texts[name], values[name] = custom[name][0]
            continue
        query = _substitute(var["definition"], values, texts)
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert match is not None, query
        selector, label = match[1], match[2]
        result, error = _run(prometheus, f"group by ({label}) ({selector})", instant=True)
        found = sorted(r["metric"][label] for r in result if label in r["metric"])
        if not found:
            problems.append(f"variable {name}: {query} found no value {error}")
            values[name] = texts[name] = "none"
            continue
        default = var.get("current", {}).get("value")
        values[name] = texts[name] = default if default in found else found[0]
    return values, texts, custom, problems


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            yield panel
        yield from panel.get("panels", [])


def _required_labels(panel: dict[str, Any], target: dict[str, Any]) -> set[str]:
    """Labels the panel reads from each series: legend, transformations, data links."""
    wanted = set(_LEGEND.findall(target.get("legendFormat", "")))
    for tr in panel.get("transformations", []):
        if tr["id"] == "groupingToMatrix":
            wanted |= {tr["options"]["rowField"], tr["options"]["columnField"]}
    links = json.dumps(panel["fieldConfig"]["defaults"].get("links", []))
    wanted |= set(_FIELD_LABEL.findall(links)) | set(_DATA_FIELD.findall(links))
    return wanted


def _check_target(
    prometheus: PrometheusServer,
    where: str,
    expr: str,
    instant: bool,
    wanted: set[str],
) -> str | None:
    """None when the query returns a series carrying ``wanted`` with a finite value."""
    result, error = _run(prometheus, expr, instant)
    if error:
        return f"{where}: {expr!r} failed: {error}"
    if not result:
        return f"{where}: {expr!r} returned no series"
    if not any(wanted <= set(r["metric"]) for r in result):
        shown = sorted(result[0]["metric"])
        return f"{where}: {expr!r}: no series carries the labels {sorted(wanted)} (got {shown})"
    if not any(math.isfinite(v) for r in result for v in _values(r)):
        return f"{where}: {expr!r}: every value is NaN (an empty panel)"
    return None


def _check_dashboard(prometheus: PrometheusServer, dashboard: dict[str, Any]) -> list[str]:
    values, texts, custom, problems = _resolve(prometheus, dashboard)
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            used = {m[1] or m[3] for m in _VAR.finditer(target["expr"])}
            choices = [values]
            for name in used & set(custom):
                choices = [{**c, name: value} for c in choices for _text, value in custom[name]]
            for chosen in choices:
                chosen_texts = {
                    **texts,
                    **{n: t for n in custom for t, v in custom[n] if v == chosen[n]},
                }
                expr = _substitute(target["expr"], chosen, chosen_texts)
                where = f"{dashboard['uid']} / {panel['title']!r} / {target['refId']}"
                problem = _check_target(
                    prometheus,
                    where,
                    expr,
                    bool(target["instant"]),
                    _required_labels(panel, target),
                )
                if problem:
                    problems.append(problem)
    for annotation in dashboard["annotations"]["list"]:
        if "expr" not in annotation:
            continue
        expr = _substitute(annotation["expr"], values, texts)
        problem = _check_target(
            prometheus,
            f"{dashboard['uid']} / annotation {annotation['name']!r}",
            expr,
            True,
            set(annotation.get("tagKeys", "").split(",")) - {""},
        )
        if problem:
            problems.append(problem)
    return problems


def test_every_panel_query_returns_series(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    start_tilewatch: Callable[..., TilewatchProcess],
    prometheus_bin: str,
    tmp_path: Path,
) -> None:
    topic = make_topic(3)
    baseline_path = tmp_path / "baseline.json"
    config_path = _write_config(tmp_path, broker.bootstrap, topic, baseline_path, tilewatch_config)
    _build_baseline(tmp_path, config_path, baseline_path)
    config = load_config(config_path)
    files = render(config)  # every generator: the dashboards' rules load with the alert rules
    rules = []
    for path, text in files.items():
        if path.startswith("deploy/prometheus/rules/"):
            rules.append(tmp_path / Path(path).name)
            rules[-1].write_text(text)
    assert tmp_path / "tilewatch-dashboards.rules.yml" in rules
    dashboards = [
        json.loads(t)
        for p, t in files.items()
        if p.startswith("deploy/grafana/dashboards/") and p.endswith(".json")
    ]
    assert len(dashboards) == 3

    monitor = start_tilewatch(config_path)
    records = _produce_traffic(broker.bootstrap, topic, _busiest_cell())
    monitor.wait_read(records, timeout=120)
    target = monitor.url.removeprefix("http://").removesuffix("/metrics")
    with PrometheusServer([target], binary=prometheus_bin, rule_files=rules) as prometheus:
        prometheus.wait_for(
            'tilewatch_cell:statistic:merged{statistic="score_mean"}',
            lambda r: len(r) > 0,
            timeout=60,
        )
        # rate() over 1m needs a few samples, and every recording rule a first evaluation
        prometheus.wait_for("rate(tilewatch_events_total[1m])", lambda r: len(r) > 0, timeout=60)
        time.sleep(3.0)
        problems = [p for d in dashboards for p in _check_dashboard(prometheus, d)]
    total = sum(len(p["targets"]) for d in dashboards for p in _panels(d))
    assert total >= 50, f"only {total} panel targets: the dashboards lost their statistics"
    assert not problems, (
        f"{len(problems)} of the {total} panel targets (and annotations) of the generated "
        "dashboards found no data:\n" + "\n".join(problems)
    )
