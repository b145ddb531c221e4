"""``tilewatch backfill`` through the broker into a real Prometheus.

Two minutes of keyed synthetic traffic (drift against a baseline, inline labels, a few bad
records), stamped a few minutes in the past, sit in a 2-partition topic. The backfill replays
them outside any consumer group and writes TSDB blocks; a Prometheus started on those blocks
returns, for every cell and every closed window of the range, exactly the window's event count
and mean score computed offline from the produced events, at the window's end time. Then the
dashboards' recording rules are backfilled with promtool (as docs/backfill.md says) and every
panel query of every generated dashboard returns data over the backfilled range.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient

from tests.e2e.support.dashboards import (
    build_baseline,
    check_dashboard,
    panels,
    spec,
    write_dashboard_config,
)
from tests.helpers import PrometheusServer, produce
from tilewatch import cli
from tilewatch.config import load_config
from tilewatch.generate import render
from tilewatch.streams.dev.broker import EmbeddedBroker
from tilewatch.streams.dev.traffic import TrafficGenerator

pytestmark = [pytest.mark.broker, pytest.mark.prometheus, pytest.mark.timeout(300)]

WINDOW = 5  # seconds
SPAN = 120  # seconds of event time
RATE = 50  # events per second of event time
#: Panels of a live consumer (its connection and lag), which a replay has no data for.
LIVE_ONLY = ("tilewatch-overview / 'Kafka connection'", "tilewatch-overview / 'Consumer lag'")
BAD = [b"not json", b'{"model": "churn", "score": "high"}', b"[]"]


def _produce(bootstrap: str, topic: str, t0: float) -> list[dict[str, object]]:
    """SPAN s of valid events from ``t0`` (record timestamps = event times) plus a few bad
    records; returns the valid events."""
    gen = TrafficGenerator(spec(degrade_cell=("smb", "eu-west")), start_time=t0)
    events = gen.events(SPAN * RATE, spread_seconds=float(SPAN))
    keys: list[bytes | None] = [gen.key_for(e) for e in events]
    values: list[bytes | None] = [orjson.dumps(e) for e in events]
    stamps = [int(float(e["timestamp"]) * 1000) for e in events]  # type: ignore[arg-type]
    for i, bad in enumerate(BAD):  # spread through the stream
        at = (i + 1) * len(values) // (len(BAD) + 1)
        keys.insert(at, None)
        values.insert(at, bad)
        stamps.insert(at, stamps[at])
    produce(bootstrap, topic, values, keys, timestamps_ms=stamps)
    return events


def _offline(
    events: list[dict[str, object]], start: float, end: float
) -> dict[tuple[str, str, float], tuple[int, float]]:
    """(segment, region, window end) -> (events, mean score) of every cell variant and every
    window inside [start, end]."""
    scores: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for e in events:
        t = float(e["timestamp"])  # type: ignore[arg-type]
        w_end = (math.floor(t / WINDOW) + 1) * WINDOW
        if w_end - WINDOW < start or w_end > end:
            continue
        for seg in (str(e["segment"]), "__all__"):
            for reg in (str(e["region"]), "__all__"):
                scores[(seg, reg, float(w_end))].append(float(e["score"]))  # type: ignore[arg-type]
    return {k: (len(v), math.fsum(v) / len(v)) for k, v in scores.items()}


def _samples(
    prometheus: PrometheusServer, metric: str, start: float, end: float
) -> dict[tuple[str, str, float], float]:
    """Every raw sample of ``metric`` between the two times, by (segment, region, time)."""
    span = int(end - start) + 1
    out = {}
    for series in prometheus.query(f"{metric}[{span}s]", at=end):
        m = series["metric"]
        for t, v in series["values"]:
            out[(m["segment"], m["region"], float(t))] = float(v)
    return out


def test_backfilled_blocks_hold_the_offline_window_values_and_feed_the_dashboards(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    tilewatch_config: Callable[..., Path],
    prometheus_bin: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = make_topic(2)
    baseline = tmp_path / "baseline.json"
    config_path = write_dashboard_config(topic, baseline, tilewatch_config, window=f"{WINDOW}s")
    build_baseline(tmp_path, config_path, baseline)
    t0 = math.floor(time.time() / WINDOW) * WINDOW - SPAN - 60
    events = _produce(broker.bootstrap, topic, t0)
    start, end = float(t0), float(t0 + SPAN - 10)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        topics_before = set(admin.list_topics())
        groups_before = list(admin.list_groups())
        blocks = tmp_path / "blocks"
        args = ["backfill", "--config", str(config_path), "--from", f"{start:.0f}"]
        assert cli.main([*args, "--to", f"{end:.0f}", "--output", str(blocks)]) == 0
        # no consumer group joined, no dead-letter or changelog topic created
        assert set(admin.list_topics()) == topics_before
        assert list(admin.list_groups()) == groups_before
    finally:
        admin.close()
    out, err = capsys.readouterr()
    # read up to the first record stamped a window and a grace after --to (then stopped)
    stop_ms = (end + WINDOW + 0.5) * 1000
    valid = sum(float(e["timestamp"]) * 1000 < stop_ms for e in events)  # type: ignore[arg-type]
    assert f"read {valid + len(BAD)} records ({valid} valid, 0 late, {len(BAD)} invalid)" in out
    assert "windows written, done in" in err, err

    expected = _offline(events, start, end)
    assert len({k[2] for k in expected}) == (end - start) // WINDOW
    # The dashboards' recording rules over the same range, as docs/backfill.md says: two
    # passes, since promtool evaluates a rule that reads another rule only on loaded blocks.
    files = render(load_config(config_path))
    rules = tmp_path / "tilewatch-dashboards.rules.yml"
    rules.write_text(files["deploy/prometheus/rules/tilewatch-dashboards.rules.yml"])
    loaded = sorted(blocks.iterdir())
    for rule_pass in range(2):
        rule_blocks = tmp_path / f"rule-blocks-{rule_pass}"
        with PrometheusServer(binary=prometheus_bin, blocks=loaded) as prometheus:
            if rule_pass == 0:  # the blocks alone: exactly the offline window values
                counts = _samples(prometheus, "tilewatch_window_events", start, end)
                means = _samples(prometheus, "tilewatch_window_score_mean", start, end)
            _backfill_rules(prometheus, rules, rule_blocks, start, end)
        loaded += sorted(rule_blocks.iterdir())
    assert counts == {k: float(n) for k, (n, _mean) in expected.items()}
    assert means.keys() == expected.keys()
    for key, (_n, mean) in expected.items():
        assert means[key] == pytest.approx(mean, rel=1e-12, abs=1e-15), key
    dashboards = [
        json.loads(t)
        for p, t in files.items()
        if p.startswith("deploy/grafana/dashboards/") and p.endswith(".json")
    ]
    with PrometheusServer(binary=prometheus_bin, blocks=loaded) as prometheus:
        problems = [p for d in dashboards for p in check_dashboard(prometheus, d, at=end)]
    total = sum(len(p["targets"]) for d in dashboards for p in panels(d))
    assert total >= 50
    unexpected = [p for p in problems if not any(p.startswith(live) for live in LIVE_ONLY)]
    assert not unexpected, f"{len(unexpected)} of {total} targets found no data:\n" + "\n".join(
        unexpected
    )


def _backfill_rules(
    prometheus: PrometheusServer, rules: Path, output: Path, start: float, end: float
) -> None:
    command = ["promtool", "tsdb", "create-blocks-from", "rules"]
    command += [f"--start={start:.0f}", f"--end={end:.0f}", f"--url={prometheus.url}"]
    command += [f"--output-dir={output}", f"--eval-interval={WINDOW}s", str(rules)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
