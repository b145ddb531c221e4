"""Deterministic synthetic prediction traffic for demos, tests and benchmarks.

Pure: no Kafka, no clock, no I/O. A :class:`TrafficGenerator` draws every value from one seeded
:class:`numpy.random.Generator`, so the same :class:`TrafficSpec` and ``start_time`` give the same
records in the same order, byte for byte.

Each ``(segment, region)`` cell has a stable base score distribution (a Beta with cell-specific
parameters), feature distributions, latency and a traffic weight (some cells are much busier than
others), all derived from the seed. Labels, when present (``label_share`` of the events), are drawn
as ``Bernoulli(score)``: a healthy model is calibrated.

Once the event time passes ``start_time + degrade_after_seconds``, the ``degrade_cell`` goes bad:

- scores shift up by :data:`DEGRADE_SCORE_SHIFT` (clipped to [0, 1]);
- labels stop following the scores (drawn from the cell's base rate instead), so accuracy drops;
- ``monthly_spend`` and ``tickets_30d`` shift up (feature drift);
- latency is multiplied by :data:`DEGRADE_LATENCY_FACTOR`.

``invalid_share`` replaces that share of the encoded records by deliberately bad ones (not JSON,
a JSON array, a score out of range, a ``"NaN"`` string score, no ``model``), so a demo exercises
the dead-letter path.

The cells' parameters and feature draws are in ``population``, a generated batch's columns and
the bad records in ``columns``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tilewatch.streams.dev.columns import INVALID_KINDS, Columns
from tilewatch.streams.dev.population import cell_params, draw_features

__all__ = [
    "CLASS_BOOST",
    "CLASS_PRIOR",
    "DEFAULT_CLASSES",
    "DEFAULT_FEATURES",
    "DEFAULT_REGIONS",
    "DEFAULT_SEGMENTS",
    "DEGRADE_LATENCY_FACTOR",
    "DEGRADE_SCORE_SHIFT",
    "TrafficGenerator",
    "TrafficSpec",
]

DEFAULT_SEGMENTS: tuple[str, ...] = (
    "consumer",
    "smb",
    "mid_market",
    "enterprise",
    "public_sector",
    "education",
    "nonprofit",
    "startup",
)
DEFAULT_REGIONS: tuple[str, ...] = (
    "us-east",
    "us-west",
    "eu-west",
    "eu-central",
    "ap-south",
    "sa-east",
)
DEFAULT_FEATURES: tuple[str, ...] = (
    "tenure_months",
    "plan",
    "monthly_spend",
    "tickets_30d",
    "channel",
)

#: The classes of multi-class demo models, and how likely each is.
DEFAULT_CLASSES: tuple[str, ...] = ("billing", "technical", "account", "sales")
CLASS_PRIOR = (0.4, 0.3, 0.2, 0.1)
#: Logit added to the true class of a multi-class event (a fairly accurate model).
CLASS_BOOST = 2.5

#: How much the degraded cell's scores move up (before clipping to [0, 1]).
DEGRADE_SCORE_SHIFT = 0.25
#: Factor applied to the degraded cell's latency.
DEGRADE_LATENCY_FACTOR = 3.0


@dataclass(frozen=True)
class TrafficSpec:
    """What synthetic traffic looks like.

    Parameters
    ----------
    models
        Model names; each event belongs to one, drawn uniformly.
    segments, regions
        The two cell dimensions.
    features
        Feature names. ``tenure_months``, ``plan``, ``monthly_spend``, ``tickets_30d`` and
        ``channel`` have realistic generators; any other name gets a standard normal number.
    degrade_cell
        ``(segment, region)`` that degrades after ``degrade_after_seconds``, or ``None``.
    degrade_after_seconds
        Event time, in seconds since the generator's ``start_time``, at which it degrades.
    degrade_cell_share
        Traffic share of ``degrade_cell`` (the other cells keep their relative weights), or
        ``None`` for the share the seed gives it. The demo sets it so that the cell has enough
        labelled events per window for its accuracy to be shown (``min_samples``).
    label_share
        Share of events that carry an inline label (the rest have ``"label": null``).
    seed
        Seed of the generator; the same seed gives the same traffic.
    invalid_share
        Share of encoded records replaced by deliberately invalid ones.
    model_version
        Value of every event's ``model_version``.
    threshold
        ``prediction = int(score >= threshold)``.
    class_models, classes
        Models (of ``models``) that are multi-class: their events carry ``probs``, an
        object class -> probability over ``classes``, their ``score`` is the
        top-class probability, ``prediction`` the top class and ``label`` a class name (drawn
        from the true class, which gets :data:`CLASS_BOOST` more logit). Once degraded, the
        degrade cell's labels of ``classes[0]`` become ``classes[1]`` (one class confused with
        another there). Drawn from a second random stream: the other events are unchanged.
    """

    models: tuple[str, ...] = ("churn",)
    segments: tuple[str, ...] = DEFAULT_SEGMENTS
    regions: tuple[str, ...] = DEFAULT_REGIONS
    features: tuple[str, ...] = DEFAULT_FEATURES
    degrade_cell: tuple[str, str] | None = ("smb", "eu-west")
    degrade_after_seconds: float = 60.0
    degrade_cell_share: float | None = None
    label_share: float = 0.3
    seed: int = 7
    invalid_share: float = 0.0
    model_version: str = "2026.11.1"
    threshold: float = 0.5
    class_models: tuple[str, ...] = ()
    classes: tuple[str, ...] = DEFAULT_CLASSES

    def __post_init__(self) -> None:
        if not self.models or not self.segments or not self.regions:
            raise ValueError("TrafficSpec: models, segments and regions must not be empty")
        for name in ("label_share", "invalid_share", "threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TrafficSpec.{name}: expected a share in [0, 1], got {value!r}")
        share = self.degrade_cell_share
        if share is not None and (self.degrade_cell is None or not 0.0 < share < 1.0):
            raise ValueError(
                f"TrafficSpec.degrade_cell_share: expected a share in (0, 1) of a degrade_cell, "
                f"got {share!r}"
            )
        if not set(self.class_models) <= set(self.models) or (
            self.class_models and len(self.classes) < 2
        ):
            raise ValueError("TrafficSpec.class_models: models of the spec, with 2+ classes")
        if self.degrade_cell is not None and (
            self.degrade_cell[0] not in self.segments or self.degrade_cell[1] not in self.regions
        ):
            raise ValueError(
                f"TrafficSpec.degrade_cell: {self.degrade_cell!r} is not a (segment, region) "
                "of this spec"
            )


class TrafficGenerator:
    """Seeded stream of synthetic prediction events, in event-time order.

    Parameters
    ----------
    spec
        What the traffic looks like.
    start_time
        Epoch seconds of the first event; the event-time clock starts here and advances by
        ``spread_seconds`` per batch.

    Examples
    --------
    >>> gen = TrafficGenerator(TrafficSpec(seed=1), start_time=1767225600.0)
    >>> events = gen.events(3)
    >>> sorted(events[0])  # doctest: +NORMALIZE_WHITESPACE
    ['event_id', 'features', 'label', 'latency_ms', 'model', 'model_version', 'prediction',
     'region', 'score', 'segment', 'timestamp']
    >>> all(0.0 <= e["score"] <= 1.0 for e in events)
    True
    >>> gen.key_for({"model": "churn", "segment": "smb", "region": "eu-west"})
    b'churn|smb|eu-west'
    >>> records = TrafficGenerator(TrafficSpec(seed=1), start_time=1767225600.0).batch(3)
    >>> [orjson.loads(r) for r in records] == events
    True
    """

    def __init__(self, spec: TrafficSpec, start_time: float) -> None:
        self.spec = spec
        self.start_time = float(start_time)
        self._time = float(start_time)
        self._seq = 0
        self._rng = np.random.default_rng([spec.seed, 0])
        n_seg, n_reg = len(spec.segments), len(spec.regions)
        n_cells = len(spec.models) * n_seg * n_reg
        self._cells = cell_params(spec.seed, n_cells)
        cell_ids = np.arange(n_cells)
        self._cell_model = cell_ids // (n_seg * n_reg)
        self._cell_segment = (cell_ids // n_reg) % n_seg
        self._cell_region = cell_ids % n_reg
        degraded = np.zeros(n_cells, dtype=bool)
        if spec.degrade_cell is not None:
            seg = spec.segments.index(spec.degrade_cell[0])
            reg = spec.regions.index(spec.degrade_cell[1])
            degraded = (self._cell_segment == seg) & (self._cell_region == reg)
        self._cell_degraded = degraded
        if spec.degrade_cell_share is not None:
            # The degraded cells (one per model) share ``degrade_cell_share`` of the traffic.
            w = self._cells.weights.copy()
            w[~degraded] *= (1.0 - spec.degrade_cell_share) / w[~degraded].sum()
            w[degraded] = spec.degrade_cell_share / degraded.sum()
            self._cells = dataclasses.replace(self._cells, weights=w)
        self._degrade_at = self.start_time + spec.degrade_after_seconds
        self._cell_names = [
            (spec.models[m], spec.segments[sg], spec.regions[r])
            for m, sg, r in zip(
                self._cell_model.tolist(),
                self._cell_segment.tolist(),
                self._cell_region.tolist(),
                strict=True,
            )
        ]
        self._cell_keys = [f"{m}|{sg}|{r}".encode() for m, sg, r in self._cell_names]
        self._cell_tag = [f"m{m + 1}" for m in self._cell_model.tolist()]
        self._class_rng = np.random.default_rng([spec.seed, 1])
        self._cell_multiclass = np.array(
            [spec.models[m] in spec.class_models for m in self._cell_model.tolist()], dtype=bool
        )

    @property
    def time(self) -> float:
        """Event time (epoch seconds) at which the next batch starts."""
        return self._time

    @property
    def cell_weights(self) -> dict[tuple[str, str, str], float]:
        """Traffic share of each ``(model, segment, region)`` cell (sums to 1)."""
        spec = self.spec
        return {
            (spec.models[m], spec.segments[s], spec.regions[r]): w
            for m, s, r, w in zip(
                self._cell_model.tolist(),
                self._cell_segment.tolist(),
                self._cell_region.tolist(),
                self._cells.weights.tolist(),
                strict=True,
            )
        }

    @staticmethod
    def key_for(event: dict[str, Any]) -> bytes:
        """Kafka key of an event: ``b"model|segment|region"`` (producers key by cell)."""
        return f"{event['model']}|{event['segment']}|{event['region']}".encode()

    def events(
        self, n: int, event_time: float | None = None, spread_seconds: float = 1.0
    ) -> list[dict[str, Any]]:
        """Generate ``n`` valid events as dicts, with timestamps in ``[t, t + spread_seconds)``.

        ``t`` is ``event_time`` if given, else the generator's clock; the clock then moves to
        ``t + spread_seconds``. ``invalid_share`` does not apply here: these are the events
        that :meth:`batch` would encode (given the same generator state), before any is
        replaced by an invalid record.
        """
        return list(self._generate(n, event_time, spread_seconds).rows())

    def batch(
        self, n: int, event_time: float | None = None, spread_seconds: float = 1.0
    ) -> list[bytes]:
        """Generate ``n`` orjson-encoded records; see :meth:`events` for the time arguments.

        A share ``spec.invalid_share`` of them are deliberately invalid records.
        """
        return self.keyed_batch(n, event_time, spread_seconds)[1]

    def keyed_batch(
        self, n: int, event_time: float | None = None, spread_seconds: float = 1.0
    ) -> tuple[list[bytes], list[bytes]]:
        """Like :meth:`batch`, returning ``(keys, values)``; invalid records keep their cell key."""
        cols = self._generate(n, event_time, spread_seconds)
        values, _valid = cols.encoded()
        keys = self._cell_keys
        return [keys[c] for c in cols.cell], values

    def outcome_batch(
        self,
        n: int,
        event_time: float | None = None,
        spread_seconds: float = 1.0,
        label_delay_seconds: float = 0.0,
    ) -> tuple[list[bytes], list[bytes], list[tuple[bytes, bytes]]]:
        """Like :meth:`keyed_batch`, with the labels sent apart, as an outcomes topic gets them.

        Returns ``(keys, values, outcomes)``: the prediction records, whose ``label`` is
        ``null``, and one ``(key, value)`` outcome record per labeled valid event,
        ``{"event_id", "label", "timestamp"}`` keyed like its prediction (so it lands in the
        co-partitioned partition), timestamped ``label_delay_seconds`` after the event.
        Deliberately invalid records get no outcome. The random stream is the one
        :meth:`keyed_batch` draws, so the same generator state gives the same events.

        Examples
        --------
        >>> gen = TrafficGenerator(TrafficSpec(seed=1, label_share=1.0), 1767225600.0)
        >>> keys, values, outcomes = gen.outcome_batch(2, label_delay_seconds=30.0)
        >>> [orjson.loads(v)["label"] for v in values]
        [None, None]
        >>> key, value = outcomes[0]
        >>> key == keys[0], sorted(orjson.loads(value))
        (True, ['event_id', 'label', 'timestamp'])
        """
        if not label_delay_seconds >= 0.0 or not math.isfinite(label_delay_seconds):
            raise ValueError(f"label_delay_seconds must be >= 0, got {label_delay_seconds!r}")
        cols = self._generate(n, event_time, spread_seconds)
        labels = cols.label
        cols.label = [None] * len(labels)
        values, valid = cols.encoded()
        keys = [self._cell_keys[c] for c in cols.cell]
        dumps = orjson.dumps
        outcomes = [
            (
                keys[i],
                dumps(
                    {
                        "event_id": cols.event_id[i],
                        "label": label,
                        "timestamp": cols.timestamp[i] + label_delay_seconds,
                    }
                ),
            )
            for i, label in enumerate(labels)
            if label is not None and valid[i]
        ]
        return keys, values, outcomes

    def _generate(self, n: int, event_time: float | None, spread_seconds: float) -> Columns:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not spread_seconds > 0.0 or not math.isfinite(spread_seconds):
            raise ValueError(f"spread_seconds must be a positive number, got {spread_seconds!r}")
        spec, cells, rng = self.spec, self._cells, self._rng
        t0 = self._time if event_time is None else float(event_time)
        self._time = t0 + spread_seconds

        cell = rng.choice(len(cells.weights), size=n, p=cells.weights)
        ts = t0 + np.sort(rng.random(n)) * spread_seconds
        # Guard against rounding up to the end of the half-open interval.
        ts = np.minimum(ts, np.nextafter(t0 + spread_seconds, -np.inf))
        degraded = self._cell_degraded[cell] & (ts >= self._degrade_at)

        score = rng.beta(cells.beta_a[cell], cells.beta_b[cell])
        score = np.clip(score + DEGRADE_SCORE_SHIFT * degraded, 0.0, 1.0)
        score = np.round(score, 4)
        prediction = (score >= spec.threshold).astype(np.int64)

        has_label = rng.random(n) < spec.label_share
        u_label = rng.random(n)
        # Healthy: label ~ Bernoulli(score) (calibrated). Degraded: independent of the score.
        label_p = np.where(degraded, cells.base_mean[cell], score)
        label = (u_label < label_p).astype(np.int64)

        latency = rng.lognormal(cells.latency_mu[cell], 0.35)
        latency = np.round(latency * np.where(degraded, DEGRADE_LATENCY_FACTOR, 1.0), 2)

        features = draw_features(rng, cells, spec.features, cell, degraded, n)

        # Always drawn, so the random stream is the same whatever invalid_share is.
        bad_u = rng.random(n)
        bad_kind = rng.integers(0, len(INVALID_KINDS), n)

        label_list: list[Any] = [
            lab if has else None
            for lab, has in zip(label.tolist(), has_label.tolist(), strict=True)
        ]
        score_list, prediction_list = score.tolist(), prediction.tolist()
        probs = None
        if spec.class_models:
            probs = self._classes(cell, degraded, score_list, prediction_list, label_list)
        seq0 = self._seq
        self._seq += n
        cell_list = cell.tolist()
        return Columns(
            model_version=spec.model_version,
            cell=cell_list,
            event_id=[
                f"{self._cell_tag[c]}-{seq:09d}"
                for c, seq in zip(cell_list, range(seq0, seq0 + n), strict=True)
            ],
            cell_names=self._cell_names,
            timestamp=ts.tolist(),
            score=score_list,
            prediction=prediction_list,
            label=label_list,
            latency=latency.tolist(),
            features=features,
            invalid=(bad_u < spec.invalid_share) if spec.invalid_share > 0.0 else None,
            invalid_kind=bad_kind,
            probs=probs,
        )

    def _classes(
        self,
        cell: Any,
        degraded: Any,
        score: list[Any],
        prediction: list[Any],
        label: list[Any],
    ) -> list[dict[str, float] | None]:
        """The class probabilities of the multi-class models' events; their score, prediction
        and label (when present) are replaced in place."""
        names = self.spec.classes
        k, rng = len(names), self._class_rng
        at = np.flatnonzero(self._cell_multiclass[cell])
        prior = np.resize(np.asarray(CLASS_PRIOR), k)
        truth = rng.choice(k, size=len(at), p=prior / prior.sum())
        logits = rng.normal(0.0, 1.0, (len(at), k))
        logits[np.arange(len(at)), truth] += CLASS_BOOST
        p = np.exp(logits)
        p = np.round(p / p.sum(axis=1, keepdims=True), 4)
        confused = degraded[at] & (truth == 0)
        truth[confused] = 1  # the degraded cell: the first class labelled as the second
        out: list[dict[str, float] | None] = [None] * len(cell)
        for j, i in enumerate(at.tolist()):
            row = p[j].tolist()
            out[i] = dict(zip(names, row, strict=True))
            top = int(np.argmax(p[j]))
            score[i], prediction[i] = row[top], names[top]
            if label[i] is not None:
                label[i] = names[int(truth[j])]
        return out
