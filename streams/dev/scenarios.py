"""Segmented prediction traffic with injected changes and their ground truth, for benchmarks.

Pure and deterministic: no Kafka, no clock, no I/O. One model scores events of
``segments x regions`` leaf cells over ``windows`` event-time windows; a :class:`Scenario`
generates them window by window with numpy (columns first, then dicts and orjson bytes in the
shape the default ``[events]`` config reads, like :mod:`tilewatch.streams.dev.traffic`).

**Segments differ by nature**, as real ones do, so a model-wide reference flags every cell:

- ``income``: lognormal, its location set by the region (regional incomes differ by up to a
  factor of 4 between regions);
- ``tenure`` (months): gamma, shape and scale set by the segment;
- ``product``: 6 categories, the mix set by the segment;
- ``merchant``: 400 categories, Zipf-distributed, the most popular ones reshuffled per region;
- ``channel``: 4 categories, the mix set by the segment;
- the score is a logistic function of the features plus a segment effect, so score mixes
  differ by segment; ``prediction = int(score >= threshold)``; the label (on ``label_share``
  of the events) is drawn from the true probability, which on clean traffic equals the score:
  the model is calibrated.

Cell sizes are Zipf-like in both dimensions: the expected events per window go from
``min_cell_events`` (the last segment in the last region) to ``max_cell_events`` (the first in
the first); each window's count is Poisson around it.

**Changes** (:class:`Change`, built by :func:`covariate_shift`, :func:`dropped_feature`,
:func:`class_prior_shift`, :func:`concept_drift`, :func:`slow_drift`, or the default set of
:func:`default_changes`) start at an onset window and touch listed leaf cells. Each lists the
signals that must fire in those cells (:data:`SIGNALS`); roll-ups containing a changed leaf are
"affected" (they may fire) but need not. All randomness is drawn the same way whatever the
changes, from a stream per window (``[seed, window]``), so a scenario and its ``clean=True``
twin are identical, byte for byte, outside the changed cells and windows: tests compare them.

Examples
--------
>>> sc = Scenario(ScenarioSpec(windows=3, seed=1))
>>> w = sc.window(0)
>>> keys, values = w.encode()
>>> event = orjson.loads(values[0])
>>> sorted(event)  # doctest: +NORMALIZE_WHITESPACE
['event_id', 'features', 'label', 'latency_ms', 'model', 'model_version', 'prediction',
 'region', 'score', 'segment', 'timestamp']
>>> sorted(event["features"])
['channel', 'income', 'merchant', 'product', 'tenure']
>>> keys[0] == f"credit|{event['segment']}|{event['region']}".encode()
True
>>> [c.kind for c in sc.truth]
['slow_drift', 'covariate_shift', 'dropped_feature', 'class_prior_shift', 'concept_drift']
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from tilewatch.streams.dev.scenario_spec import (
    CATEGORIES,
    FEATURES,
    INCOME_CENTRE,
    INCOME_SIGMA,
    TENURE_CENTRE,
    Change,
    ScenarioSpec,
    default_changes,
)

__all__ = ["Scenario", "ScenarioWindow"]


@dataclass(frozen=True)
class _CellModel:
    """Per-cell parameters (index: segment * n_regions + region), derived from the seed."""

    rate: np.ndarray  # expected events per window
    segment: np.ndarray
    region: np.ndarray
    income_mu: np.ndarray
    tenure_shape: np.ndarray
    tenure_scale: np.ndarray
    product_cdf: np.ndarray  # (cells, categories)
    channel_cdf: np.ndarray
    segment_effect: np.ndarray
    latency_mu: np.ndarray
    merchant_perm: np.ndarray  # (regions, merchants): rank -> merchant code
    merchant_effect: np.ndarray
    product_effect: np.ndarray
    channel_effect: np.ndarray
    clean_mean_score: np.ndarray  # filled by Scenario (for concept drift)


def _cell_model(spec: ScenarioSpec) -> _CellModel:
    rng = np.random.default_rng([spec.seed, 1])
    n_s, n_r = len(spec.segments), len(spec.regions)
    seg = np.repeat(np.arange(n_s), n_r)
    reg = np.tile(np.arange(n_r), n_s)
    ratio = spec.max_cell_events / spec.min_cell_events
    a = math.log(ratio) / math.log(n_s * n_r) if n_s * n_r > 1 else 0.0
    rate = spec.max_cell_events * ((seg + 1.0) * (reg + 1.0)) ** -a
    # Regions: income locations spread over +-0.7 (a factor 4 between extremes), shuffled.
    income_region = rng.permutation(np.linspace(-0.7, 0.7, n_r))
    tenure_shape = rng.uniform(1.2, 4.0, n_s)
    tenure_scale = rng.uniform(4.0, 18.0, n_s)
    product_p = rng.dirichlet(np.full(len(CATEGORIES["product"]), 0.8), n_s)
    channel_p = rng.dirichlet(np.full(len(CATEGORIES["channel"]), 1.5), n_s)
    n_m = len(CATEGORIES["merchant"])
    perm = np.tile(np.arange(n_m), (n_r, 1))
    for i in range(n_r):
        perm[i, :30] = rng.permutation(30)
    return _CellModel(
        rate=rate,
        segment=seg,
        region=reg,
        income_mu=INCOME_CENTRE + income_region[reg],
        tenure_shape=tenure_shape[seg],
        tenure_scale=tenure_scale[seg],
        product_cdf=np.cumsum(product_p, axis=1)[seg],
        channel_cdf=np.cumsum(channel_p, axis=1)[seg],
        segment_effect=rng.normal(0.0, 0.6, n_s)[seg],
        latency_mu=np.log(rng.uniform(8.0, 30.0, n_r))[reg],
        merchant_perm=perm,
        merchant_effect=rng.normal(0.0, 0.3, n_m),
        product_effect=rng.normal(0.0, 0.4, len(CATEGORIES["product"])),
        channel_effect=rng.normal(0.0, 0.3, len(CATEGORIES["channel"])),
        clean_mean_score=np.zeros(n_s * n_r),
    )


def _zipf_cdf(n: int, exponent: float = 1.1) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return np.cumsum(w / w.sum())


_MERCHANT_CDF = _zipf_cdf(len(CATEGORIES["merchant"]))


def _pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Category codes from per-row cumulative probabilities ``cdf`` (rows) and uniforms."""
    codes: np.ndarray = np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)
    return codes


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


