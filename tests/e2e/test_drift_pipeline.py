"""Drift end to end: holdout -> ``tilewatch baseline`` -> Kafka -> ``tilewatch run`` -> /metrics.

A seeded holdout of one model (4 segments x 3 regions, score ~ Beta(2, 4) in every cell,
label ~ Bernoulli(score), prediction = score >= 0.5, three numeric and two categorical
features) is turned into a baseline by the real command. Then, through the embedded broker:

- ``test_drift_and_missing_flagged_within_one_window``: 12 windows of 10 s drawn from the
  baseline's distributions, except that from T0 + 60 s cell (s1, r1) scores move up by 0.3 and cell
  (s2, r2) stops sending ``plan``. The window [T0 + 60, T0 + 70) is closed and scraped before the
  rest is produced: both flags are already set there, and again in the last closed window; no other
  leaf cell is flagged for any signal; every window statistic of every cell (leaf and roll-up)
  equals an offline computation with :mod:`tilewatch.aggregators.stats` (divergence, intervals,
  decisions) on the same events binned on the baseline's edges; schema violations are counted
  exactly.
- ``test_clean_stream_raises_no_flag``: 400k events over 100 leaf cells drawn from the
  baseline's own distributions; polling the scrape every second while they stream, no leaf
  cell ever shows a drift flag or a significant class shift.
- ``test_restart_keeps_the_window_drift_statistics``: a graceful restart restores every
  window statistic and flag from the checkpoints (their window histograms included).
- ``test_boolean_predictions_and_features_match_the_baseline``: boolean features and
  predictions are the baseline's ``"true"``/``"false"`` categories (a strict xfail documents
  the prediction side, see its reason).

Each cell is compared with its own reference (its rows of the holdout, shrunk toward its
parent): the offline computation takes those references from the baseline file through
:class:`~tilewatch.aggregators.drift.cell_reference.CellReferences` and recomputes every
statistic, p-value, effect and Benjamini-Hochberg decision from the events. Realistic traffic
where cells differ by nature is the subject of tests/tilewatch/test_detection_quality.py.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.e2e.support.config import add_drift_config, write_config
from tests.e2e.support.layout import ALL, T0
from tests.e2e.support.process import TilewatchProcess
from tests.e2e.support.scrape import parse_metrics, series, value
from tests.helpers import produce
from tilewatch import cli
from tilewatch.aggregators.drift.cell_reference import CellReferences
from tilewatch.aggregators.stats.decisions import benjamini_hochberg, gate
from tilewatch.aggregators.stats.divergence import js_distance, mean_zscore, psi
from tilewatch.aggregators.stats.homogeneity import homogeneity_pvalue, proportion_pvalue
from tilewatch.aggregators.stats.intervals import t_interval, wilson_interval
from tilewatch.aggregators.stats.psi_bias import psi_effect
from tilewatch.app import build_profile
from tilewatch.config import load_config
from tilewatch.streams.dev.broker import EmbeddedBroker

pytestmark = [pytest.mark.broker, pytest.mark.timeout(170)]

MODEL = "churn"
SEGMENTS = ("s0", "s1", "s2", "s3")
REGIONS = ("r0", "r1", "r2")
NUMERIC = ("monthly_spend", "tenure_months", "tickets_30d")
CATEGORICAL = ("channel", "plan")
FEATURES = (*NUMERIC, *CATEGORICAL)
PLANS = ("free", "basic", "pro", "business")
PLAN_P = (0.4, 0.3, 0.2, 0.1)
CHANNELS = ("web", "mobile", "partner", "sales")
CHANNEL_P = (0.5, 0.3, 0.15, 0.05)
BETA_A, BETA_B = 2.0, 4.0
SCORE_SHIFT = 0.3

WINDOW = 10.0
MIN_SAMPLES = 30
PSI_ALERT = 0.25  # [drift] defaults, written into the config explicitly
MISSING_ALERT = 0.5
CLASS_ALERT = 0.05
FDR_RATE = 0.05
TOL = 1e-9

HOLDOUT_ROWS = 30_000
SHIFT_CELL = ("s1", "r1")
NO_PLAN_CELL = ("s2", "r2")
CHANGE_AT = T0 + 60.0
SPAN = 120.0
PER_CELL_WINDOW = 300  # events per leaf cell per window, on average

SIGNALS = ("class_shift", "feature_psi", "missing", "score_psi")
DIMS = ("model", "segment", "region")
Cell = tuple[str, str, str]


# -- synthetic events -------------------------------------------------------------------------


@dataclass
class Events:
    """Events as columns; ``cells[cell[i]]`` is event ``i``'s (segment, region)."""

    cells: list[tuple[str, str]]
    cell: np.ndarray
    time: np.ndarray
    score: np.ndarray
    prediction: np.ndarray
    label: np.ndarray
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    has_plan: np.ndarray

    def __len__(self) -> int:
        return len(self.cell)

    def take(self, mask: np.ndarray) -> Events:
        return Events(
            self.cells,
            self.cell[mask],
            self.time[mask],
            self.score[mask],
            self.prediction[mask],
            self.label[mask],
            {k: v[mask] for k, v in self.numeric.items()},
            {k: v[mask] for k, v in self.categorical.items()},
            self.has_plan[mask],
        )

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        first = parts[0]
        return Events(
            first.cells,
            np.concatenate([p.cell for p in parts]),
            np.concatenate([p.time for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.prediction for p in parts]),
            np.concatenate([p.label for p in parts]),
            {k: np.concatenate([p.numeric[k] for p in parts]) for k in first.numeric},
            {k: np.concatenate([p.categorical[k] for p in parts]) for k in first.categorical},
            np.concatenate([p.has_plan for p in parts]),
        )

    def payloads(self, first_id: int = 0, bool_predictions: bool = False) -> Iterator[bytes]:
        """The JSON value of each event, as a producer would publish it."""
        names = [(MODEL, s, r) for s, r in self.cells]
        cols = [self.cell.tolist(), self.time.tolist(), self.score.tolist()]
        preds = (self.prediction.astype(bool) if bool_predictions else self.prediction).tolist()
        num = [self.numeric[k].tolist() for k in NUMERIC]
        cat = [self.categorical[k].tolist() for k in CATEGORICAL]
        plan_ok = self.has_plan.tolist()
        dumps = orjson.dumps
        for i, (c, t, s, p, spend, tenure, tickets, channel, plan, ok) in enumerate(
            zip(*cols, preds, *num, *cat, plan_ok, strict=True)
        ):
            _model, segment, region = names[c]
            features: dict[str, Any] = {
                "monthly_spend": spend,
                "tenure_months": tenure,
                "tickets_30d": tickets,
                "channel": channel,
            }
            if ok:
                features["plan"] = plan
            yield dumps(
                {
                    "event_id": f"e{first_id + i}",
                    "timestamp": t,
                    "model": MODEL,
                    "model_version": "2026.1",
                    "segment": segment,
                    "region": region,
                    "score": s,
                    "prediction": p,
                    "features": features,
                }
            )

    def keys(self) -> list[bytes]:
        names = [f"{MODEL}|{s}|{r}".encode() for s, r in self.cells]
        return [names[c] for c in self.cell.tolist()]


