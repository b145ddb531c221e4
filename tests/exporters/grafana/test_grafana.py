"""The generated Grafana dashboards: structure, data source, variables, links, colour scales.

Pure checks of :func:`tilewatch.exporters.grafana.render.render_dashboards` on several configs
(default, drift + baseline + labels, one, three and no dimensions, a hierarchy with thresholds). The
queries themselves run against a real Prometheus in tests/e2e/test_dashboards_e2e.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tilewatch.config import parse_config
from tilewatch.exporters.generator_inputs import GeneratorInputs
from tilewatch.exporters.grafana.dashboard_statistics import COUNT_METRICS, dashboard_statistics
from tilewatch.exporters.grafana.frame import CELL_UID, HEATMAPS_UID, OVERVIEW_UID
from tilewatch.exporters.grafana.json_model import (
    DATASOURCE,
    DATASOURCE_UID,
    PANEL_TYPES,
    SCHEMA_VERSION,
)
from tilewatch.exporters.grafana.render import RULES_PATH, render_dashboards
from tilewatch.exporters.prometheus.catalog import CATALOG, MetricDoc
from tilewatch.generate import generator_inputs

#: Panel types built into Grafana 11/12 (plugin ids), to catch a typo in a type.
GRAFANA_PANELS = {
    "barchart",
    "bargauge",
    "gauge",
    "heatmap",
    "histogram",
    "logs",
    "piechart",
    "row",
    "stat",
    "state-timeline",
    "status-history",
    "table",
    "text",
    "timeseries",
    "trend",
    "xychart",
}
#: Variables Grafana defines itself.
BUILTIN_VARIABLES = {
    "__url_time_range",
    "__rate_interval",
    "__interval",
    "__range",
    "__field",
    "__data",
    "__value",
    "__series",
    "__all_variables",
}
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][\w]*)[^}]*\}|([A-Za-z_]\w*))")
_DATA_LINK = re.compile(
    r"\$\{__(field\.labels\.(\w+)|field\.name|data\.fields\[0\]|data\.fields\.(\w+))\}"
)
_STAT_KEY = re.compile(r'statistic="(\w+)"')


def _config(**sections: Any) -> GeneratorInputs:
    """The generator inputs of a config with these sections."""
    return generator_inputs(parse_config(sections, "test.toml"))


RICH = {
    "baseline": {"path": "baseline.json"},
    "drift": {"features": ["plan", "tenure_months"], "psi_alert": 0.3},
    "labels": {"threshold": 0.5},
}
CONFIGS = {
    "default": {},
    "rich": RICH,
    "one_dimension": {**RICH, "cells": {"dimensions": ["segment"]}},
    "three_dimensions": {**RICH, "cells": {"dimensions": ["segment", "region", "channel"]}},
    "no_dimension": {"cells": {"dimensions": []}},
    "regression": {**RICH, "labels": {"task": "regression"}},
    "labeling": {**RICH, "labeling": {"reasons": ["least_confident", "most_confident"]}},
    "multiclass": {
        "events": {"scores": "probs", "classes": ["buy", "sell", "hold"]},
        "drift": {"reference": "trailing"},
    },
}


@pytest.fixture(params=sorted(CONFIGS), scope="module")
def rendered(request: pytest.FixtureRequest) -> tuple[GeneratorInputs, dict[str, dict[str, Any]]]:
    config = _config(**CONFIGS[request.param])
    files = render_dashboards(config)
    return config, {
        path: json.loads(text) for path, text in files.items() if path.endswith(".json")
    }


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def test_files_and_uids(rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]]) -> None:
    _config, dashboards = rendered
    assert {d["uid"] for d in dashboards.values()} == {OVERVIEW_UID, HEATMAPS_UID, CELL_UID}
    for path, dash in dashboards.items():
        assert path == f"deploy/grafana/dashboards/{dash['uid']}.json"
        assert dash["schemaVersion"] == SCHEMA_VERSION == 41
        assert dash.get("id") is None and dash["title"] and "tilewatch" in dash["tags"]


def test_panel_ids_are_unique_and_types_valid(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    for dash in rendered[1].values():
        ids = [p["id"] for p in _panels(dash)]
        assert len(ids) == len(set(ids)), dash["uid"]
        for panel in _panels(dash):
            assert panel["type"] in PANEL_TYPES and panel["type"] in GRAFANA_PANELS
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0


def test_no_two_panels_overlap(rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]]) -> None:
    for dash in rendered[1].values():
        taken: set[tuple[int, int]] = set()
        for panel in _panels(dash):
            pos = panel["gridPos"]
            cells = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & taken, (dash["uid"], panel["title"])
            taken |= cells


def test_every_datasource_is_the_provisioned_one(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    for dash in rendered[1].values():
        refs = [value for key, value in _walk(dash) if key == "datasource"]
        builtin = [r for r in refs if r.get("type") == "grafana"]
        assert builtin == [{"type": "grafana", "uid": "-- Grafana --"}]  # the built-in annotation
        assert all(r == DATASOURCE for r in refs if r not in builtin)
        for panel in _panels(dash):
            if panel["type"] != "row":
                assert panel["datasource"] == DATASOURCE
                assert panel["targets"]
                assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"])
        for var in dash["templating"]["list"]:
            if var["type"] == "query":
                assert var["datasource"] == DATASOURCE


def test_cell_dashboard_links_the_cells_api(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    """Cells outside the series budget have no series: the cell dashboard links to
    ``/api/cells?model=&<dimension>=`` on tilewatch's server, which reads every cell."""
    config, dashboards = rendered
    cell = next(d for d in dashboards.values() if d["uid"] == CELL_UID)
    variables = {v["name"]: v for v in cell["templating"]["list"]}
    assert variables["tilewatch_url"]["type"] == "textbox"
    assert variables["tilewatch_url"]["query"] == "http://localhost:9464"
    urls = {
        lk["url"]
        for panel in _panels(cell)
        for lk in panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
        if "/api/" in lk["url"]
    }
    query = "&".join(
        [
            "model=${model:percentencode}",
            *(f"{d}=${{{d}:percentencode}}" for d in config.dimensions),
        ]
    )
    assert urls == {f"${{tilewatch_url}}/api/cells?{query}"}
    titled = [
        panel["title"]
        for panel in _panels(cell)
        if any(
            "/api/cells" in lk["url"]
            for lk in panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
        )
    ]
    assert titled == ["Component status", "Samples"]