@dataclass
class ScenarioWindow:
    """One window's events as columns (numpy arrays, one entry per event, in emission order).

    ``cell`` indexes :attr:`ScenarioSpec.cells`; ``label`` is -1 where the event has no label;
    ``income`` and ``tenure`` are NaN where missing, ``product``/``merchant``/``channel`` are
    category codes (into :data:`CATEGORIES`), -1 where missing. ``true_p`` is the probability
    the label was drawn from.
    """

    index: int
    start: float
    spec: ScenarioSpec
    cell: np.ndarray
    timestamp: np.ndarray
    score: np.ndarray
    prediction: np.ndarray
    label: np.ndarray
    true_p: np.ndarray
    latency: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.cell.size)

    def events(self) -> list[dict[str, Any]]:
        """The events as dicts, in order."""
        return list(self._rows())

    def encode(self) -> tuple[list[bytes], list[bytes]]:
        """``(keys, values)``: the cell key ``b"model|segment|region"`` and the orjson event."""
        dumps = orjson.dumps
        values = [dumps(e) for e in self._rows()]
        spec = self.spec
        names = [f"{spec.model}|{s}|{r}".encode() for s, r in spec.cells]
        return [names[c] for c in self.cell.tolist()], values

    def _rows(self) -> Iterator[dict[str, Any]]:
        spec = self.spec
        cells = spec.cells
        model, version = spec.model, spec.model_version
        where = "holdout" if self.index < 0 else f"{self.index:05d}"
        prefix = f"{spec.model}-{spec.seed}-{where}-"
        cat = {name: CATEGORIES[name] for name in ("product", "merchant", "channel")}
        f = self.features
        income = f["income"].tolist()
        tenure = f["tenure"].tolist()
        product = f["product"].tolist()
        merchant = f["merchant"].tolist()
        channel = f["channel"].tolist()
        for i, (c, t, s, p, lab, lat) in enumerate(
            zip(
                self.cell.tolist(),
                self.timestamp.tolist(),
                self.score.tolist(),
                self.prediction.tolist(),
                self.label.tolist(),
                self.latency.tolist(),
                strict=True,
            )
        ):
            feats: dict[str, Any] = {}
            if income[i] == income[i]:  # not NaN
                feats["income"] = income[i]
            if tenure[i] == tenure[i]:
                feats["tenure"] = tenure[i]
            if product[i] >= 0:
                feats["product"] = cat["product"][product[i]]
            if merchant[i] >= 0:
                feats["merchant"] = cat["merchant"][merchant[i]]
            if channel[i] >= 0:
                feats["channel"] = cat["channel"][channel[i]]
            segment, region = cells[c]
            yield {
                "event_id": f"{prefix}{i:06d}",
                "timestamp": t,
                "model": model,
                "model_version": version,
                "segment": segment,
                "region": region,
                "score": s,
                "prediction": p,
                "label": lab if lab >= 0 else None,
                "latency_ms": lat,
                "features": feats,
            }


