"""[hierarchy]: defaults per config, overrides, and errors that name the file and the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tilewatch.cli import main
from tilewatch.config import ConfigError, parse_config


def names(config: Any) -> tuple[list[str], list[str]]:
    h = config.hierarchy
    return [c.name for c in h.components], [i.name for i in h.indicators]


def test_default_hierarchy_without_drift_or_labels_keeps_what_is_produced() -> None:
    config = parse_config({})
    assert names(config) == (["latency", "aging"], ["red_traffic_share"])
    notes = "\n".join(config.hierarchy.notes)
    assert "component data_quality: left out" in notes
    assert "component drift: left out" in notes
    assert 'tilewatch_window_drift_flag{signal="score_psi"}' in notes
    assert "component performance: left out" in notes
    assert "indicator fairness_gap: left out" in notes
    latency = config.hierarchy.metric("latency_p95")
    assert latency.statistic == 'tilewatch_window_latency_seconds{percentile="95"}'
    assert latency.min_samples == 30
    silence = config.hierarchy.metric("silence")
    assert silence.statistic == "tilewatch_cell_silence_seconds"
    assert (silence.amber, silence.red, silence.min_samples) == (300.0, 1800.0, 0)


def test_default_hierarchy_with_drift_baseline_and_labels_is_complete() -> None:
    config = parse_config(
        {
            "cells": {"min_samples": 50},
            "baseline": {"path": "baseline.json"},
            "drift": {"features": ["plan", "Monthly Spend"], "detectors": ["adwin"]},
            "labels": {"threshold": 0.5, "min_samples": 40},
        }
    )
    assert names(config) == (
        ["data_quality", "drift", "performance", "latency", "aging"],
        ["red_traffic_share", "revenue_at_risk", "fairness_gap"],
    )
    assert config.hierarchy.notes == ()
    h = config.hierarchy
    dq = h.components[0]
    assert dq.member_names == ("missing_plan", "missing_monthly_spend")
    assert h.metric("missing_plan").statistic == (
        'tilewatch_window_feature_missing_ratio{feature="plan"}'
    )
    assert h.components[1].member_names == (
        "score_psi",
        "feature_psi",
        "class_shift",
        "drift_active_adwin",
    )
    # Verdicts are decisions against each cell's reference, not absolute thresholds.
    assert h.metric("score_psi").statistic == 'tilewatch_window_drift_flag{signal="score_psi"}'
    assert h.components[2].member_names == ("error_excess", "calibration")
    error = h.metric("error_excess")
    assert error.statistic == 'tilewatch_window_performance_flag{signal="error_rate"}'
    assert (error.count, error.min_samples) == ("tilewatch_window_labeled_events", 40)
    assert h.metric("score_psi").min_samples == 50
    revenue = h.indicators[1]
    assert (revenue.metric, revenue.target) == ("error_excess_rate", 0.0)
    assert {m.name for m in h.metrics}.isdisjoint({"error_ratio", "calibration_error"})


def test_drift_without_baseline_drops_only_the_baseline_statistics() -> None:
    config = parse_config({"drift": {"features": ["plan"]}})
    comps = {c.name: c.member_names for c in config.hierarchy.components}
    # The flags need no baseline file (trailing references); untested cells have no verdict.
    assert comps["drift"] == (
        "score_psi",
        "feature_psi",
        "class_shift",
        "drift_active_adwin",
        "drift_active_page_hinkley",
    )
    assert comps["data_quality"] == ("missing_plan",)


def test_regression_has_no_default_performance_component() -> None:
    config = parse_config({"labels": {"task": "regression"}})
    assert "performance" not in names(config)[0]


def test_user_metrics_override_defaults_key_by_key_and_components_replace_defaults() -> None:
    config = parse_config(
        {
            "hierarchy": {
                "metrics": {
                    "latency_p95": {"red": 2.0},
                    "mean": {
                        "metric": "tilewatch_window_score_mean",
                        "amber": 0.5,
                        "red": 0.7,
                        "best": 0.1,
                    },
                },
                "components": {
                    "speed": {"members": ["latency_p95"]},
                    "blend": {
                        "aggregation": "weighted",
                        "members": {"mean": 3, "silence": 1},
                        "amber": 0.4,
                        "red": 0.8,
                    },
                },
                "indicators": {
                    "share": {
                        "kind": "red_traffic_share",
                        "amber": 0.1,
                        "red": 0.3,
                        "components": ["blend"],
                    },
                },
            }
        }
    )
    h = config.hierarchy
    assert names(config) == (["speed", "blend"], ["share"])
    assert (h.metric("latency_p95").amber, h.metric("latency_p95").red) == (0.25, 2.0)
    assert h.metric("mean").best == 0.1
    blend = h.components[1]
    assert (blend.aggregation, blend.members, blend.amber, blend.red) == (
        "weighted",
        (("mean", 3.0), ("silence", 1.0)),
        0.4,
        0.8,
    )
    assert h.indicators[0].components == ("blend",)
    assert {m.name for m in h.metrics} == {"latency_p95", "mean", "silence"}


def test_revenue_at_risk_from_config() -> None:
    config = parse_config(
        {
            "labels": {"threshold": 0.5},
            "hierarchy": {
                "indicators": {
                    "revenue_at_risk": {
                        "target": 0.05,
                        "value_per_error": 12.5,
                        "currency": "USD",
                        "amber": 10,
                        "red": 100,
                    },
                }
            },
        }
    )
    (ind,) = config.hierarchy.indicators
    assert (ind.kind, ind.metric, ind.target, ind.value_per_error, ind.currency) == (
        "revenue_at_risk",
        "error_excess_rate",
        0.05,
        12.5,
        "USD",
    )


def test_disabled_hierarchy_is_empty() -> None:
    config = parse_config({"hierarchy": {"enabled": False}})
    assert config.hierarchy.empty
    assert config.hierarchy.notes == ("hierarchy: disabled ([hierarchy] enabled = false)",)


def test_alert_settings() -> None:
    config = parse_config(
        {
            "hierarchy": {
                "alerts": {
                    "for_critical": "30s",
                    "for_warning": "2m",
                    "for_info": "1h",
                    "rate_window": "1m",
                    "pager_url": "https://pager.example/hook",
                    "job": "tw",
                    "dead_letter_ratio": 0.05,
                }
            }
        }
    )
    a = config.alerts
    assert (a.for_critical, a.for_warning, a.for_info, a.rate_window) == (30.0, 120.0, 3600.0, 60.0)
    assert (a.pager_url, a.ticket_url, a.job, a.dead_letter_ratio) == (
        "https://pager.example/hook",
        "",
        "tw",
        0.05,
    )


M = "t.toml: [hierarchy.metrics.x]"


@pytest.mark.parametrize(
    ("hierarchy", "message"),
    [
        (
            {"metrics": {"x": {"metric": "tilewatch_window_score_meen", "amber": 1, "red": 2}}},
            f"{M}.metric: expected a per-cell statistic tilewatch exports (docs/hierarchy.md), "
            'got "tilewatch_window_score_meen"',
        ),
        (
            {"metrics": {"x": {"metric": "tilewatch_window_feature_psi", "amber": 1, "red": 2}}},
            f'{M}.metric: expected tilewatch_window_feature_psi{{feature="..."}}, '
            'got "tilewatch_window_feature_psi"',
        ),
        (
            {
                "metrics": {
                    "x": {"metric": 'tilewatch_drift_active{feature="a"}', "amber": 1, "red": 2}
                }
            },
            f'{M}.metric: expected tilewatch_drift_active{{detector="..."}}',
        ),
        (
            {
                "metrics": {
                    "x": {"metric": 'tilewatch_window_score_mean{q="1"}', "amber": 1, "red": 2}
                }
            },
            f"{M}.metric: expected tilewatch_window_score_mean without a label selector",
        ),
        (
            {"metrics": {"x": {"metric": "tilewatch_window_score_mean", "amber": 1}}},
            f"{M}.red: expected a value, got no key",
        ),
        (
            {"metrics": {"x": {"metric": "tilewatch_window_score_mean", "amber": 2, "red": 1}}},
            f"{M}: expected best < amber < red for a higher_is_worse metric",
        ),
        (
            {
                "metrics": {
                    "x": {
                        "metric": "tilewatch_window_score_mean",
                        "amber": 1,
                        "red": 2,
                        "direction": "up",
                    }
                }
            },
            f'{M}.direction: expected "higher_is_worse" or "lower_is_worse", got "up"',
        ),
        (
            {
                "metrics": {
                    "x": {
                        "metric": "tilewatch_window_score_mean",
                        "amber": 1,
                        "red": 2,
                        "count": "tilewatch_window_score_mean_x",
                    }
                }
            },
            f"{M}.count: expected a per-cell count statistic without labels",
        ),
        (
            {
                "metrics": {
                    "x": {
                        "metric": "tilewatch_window_score_mean",
                        "amber": 1,
                        "red": 2,
                        "colour": "red",
                    }
                }
            },
            f"{M}.colour: unknown key, expected one of amber, best, count",
        ),
        (
            {"metrics": {"Bad-Name": {"metric": "tilewatch_window_score_mean"}}},
            "t.toml: [hierarchy.metrics.Bad-Name]: expected a name matching",
        ),
        (
            {"components": {"q": {"members": ["nope"]}}},
            "t.toml: [hierarchy.components.q].members: expected names of base metrics",
        ),
        (
            {"components": {"q": {"members": []}}},
            "t.toml: [hierarchy.components.q].members: expected a non-empty list",
        ),
        (
            {"components": {"q": {"members": ["silence"], "aggregation": "median"}}},
            't.toml: [hierarchy.components.q].aggregation: expected "worst" or "weighted"',
        ),
        (
            {"components": {"q": {"members": ["silence"], "amber": 0.9, "red": 0.5}}},
            "t.toml: [hierarchy.components.q]: component 'q': expected 0 < amber < red <= 1",
        ),
        (
            {"indicators": {"x": {"amber": 1, "red": 2}}},
            't.toml: [hierarchy.indicators.x].kind: expected "red_traffic_share", '
            '"revenue_at_risk", "fairness_gap", got no',
        ),
        (
            {"indicators": {"red_traffic_share": {"components": ["nope"]}}},
            "t.toml: [hierarchy.indicators.red_traffic_share].components: expected names of "
            "components",
        ),
        (
            {
                "indicators": {
                    "r": {"kind": "revenue_at_risk", "metric": "nope", "amber": 1, "red": 2}
                }
            },
            "t.toml: [hierarchy.indicators.r].metric: expected a base metric name",
        ),
        (
            {
                "metrics": {
                    "acc": {
                        "metric": "tilewatch_window_accuracy_ratio",
                        "amber": 0.9,
                        "red": 0.8,
                        "direction": "lower_is_worse",
                    }
                },
                "indicators": {
                    "r": {"kind": "revenue_at_risk", "metric": "acc", "amber": 1, "red": 2}
                },
            },
            "t.toml: [hierarchy.indicators.r].metric: expected a higher_is_worse base metric",
        ),
        (
            {"indicators": {"fairness_gap": {"metric": "tilewatch_window_f1"}}},
            "t.toml: [hierarchy.indicators.fairness_gap].metric: expected "
            "tilewatch_window_accuracy_gap_ratio or tilewatch_window_error_gap_ratio",
        ),
        (
            {"alerts": {"pager_url": "ftp://x"}},
            't.toml: [hierarchy.alerts].pager_url: expected an http:// or https:// URL, or ""',
        ),
        (
            {"alerts": {"for_warning": "5m", "rate_window": "5m"}},
            "t.toml: [hierarchy.alerts].for_warning: expected a duration longer than rate_window",
        ),
        (
            {"alerts": {"for_critical": "soon"}},
            't.toml: [hierarchy.alerts].for_critical: expected a duration like "1m", got "soon"',
        ),
        (
            {"alerts": {"dead_letter_ratio": 1.5}},
            "t.toml: [hierarchy.alerts].dead_letter_ratio: expected a number between 0 and 1",
        ),
        ({"enabled": "yes"}, 't.toml: [hierarchy].enabled: expected true or false, got "yes"'),
        ({"metric": {}}, "t.toml: [hierarchy].metric: unknown key"),
    ],
)
def test_errors_name_the_file_and_the_key(hierarchy: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"hierarchy": hierarchy}, "t.toml")
    assert str(info.value).startswith(message), str(info.value)


def test_check_config_prints_the_hierarchy_and_its_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[drift]\nfeatures = ["plan"]\n')
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hierarchy: components data_quality(missing_plan), drift(score_psi+" in out
    assert "note: component performance: left out" in out


def test_the_commented_example_parses() -> None:
    import tomllib

    text = (Path(__file__).resolve().parents[2] / "examples" / "tilewatch.toml").read_text()
    block = text[text.index("# [hierarchy]\n") :]
    code = re.compile(r"# (\[[a-z0-9_.]+\]|[a-z0-9_]+ = .*)$")
    toml = "\n".join(m[1] for line in block.splitlines() if (m := code.match(line)))
    data = tomllib.loads(toml)
    data.update(
        {
            "baseline": {"path": "b.json"},
            "drift": {"features": ["plan"]},
            "labels": {"threshold": 0.5},
        }
    )
    config = parse_config(data, "examples/tilewatch.toml")
    assert names(config) == (
        ["data_quality", "drift", "latency", "aging"],
        ["red_traffic_share", "revenue_at_risk", "fairness_gap"],
    )
    assert config.hierarchy.notes == ()
    assert config.alerts.pager_url == "https://pager.example.com/hooks/tilewatch"
