"""The cell dashboard's Embeddings and Explanations rows: present with their [events] keys,
querying catalogued metrics by their own labels."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.exporters.grafana.test_grafana import RICH, _config, _panels, _walk
from tilewatch.exporters.grafana.render import render_dashboards
from tilewatch.exporters.prometheus.catalog import CATALOG


def _cell(**events: str) -> dict[str, Any]:
    files = render_dashboards(_config(**{**RICH, "events": events}))
    return next(json.loads(t) for p, t in files.items() if p.endswith("cell.json"))


def test_vector_rows_follow_the_events_keys_and_query_catalogued_metrics() -> None:
    for events, rows in (
        ({}, set()),
        ({"embedding": "emb"}, {"Embeddings"}),
        ({"attributions": "shap"}, {"Explanations"}),
        ({"embedding": "emb", "attributions": "shap"}, {"Embeddings", "Explanations"}),
    ):
        cell = _cell(**events)
        titles = {p["title"] for p in _panels(cell)}
        assert titles & {"Embeddings", "Explanations"} == rows
    exprs = [v for k, v in _walk(cell) if k == "expr"]
    used = 0
    for expr in exprs:
        for name, selector in re.findall(
            r"(tilewatch_(?:window_embedding|window_vector|"
            r"window_attribution)\w*)\{([^}]*)\}",
            expr,
        ):
            doc = CATALOG[name]
            labels = set(doc.label_names(("model", "segment", "region")))
            assert {m.split("=")[0].strip() for m in selector.split(",")} <= labels, expr
            used += 1
        for by in re.findall(r"by \(([^)]*)\)", expr):
            if "tilewatch_window_embedding" in expr or "attribution" in expr:
                assert {b.strip() for b in by.split(",")} <= {
                    "class",
                    "signal",
                    "component",
                    "feature",
                }
    assert used == 8


def test_the_scatter_reads_both_samples_of_the_api_through_the_infinity_source() -> None:
    files = render_dashboards(_config(**{**RICH, "events": {"embedding": "emb"}}))
    cell = next(json.loads(t) for p, t in files.items() if p.endswith("cell.json"))
    (scatter,) = [p for p in _panels(cell) if p.get("type") == "xychart"]
    roots = [t["root_selector"] for t in scatter["targets"]]
    assert roots == ["reference", "live"]
    assert {t["url"] for t in scatter["targets"]} == {
        "/api/embeddings?model=$model&segment=$segment&region=$region&class=__all__"
    }
    assert scatter["options"]["mapping"] == "manual" and len(scatter["options"]["series"]) == 2
    sources = next(t for p, t in files.items() if p.endswith("datasources/tilewatch.yml"))
    assert "yesoreyeram-infinity-datasource" in sources and "uid: tilewatch-api" in sources
    plain = render_dashboards(_config(**RICH))
    assert "infinity" not in next(
        t for p, t in plain.items() if p.endswith("tilewatch.yml") and "datasources" in p
    )