def draw(
    rng: np.random.Generator,
    cells: list[tuple[str, str]],
    cell: np.ndarray,
    times: np.ndarray,
    shifted: np.ndarray | None = None,
    no_plan: np.ndarray | None = None,
) -> Events:
    """Events of the given cells and times from the baseline's distributions, with the
    scores of ``shifted`` events moved up by :data:`SCORE_SHIFT` and ``plan`` dropped from
    ``no_plan`` events."""
    n = len(cell)
    score = rng.beta(BETA_A, BETA_B, n)
    if shifted is not None:
        score = np.where(shifted, np.minimum(score + SCORE_SHIFT, 1.0), score)
    return Events(
        cells=cells,
        cell=cell,
        time=times,
        score=score,
        prediction=(score >= 0.5).astype(np.int64),
        label=(rng.random(n) < score).astype(np.int64),
        numeric={
            "monthly_spend": np.round(rng.lognormal(4.0, 0.5, n), 2),
            "tenure_months": np.round(rng.gamma(2.0, 10.0, n), 1),  # ties on the edges
            "tickets_30d": rng.poisson(1.5, n),  # a few distinct integers: one bin each
        },
        categorical={
            "channel": np.array(CHANNELS, dtype=object)[rng.choice(4, n, p=CHANNEL_P)],
            "plan": np.array(PLANS, dtype=object)[rng.choice(4, n, p=PLAN_P)],
        },
        has_plan=np.ones(n, dtype=bool) if no_plan is None else ~no_plan,
    )


def grid(segments: tuple[str, ...], regions: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(s, r) for s in segments for r in regions]


def write_holdout(path: Path, seed: int, bool_values: bool = False) -> None:
    """The holdout set as JSON Lines: every event labelled, on the 12 cells of the grid."""
    rng = np.random.default_rng(seed)
    cells = grid(SEGMENTS, REGIONS)
    ev = draw(
        rng,
        cells,
        rng.integers(0, len(cells), HOLDOUT_ROWS),
        T0 - 86_400 + np.arange(HOLDOUT_ROWS, dtype=np.float64),
    )
    labels = ev.label.tolist()
    with path.open("wb") as out:
        for value_, label in zip(ev.payloads(bool_predictions=bool_values), labels, strict=True):
            row = orjson.loads(value_)
            row["label"] = label
            if bool_values:
                row["features"]["autopay"] = row["score"] < 0.4
            out.write(orjson.dumps(row) + b"\n")


def make_config(
    path: Path, bootstrap: str, topic: str, baseline: Path, features: tuple[str, ...] = FEATURES
) -> Path:
    write_config(path, bootstrap, topic, cells={"window": f"{WINDOW:g}s", "min_samples": 30})
    return add_drift_config(
        path,
        baseline={"path": str(baseline)},
        drift={
            "features": list(features),
            "psi_alert": PSI_ALERT,
            "missing_alert": MISSING_ALERT,
            "fdr_rate": FDR_RATE,
        },
    )


