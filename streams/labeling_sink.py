"""The labeling queue's Kafka side: offer each batch's valid events, produce what is selected.

Selection is pure (:mod:`tilewatch.aggregators.labeling`); this stage builds each event's
signals (binary: score and decision threshold; multi-class: the class probabilities), offers the
batch to its partition's queue after the batch is applied, and produces the records the queue
selects when a window closes to the queue topic (default ``<predictions topic>.labeling``).

Each record is the original event (its key and value, unchanged) with these headers:

=============================== ===========================================================
``tilewatch.labeling.reason``   the reason (``least_confident``, ``confident_wrong``, ...)
``tilewatch.labeling.cell``     the leaf cell as a JSON list (model, then dimension values)
``tilewatch.labeling.window``   the window's start and end, ``"<start>/<end>"`` (epoch s)
``tilewatch.labeling.score``    binary: the score; multi-class: the top-class probability
``tilewatch.labeling.threshold`` the decision (binary) or confidence (multi-class) threshold
``tilewatch.labeling.priority`` the event's priority under the reason
``tilewatch.labeling.health``   the cell's health status then: green, amber, red or none
``tilewatch.labeling.id``       ``<topic>/<partition>/<offset>/<reason>``: the record's id
``tilewatch.source.*``          source topic, partition and offset (as in the dead letters)
=============================== ===========================================================

Guarantee: **at-least-once, with a stable id.** A window's selection is made when the partition
closes it, produced asynchronously, and flushed by the committer before the checkpoint that
records the window as done (:mod:`tilewatch.streams.commit`). A crash after the flush and
before that checkpoint replays the window from the previous checkpoint and selects exactly the
same records again (the selection depends only on the window's events, not on batches): the
queue then holds them twice with the same ``tilewatch.labeling.id``, and consumers dedupe on it.
A record that cannot be produced is logged and counted in
``tilewatch_labeling_failures_total``; it is not retried.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from tilewatch.aggregators.arrays import FloatArray, IntArray
from tilewatch.aggregators.labeling.queue import LabelingQueue, Selected
from tilewatch.aggregators.labeling.reasons import Signals, binary_signals
from tilewatch.aggregators.labeling.settings import LabelingSettings
from tilewatch.aggregators.labels.label_state import label_values
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import PartitionKey
from tilewatch.streams.deadletter import ProducerLike, flush_pending
from tilewatch.streams.decoding.predictions import DecodedBatch
from tilewatch.streams.decoding.record import RecordLike

__all__ = ["HEALTH_NAMES", "LabelingStage"]

log = logging.getLogger(__name__)

#: Header text of a health status (-1 none, 0 green, 1 amber, 2 red).
HEALTH_NAMES = {-1: "none", 0: "green", 1: "amber", 2: "red"}


class _Payloads:
    """The key and value of each valid record, read only for the candidates kept."""

    __slots__ = ("_records",)

    def __init__(self, records: Sequence[RecordLike]) -> None:
        self._records = records

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> tuple[bytes | None, bytes | None]:
        r = self._records[i]
        return r.key, r.value


class LabelingStage:
    """Offers batches to the partitions' labeling queues and produces their selections.

    Parameters
    ----------
    settings
        The ``[labeling]`` settings (``topic``: the queue topic; None: per source topic).
    state
        The replica state whose partitions hold the queues.
    producer_factory
        Builds the producer on first use.
    status_of
        Health status of leaf cells (-1 none, 0 green, 1 amber, 2 red), asked when a window
        closes; None: every cell has no status (the plain cell share applies).
    """

    def __init__(
        self,
        settings: LabelingSettings,
        state: ReplicaState,
        producer_factory: Callable[[], ProducerLike],
        status_of: Callable[[IntArray], IntArray] | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic
        self.state = state
        self.status_of = status_of
        self._factory = producer_factory
        self._producer: ProducerLike | None = None
        self._timeout = timeout_seconds
        self._pending: list[tuple[str, Any]] = []
        #: Records produced and acknowledged, and records that could not be produced.
        self.sent = 0
        self.failed = 0

    def clock(self, key: PartitionKey) -> float:
        """The partition's largest event time before a batch (what lateness is judged by)."""
        part = self.state.partitions.get(key)
        return -math.inf if part is None else part.max_event_time

    def topics(self, sources: Sequence[str]) -> list[str]:
        """The queue topics of the source topics."""
        return sorted({self.topic_of(t) for t in sources})

    def topic_of(self, source: str) -> str:
        """The queue topic of events read from ``source``."""
        return self.topic or f"{source}.labeling"

    def offer(
        self,
        key: PartitionKey,
        records: Sequence[RecordLike],
        decoded: DecodedBatch,
        scores: FloatArray,
        labels: list[Any] | None,
        before: float | None,
        multiclass: Any = None,
    ) -> None:
        """Offer a batch already applied to partition ``key`` (under the state's lock), then
        produce what the windows it closed select. Rejected records are never candidates;
        ``before`` is :meth:`clock` from before the batch; ``labels`` the raw binary labels
        (None: none inline); ``multiclass`` the batch's ``ClassBatch`` of a multi-class model."""
        rejected, cell_keys = decoded.rejected, decoded.keys
        event_times = np.array(decoded.event_times, dtype=np.float64)
        before = -math.inf if before is None else before
        part = self.state.partitions.get(key)
        if part is None:
            return
        registry = self.state.registry
        if part.labeling is None:
            part.labeling = LabelingQueue.restore(None, self.settings, registry)
        queue: LabelingQueue = part.labeling
        if cell_keys:
            bad = {id(r.record) for r in rejected}
            valid = [r for r in records if id(r) not in bad] if bad else records
            leaf = registry.index_many(cell_keys, counted=False)
            signals = self._signals(leaf, scores, labels, multiclass)
            first = valid[0].offset
            if valid[-1].offset - first == len(valid) - 1:  # no gap: no per-record work
                offsets = np.arange(first, first + len(valid), dtype=np.int64)
            else:
                offsets = np.fromiter((r.offset for r in valid), np.int64, len(valid))
            queue.offer(leaf, event_times, offsets, signals, _Payloads(valid), before)
        for sel in queue.close(part.watermark, self.status_of):
            self._send(key, sel)

    def _signals(
        self, leaf: IntArray, scores: FloatArray, labels: list[Any] | None, multiclass: Any
    ) -> Signals:
        s = self.settings
        thresholds = (
            np.full(len(leaf), s.threshold)
            if s.threshold is not None
            else self.state.thresholds_of(leaf)
        )
        values = None if labels is None else label_values(labels, classification=True)[0]
        sig = binary_signals(scores, thresholds, values, s.margin)
        if multiclass is None:
            return sig
        mc = multiclass.scores
        rows = np.asarray(mc.valid, dtype=bool)
        if not rows.any():
            return sig
        conf_at = s.confidence if s.confidence is not None else s.threshold
        errors = multiclass.errors
        correct = (
            np.full(len(leaf), -1, dtype=np.int64)
            if errors is None
            else np.where(errors >= 0, 1 - errors, -1)
        )
        t = math.nan if conf_at is None else conf_at
        return Signals(
            np.where(rows, mc.top, sig.confidence),
            np.where(rows, mc.margin, sig.margin),
            np.where(rows, mc.top >= t, sig.confident),
            np.where(rows, correct, sig.correct),
            np.where(rows, mc.top, sig.score),
            np.where(rows, t, sig.threshold),
        )

    def _send(self, key: PartitionKey, sel: Selected) -> None:
        topic, partition = key
        size = self.state.settings.window_seconds
        cell = self.state.registry.keys[sel.cell]
        rid = f"{topic}/{partition}/{sel.offset}/{sel.reason}"
        headers = [
            ("tilewatch.labeling.reason", sel.reason.encode()),
            ("tilewatch.labeling.cell", orjson.dumps(list(cell))),
            (
                "tilewatch.labeling.window",
                f"{sel.window * size:g}/{(sel.window + 1) * size:g}".encode(),
            ),
            ("tilewatch.labeling.score", repr(sel.score).encode()),
            ("tilewatch.labeling.threshold", repr(sel.threshold).encode()),
            ("tilewatch.labeling.priority", repr(sel.priority).encode()),
            ("tilewatch.labeling.health", HEALTH_NAMES.get(sel.status, "none").encode()),
            ("tilewatch.labeling.id", rid.encode()),
            ("tilewatch.source.topic", topic.encode()),
            ("tilewatch.source.partition", str(partition).encode()),
            ("tilewatch.source.offset", str(sel.offset).encode()),
        ]
        try:
            if self._producer is None:
                self._producer = self._factory()
            future = self._producer.send(
                self.topic_of(topic), value=sel.value, key=sel.key, headers=headers
            )
        except Exception as exc:  # a producer error must not stop consumption
            self._fail(rid, exc)
            return
        self._pending.append((rid, future))

    def flush(self) -> int:
        """Wait for produced records (before a checkpoint); returns how many failed."""
        sent, failed = flush_pending(
            self._producer, self._pending, self._timeout, "labeling", self._fail
        )
        self.sent += sent
        return failed

    def failed_count(self) -> int:
        """Records that could not be produced (for the exporter)."""
        return self.failed

    def _fail(self, rid: str, exc: object) -> None:
        log.error("could not produce labeling record %s: %s", rid, exc)
        self.failed += 1

    def close(self) -> None:
        """Flush and close the producer."""
        self.flush()
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
