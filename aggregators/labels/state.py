"""Labels of one input partition: the join, per-window performance sums, cumulative counters.

Labels come inline (in the prediction event) or on an outcomes topic co-partitioned with the
predictions topic (partition ``p`` of both belongs to the same consumer, see
``docs/performance.md``), so each partition's predictions meet their labels here.

A label is credited to the cell and event-time window of its prediction while that window is
not *final*: a window becomes final when the partition's watermark passes its end plus the
label grace (``[labels] grace``). After that the label still updates the cumulative per-cell
counters (``labeled_total``, ``errors_total``) and is counted in ``late``. Every prediction adds
its probability of being right to its window (the label-free estimate), labeled or not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray, grow
from tilewatch.aggregators.cells.registry import CellRegistry
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.labels.error_detectors import ERROR_DETECTORS, ErrorDetectors
from tilewatch.aggregators.labels.join import Joined, JoinSettings, LabelJoin
from tilewatch.aggregators.labels.sums import PerfAcc, PerformanceSettings, correct_probability

__all__ = ["LabelSettings", "PartitionLabels", "label_values"]


#: Final performance windows a partition keeps besides each model's latest one.
RETAIN_FINAL = 4


@dataclass(frozen=True, slots=True)
class LabelSettings:
    """How labels arrive and how performance is measured (the ``[labels]`` section).

    Parameters
    ----------
    source
        ``"inline"`` (the prediction event's label field) or ``"topic"`` (an outcomes topic
        joined on ``event_id``).
    grace_seconds
        How long after a window's end (in event time, past the watermark) labels are still
        credited to it.
    threshold, thresholds
        The decision threshold of every model, and per-model overrides. A model's threshold is
        its override, else its baseline's chosen threshold, else ``threshold``.
    error_detector
        River binary detector run on each leaf cell's 0/1 error stream (None: off).
    """

    source: str = "inline"
    grace_seconds: float = 0.0
    threshold: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    error_detector: str | None = "ddm"
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
    join: JoinSettings = field(default_factory=JoinSettings)

    def __post_init__(self) -> None:
        if self.source not in ("inline", "topic"):
            raise ValueError(f"source must be 'inline' or 'topic', got {self.source!r}")
        if self.error_detector is not None and self.error_detector not in ERROR_DETECTORS:
            raise ValueError(f"unknown error detector {self.error_detector!r}")

    @property
    def classification(self) -> bool:
        """Whether the models are binary classifiers (else regressors)."""
        return self.performance.task == "classification"


def label_values(raw: list[Any], classification: bool) -> tuple[FloatArray, int]:
    """Labels as floats (NaN: no label) from raw JSON values, and how many were invalid.

    Classification labels are ``true``/``false`` or the numbers 0 and 1; regression labels are
    finite numbers. ``None`` means "no label yet" and is not invalid.

    Examples
    --------
    >>> values, bad = label_values([1, 0, True, None, 2, "1", 0.0], classification=True)
    >>> values.tolist(), bad
    ([1.0, 0.0, 1.0, nan, nan, nan, 0.0], 2)
    """
    if raw and set(map(type, raw)) == {float}:  # what LabelDecoder gives: check vectorized
        out = np.array(raw, dtype=np.float64)
        ok = ((out == 0.0) | (out == 1.0)) if classification else np.isfinite(out)
        bad = len(out) - int(ok.sum())
        if bad:
            out[~ok] = math.nan
        return out, bad
    out = np.full(len(raw), math.nan)
    bad = 0
    for i, v in enumerate(raw):
        if v is None:
            continue
        t = type(v)
        if t is bool:
            if classification:
                out[i] = float(v)
            else:
                bad += 1
        elif t is int or t is float:
            if classification:
                if v == 0 or v == 1:
                    out[i] = float(v)
                else:
                    bad += 1
            elif v - v == 0:
                out[i] = float(v)
            else:
                bad += 1
        else:
            bad += 1
    return out, bad


class PartitionLabels:
    """The label side of one partition.

    Parameters
    ----------
    settings
        The ``[labels]`` settings.
    registry
        The replica's cell registry (roll-up expansion, model ids).
    window_seconds
        The cell windows' size.
    thresholds
        Decision threshold of each given leaf cell's model (classification).
    """

    def __init__(
        self,
        settings: LabelSettings,
        registry: CellRegistry,
        window_seconds: float,
        thresholds: Callable[[IntArray], FloatArray],
    ) -> None:
        self.settings = settings
        self.thresholds_of = thresholds
        self.registry = registry
        self.size = window_seconds
        #: Performance sums by window number; ``final`` holds the ones no label can change.
        self.perf: dict[int, PerfAcc] = {}
        self.final: dict[int, PerfAcc] = {}
        self.join = LabelJoin(settings.join) if settings.source == "topic" else None
        self.detectors = (
            ErrorDetectors(settings.error_detector)
            if settings.error_detector is not None and settings.classification
            else None
        )
        self.labeled_total = np.zeros(0, dtype=np.int64)
        self.errors_total = np.zeros(0, dtype=np.int64)
        #: Labels credited only to the cumulative counters (their window was final).
        self.late = 0
        #: Labels with an invalid value, by reason.
        self.invalid: dict[str, int] = {}
        #: Next offset to read on the outcomes topic's partition (topic source).
        self.offset: int | None = None
        #: Largest label time read from the outcomes topic (the label stream's clock; not
        #: checkpointed: it only paces reading, see tilewatch.streams.loop).
        self.max_label_time = -math.inf
        #: The newest final window (windows finalize in order; -2**62: none yet).
        self.final_upto = -(2**62)
        #: Incremented on every change, so snapshots know when to recompute.
        self.version = 0

    # -- input -------------------------------------------------------------------------------

    def predictions(
        self,
        leaf: IntArray,
        windows: IntArray,
        event_times: FloatArray,
        scores: FloatArray,
        event_ids: list[Any] | None = None,
        labels: list[Any] | None = None,
    ) -> None:
        """Add a batch of on-time predictions: the estimate, the join or inline labels.

        A label that meets its prediction here (inline, or held until the prediction came) is
        never late: the prediction's window is still open.
        """
        if not len(leaf):
            return
        self.version += 1
        rollups = self.registry.rollups
        n_cells = len(self.registry)
        thresholds = self.thresholds_of(leaf)
        if self.settings.classification:
            known = ~np.isnan(thresholds)
            q = correct_probability(scores, scores >= thresholds)
            cells = rollups[leaf]
            k = cells.shape[1]
            for w in np.unique(windows[known]).tolist():
                sel = known & (windows == w)
                acc = self._window(w)
                acc.add_predictions(cells[sel].ravel(), np.repeat(q[sel], k), n_cells)
        if labels is not None:
            values, bad = label_values(labels, self.settings.classification)
            if bad:
                self.invalid["bad_label"] = self.invalid.get("bad_label", 0) + bad
            has = ~np.isnan(values)
            if has.any():
                self._credit(
                    leaf[has],
                    event_times[has],
                    scores[has],
                    values[has],
                    thresholds[has],
                    event_times[has],  # an inline label is known when its prediction is
                )
        if self.join is not None and event_ids is not None:
            ids = [
                str(e) if type(e) is int else (e if type(e) is str and e else None)
                for e in event_ids
            ]
            joined = self.join.add_predictions(ids, leaf, event_times, scores)
            self._credit_joined(joined)

    def labels(
        self,
        event_ids: list[str],
        labels: list[Any],
        label_times: FloatArray,
        next_offset: int,
    ) -> None:
        """Add a batch of label records from the outcomes topic (already decoded)."""
        self.version += 1
        self.offset = next_offset
        if len(label_times):
            self.max_label_time = max(self.max_label_time, float(label_times.max()))
        if self.join is None or not event_ids:
            return
        values, bad = label_values(labels, self.settings.classification)
        if bad:
            self.invalid["bad_label"] = self.invalid.get("bad_label", 0) + bad
        ok = ~np.isnan(values)
        ids = [e for e, keep in zip(event_ids, ok.tolist(), strict=True) if keep]
        joined = self.join.add_labels(ids, values[ok], label_times[ok])
        self._credit_joined(joined)

    def expire(self, clock: float, watermark: float) -> None:
        """Expire the join by the event-time ``clock``; finalize the windows no label can change.

        A window ending at ``end`` is final once it is closed (``watermark >= end``) and the
        label clock has passed ``end + grace``, so no on-time label can still come. The label
        clock is the largest label time read (inline labels: the watermark). If the outcomes
        topic falls silent, the window is final anyway once the watermark passes
        ``end + max(grace, ttl)``: by then every prediction of the window has expired from the
        join, so no label could be joined to it.
        """
        if self.join is not None and math.isfinite(clock):
            self.join.expire(clock)
        grace = self.settings.grace_seconds
        label_clock = watermark if self.join is None else self.max_label_time
        stall = max(grace, self.settings.join.ttl_seconds)
        for w in sorted(self.perf):
            end = (w + 1) * self.size
            if (end <= watermark and end + grace <= label_clock) or end + stall <= watermark:
                self.final[w] = self.perf.pop(w)
                self.final_upto = max(self.final_upto, w)
                self.version += 1
            else:
                break
        if len(self.final) > RETAIN_FINAL:
            self._evict()

    # -- internals ---------------------------------------------------------------------------

    def _window(self, w: int) -> PerfAcc:
        acc = self.perf.get(w)
        if acc is None:
            acc = self.perf[w] = PerfAcc(self.settings.performance)
        return acc

    def _credit_joined(self, joined: Joined) -> None:
        if len(joined.leaf):
            thresholds = self.thresholds_of(joined.leaf)
            self._credit(
                joined.leaf,
                joined.event_times,
                joined.scores,
                joined.labels,
                thresholds,
                joined.label_times,
            )

    def _credit(
        self,
        leaf: IntArray,
        event_times: FloatArray,
        scores: FloatArray,
        labels: FloatArray,
        thresholds: FloatArray,
        label_times: FloatArray,
    ) -> None:
        """Count labeled predictions: into their window while on time, else as late.

        A label is on time when its time is before its prediction's window end plus the
        grace, and the window is not final yet (it is final only past that point of the label
        clock, except when the outcomes topic stalled).
        """
        classification = self.settings.classification
        if classification:
            known = ~np.isnan(thresholds)
            if not known.all():
                # A model with no threshold (none configured, none in its baseline): its
                # labels cannot be scored; counted, never guessed at 0.5.
                missing = int((~known).sum())
                self.invalid["no_threshold"] = self.invalid.get("no_threshold", 0) + missing
                leaf, event_times, scores = leaf[known], event_times[known], scores[known]
                labels, thresholds = labels[known], thresholds[known]
                label_times = label_times[known]
        rollups = self.registry.rollups
        n_cells = len(self.registry)
        self._ensure(n_cells)
        cells = rollups[leaf]
        k = cells.shape[1]
        flat = cells.ravel()
        predicted = scores >= thresholds
        errors = (predicted != (labels > 0.5)) if classification else np.zeros(len(leaf), bool)
        self.labeled_total[:n_cells] += np.bincount(flat, minlength=n_cells)
        if classification:
            self.errors_total[:n_cells] += np.bincount(
                flat, weights=np.repeat(errors, k).astype(np.float64), minlength=n_cells
            ).astype(np.int64)
        windows = np.floor(event_times / self.size).astype(np.int64)
        deadline = (windows + 1) * self.size + self.settings.grace_seconds
        on_time = (label_times < deadline) & (windows > self.final_upto)
        self.late += int((~on_time).sum())
        for w in np.unique(windows[on_time]).tolist():
            sel = on_time & (windows == w)
            acc = self._window(w)
            c = cells[sel].ravel()
            if classification:
                acc.add_classified(
                    c,
                    np.repeat(scores[sel], k),
                    np.repeat(labels[sel], k),
                    np.repeat(predicted[sel], k),
                    n_cells,
                )
            else:
                acc.add_regressed(c, np.repeat(scores[sel], k), np.repeat(labels[sel], k), n_cells)
        if self.detectors is not None:
            self.detectors.update(leaf, errors, event_times)

    def _ensure(self, n: int) -> None:
        self.labeled_total = grow(self.labeled_total, n)
        self.errors_total = grow(self.errors_total, n)

    def _evict(self) -> None:
        model_ids = self.registry.model_ids
        ordered = sorted(self.final, reverse=True)
        keep = set(ordered[:RETAIN_FINAL])
        covered: set[int] = set()
        for w in ordered:
            touched = _touched(self.final[w])
            k = min(len(touched), len(model_ids))
            models = set(np.unique(model_ids[:k][touched[:k]]).tolist())
            if w in keep or models - covered:
                keep.add(w)
                covered |= models
        for w in ordered:
            if w not in keep:
                del self.final[w]

    # -- checkpoints -------------------------------------------------------------------------

    def to_dict(self, keys: list[tuple[str, ...]]) -> dict[str, Any]:
        """Plain JSON data for a checkpoint; cells by key."""
        n = len(keys)
        self._ensure(n)
        touched = np.flatnonzero(self.labeled_total[:n] > 0).tolist()
        return {
            "offset": self.offset,
            "late": self.late,
            "label_clock": self.max_label_time if math.isfinite(self.max_label_time) else None,
            "invalid": dict(sorted(self.invalid.items())),
            "totals": [
                [list(keys[i]), int(self.labeled_total[i]), int(self.errors_total[i])]
                for i in touched
            ],
            "open": [[w, acc.to_rows(keys)] for w, acc in sorted(self.perf.items())],
            "final": [[w, acc.to_rows(keys)] for w, acc in sorted(self.final.items())],
            "join": None if self.join is None else self.join.to_dict(keys),
            "detectors": [] if self.detectors is None else self.detectors.to_dict(keys),
        }

    @classmethod
    def from_dict(
        cls,
        settings: LabelSettings,
        registry: CellRegistry,
        window_seconds: float,
        thresholds: Callable[[IntArray], FloatArray],
        data: Any,
    ) -> PartitionLabels:
        """Rebuild from :meth:`to_dict`; checks everything before touching ``registry``."""
        key_len = registry.ndims + 1
        perf_settings = settings.performance

        def fail(where: str, why: str) -> StateError:
            return StateError(f"partition state is malformed: labels.{where}: {why}")

        def key(v: Any, where: str) -> tuple[str, ...]:
            if type(v) is not list or len(v) != key_len or not all(type(x) is str and x for x in v):
                raise fail(where, f"expected a cell key of {key_len} non-empty strings")
            return tuple(v)

        def count(v: Any, where: str) -> int:
            if type(v) is not int or v < 0:
                raise fail(where, f"expected an integer >= 0, got {v!r:.40}")
            return v

        if type(data) is not dict:
            raise fail("", "expected an object")
        try:
            offset = data["offset"]
            if offset is not None:
                count(offset, "offset")
            late = count(data["late"], "late")
            label_clock = data["label_clock"]
            if label_clock is not None and (
                type(label_clock) not in (int, float) or not math.isfinite(label_clock)
            ):
                raise fail(
                    "label_clock", f"expected a finite number or null, got {label_clock!r:.40}"
                )
            invalid = data["invalid"]
            if type(invalid) is not dict:
                raise fail("invalid", "expected an object")
            invalid_counts = {str(r): count(n, f"invalid.{r}") for r, n in invalid.items()}
            totals = []
            if type(data["totals"]) is not list:
                raise fail("totals", "expected a list")
            for j, row in enumerate(data["totals"]):
                if type(row) is not list or len(row) != 3:
                    raise fail(f"totals[{j}]", "expected [key, labeled, errors]")
                totals.append(
                    (key(row[0], f"totals[{j}]"), count(row[1], "totals"), count(row[2], "totals"))
                )
            windows: dict[str, list[tuple[int, Any]]] = {}
            for table in ("open", "final"):
                rows = data[table]
                if type(rows) is not list:
                    raise fail(table, "expected a list")
                parsed = []
                for j, item in enumerate(rows):
                    if type(item) is not list or len(item) != 2 or type(item[0]) is not int:
                        raise fail(f"{table}[{j}]", "expected [window, rows]")
                    parsed.append((item[0], PerfAcc.parse_rows(item[1], perf_settings, key_len)))
                windows[table] = parsed
            join_data = data["join"]
            parsed_join = None
            if settings.source == "topic" and join_data is not None:
                parsed_join = LabelJoin.parse(join_data, key_len)
            detector_rows = data["detectors"]
            if type(detector_rows) is not list:
                raise fail("detectors", "expected a list")
            detections = []
            for j, row in enumerate(detector_rows):
                if (
                    type(row) is not list
                    or len(row) != 4
                    or type(row[1]) is not str
                    or type(row[2]) is not int
                    or type(row[3]) not in (int, float)
                ):
                    raise fail(f"detectors[{j}]", "expected [key, detector, detections, last]")
                detections.append((key(row[0], f"detectors[{j}]"), row[1], row[2], float(row[3])))
        except KeyError as exc:
            raise fail("", f"missing key {exc}") from None
        # Everything checked: build.
        out = cls(settings, registry, window_seconds, thresholds)
        out.offset = offset
        out.late = late
        out.max_label_time = -math.inf if label_clock is None else float(label_clock)
        out.invalid = invalid_counts
        n = len(registry)
        out._ensure(n)
        for k, labeled, errors in totals:
            i = registry.ensure(k)
            out._ensure(len(registry))
            out.labeled_total[i] += labeled
            out.errors_total[i] += errors
        for table, target in (("open", out.perf), ("final", out.final)):
            for w, parsed_rows in windows[table]:
                acc = PerfAcc.from_parsed(
                    perf_settings, parsed_rows, registry.ensure, len(registry)
                )
                if w in target:
                    target[w].merge(acc)
                else:
                    target[w] = acc
        if out.final:
            out.final_upto = max(out.final)
        if parsed_join is not None:
            out.join = LabelJoin.from_parsed(settings.join, parsed_join, registry.ensure)
        if out.detectors is not None:
            out.detectors.load([(registry.ensure(k), d, c, t) for k, d, c, t in detections])
        return out


def _touched(acc: PerfAcc) -> BoolArray:
    """Cells with predictions or labels in a window's sums."""
    return acc.touched()