def build_baseline(tmp: Path, bootstrap: str, seed: int, bool_values: bool = False) -> Path:
    """Run ``tilewatch baseline`` on a fresh holdout; returns the baseline's path."""
    holdout = tmp / "holdout.jsonl"
    write_holdout(holdout, seed, bool_values)
    out = tmp / "baseline.json"
    # The same config file as ``tilewatch run`` (its [baseline] path is the output).
    config = make_config(tmp / "baseline.toml", bootstrap, "unused", out)
    code = cli.main(
        ["baseline", "--config", str(config), "--input", str(holdout), "--output", str(out)]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def baseline_file(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_baseline(tmp_path_factory.mktemp("baseline"), broker.bootstrap, seed=11)


# -- the offline computation ------------------------------------------------------------------


def load_reference(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())["models"][MODEL]  # type: ignore[no-any-return]


def feature_bins(ref: dict[str, Any], name: str, ev: Events) -> tuple[np.ndarray, np.ndarray]:
    """Reference shares over the value bins, and the observed counts per value bin (the
    events with the feature present); binned here from the baseline file, independently."""
    f = ref["features"][name]
    if f["kind"] == "numeric":
        edges = np.asarray(f["inner_edges"])
        values = ev.numeric[name].astype(np.float64)
        # bins (-inf, e1), [e1, e2), ..., [ek, +inf)
        bins = np.digitize(values, edges, right=False)
        return np.asarray(f["shares"]), np.bincount(bins, minlength=len(edges) + 1)
    top = list(f["top"])
    known = set(f["categories"])
    values = ev.categorical[name]
    if name == "plan":
        values = values[ev.has_plan]
    idx = [top.index(v) if v in top else len(top) if v in known else len(top) + 1 for v in values]
    shares = [*f["top"].values(), f["other_share"], 0.0]
    return np.asarray(shares), np.bincount(np.asarray(idx, dtype=np.int64), minlength=len(top) + 2)


def cell_masks(ev: Events) -> dict[Cell, np.ndarray]:
    """Each leaf and roll-up cell's events."""
    seg = np.array([s for s, _ in ev.cells])[ev.cell]
    reg = np.array([r for _, r in ev.cells])[ev.cell]
    out: dict[Cell, np.ndarray] = {(MODEL, ALL, ALL): np.ones(len(ev), dtype=bool)}
    for s, r in ev.cells:
        out[(MODEL, s, r)] = (seg == s) & (reg == r)
        out[(MODEL, s, ALL)] = seg == s
        out[(MODEL, ALL, r)] = reg == r
    return out


@functools.cache
def _references(path: Path) -> CellReferences:
    config = load_config(make_config(path.parent / "ref.toml", "unused:1", "unused", path))
    profile = build_profile(config)
    assert profile is not None
    return CellReferences(profile, config.cells, config.drift.prior_strength)


def cell_references(path: Path, cells: list[Cell]) -> dict[Cell, dict[str, np.ndarray]]:
    """Each cell's reference pseudo-counts (and score moments), from the baseline file through
    tilewatch's per-cell references (unit-tested on their own in
    tests/aggregators/drift/test_cell_reference.py)."""
    table = _references(path).table(cells)
    out: dict[Cell, dict[str, np.ndarray]] = {}
    for i, cell in enumerate(cells):
        row = {name: h[i] for name, h in table.hists.items()}
        row["mean"], row["std"] = table.mean[i : i + 1], table.std[i : i + 1]
        out[cell] = row
    return out


def offline_window(
    ref: dict[str, Any], refs_path: Path, ev: Events, w: int
) -> dict[Cell, dict[str, float]]:
    """Every window statistic of window ``w`` per cell against the cell's own reference, and
    the flags (Benjamini-Hochberg over every tested cell and signal, then the effect sizes),
    with the divergences, tests, intervals and decisions of tilewatch.aggregators.stats."""
    k = MIN_SAMPLES
    windows = np.floor(ev.time / WINDOW).astype(np.int64)
    cur, prev = ev.take(windows == w), ev.take(windows == w - 1)
    cur_cells, prev_cells = cell_masks(cur), cell_masks(prev)
    cell_refs = cell_references(refs_path, sorted(cur_cells))
    edges = np.asarray(ref["score"]["edges"])
    classes = sorted(ref["predictions"])
    out: dict[Cell, dict[str, float]] = {}
    tests: list[tuple[Cell, str, float, float]] = []  # cell, signal, p-value, effect
    for cell, mask in cur_cells.items():
        r = cell_refs[cell]
        e = cur.take(mask)
        n = len(e)
        s: dict[str, float] = {"events": n}
        mean = float(e.score.mean()) if n else math.nan
        var = float(e.score.var(ddof=1)) if n >= 2 else math.nan
        s["mean"], s["variance"] = mean, var
        hist = np.histogram(e.score, bins=edges)[0]  # left-closed, the last bin closed too
        s["score_psi"] = float(gate(psi(r["score"], hist), n, k))
        s["score_js"] = float(gate(js_distance(r["score"], hist), n, k))
        s["zscore"] = float(gate(mean_zscore(mean, n, r["mean"][0], r["std"][0]), n, k))
        lo, hi = t_interval(mean, var, n)
        s["mean_lower"], s["mean_upper"] = float(gate(lo, n, k)), float(gate(hi, n, k))
        p_scores = prev.score[prev_cells[cell]] if cell in prev_cells else np.zeros(0)
        change = mean - float(p_scores.mean()) if len(p_scores) >= k else math.nan
        s["mean_change"] = float(gate(change, n, k))
        counts = [int((e.prediction.astype(str) == c).sum()) for c in classes]
        class_counts = np.asarray([*counts, n - sum(counts)])
        tested = n >= k
        p_class = float(homogeneity_pvalue(r["class"], class_counts)) if tested else math.nan
        s["class_pvalue"] = p_class
        if tested:
            tests.append((cell, "score_psi", float(homogeneity_pvalue(r["score"], hist)),
                          float(psi_effect(r["score"], hist))))  # fmt: skip
            tests.append(
                (cell, "class_shift", p_class, float(psi_effect(r["class"], class_counts)))
            )
        for name in FEATURES:
            _, observed = feature_bins(ref, name, e)
            fr = r[f"f:{name}"]
            s[f"psi:{name}"] = float(gate(psi(fr[:-1], observed), observed.sum(), k))
            missing = n - int(observed.sum())
            ratio = missing / n if n else math.nan
            s[f"missing:{name}"] = float(gate(ratio, n, k))
            lo, hi = wilson_interval(missing, n)
            s[f"missing_lower:{name}"] = float(gate(lo, n, k))
            s[f"missing_upper:{name}"] = float(gate(hi, n, k))
            if tested:
                p_f = homogeneity_pvalue(fr[:-1], observed) if observed.sum() else math.nan
                eff = psi_effect(fr[:-1], observed) if observed.sum() else math.nan
                tests.append((cell, "feature_psi", float(p_f), float(eff)))
                p_m = proportion_pvalue(fr[-1], fr.sum(), missing, n)
                tests.append((cell, "missing", float(p_m), ratio))
        out[cell] = s
    rejected = benjamini_hochberg([t[2] for t in tests], FDR_RATE)
    threshold = {"score_psi": PSI_ALERT, "feature_psi": PSI_ALERT,
                 "class_shift": CLASS_ALERT, "missing": MISSING_ALERT}  # fmt: skip
    for c in out:
        for sig in SIGNALS:
            out[c][f"flag:{sig}"] = 0.0
    for (cell, sig, _p, effect), rej in zip(tests, rejected.tolist(), strict=True):
        if rej and effect > threshold[sig]:
            out[cell][f"flag:{sig}"] = 1.0
    for c in out:
        out[c]["class_significant"] = out[c]["flag:class_shift"]
    return out


# -- reading the scrape -----------------------------------------------------------------------

#: Scraped family -> offline statistic (``{f}``: per feature).
SCALARS = {
    "tilewatch_window_events": "events",
    "tilewatch_window_score_mean": "mean",
    "tilewatch_window_score_variance": "variance",
    "tilewatch_window_score_psi": "score_psi",
    "tilewatch_window_score_js_distance": "score_js",
    "tilewatch_window_score_mean_zscore": "zscore",
    "tilewatch_window_score_mean_lower": "mean_lower",
    "tilewatch_window_score_mean_upper": "mean_upper",
    "tilewatch_window_score_mean_change": "mean_change",
    "tilewatch_window_class_shift_pvalue": "class_pvalue",
    "tilewatch_window_class_shift_significant": "class_significant",
}
PER_FEATURE = {
    "tilewatch_window_feature_psi": "psi:{f}",
    "tilewatch_window_feature_missing_ratio": "missing:{f}",
    "tilewatch_window_feature_missing_ratio_lower": "missing_lower:{f}",
    "tilewatch_window_feature_missing_ratio_upper": "missing_upper:{f}",
}


def scraped(metrics: dict[Any, float]) -> dict[Cell, dict[str, float]]:
    """The scrape's window statistics per cell, keyed like :func:`offline_window`."""
    out: dict[Cell, dict[str, float]] = {}

    def put(labels: frozenset[tuple[str, str]], key: str, v: float) -> None:
        d = dict(labels)
        out.setdefault((d["model"], d["segment"], d["region"]), {})[key] = v

    for family, key in SCALARS.items():
        for labels, v in series(metrics, family).items():
            put(labels, key, v)
    for family, key in PER_FEATURE.items():
        for labels, v in series(metrics, family).items():
            put(labels, key.format(f=dict(labels)["feature"]), v)
    for labels, v in series(metrics, "tilewatch_window_drift_flag").items():
        put(labels, f"flag:{dict(labels)['signal']}", v)
    return out


def same(got: float | None, want: float) -> bool:
    if got is None:
        return False
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    return math.isclose(got, want, rel_tol=TOL, abs_tol=TOL)


def mismatches(got: dict[Cell, dict[str, float]], want: dict[Cell, dict[str, float]]) -> list[str]:
    problems = []
    if set(got) != set(want):
        problems.append(f"cells: scraped {sorted(got)}, offline {sorted(want)}")
    for cell in sorted(set(got) & set(want)):
        for key, w in sorted(want[cell].items()):
            g = got[cell].get(key)
            if not same(g, w):
                problems.append(f"{cell} {key}: scraped {g!r}, offline {w!r}")
    return problems


def flagged(stats: dict[Cell, dict[str, float]]) -> dict[str, set[Cell]]:
    """Leaf cells with each flag set."""
    return {
        sig: {c for c, s in stats.items() if ALL not in c and s.get(f"flag:{sig}") == 1.0}
        for sig in SIGNALS
    }


def violations(metrics: dict[Any, float]) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["feature"], dict(labels)["kind"]): v
        for labels, v in series(metrics, "tilewatch_schema_violations_total").items()
        if dict(labels)["model"] == MODEL
    }


