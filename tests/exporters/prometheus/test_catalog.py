"""The metric catalog: one entry per metric, and every collector reads its families from it."""

from __future__ import annotations

import pytest

from tilewatch.exporters.prometheus.catalog import (
    CATALOG,
    COUNTER,
    DRIFT_METRICS,
    FORECAST_METRICS,
    GAUGE,
    HEALTH_METRICS,
    LABELING_METRICS,
    METRICS,
    MULTICLASS_METRICS,
    PERFORMANCE_METRICS,
    VECTOR_METRICS,
)
from tilewatch.exporters.prometheus.families import family

TABLES = (
    METRICS,
    DRIFT_METRICS,
    PERFORMANCE_METRICS,
    HEALTH_METRICS,
    MULTICLASS_METRICS,
    FORECAST_METRICS,
    LABELING_METRICS,
    VECTOR_METRICS,
)


def test_every_metric_is_catalogued_once() -> None:
    names = [m.name for table in TABLES for m in table]
    assert len(names) == len(set(names)) == len(CATALOG)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_families_take_name_type_help_and_labels_from_the_catalog(name: str) -> None:
    doc = CATALOG[name]
    assert doc.kind in (COUNTER, GAUGE)
    assert doc.name.endswith("_total") == (doc.kind == COUNTER)
    fam = family(name, ("model", "segment"))
    assert (fam.name, fam.type, fam.documentation) == (doc.family, doc.kind, doc.help)
    assert doc.help.endswith("."), "help is a sentence"


def test_cell_expands_to_the_model_and_the_dimensions() -> None:
    doc = CATALOG["tilewatch_health_driver_info"]
    assert doc.label_names(("model", "segment", "region")) == [
        "level",
        "component",
        "indicator",
        "model",
        "segment",
        "region",
        "driver",
        "statistic",
    ]
    assert CATALOG["tilewatch_read_events_total"].label_names(("model",)) == []


def test_an_uncatalogued_metric_cannot_be_exported() -> None:
    with pytest.raises(KeyError):
        family("tilewatch_not_in_the_catalog")