def test_every_referenced_variable_exists(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    for dash in rendered[1].values():
        defined = {v["name"] for v in dash["templating"]["list"]}
        used: set[str] = set()
        for text in _strings(
            {"p": dash["panels"], "a": dash["annotations"], "t": dash["templating"]}
        ):
            for match in _VARIABLE.finditer(text):
                used.add(match[1] or match[2])
        unknown = {u for u in used if u not in defined and u not in BUILTIN_VARIABLES}
        assert not unknown, (dash["uid"], unknown)
        assert "model" in defined
        # every variable is used somewhere (no dead variable)
        assert defined <= used, (dash["uid"], defined - used)


def _labels_of(panel: dict[str, Any], dims: tuple[str, ...]) -> set[str]:
    """Labels a panel's series carry: by-clauses and, for a plain selector, the labels the
    metric is documented with (``cell`` = model + dimensions) or recorded with."""
    docs = _documented_metrics()
    out: set[str] = set()
    for t in panel["targets"]:
        expr = t["expr"]
        for clause in re.findall(r"by \(([^)]*)\)", expr):
            out |= {c.strip() for c in clause.split(",")}
        if "by (" not in expr:  # a plain selector keeps every label of the series
            name = re.match(r"[\w:]+", expr)
            assert name is not None, expr
            if name[0].startswith("tilewatch_cell:"):
                out |= {"model", *dims}
            else:
                for part in docs[name[0]].labels.split(","):
                    part = part.strip()
                    out |= {"model", *dims} if part == "cell" else {part} - {""}
    return out


def test_links_carry_the_variables(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    config, dashboards = rendered
    by_uid = {d["uid"]: d for d in dashboards.values()}
    checked = 0
    for dash in dashboards.values():
        defined = {v["name"] for v in dash["templating"]["list"]}
        for panel in _panels(dash):
            links = list(panel.get("fieldConfig", {}).get("defaults", {}).get("links", []))
            for override in panel.get("fieldConfig", {}).get("overrides", []):
                for prop in override["properties"]:
                    if prop["id"] == "links":
                        assert prop["value"] == [], "only overrides that remove links"
            for lk in links:
                url = lk["url"]
                if url.startswith("${tilewatch_url}/api/"):
                    continue  # tilewatch's JSON API: test_cell_dashboard_links_the_cells_api
                match = re.fullmatch(r"/d/([\w-]+)/[\w-]+\?(.*)", url)
                assert match, url
                target = by_uid[match[1]]
                params = dict(p.split("=", 1) for p in match[2].split("&") if "=" in p)
                assert "${__url_time_range}" in match[2].split("&"), url
                wanted = {
                    f"var-{v['name']}" for v in target["templating"]["list"] if v["type"] == "query"
                }
                assert wanted <= set(params), (url, wanted - set(params))
                labels = _labels_of(panel, config.dimensions)
                for value in params.values():
                    data = _DATA_LINK.fullmatch(value)
                    if data is not None:
                        label = data[2] or data[3]
                        if label is not None:
                            assert label in labels, (panel["title"], label, labels)
                        continue
                    var = re.fullmatch(r"\$(\w+)", value)
                    if var is not None:
                        assert var[1] in defined, (panel["title"], value)
                        continue
                    assert value == "__all__", (panel["title"], value)
                checked += 1
    assert checked >= 5
    dims = config.dimensions
    grid = next(
        p for p in _panels(by_uid[OVERVIEW_UID]) if p["title"].startswith(("Status grid", "Model"))
    )
    url = grid["fieldConfig"]["defaults"]["links"][0]["url"]
    for d in dims[:2]:
        assert f"var-{d}=$" in url, url  # the tile's own cell, not a constant


def test_every_panel_has_a_description_and_a_unit(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    for dash in rendered[1].values():
        for panel in _panels(dash):
            if panel["type"] == "row":
                continue
            assert len(panel["description"]) > 40, panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            if panel["type"] == "heatmap":
                assert (
                    panel["options"]["cellValues"]["unit"]
                    == panel["fieldConfig"]["defaults"]["unit"]
                )
                assert "Colour" in panel["description"] or "colour" in panel["description"]


def _heatmaps(dashboards: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for dash in dashboards.values():
        for panel in _panels(dash):
            if panel["type"] == "heatmap":
                yield panel


def _scale_key(panel: dict[str, Any]) -> str:
    expr = panel["targets"][0]["expr"]
    if "statistic:scaled" in expr:
        return "scaled"
    match = _STAT_KEY.search(expr)
    if match is not None:
        return match[1]
    return next(m for m in COUNT_METRICS.values() if expr.startswith(m))


def test_colour_scales_are_shared_per_statistic(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    config, dashboards = rendered
    stats = {s.key: s for s in dashboard_statistics(config)}
    scales: dict[str, set[tuple[Any, ...]]] = {}
    for panel in _heatmaps(dashboards):
        color = panel["options"]["color"]
        assert panel["options"]["calculate"] is False
        assert color["mode"] == "scheme"
        assert color["scheme"] in {"Viridis", "Cividis"}  # perceptually uniform, CVD-safe
        assert color["min"] < color["max"]
        key = _scale_key(panel)
        scales.setdefault(key, set()).add(
            (
                color["min"],
                color["max"],
                color["scheme"],
                color["reverse"],
                panel["options"]["cellValues"]["unit"],
            )
        )
        if key in stats:
            s = stats[key]
            assert (color["min"], color["max"], color["reverse"]) == (s.low, s.high, s.reverse)
    assert all(len(v) == 1 for v in scales.values()), scales
    assert set(stats) <= set(scales)
    # the cell dashboard's lines of a statistic use the same range
    cell = next(d for d in dashboards.values() if d["uid"] == CELL_UID)
    for panel in _panels(cell):
        match = _STAT_KEY.search(json.dumps(panel.get("targets", [])))
        if panel["type"] == "timeseries" and match is not None:
            s = stats[match[1]]
            d = panel["fieldConfig"]["defaults"]
            assert (d["min"], d["max"], d["unit"]) == (s.low, s.high, s.unit)


def test_zero_valued_cells_are_drawn(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    config, dashboards = rendered
    stats = {s.key: s for s in dashboard_statistics(config)}
    for panel in _heatmaps(dashboards):
        hide = panel["options"]["filterValues"]["le"]
        key = _scale_key(panel)
        floor = stats[key].floor if key in stats else 0.0
        # Grafana hides cells <= filterValues.le (default 1e-9, i.e. zeros): here only
        # values below anything the statistic can take are hidden.
        assert hide < floor and hide < 0.0, (panel["title"], hide)


def test_heatmap_rows_are_roll_up_cells_labelled_by_value(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    config, dashboards = rendered
    dims = config.dimensions
    for panel in _heatmaps(dashboards):
        (t,) = panel["targets"]
        label = re.fullmatch(r"\{\{(\w+)\}\}", t["legendFormat"])
        assert label is not None, t["legendFormat"]
        if dims:
            assert f'{label[1]}!="__all__"' in t["expr"]
            for other in dims:
                if other != label[1]:
                    assert f'{other}="${other}"' in t["expr"]
        assert t["format"] == "time_series" and not t["instant"]


def test_status_panels_are_green_amber_red_with_text(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    found = 0
    for dash in rendered[1].values():
        for panel in _panels(dash):
            mappings = panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", [])
            if "status" not in json.dumps(panel.get("targets", [])) or not mappings:
                continue
            options = mappings[0]["options"]
            assert [(options[k]["text"], options[k]["color"]) for k in "012"] == [
                ("OK", "green"),
                ("WARN", "#FF9830"),
                ("CRIT", "red"),
            ]
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert [(s["color"], s["value"]) for s in steps] == [
                ("green", None),
                ("#FF9830", 1),
                ("red", 2),
            ]
            found += 1
    assert found >= 4


def test_annotations_mark_versions_and_drift(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    for dash in rendered[1].values():
        names = {a["name"]: a for a in dash["annotations"]["list"]}
        assert (
            "tilewatch_model_version_first_seen_timestamp_seconds"
            in names["Model version changes"]["expr"]
        )
        assert "tilewatch_drift_last_timestamp_seconds" in names["Drift detections"]["expr"]
        for a in (names["Model version changes"], names["Drift detections"]):
            assert a["useValueForTime"] is True and "* 1000" in a["expr"]


def _documented_metrics() -> Mapping[str, MetricDoc]:
    """Every exported metric, by name (the metric catalog)."""
    return CATALOG


def test_the_labeling_panel_follows_the_config() -> None:
    """The overview shows the queue's rate and mix only with a [labeling] section."""
    exprs = {}
    for name in ("rich", "labeling"):
        files = render_dashboards(_config(**CONFIGS[name]))
        overview = next(
            json.loads(t) for p, t in files.items() if p.endswith(".json") and OVERVIEW_UID in t
        )
        exprs[name] = [
            t["expr"]
            for panel in _panels(overview)
            if panel["title"] == "Labeling queue: rate and mix"
            for t in panel["targets"]
        ]
    assert exprs["rich"] == []
    assert exprs["labeling"] == [
        "sum by (reason) (rate(tilewatch_labeling_selected_total"
        '{segment="__all__", region="__all__"}[$__rate_interval]))'
    ]


def test_every_queried_metric_is_exported_or_recorded() -> None:
    """A renamed metric breaks this test, not a dashboard in production."""
    config = _config(**CONFIGS["labeling"])
    files = render_dashboards(config)
    recorded = set(re.findall(r"record: (\S+)", files[RULES_PATH]))
    known = set(_documented_metrics()) | recorded
    used: set[str] = set()
    for path, text in files.items():
        exprs = (
            [v for k, v in _walk(json.loads(text)) if k == "expr"]
            if path.endswith(".json")
            else re.findall(r'expr: (".*")', text)
        )
        for expr in exprs:
            expr = json.loads(expr) if expr.startswith('"') else expr
            used |= set(re.findall(r"\b(tilewatch[a-z_]*:?[a-z_:]*)\b", expr))
    used = {u for u in used if u.startswith("tilewatch_")}
    missing = sorted(used - known)
    assert not missing, f"queried but neither documented nor recorded: {missing}"


def test_statistics_follow_the_config() -> None:
    keys = lambda c: [s.key for s in dashboard_statistics(c)]  # noqa: E731
    assert keys(_config()) == ["score_mean", "latency_p95"]
    assert keys(_config(**RICH)) == [
        "score_mean",
        "score_psi",
        "accuracy",
        "error_rate",
        "missing_share",
        "latency_p95",
        "drift_active",
    ]
    assert "mae" in keys(_config(**CONFIGS["regression"]))
    psi = next(s for s in dashboard_statistics(_config(**RICH)) if s.key == "score_psi")
    assert (psi.amber, psi.red, psi.low, psi.high) == (0.1, 0.3, 0.0, 0.6)


def test_hierarchy_thresholds_drive_scales_and_threshold_lines() -> None:
    from tilewatch.aggregators.health.settings import LOWER_IS_WORSE, BaseMetric, HierarchySettings

    base = _config(**RICH)

    hierarchy = HierarchySettings(
        (
            BaseMetric("acc", "tilewatch_window_accuracy_ratio", 0.9, 0.8, LOWER_IS_WORSE),
            BaseMetric(
                "p95",
                "tilewatch_window_latency_seconds",
                0.25,
                2.0,
                selector=("percentile", "95"),
            ),
        )
    )
    config = dataclasses.replace(base, hierarchy=hierarchy)
    stats = {s.key: s for s in dashboard_statistics(config)}
    acc, p95 = stats["accuracy"], stats["latency_p95"]
    assert (acc.direction, acc.amber, acc.red, acc.low, acc.high) == (
        "lower_is_worse",
        0.9,
        0.8,
        0.6,
        1.0,
    )
    assert acc.reverse
    assert (p95.amber, p95.red, p95.low, p95.high) == (0.25, 2.0, 0.0, 4.0)
    cell = json.loads(render_dashboards(config)[f"deploy/grafana/dashboards/{CELL_UID}.json"])
    lines = {p["title"]: p for p in _panels(cell) if p["type"] == "timeseries"}
    steps = lines["Accuracy"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == [
        ("red", None),
        ("#FF9830", 0.8),
        ("green", 0.9),
    ]
    steps = lines["Latency p95"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == [
        ("green", None),
        ("#FF9830", 0.25),
        ("red", 2.0),
    ]
    assert (
        lines["Accuracy"]["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    )


def test_rendering_is_deterministic() -> None:
    config = _config(**RICH)
    assert render_dashboards(config) == render_dashboards(_config(**RICH))


def test_provisioning_uses_the_fixed_uid() -> None:
    yaml = pytest.importorskip("yaml")
    files = render_dashboards(_config())
    ds = yaml.safe_load(files["deploy/grafana/provisioning/datasources/tilewatch.yml"])
    (source,) = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    prov = yaml.safe_load(files["deploy/grafana/provisioning/dashboards/tilewatch.yml"])
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


@pytest.mark.prometheus
def test_recording_rules_pass_promtool(promtool_bin: str, tmp_path: Path) -> None:
    for name, sections in CONFIGS.items():
        path = tmp_path / f"{name}.rules.yml"
        path.write_text(render_dashboards(_config(**sections))[RULES_PATH])
        result = subprocess.run(
            [promtool_bin, "check", "rules", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, (name, result.stdout, result.stderr)


def test_query_variables_agree_with_the_editor_fields(
    rendered: tuple[GeneratorInputs, dict[str, dict[str, Any]]],
) -> None:
    """Grafana rebuilds a label-values query from the editor fields: both must agree."""
    for dash in rendered[1].values():
        for var in dash["templating"]["list"]:
            if var["type"] != "query":
                continue
            q = var["query"]
            assert q["qryType"] == 1 and q["query"] == var["definition"]
            filters = ", ".join(f'{f["label"]}{f["op"]}"{f["value"]}"' for f in q["labelFilters"])
            selector = f"{q['metric']}{{{filters}}}" if filters else q["metric"]
            assert var["definition"] == f"label_values({selector}, {q['label']})"
            assert q["label"] == var["name"]


def test_multiclass_row_queries_exported_metrics() -> None:
    """With [events] scores the cell dashboard has a Classes row; its queries are catalogued."""
    for name, has_row in (("multiclass", True), ("rich", False)):
        files = render_dashboards(_config(**CONFIGS[name]))
        cell = next(json.loads(t) for p, t in files.items() if p.endswith("cell.json"))
        titles = [p["title"] for p in _panels(cell)]
        assert ("Classes" in titles) is has_row
    exprs = [v for k, v in _walk(cell_multiclass()) if k == "expr"]
    used = {
        m
        for e in exprs
        for m in re.findall(r"\b(tilewatch_window_class\w*|tilewatch_window_macro\w*)", e)
    }
    assert used and used <= set(CATALOG)


def cell_multiclass() -> dict[str, Any]:
    files = render_dashboards(_config(**CONFIGS["multiclass"]))
    return next(json.loads(t) for p, t in files.items() if p.endswith("cell.json"))