def expected_violations(ref: dict[str, Any], ev: Events) -> dict[tuple[str, str], float]:
    """Absent ``plan`` and numeric values outside the baseline's [min, max], counted here."""
    out: dict[tuple[str, str], float] = {}
    absent = int((~ev.has_plan).sum())
    if absent:
        out[("plan", "absent")] = absent
    for name in NUMERIC:
        f, x = ref["features"][name], ev.numeric[name]
        n = int(((x < f["min"]) | (x > f["max"])).sum())
        if n:
            out[(name, "out_of_range")] = n
    return out


# -- test 2: a score shift and a missing feature ----------------------------------------------


def drift_stream(seed: int, span: float, change_at: float, per_cell_window: int) -> Events:
    """Events over ``span`` s from T0 on the 12 cells, the two changes from ``change_at``."""
    rng = np.random.default_rng(seed)
    cells = grid(SEGMENTS, REGIONS)
    n = int(len(cells) * per_cell_window * span / WINDOW)
    times = np.sort(rng.uniform(T0, T0 + span, n))
    cell = rng.integers(0, len(cells), n)
    return _changed(rng, cells, cell, times, change_at)


def _changed(
    rng: np.random.Generator,
    cells: list[tuple[str, str]],
    cell: np.ndarray,
    times: np.ndarray,
    change_at: float,
) -> Events:
    after = times >= change_at
    shifted = after & (cell == cells.index(SHIFT_CELL))
    no_plan = after & (cell == cells.index(NO_PLAN_CELL))
    return draw(rng, cells, cell, times, shifted, no_plan)


