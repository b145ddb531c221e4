"""Running a generated dashboard's queries against a real Prometheus the way Grafana does.

Each template variable is resolved through Prometheus (``label_values`` -> the values present;
the default if it is among them, else the first; every option of a custom variable for the
panels that use it), and every panel target is run (a range query for time series, an instant
query for instant/table targets), as is every annotation. A target fails when it returns no
series, when no series has a finite value, or when a series lacks a label that the panel's
legend, transformations or data links use.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from tests.e2e.support.config import add_drift_config
from tests.helpers import PrometheusServer
from tilewatch import cli
from tilewatch.streams.dev.traffic import TrafficGenerator, TrafficSpec

__all__ = [
    "FEATURES",
    "build_baseline",
    "check_dashboard",
    "panels",
    "spec",
    "write_dashboard_config",
]

BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_FIELD_LABEL = re.compile(r"\$\{__field\.labels\.(\w+)\}")
_DATA_FIELD = re.compile(r"\$\{__data\.fields\.(\w+)\}")


SEGMENTS = ("consumer", "smb", "enterprise")
REGIONS = ("us-east", "eu-west")
FEATURES = ("tenure_months", "plan", "monthly_spend", "tickets_30d", "channel")
DEGRADE_AFTER = 35.0


def spec(**overrides: Any) -> TrafficSpec:
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


def write_dashboard_config(
    topic: str, baseline: Path, make: Callable[..., Path], window: str = "2s"
) -> Path:
    """A config with drift against ``baseline``, inline labels and the default hierarchy: every
    dashboard panel has data to show."""
    config = make(topic, cells={"window": window, "grace": "500ms", "min_samples": 10})
    add_drift_config(config, baseline={"path": str(baseline)}, drift={"features": list(FEATURES)})
    with config.open("a") as out:
        out.write('\n[labels]\nsource = "inline"\nmin_samples = 5\n')
    return config


def build_baseline(tmp: Path, config: Path, baseline: Path) -> None:
    """``tilewatch baseline`` on a clean, fully labeled holdout of the same traffic."""
    holdout = tmp / "holdout.jsonl"
    gen = TrafficGenerator(
        spec(degrade_cell=None, label_share=1.0, invalid_share=0.0, seed=12),
        start_time=time.time() - 86_400,
    )
    with holdout.open("wb") as out:
        for event in gen.events(12_000, spread_seconds=600.0):
            out.write(orjson.dumps(event) + b"\n")
    code = cli.main(
        ["baseline", "--config", str(config), "--input", str(holdout), "--output", str(baseline)]
    )
    assert code == 0


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


def _run(
    prometheus: PrometheusServer, expr: str, instant: bool, at: float | None = None
) -> tuple[list[Any], str]:
    """``(result, error)`` of an instant query at ``at`` (default now), or a range query over
    the two minutes before it."""
    now = time.time() if at is None else at
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
    prometheus: PrometheusServer, dashboard: dict[str, Any], at: float | None = None
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
        if var["type"] == "textbox":  # a free value (tilewatch_url): its default
            values[name] = texts[name] = var["query"]
            continue
        query = _substitute(var["definition"], values, texts)
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert match is not None, query
        selector, label = match[1], match[2]
        result, error = _run(prometheus, f"group by ({label}) ({selector})", True, at)
        found = sorted(r["metric"][label] for r in result if label in r["metric"])
        if not found:
            problems.append(f"variable {name}: {query} found no value {error}")
            values[name] = texts[name] = "none"
            continue
        default = var.get("current", {}).get("value")
        values[name] = texts[name] = default if default in found else found[0]
    return values, texts, custom, problems


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
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
    at: float | None = None,
) -> str | None:
    """None when the query returns a series carrying ``wanted`` with a finite value."""
    result, error = _run(prometheus, expr, instant, at)
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


def check_dashboard(
    prometheus: PrometheusServer, dashboard: dict[str, Any], at: float | None = None
) -> list[str]:
    """Every problem of the dashboard's variables, panel targets and annotations, queried at
    ``at`` (default now; range queries over the two minutes before it)."""
    values, texts, custom, problems = _resolve(prometheus, dashboard, at)
    for panel in panels(dashboard):
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
                    at,
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
            at,
        )
        if problem:
            problems.append(problem)
    return problems
