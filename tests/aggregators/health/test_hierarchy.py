"""The health hierarchy on crafted cells: normalization, thresholds, gating, aggregation,
model roll-up, drivers and business indicators, each value computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tilewatch.aggregators.health.aging import (
    PIPELINE_LAG,
    SILENCE,
    VERSION_AGE,
    aging_statistics,
)
from tilewatch.aggregators.health.evaluate import HierarchyInputs, ModelGap, evaluate
from tilewatch.aggregators.health.settings import (
    AMBER,
    GREEN,
    LOWER_IS_WORSE,
    NO_STATUS,
    RED,
    BaseMetric,
    Component,
    HierarchySettings,
    Indicator,
    parse_statistic,
    risk,
    status_of,
)

ALL = "__all__"
MEAN = "tilewatch_window_score_mean"
EVENTS = "tilewatch_window_events"
LABELED = "tilewatch_window_labeled_events"
ERROR = "tilewatch_window_error_ratio"
MISSING = 'tilewatch_window_feature_missing_ratio{feature="plan"}'

# Model "m": segments a, b, c in region x (leaf cells 0-2), roll-ups 3-6; model "n": one leaf.
KEYS = [
    ("m", "a", "x"),
    ("m", "b", "x"),
    ("m", "c", "x"),
    ("m", ALL, "x"),
    ("m", "a", ALL),
    ("m", "b", ALL),
    ("m", ALL, ALL),
    ("n", "a", "x"),
    ("n", ALL, ALL),
]
LEAF = np.array([True, True, True, False, False, False, False, True, False])
MODEL_IDS = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1])


def inputs(stats: dict[str, list[float]], **kw: object) -> HierarchyInputs:
    arrays = {k: np.array(v, dtype=np.float64) for k, v in stats.items()}
    return HierarchyInputs(
        ("segment", "region"),
        KEYS,
        LEAF,
        MODEL_IDS,
        ["m", "n"],
        arrays,
        **kw,  # type: ignore[arg-type]
    )


def metric(name: str = "mean", **kw: object) -> BaseMetric:
    args: dict[str, object] = {"metric": MEAN, "amber": 0.5, "red": 0.7, "min_samples": 10}
    args.update(kw)
    return BaseMetric(name, **args)  # type: ignore[arg-type]


# --- normalization and status -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-1.0, 0.0), (0.0, 0.0), (0.25, 0.25), (0.5, 0.5), (0.6, 0.75), (0.7, 1.0), (9.0, 1.0)],
)
def test_risk_is_piecewise_linear_between_best_amber_and_red(value: float, expected: float) -> None:
    assert risk([value], metric())[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "expected"), [(1.0, 0.0), (0.95, 0.25), (0.9, 0.5), (0.85, 0.75), (0.8, 1.0)]
)
def test_lower_is_worse_is_mirrored(value: float, expected: float) -> None:
    acc = BaseMetric(
        "acc", "tilewatch_window_accuracy_ratio", amber=0.9, red=0.8, direction=LOWER_IS_WORSE
    )
    assert acc.anchor == pytest.approx(1.0)
    assert risk([value], acc)[0] == pytest.approx(expected)


def test_explicit_best_moves_the_zero_point() -> None:
    m = metric(best=0.3)
    assert risk([0.3, 0.4, 0.5], m).tolist() == pytest.approx([0.0, 0.25, 0.5])


def test_default_best_for_a_non_positive_amber() -> None:
    m = BaseMetric("z", "tilewatch_window_score_mean_change", amber=-0.1, red=0.1)
    assert m.anchor == pytest.approx(-0.3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amber": 0.7, "red": 0.5},  # amber beyond red for higher_is_worse
        {"amber": 0.5, "red": 0.7, "best": 0.6},
        {"amber": 0.5, "red": 0.7, "direction": "sideways"},
        {"amber": 0.5, "red": math.inf},
        {"amber": 0.5, "red": 0.7, "min_samples": -1},
    ],
)
def test_inconsistent_thresholds_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BaseMetric("x", MEAN, **kwargs)  # type: ignore[arg-type]


def test_status_at_and_over_thresholds() -> None:
    assert status_of([0.49, 0.5, 0.99, 1.0, math.nan], 0.5, 1.0).tolist() == [
        GREEN,
        AMBER,
        AMBER,
        RED,
        NO_STATUS,
    ]


def test_parse_statistic() -> None:
    assert parse_statistic(MISSING) == (
        "tilewatch_window_feature_missing_ratio",
        ("feature", "plan"),
    )
    for bad in ("", "a b", 'x{a="1",b="2"}', "x{a=1}", '9x{a="1"}'):
        with pytest.raises(ValueError):
            parse_statistic(bad)


# --- cell components ------------------------------------------------------------------------


def test_thresholds_and_min_sample_gating_per_cell() -> None:
    settings = HierarchySettings((metric(),), (Component("q", (("mean", 1.0),)),))
    result = evaluate(
        inputs(
            {
                MEAN: [0.9, 0.55, 0.2, 0.6, 0.9, 0.55, 0.5, 0.9, 0.9],
                EVENTS: [20, 20, 20, 60, 20, 20, 60, 9, 9],  # model n below min_samples
            }
        ),
        settings,
    )
    q = result.components[0]
    assert q.status.tolist() == [RED, AMBER, GREEN, AMBER, RED, AMBER, AMBER, NO_STATUS, NO_STATUS]
    # health = 1 - risk: 0.55 -> risk 0.625; 0.2 -> 0.2; 0.6 -> 0.75
    assert q.score[:4].tolist() == pytest.approx([0.0, 0.375, 0.8, 0.25])
    assert math.isnan(q.score[7]) and math.isnan(q.score[8])
    assert q.driver.tolist() == [0, 0, 0, 0, 0, 0, 0, -1, -1]


def test_nan_value_gives_no_verdict_even_with_samples() -> None:
    settings = HierarchySettings((metric(),), (Component("q", (("mean", 1.0),)),))
    result = evaluate(inputs({MEAN: [math.nan] * 9, EVENTS: [100] * 9}), settings)
    assert (result.components[0].status == NO_STATUS).all()
    assert np.isnan(result.components[0].model_score).all()


def test_a_missing_count_statistic_gives_no_verdict() -> None:
    settings = HierarchySettings((metric(count=LABELED),), (Component("q", (("mean", 1.0),)),))
    result = evaluate(inputs({MEAN: [0.9] * 9, EVENTS: [100] * 9}), settings)
    assert (result.components[0].status == NO_STATUS).all()


def test_min_samples_zero_needs_no_count() -> None:
    settings = HierarchySettings((metric(min_samples=0),), (Component("q", (("mean", 1.0),)),))
    result = evaluate(inputs({MEAN: [0.9] * 9}), settings)
    assert (result.components[0].status == RED).all()


def two_members(aggregation: str, weights: tuple[float, float] = (1.0, 1.0)) -> HierarchySettings:
    miss = BaseMetric(
        "miss",
        "tilewatch_window_feature_missing_ratio",
        amber=0.1,
        red=0.3,
        selector=("feature", "plan"),
        min_samples=10,
    )
    comp = Component("dq", (("mean", weights[0]), ("miss", weights[1])), aggregation=aggregation)
    return HierarchySettings((metric(), miss), (comp,))


STATS_TWO = {
    # cell 0: mean red (risk 1), missing green (0.05 -> 0.25)
    # cell 1: mean 0.25 (0.25), missing amber (0.2 -> 0.75)
    # cell 2: mean NaN, missing 0.1 (0.5); cell 3: both NaN; others: both 0 -> risk 0
    MEAN: [0.9, 0.25, math.nan, math.nan, 0, 0, 0, 0, 0],
    MISSING: [0.05, 0.2, 0.1, math.nan, 0, 0, 0, 0, 0],
    EVENTS: [50] * 9,
}


def test_worst_aggregation_takes_the_highest_member_risk_and_names_it() -> None:
    dq = evaluate(inputs(STATS_TWO), two_members("worst")).components[0]
    assert dq.risk[:4].tolist()[:3] == pytest.approx([1.0, 0.75, 0.5])
    assert math.isnan(dq.risk[3])
    assert dq.status[:4].tolist() == [RED, AMBER, AMBER, NO_STATUS]
    assert [dq.members[d] if d >= 0 else None for d in dq.driver[:4]] == [
        "mean",
        "miss",
        "miss",
        None,
    ]


def test_weighted_aggregation_renormalizes_over_members_with_a_verdict() -> None:
    dq = evaluate(inputs(STATS_TWO), two_members("weighted", (3.0, 1.0))).components[0]
    # cell 0: (3*1 + 1*0.25)/4 = 0.8125; cell 1: (3*0.25 + 0.75)/4 = 0.375; cell 2: only miss
    assert dq.risk[:3].tolist() == pytest.approx([0.8125, 0.375, 0.5])
    assert dq.status[:3].tolist() == [AMBER, GREEN, AMBER]
    # the driver is still the member with the highest risk
    assert [dq.members[d] for d in dq.driver[:3]] == ["mean", "miss", "miss"]


def test_driver_ties_go_to_the_first_member() -> None:
    stats = {**STATS_TWO, MEAN: [0.6] * 9, MISSING: [0.2] * 9}  # both risk 0.75
    dq = evaluate(inputs(stats), two_members("worst")).components[0]
    assert (dq.driver == 0).all()


# --- model components -----------------------------------------------------------------------


def test_model_component_is_its_worst_leaf_cell_with_that_cells_driver() -> None:
    stats = {
        MEAN: [0.55, 0.65, 0.2, 0.9, 0.9, 0.9, 0.9, 0.3, 0.3],  # roll-ups worse but ignored
        EVENTS: [50] * 9,
    }
    q = evaluate(inputs(stats), HierarchySettings((metric(),), (Component("q", (("mean", 1.0),)),)))
    q_comp = q.components[0]
    assert q_comp.model_score.tolist() == pytest.approx([1 - 0.875, 1 - 0.3])
    assert q_comp.model_status.tolist() == [AMBER, GREEN]
    assert q_comp.model_cells.tolist() == [3, 1]
    driver = q_comp.model_drivers[0]
    assert driver is not None
    assert (driver.key, driver.cell, driver.metric, driver.statistic) == (
        ("m", "b", "x"),
        1,
        "mean",
        MEAN,
    )


def test_model_without_leaf_verdicts_falls_back_to_its_total_cell() -> None:
    stats = {MEAN: [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.6, 0.9, 0.6], EVENTS: [5] * 6 + [50, 5, 50]}
    q = evaluate(inputs(stats), HierarchySettings((metric(),), (Component("q", (("mean", 1.0),)),)))
    comp = q.components[0]
    assert comp.model_cells.tolist() == [0, 0]
    assert comp.model_status.tolist() == [AMBER, AMBER]
    assert [d.key for d in comp.model_drivers if d is not None] == [
        ("m", ALL, ALL),
        ("n", ALL, ALL),
    ]


def test_model_without_any_verdict_has_no_status_and_no_driver() -> None:
    stats = {MEAN: [0.9] * 9, EVENTS: [1] * 9}
    comp = evaluate(
        inputs(stats), HierarchySettings((metric(),), (Component("q", (("mean", 1.0),)),))
    ).components[0]
    assert comp.model_status.tolist() == [NO_STATUS, NO_STATUS]
    assert comp.model_drivers == [None, None]


# --- business indicators ------------------------------------------------------------------


def hierarchy_with(*indicators: Indicator) -> HierarchySettings:
    err = BaseMetric("err", ERROR, amber=0.15, red=0.25, min_samples=20, count=LABELED)
    return HierarchySettings(
        (metric(), err),
        (Component("q", (("mean", 1.0),)), Component("perf", (("err", 1.0),))),
        indicators,
    )


BUSINESS = {
    # leaf cells of m: 0 (red via mean), 1 (red via err), 2 (green); n: 7 (green)
    MEAN: [0.9, 0.2, 0.2, 0, 0, 0, 0, 0.2, 0],
    EVENTS: [100, 300, 600, 0, 0, 0, 0, 50, 0],
    ERROR: [0.1, 0.3, 0.12, 0, 0, 0, 0, 0.5, 0],
    LABELED: [40, 40, 10, 0, 0, 0, 0, 40, 0],  # cell 2 below min_samples for err
}


def test_red_traffic_share_counts_the_volume_in_red_leaf_cells() -> None:
    share = evaluate(
        inputs(BUSINESS),
        hierarchy_with(Indicator("share", "red_traffic_share", amber=0.1, red=0.5)),
    ).indicators[0]
    # m: (100 + 300) / 1000 = 0.4 -> amber; n: cell 7 red via err (0.5) -> 50 / 50 = 1 -> red
    assert share.value.tolist() == pytest.approx([0.4, 1.0])
    assert share.status.tolist() == [AMBER, RED]
    d = share.drivers[0]
    assert d is not None  # the red cell with the most volume: cell 1, through perf / err
    assert (d.key, d.component, d.metric, d.statistic) == (("m", "b", "x"), "perf", "err", ERROR)


def test_red_traffic_share_limited_to_some_components() -> None:
    share = evaluate(
        inputs(BUSINESS),
        hierarchy_with(
            Indicator("share", "red_traffic_share", amber=0.1, red=0.5, components=("q",))
        ),
    ).indicators[0]
    assert share.value.tolist() == pytest.approx([0.1, 0.0])
    assert share.status.tolist() == [AMBER, GREEN]
    d0, d1 = share.drivers
    assert d0 is not None and d0.key == ("m", "a", "x") and d0.component == "q"
    # no red cell in n: the cell with the highest risk of the chosen components
    assert d1 is not None and d1.key == ("n", "a", "x") and d1.metric == "mean"


def test_revenue_at_risk_is_volume_times_excess_error_times_value() -> None:
    revenue = evaluate(
        inputs(BUSINESS),
        hierarchy_with(
            Indicator(
                "revenue",
                "revenue_at_risk",
                amber=100.0,
                red=1000.0,
                metric="err",
                target=0.12,
                value_per_error=5.0,
                currency="EUR",
            )
        ),
    ).indicators[0]
    # m: cell 0: 100 x 0 = 0; cell 1: 300 x (0.3 - 0.12) x 5 = 270; cell 2 gated out
    # n: 50 x (0.5 - 0.12) x 5 = 95
    assert revenue.value.tolist() == pytest.approx([270.0, 95.0])
    assert revenue.status.tolist() == [AMBER, GREEN]
    d = revenue.drivers[0]
    assert d is not None and d.key == ("m", "b", "x") and d.metric == "err"


def test_revenue_without_error_verdicts_is_undefined() -> None:
    stats = {**BUSINESS, LABELED: [0] * 9}
    revenue = evaluate(
        inputs(stats),
        hierarchy_with(Indicator("revenue", "revenue_at_risk", 100.0, 1000.0, metric="err")),
    ).indicators[0]
    assert np.isnan(revenue.value).all()
    assert revenue.status.tolist() == [NO_STATUS, NO_STATUS]
    assert revenue.drivers == [None, None]


def test_fairness_gap_takes_the_worst_dimension_and_names_its_worst_value() -> None:
    gaps = [
        ModelGap("tilewatch_window_error_gap_ratio", "m", "segment", 0.04, "b"),
        ModelGap("tilewatch_window_error_gap_ratio", "m", "region", 0.12, "x"),
        ModelGap("tilewatch_window_accuracy_gap_ratio", "m", "segment", 0.5, "a"),
        ModelGap("tilewatch_window_error_gap_ratio", "n", "segment", math.nan, ""),
    ]
    gap = evaluate(
        inputs(BUSINESS, gaps=gaps),
        hierarchy_with(
            Indicator(
                "gap",
                "fairness_gap",
                amber=0.05,
                red=0.1,
                metric="tilewatch_window_error_gap_ratio",
            )
        ),
    ).indicators[0]
    assert gap.value[0] == pytest.approx(0.12) and math.isnan(gap.value[1])
    assert gap.status.tolist() == [RED, NO_STATUS]
    d = gap.drivers[0]
    assert d is not None and d.key == ("m", ALL, "x") and d.cell == 3


# --- aging --------------------------------------------------------------------------------


def test_aging_signals_feed_components_like_any_base_metric() -> None:
    last = [990.0, 900.0, 100.0, 990, 990, 900, 990, 990, 990]
    stale = BaseMetric("stale", SILENCE, amber=60.0, red=600.0, min_samples=0)
    age = BaseMetric("age", VERSION_AGE, amber=100.0, red=500.0, min_samples=0)
    settings = HierarchySettings(
        (stale, age), (Component("aging", (("stale", 1.0), ("age", 1.0))),)
    )
    result = evaluate(
        inputs(
            {"tilewatch_last_event_timestamp_seconds": last},
            version_first_seen={"m": 850.0, "n": 200.0},
            now=1000.0,
        ),
        settings,
    )
    # silence: behind the model's event-time clock (m: 990, n: 990), not behind ``now``
    assert result.statistics[SILENCE][:3].tolist() == [0.0, 90.0, 890.0]
    assert result.statistics[PIPELINE_LAG].tolist() == [10.0] * 9
    assert result.statistics[VERSION_AGE].tolist() == [150.0] * 7 + [800.0] * 2
    aging = result.components[0]
    # cell 0: silent 0 (0) vs age 150 (0.5625); cell 2: silent 890 -> red
    assert aging.status[:3].tolist() == [AMBER, AMBER, RED]
    assert [aging.members[d] for d in aging.driver[:3]] == ["age", "age", "stale"]
    assert aging.status[7] == RED  # n's version is 800 s old


def test_aging_without_versions_has_no_version_age() -> None:
    out = aging_statistics(np.array([5.0]), np.array([0]), ["m"], {}, now=10.0)
    assert set(out) == {SILENCE, PIPELINE_LAG}


def test_a_replica_behind_real_time_silences_no_cell() -> None:
    """Reading a topic an hour behind real time: every cell is an hour behind ``now``, but no
    cell is behind its model's clock; only the model's pipeline lag shows it. A cell whose
    traffic stopped 20 minutes before the rest of its model is silent, whatever ``now``."""
    last = np.array([3600.0, 3590.0, 2400.0, 3600.0])
    out = aging_statistics(last, np.array([0, 0, 0, 1]), ["m", "n"], {}, now=7200.0)
    assert out[SILENCE].tolist() == [0.0, 10.0, 1200.0, 0.0]
    assert out[PIPELINE_LAG].tolist() == [3600.0] * 4
    later = aging_statistics(last, np.array([0, 0, 0, 1]), ["m", "n"], {}, now=99_999.0)
    assert later[SILENCE].tolist() == out[SILENCE].tolist()
    assert set(aging_statistics(last, np.zeros(4, dtype=int), ["m"], {}, math.nan)) == {SILENCE}


# --- settings consistency -------------------------------------------------------------------


def test_settings_reject_dangling_references() -> None:
    with pytest.raises(ValueError, match="unknown base metrics"):
        HierarchySettings((metric(),), (Component("q", (("nope", 1.0),)),))
    with pytest.raises(ValueError, match="unknown components"):
        HierarchySettings(
            (metric(),),
            (Component("q", (("mean", 1.0),)),),
            (Indicator("s", "red_traffic_share", 0.1, 0.2, components=("x",)),),
        )
    with pytest.raises(ValueError, match="unknown base metric"):
        HierarchySettings(
            (metric(),),
            (),
            (Indicator("r", "revenue_at_risk", 1.0, 2.0, metric="err"),),
        )
    with pytest.raises(ValueError):
        Component("q", (("mean", 0.0),))
    with pytest.raises(ValueError):
        Component("q", (("mean", 1.0),), aggregation="median")
    with pytest.raises(ValueError):
        Indicator("s", "red_traffic_share", 0.3, 0.2)