def boundary_events(seed: int, cells: list[tuple[str, str]], t: float, change_at: float) -> Events:
    """One event per leaf cell at ``t`` (+1 ms steps), from the same (changed) distributions,
    so that every partition's watermark passes ``t - grace``."""
    rng = np.random.default_rng(seed)
    cell = np.arange(len(cells))
    return _changed(rng, cells, cell, t + cell * 1e-3, change_at)


def clean_events(seed: int, cells: list[tuple[str, str]], t: float) -> Events:
    """One clean event per leaf cell at ``t`` (+1 ms steps), every feature present."""
    rng = np.random.default_rng(seed)
    cell = np.arange(len(cells))
    return draw(rng, cells, cell, t + cell * 1e-3)


def send(broker: EmbeddedBroker, topic: str, ev: Events, first_id: int) -> int:
    produce(broker.bootstrap, topic, list(ev.payloads(first_id)), ev.keys(), timeout=60.0)
    return first_id + len(ev)


def window_closed(n: int, end: float) -> Callable[[dict[Any, float]], bool]:
    return lambda m: (
        value(m, "tilewatch_read_events_total") == n
        and value(m, "tilewatch_window_end_timestamp_seconds", model=MODEL) == end
    )


def check_window(
    metrics: dict[Any, float], ref: dict[str, Any], path: Path, produced: Events, w: int
) -> dict[str, set[Cell]]:
    """The scrape equals the offline computation of window ``w``; returns the flagged cells."""
    want = offline_window(ref, path, produced, w)
    got = scraped(metrics)
    problems = mismatches(got, want)
    assert not problems, f"window {w}: {len(problems)} mismatches:\n" + "\n".join(problems[:40])
    return flagged(got)