class Scenario:
    """Deterministic segmented traffic with injected changes.

    Parameters
    ----------
    spec
        The traffic.
    changes
        The injected changes; ``None`` means :func:`default_changes`.
    clean
        Inject nothing (``truth`` is empty); every other draw is the same.
    """

    def __init__(
        self,
        spec: ScenarioSpec | None = None,
        changes: list[Change] | None = None,
        clean: bool = False,
    ) -> None:
        self.spec = spec or ScenarioSpec()
        chosen = default_changes(self.spec) if changes is None else list(changes)
        self.truth: list[Change] = [] if clean else chosen
        self._model = _cell_model(self.spec)
        self._cell_index = {cell: i for i, cell in enumerate(self.spec.cells)}
        for change in self.truth:
            for cell in change.cells:
                if cell not in self._cell_index:
                    raise ValueError(f"change {change.kind}: unknown cell {cell!r}")
        # Clean mean score per cell (concept drift pulls labels toward it), from a fixed draw.
        probe = self._draw(
            np.random.default_rng([self.spec.seed, 2]),
            np.repeat(np.arange(len(self._cell_index)), 200),
        )
        sums = np.bincount(probe["cell"], weights=probe["score"], minlength=len(self._cell_index))
        self._model.clean_mean_score[:] = sums / 200.0

    @property
    def cell_rates(self) -> dict[tuple[str, str], float]:
        """Expected events per window of each leaf cell."""
        return dict(zip(self.spec.cells, self._model.rate.tolist(), strict=True))

    @property
    def events_per_window(self) -> float:
        """Expected events per window over all cells."""
        return float(self._model.rate.sum())

    def key_for(self, segment: str, region: str) -> bytes:
        """The Kafka key of a cell's events."""
        return f"{self.spec.model}|{segment}|{region}".encode()

    def windows(self, start: int = 0, stop: int | None = None) -> Iterator[ScenarioWindow]:
        """Windows ``start .. stop - 1`` (all by default), in order."""
        stop = self.spec.windows if stop is None else min(stop, self.spec.windows)
        for w in range(start, stop):
            yield self.window(w)

    def window(self, w: int) -> ScenarioWindow:
        """Window ``w`` (any order: each window has its own random stream)."""
        spec, model = self.spec, self._model
        if not 0 <= w < spec.windows:
            raise IndexError(f"window {w} outside 0..{spec.windows - 1}")
        rng = np.random.default_rng([spec.seed, 0, w])
        counts = rng.poisson(model.rate)
        cell = np.repeat(np.arange(model.rate.size), counts)
        n = cell.size
        start = spec.start_time + w * spec.window_seconds
        u_time = rng.random(n)
        order = np.argsort(u_time, kind="stable")
        cell = cell[order]
        offset = u_time[order] * spec.window_seconds
        back = rng.random(n) * spec.disorder_seconds
        ts = start + np.maximum(offset - back, 0.0)
        ts = np.minimum(np.round(ts, 3), np.nextafter(start + spec.window_seconds, -np.inf))
        cols = self._draw(rng, cell, window=w, time_in=offset / spec.window_seconds)
        return ScenarioWindow(
            index=w,
            start=start,
            spec=spec,
            cell=cell,
            timestamp=ts,
            score=cols["score"],
            prediction=cols["prediction"],
            label=cols["label"],
            true_p=cols["true_p"],
            latency=cols["latency"],
            features={name: cols[name] for name in FEATURES},
        )

    def holdout(self, n: int, seed: int = 1) -> list[dict[str, Any]]:
        """``n`` clean labelled events of the same model (cells in proportion to their
        traffic), for ``tilewatch baseline``; timestamped over the day before ``start_time``.
        ``seed`` selects an independent draw (never the stream's)."""
        return self.holdout_window(n, seed).events()

    def holdout_window(self, n: int, seed: int = 1) -> ScenarioWindow:
        """:meth:`holdout` as columns."""
        spec, model = self.spec, self._model
        rng = np.random.default_rng([spec.seed, 3, seed])
        cell = rng.choice(model.rate.size, size=n, p=model.rate / model.rate.sum())
        ts = np.sort(rng.random(n)) * 86_400.0 + spec.start_time - 86_400.0
        cols = self._draw(rng, cell, window=None, label_share=1.0)
        return ScenarioWindow(
            index=-1,
            start=spec.start_time - 86_400.0,
            spec=spec,
            cell=cell,
            timestamp=np.round(ts, 3),
            score=cols["score"],
            prediction=cols["prediction"],
            label=cols["label"],
            true_p=cols["true_p"],
            latency=cols["latency"],
            features={name: cols[name] for name in FEATURES},
        )

    def _mask(self, change: Change, cell: np.ndarray) -> np.ndarray:
        idx = np.array([self._cell_index[c] for c in change.cells], dtype=np.int64)
        return np.isin(cell, idx)

    def _draw(
        self,
        rng: np.random.Generator,
        cell: np.ndarray,
        window: int | None = None,
        time_in: np.ndarray | None = None,
        label_share: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Every column for events of ``cell``; the draws never depend on the changes."""
        m, spec = self._model, self.spec
        n = cell.size
        z_income = rng.standard_normal(n)
        g_tenure = rng.standard_gamma(m.tenure_shape[cell])
        u = rng.random((5, n))  # product, merchant, channel, label presence, label
        z_latency = rng.standard_normal(n)

        log_income = m.income_mu[cell] + INCOME_SIGMA * z_income
        tenure = g_tenure * m.tenure_scale[cell]
        product = _pick(m.product_cdf[cell], u[0])
        rank = np.minimum(
            np.searchsorted(_MERCHANT_CDF, u[1], side="right"), _MERCHANT_CDF.size - 1
        )
        merchant = m.merchant_perm[m.region[cell], rank]
        channel = _pick(m.channel_cdf[cell], u[2])
        shift = np.zeros(n)  # log-odds added to truth and score (class prior shift)
        dropped: dict[str, np.ndarray] = {}
        concept = np.zeros(n)
        active = [] if window is None else [c for c in self.truth if c.active(window)]
        for change in active:
            hit = self._mask(change, cell)
            if not hit.any():
                continue
            if change.kind == "covariate_shift":
                log_income = np.where(hit, log_income - 0.7 * change.size, log_income)
                tenure = np.where(hit, tenure / (1.0 + change.size), tenure)
            elif change.kind == "slow_drift":
                assert time_in is not None and window is not None
                progress = np.clip(
                    (window - change.onset_window + time_in) / change.ramp_windows, 0.0, 1.0
                )
                if change.feature == "income":
                    log_income = log_income + np.where(hit, change.size * progress, 0.0)
                else:
                    tenure = tenure + np.where(hit, TENURE_CENTRE * change.size * progress, 0.0)
            elif change.kind == "dropped_feature":
                assert change.feature is not None
                dropped[change.feature] = dropped.get(change.feature, np.zeros(n, bool)) | hit
            elif change.kind == "class_prior_shift":
                shift = shift + np.where(hit, change.size, 0.0)
            elif change.kind == "concept_drift":
                concept = np.maximum(concept, np.where(hit, change.size, 0.0))
            else:
                raise ValueError(f"unknown change kind {change.kind!r}")

        income = np.round(np.exp(log_income), 2)
        tenure = np.round(tenure, 1)

        effects = {
            "income": -0.8 * (np.log(income) - INCOME_CENTRE) / 0.6,
            "tenure": -0.5 * (tenure - TENURE_CENTRE) / TENURE_CENTRE,
            "product": m.product_effect[product],
            "merchant": m.merchant_effect[merchant],
            "channel": m.channel_effect[channel],
        }
        true_logit = -1.1 + m.segment_effect[cell] + shift + sum(effects.values())
        # A dropped feature is imputed by the model at the centre (effect 0); the truth keeps it.
        seen_logit = true_logit - sum(np.where(d, effects[f], 0.0) for f, d in dropped.items())
        score = np.round(_sigmoid(seen_logit), 4)
        any_dropped = np.zeros(n, dtype=bool)
        for d in dropped.values():
            any_dropped |= d
        # On clean traffic the label is drawn from the (rounded) score: exactly calibrated.
        true_p = np.where(any_dropped, _sigmoid(true_logit), score)
        true_p = (1.0 - concept) * true_p + concept * m.clean_mean_score[cell]
        share = spec.label_share if label_share is None else label_share
        label = np.where(u[3] < share, (u[4] < true_p).astype(np.int64), -1)
        out: dict[str, np.ndarray] = {
            "cell": cell,
            "score": score,
            "prediction": (score >= spec.threshold).astype(np.int64),
            "label": label,
            "true_p": true_p,
            "latency": np.round(np.exp(m.latency_mu[cell] + 0.3 * z_latency), 2),
            "income": income,
            "tenure": tenure,
            "product": product,
            "merchant": merchant,
            "channel": channel,
        }
        for name, where in dropped.items():
            col = out[name]
            out[name] = np.where(where, np.nan if col.dtype.kind == "f" else -1, col)
        return out