def test_drift_and_missing_flagged_within_one_window(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    start_tilewatch: Callable[..., TilewatchProcess],
    baseline_file: Path,
    tmp_path: Path,
) -> None:
    ref = load_reference(baseline_file)
    # the baseline is what the holdout says: one model, five features of the right kinds
    assert {k: f["kind"] for k, f in ref["features"].items()} == {
        **dict.fromkeys(NUMERIC, "numeric"),
        **dict.fromkeys(CATEGORICAL, "categorical"),
    }
    assert ref["prediction_source"] == "field" and sorted(ref["predictions"]) == ["0", "1"]

    topic = make_topic(3)
    cells = grid(SEGMENTS, REGIONS)
    data = drift_stream(seed=2026, span=SPAN, change_at=CHANGE_AT, per_cell_window=PER_CELL_WINDOW)
    cut = CHANGE_AT + WINDOW + 1.5  # T0 + 71.5: past the end of window 6 plus the grace
    phase1 = data.take(data.time < cut)
    boundary = boundary_events(7, cells, cut, CHANGE_AT)
    phase2 = data.take(data.time >= cut)
    far = clean_events(8, cells, T0 + 1000.0)
    assert data.time.max() < T0 + SPAN

    monitor = start_tilewatch(
        make_config(tmp_path / "run.toml", broker.bootstrap, topic, baseline_file)
    )
    next_id = send(broker, topic, phase1, 0)
    next_id = send(broker, topic, boundary, next_id)
    produced = Events.concat([phase1, boundary])

    # Phase 1: the first window after the change is closed and already flagged.
    first = math.floor(CHANGE_AT / WINDOW)  # window 6: [T0 + 60, T0 + 70)
    metrics = monitor.wait_until(
        "the first window after the change closed",
        window_closed(len(produced), (first + 1) * WINDOW),
    )
    flags = check_window(metrics, ref, baseline_file, produced, first)
    leaf = {(MODEL, s, r) for s, r in cells}
    assert flags["score_psi"] == {(MODEL, *SHIFT_CELL)}, flags
    assert flags["missing"] == {(MODEL, *NO_PLAN_CELL)}, flags
    assert flags["class_shift"] == {(MODEL, *SHIFT_CELL)}, flags  # 19% -> ~70% positive
    assert flags["feature_psi"] == set(), flags
    got = scraped(metrics)
    assert got[(MODEL, *NO_PLAN_CELL)]["missing:plan"] == 1.0
    assert all(got[c]["flag:" + sig] in (0.0, 1.0) for c in leaf for sig in SIGNALS)
    assert violations(metrics) == expected_violations(ref, produced)
    # The windows before the change were clean, in this stream and per the offline numbers.
    for w in range(int(T0 // WINDOW), first):
        before = flagged(offline_window(ref, baseline_file, produced, w))
        assert before == {sig: set() for sig in SIGNALS}, (w, before)

    # Phase 2: the rest of the stream, then one far-future event per cell closes window 11.
    next_id = send(broker, topic, phase2, next_id)
    send(broker, topic, far, next_id)
    produced = Events.concat([produced, phase2])
    last = math.floor((T0 + SPAN) / WINDOW) - 1
    metrics = monitor.wait_until(
        "the last window closed",
        window_closed(len(produced) + len(far), (last + 1) * WINDOW),
    )
    flags = check_window(metrics, ref, baseline_file, produced, last)
    assert flags == {
        "score_psi": {(MODEL, *SHIFT_CELL)},
        "missing": {(MODEL, *NO_PLAN_CELL)},
        "class_shift": {(MODEL, *SHIFT_CELL)},
        "feature_psi": set(),
    }, flags
    got = scraped(metrics)
    assert got[(MODEL, *NO_PLAN_CELL)]["missing:plan"] == 1.0
    everything = Events.concat([produced, far])
    want_violations = expected_violations(ref, everything)
    assert violations(metrics) == want_violations
    assert want_violations[("plan", "absent")] == int(
        ((data.cell == cells.index(NO_PLAN_CELL)) & (data.time >= CHANGE_AT)).sum() + 1
    )
    assert value(metrics, "tilewatch_late_events_total", model=MODEL) == 0
    assert not series(metrics, "tilewatch_invalid_events_total")
    clean = [s for c, s in got.items() if ALL not in c and c[1:] not in (SHIFT_CELL, NO_PLAN_CELL)]
    print(
        f"\ndrift stream: {len(everything)} events; last window: score PSI of {SHIFT_CELL} "
        f"{got[(MODEL, *SHIFT_CELL)]['score_psi']:.3f}, largest of the clean leaf cells "
        f"{max(s['score_psi'] for s in clean):.4f}; missing ratio of plan in {NO_PLAN_CELL} "
        f"{got[(MODEL, *NO_PLAN_CELL)]['missing:plan']}; absent plan "
        f"{want_violations[('plan', 'absent')]}; violations {want_violations}"
    )


# -- bugs -------------------------------------------------------------------------------------


#: The drift families compared before and after a restart.
DRIFT_FAMILIES = (*SCALARS, *PER_FEATURE, "tilewatch_window_drift_flag")


def test_restart_keeps_the_window_drift_statistics(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    start_tilewatch: Callable[..., TilewatchProcess],
    baseline_file: Path,
    tmp_path: Path,
) -> None:
    topic = make_topic(3)
    cells = grid(SEGMENTS, REGIONS)
    span = 2 * WINDOW  # a clean window, then a changed one
    data = drift_stream(seed=99, span=span, change_at=T0 + WINDOW, per_cell_window=300)
    far = clean_events(8, cells, T0 + 1000.0)
    config = make_config(tmp_path / "run.toml", broker.bootstrap, topic, baseline_file)
    send(broker, topic, Events.concat([data, far]), 0)
    first = start_tilewatch(config, name="before")
    end = T0 + span
    before = first.wait_until("all read", window_closed(len(data) + len(far), end))
    flags = flagged(scraped(before))
    assert flags["score_psi"] == {(MODEL, *SHIFT_CELL)}
    assert flags["missing"] == {(MODEL, *NO_PLAN_CELL)}
    first.signal(signal.SIGTERM)
    assert first.wait_exit(30) == 0

    second = start_tilewatch(config, name="after")
    after = second.wait_until(
        "the three partitions restored",
        lambda m: (
            value(m, "tilewatch_checkpoint_restores_total", result="restored") == 3
            and value(m, "tilewatch_window_end_timestamp_seconds", model=MODEL) == end
        ),
    )
    problems = []
    for family in DRIFT_FAMILIES:
        want, got = series(before, family), series(after, family)
        for labels in sorted(set(want) | set(got), key=sorted):
            if not same(got.get(labels), want.get(labels, math.nan)):
                problems.append(
                    f"{family}{dict(labels)}: before {want.get(labels)!r}, "
                    f"after the restart {got.get(labels)!r}"
                )
    assert not problems, f"{len(problems)} statistics changed:\n" + "\n".join(problems[:20])


def test_boolean_predictions_and_features_match_the_baseline(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    start_tilewatch: Callable[..., TilewatchProcess],
    tmp_path: Path,
) -> None:
    baseline = build_baseline(tmp_path, broker.bootstrap, seed=12, bool_values=True)
    ref = load_reference(baseline)
    assert sorted(ref["predictions"]) == ["false", "true"]
    assert sorted(ref["features"]["autopay"]["top"]) == ["false", "true"]
    topic = make_topic(3)
    cells = grid(SEGMENTS, REGIONS)
    rng = np.random.default_rng(13)
    n = len(cells) * 300  # one window
    ev = draw(rng, cells, rng.integers(0, len(cells), n), np.sort(rng.uniform(T0, T0 + WINDOW, n)))
    far = clean_events(8, cells, T0 + 1000.0)
    values = []
    for raw in [*ev.payloads(0, bool_predictions=True), *far.payloads(n, True)]:
        row = orjson.loads(raw)
        row["features"]["autopay"] = row["score"] < 0.4  # as in the holdout
        values.append(orjson.dumps(row))
    produce(broker.bootstrap, topic, values, ev.keys() + far.keys())
    config = make_config(
        tmp_path / "run.toml", broker.bootstrap, topic, baseline, features=(*FEATURES, "autopay")
    )
    monitor = start_tilewatch(config)
    metrics = monitor.wait_until("all read", window_closed(n + len(far), T0 + WINDOW))
    flags = flagged(scraped(metrics))
    # Boolean features are the baseline's "true"/"false" categories: no wrong_type, no
    # missing, no feature drift.
    assert {k: v for k, v in violations(metrics).items() if k[1] != "out_of_range"} == {}
    assert flags["missing"] == flags["feature_psi"] == set()
    assert flags["score_psi"] == set()
    # Boolean predictions are the baseline's "true"/"false" classes: no class shift.
    assert flags["class_shift"] == set(), (
        f"class_shift flagged on {len(flags['class_shift'])} of {len(cells)} clean leaf cells"
    )


# -- test 3: a clean stream ------------------------------------------------------------------

CLEAN_N = 400_000
CLEAN_SEGMENTS = tuple(f"s{i}" for i in range(10))
CLEAN_REGIONS = tuple(f"r{i}" for i in range(10))
CLEAN_CHUNKS = 10
CLEAN_SPAN = 100.0  # 10 windows of 10 s: about 400 events per leaf cell per window
CLEAN_SEED = 31337


def clean_chunk(j: int) -> Events:
    """Chunk ``j`` of the clean stream: its own slice of event time, sorted."""
    rng = np.random.default_rng([CLEAN_SEED, j])
    cells = grid(CLEAN_SEGMENTS, CLEAN_REGIONS)
    n = CLEAN_N // CLEAN_CHUNKS
    step = CLEAN_SPAN / CLEAN_CHUNKS
    times = np.sort(rng.uniform(T0 + j * step, T0 + (j + 1) * step, n))
    return draw(rng, cells, rng.integers(0, len(cells), n), times)


def _produce_clean(bootstrap: str, topic: str, conn: Any) -> None:
    """Child process: generate and send the clean stream and then one far-future event per
    cell; reports ``("ok", seconds)`` or ``("error", text)``."""
    from kafka import KafkaProducer

    try:
        t0 = time.perf_counter()
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=50,
            batch_size=1 << 20,
            max_request_size=4 << 20,
        )
        failures: list[BaseException] = []
        cells = grid(CLEAN_SEGMENTS, CLEAN_REGIONS)
        chunks = [clean_chunk(j) for j in range(CLEAN_CHUNKS)]
        chunks.append(clean_events(8, cells, T0 + 1000.0))
        first = 0
        for ev in chunks:
            for key, val in zip(ev.keys(), ev.payloads(first), strict=True):
                producer.send(topic, key=key, value=val).add_errback(failures.append)
            first += len(ev)
        producer.flush()
        producer.close(timeout=10)
        if failures:
            raise RuntimeError(f"{len(failures)} records not delivered: {failures[0]!r}")
        conn.send(("ok", time.perf_counter() - t0))
    except BaseException as exc:  # reported by the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


def test_clean_stream_raises_no_flag(
    broker: EmbeddedBroker,
    make_topic: Callable[..., str],
    start_tilewatch: Callable[..., TilewatchProcess],
    baseline_file: Path,
    tmp_path: Path,
) -> None:
    """400k clean events (1M and more in tests/bench/bench_detection.py): polled every second,
    no leaf cell is ever flagged by a PSI or a missing ratio, and every scraped window equals the
    offline computation exactly, class-shift decisions included.

    The class-shift flags are Benjamini-Hochberg decisions over the 100 leaf cells of a window.
    With every null hypothesis true, BH bounds the chance of any rejection in one window by
    ``fdr_rate`` (5%), not across windows: over the 10 windows of this stream one window (T0 +
    40 s) has two clean cells with p = 8.4e-4 and 9.8e-4, both rejected (p_(2) <= 2 x 0.05 /
    100). That is BH working as specified, so the test checks the scraped decisions against
    the offline BH decisions and that such false discoveries are rare (see the bound below)
    rather than that there are none.
    """
    ref = load_reference(baseline_file)
    topic = make_topic(3)
    cells = grid(CLEAN_SEGMENTS, CLEAN_REGIONS)
    total = CLEAN_N + len(cells)
    ev = Events.concat([clean_chunk(j) for j in range(CLEAN_CHUNKS)])
    first_w, last_w = int(T0 // WINDOW), int((T0 + CLEAN_SPAN) // WINDOW) - 1
    offline: dict[int, dict[Cell, dict[str, float]]] = {}
    monitor = start_tilewatch(
        make_config(tmp_path / "run.toml", broker.bootstrap, topic, baseline_file)
    )
    monitor.wait_until("the group joined", lambda m: value(m, "tilewatch_partitions_assigned") == 3)
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_produce_clean, args=(broker.bootstrap, topic, sender))
    started = time.monotonic()
    child.start()
    sender.close()

    checked: dict[int, int] = {}  # window -> scrapes compared with the offline numbers
    polls = 0
    produced_after: float | None = None
    done = False
    try:
        while True:
            if produced_after is None and receiver.poll():
                status, payload = receiver.recv()
                assert status == "ok", f"producer failed: {payload}"
                produced_after = payload
            assert monitor.process is not None and monitor.process.poll() is None, (
                monitor.describe()
            )
            polled = time.monotonic()
            metrics = parse_metrics(monitor.scrape())
            polls += 1
            got = scraped(metrics)
            shown = {sig: c for sig, c in flagged(got).items() if c and sig != "class_shift"}
            assert not shown, f"clean traffic flagged: {shown}"
            end = value(metrics, "tilewatch_window_end_timestamp_seconds", model=MODEL)
            if end is not None:
                w = int(end // WINDOW) - 1
                if w not in offline:
                    offline[w] = offline_window(ref, baseline_file, ev, w)
                problems = mismatches(got, offline[w])
                assert not problems, f"window {w}: {len(problems)} mismatches:\n" + "\n".join(
                    problems[:40]
                )
                checked[w] = checked.get(w, 0) + 1
            if value(metrics, "tilewatch_read_events_total") == total and end == T0 + CLEAN_SPAN:
                done = True
                break
            assert time.monotonic() - started < 120, (
                f"not done after 120 s: read {value(metrics, 'tilewatch_read_events_total')}"
            )
            time.sleep(max(0.0, 1.0 - (time.monotonic() - polled)))
    finally:
        child.join(30 if done else 0.1)
        if child.is_alive():
            child.kill()
            child.join()
    elapsed = time.monotonic() - started

    # Every window of the stream, scraped or not, by the offline numbers: no PSI or missing
    # flag; class-shift false discoveries in at most 2 of the 10 windows (each window has at
    # most a 5% chance of one under BH, so 3 or more would be a 1-in-100 event).
    discoveries: dict[int, set[Cell]] = {}
    worst_psi = worst_feature_psi = 0.0
    for w in range(first_w, last_w + 1):
        stats = offline.get(w) or offline_window(ref, baseline_file, ev, w)
        flags = flagged(stats)
        assert flags["score_psi"] == flags["feature_psi"] == flags["missing"] == set(), w
        if flags["class_shift"]:
            discoveries[w - first_w] = flags["class_shift"]
        leaves = [s for c, s in stats.items() if ALL not in c]
        worst_psi = max(worst_psi, max(s["score_psi"] for s in leaves))
        worst_feature_psi = max(
            worst_feature_psi, max(s[f"psi:{f}"] for s in leaves for f in FEATURES)
        )
    assert len(discoveries) <= 2, discoveries
    assert last_w in checked
    print(
        f"\nclean stream: {total} records in {elapsed:.1f} s (producer {produced_after:.1f} s), "
        f"{polls} scrapes; windows compared exactly (window index: scrapes) "
        f"{ {w - first_w: n for w, n in sorted(checked.items())} }; worst leaf score PSI "
        f"{worst_psi:.4f}, feature PSI {worst_feature_psi:.4f}; class-shift false discoveries "
        f"{ {w: sorted(c) for w, c in discoveries.items()} }"
    )
