"""Class probability vectors of a batch, checked and turned into one table with numpy.

With ``[events] scores`` the decoder collects each valid event's raw class probabilities (an
object class -> probability, or a list in the order of ``[events] classes``).
:meth:`ClassScoreEncoder.encode` flattens the whole batch into one array of values and one of
class names, checks every vector at once (:data:`MALFORMED_REASONS`), and returns a
:class:`ClassScores`: the normalised probabilities as a ``(events, max_classes + 1)`` table over
the model's class columns (:class:`~tilewatch.aggregators.cells.classes.ClassVocabulary`, the
last column pooling the names past ``max_classes``), the top-class probability, the margin
top1 - top2, and the predicted class (the event's ``prediction`` when it has one, else the
argmax). A malformed vector is counted by reason and dropped; its event is kept.

Per-event Python work is flattening the vectors (C-level ``chain``) and one dict lookup per
class name; the checks, the arg-max, the margin and the table are numpy calls on the batch.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray
from tilewatch.aggregators.cells.classes import ClassVocabulary
from tilewatch.aggregators.labels.class_rows import NOT_MULTICLASS, ClassRows
from tilewatch.aggregators.stats.multiclass_window import window_bins, window_weights

__all__ = [
    "MALFORMED_REASONS",
    "SUM_TOLERANCE",
    "ClassBatch",
    "ClassScoreEncoder",
    "ClassScores",
    "encode_batch",
]

#: Why a probability vector is dropped (the ``reason`` label of
#: ``tilewatch_malformed_class_scores_total``); the event itself is kept.
MALFORMED_REASONS: dict[str, str] = {
    "wrong_type": "the probabilities are neither an object nor a list",
    "empty": "the object or list is empty",
    "length": "a list whose length is not the number of [events] classes",
    "not_number": "a probability that is not a number",
    "out_of_range": "a probability outside [0, 1]",
    "bad_sum": "probabilities that do not sum to 1 (within SUM_TOLERANCE)",
    "bad_label": "a label that is not a class name (a non-empty string, an integer or a "
    "boolean): the event is kept, unlabeled",
}
#: How far from 1 a vector's sum may be (rounded probabilities); vectors are renormalised.
SUM_TOLERANCE = 0.01

_NUMBER = frozenset({float, int})
#: What a multi-class label may be: a class name, or an integer or boolean spelling one.
_LABEL_TYPES = frozenset({str, int, bool})
#: probs, valid, top, margin, the column of the argmax, its name, malformed reasons by event.
_Table = tuple[FloatArray, BoolArray, FloatArray, FloatArray, IntArray, list[Any], dict[int, str]]


@dataclass(frozen=True)
class ClassScores:
    """The class probabilities of one batch, one row per valid event.

    ``probs`` rows sum to 1 where ``valid`` (zeros elsewhere); ``top`` and ``margin`` are NaN
    where not valid; ``predicted`` is the predicted class's column (-1: none) and
    ``predictions`` its name (the event's own ``prediction`` value where it has one). Only
    events with a probability vector (valid or not) are multi-class events: the others keep
    their prediction and have no predicted column.
    ``malformed`` counts dropped vectors by (model, reason), ``pooled`` the events per model
    whose vector or prediction named a class past ``max_classes``.
    """

    probs: FloatArray
    valid: BoolArray
    top: FloatArray
    margin: FloatArray
    predicted: IntArray
    predictions: list[Any]
    malformed: dict[tuple[str, str], int] = field(default_factory=dict)
    pooled: dict[str, int] = field(default_factory=dict)


class ClassScoreEncoder:
    """Checks and tabulates a batch's class probability vectors; see the module docstring.

    Examples
    --------
    >>> enc = ClassScoreEncoder(ClassVocabulary(3, ("a", "b", "c")))
    >>> out = enc.encode(["m"] * 4, [{"a": 0.2, "b": 0.7, "c": 0.1}, [0.5, 0.3, 0.2],
    ...                              [0.5, "x", 0.5], None], [None, None, None, "c"])
    >>> out.probs.round(2).tolist()[:2]
    [[0.2, 0.7, 0.1, 0.0], [0.5, 0.3, 0.2, 0.0]]
    >>> out.valid.tolist(), out.predictions, out.predicted.tolist()
    ([True, True, False, False], ['b', 'a', None, 'c'], [1, 0, -1, -1])
    >>> out.margin.round(2).tolist()[:2], out.malformed
    ([0.5, 0.2], {('m', 'not_number'): 1})
    """

    def __init__(self, vocabulary: ClassVocabulary) -> None:
        self.vocabulary = vocabulary
        self._list_classes = list(vocabulary.classes)
        self._getter = operator.itemgetter(*vocabulary.classes) if vocabulary.classes else None
        self._names = np.array(vocabulary.classes, dtype=object)

    def encode(
        self,
        models: Sequence[str],
        vectors: Sequence[Any],
        predictions: Sequence[Any] | None = None,
        has_vector: BoolArray | None = None,
    ) -> ClassScores:
        """Tabulate one batch; ``predictions`` are the events' own predicted classes, if any;
        ``has_vector``: which vectors are not None, if the caller knows."""
        if has_vector is None:
            has_vector = _present(vectors)
        table = self._dense(vectors, has_vector)
        if table is None:
            table = self._general(models, vectors)
        probs, valid, top, margin, argcol, names, reasons = table
        vocab = self.vocabulary
        predicted = np.where(valid, argcol, -1)
        out_names: list[Any] = names
        if predictions is not None:
            for i in np.flatnonzero(_present(predictions)).tolist():
                given = predictions[i]
                out_names[i] = given
                if has_vector[i]:  # a multi-class event's own prediction
                    predicted[i] = vocab.column(models[i], _class_name(given))
        pooled_rows = has_vector & ((predicted == vocab.other) | (probs[:, vocab.other] > 0))
        pooled: dict[str, int] = {}
        for i in np.flatnonzero(pooled_rows).tolist():
            pooled[models[i]] = pooled.get(models[i], 0) + 1
        malformed: dict[tuple[str, str], int] = {}
        for i, reason in reasons.items():
            key = (models[i], reason)
            malformed[key] = malformed.get(key, 0) + 1
        return ClassScores(probs, valid, top, margin, predicted, out_names, malformed, pooled)

    def _dense(self, vectors: Sequence[Any], has_vector: BoolArray) -> _Table | None:
        """The common batch, at C speed: every vector a list of the configured classes' length
        (or an object with exactly those keys) of numbers, or absent. None: another batch."""
        classes = self._list_classes
        k = len(classes)
        everyone = bool(has_vector.all())
        present = list(vectors) if everyone else [v for v in vectors if v is not None]
        if k < 2 or not present:
            return None
        kinds = set(map(type, present))
        if not (kinds == {list} or kinds == {dict}) or set(map(len, present)) != {k}:
            return None
        if kinds == {list}:
            rows_values: list[Any] = present
        elif kinds == {dict} and self._getter is not None:
            try:
                rows_values = list(map(self._getter, present))
            except KeyError:
                return None
        else:
            return None
        if not set(map(type, chain.from_iterable(rows_values))) <= _NUMBER:
            return None
        values = np.array(rows_values, dtype=np.float64)
        n = len(vectors)
        rows = np.flatnonzero(has_vector)
        sums = values.sum(axis=1)
        bad_range: BoolArray = np.asarray(((values < 0) | (values > 1)).any(axis=1))
        bad_sum = np.abs(sums - 1.0) > SUM_TOLERANCE
        good = ~(bad_range | bad_sum)
        reasons = {
            int(rows[j]): "out_of_range" if bad_range[j] else "bad_sum"
            for j in np.flatnonzero(~good).tolist()
        }
        norm = values[good] / sums[good, None]
        ordered = np.sort(norm, axis=1)
        at = rows[good]
        probs = np.zeros((n, self.vocabulary.width))
        probs[at, :k] = norm
        valid = np.zeros(n, dtype=np.bool_)
        valid[at] = True
        top, margin = np.full(n, np.nan), np.full(n, np.nan)
        top[at] = ordered[:, -1]
        margin[at] = ordered[:, -1] - ordered[:, -2]
        argcol = np.full(n, -1, dtype=np.int64)
        argcol[at] = arg = norm.argmax(axis=1)
        names = np.full(n, None, dtype=object)
        names[at] = self._names[arg]
        return probs, valid, top, margin, argcol, names.tolist(), reasons

    def _general(self, models: Sequence[str], vectors: Sequence[Any]) -> _Table:
        """Any batch: vectors flattened into one array of values and one of names."""
        vocab = self.vocabulary
        n, width = len(vectors), vocab.width
        lengths = np.zeros(n, dtype=np.int64)
        reasons: dict[int, str] = {}
        key_parts: list[Any] = []
        value_parts: list[Any] = []
        k = len(self._list_classes)
        for i, v in enumerate(vectors):
            t = type(v)
            if t is dict:
                if v:
                    key_parts.append(v.keys())
                    value_parts.append(v.values())
                    lengths[i] = len(v)
                else:
                    reasons[i] = "empty"
            elif t is list:
                if len(v) == k and k:
                    key_parts.append(self._list_classes)
                    value_parts.append(v)
                    lengths[i] = k
                else:
                    reasons[i] = "empty" if not v else "length"
            elif v is not None:
                reasons[i] = "wrong_type"
        keys = list(chain.from_iterable(key_parts))
        raw = list(chain.from_iterable(value_parts))
        rows = np.flatnonzero(lengths)
        starts = np.concatenate(([0], np.cumsum(lengths[rows])[:-1])).astype(np.int64)
        if set(map(type, raw)) <= _NUMBER:
            values = np.array(raw, dtype=np.float64)
            not_number = np.zeros(len(rows), dtype=np.bool_)
        else:  # booleans, strings, nulls, nested values: NaN, and the vector is malformed
            ok = [type(x) in _NUMBER for x in raw]
            values = np.array([x if good else np.nan for x, good in zip(raw, ok, strict=True)])
            not_number = np.logical_or.reduceat(~np.array(ok, dtype=np.bool_), starts)
        valid = np.zeros(n, dtype=np.bool_)
        top = np.full(n, np.nan)
        margin = np.full(n, np.nan)
        probs = np.zeros((n, width))
        argcol = np.full(n, -1, dtype=np.int64)
        names: list[Any] = [None] * n
        if rows.size:
            with np.errstate(invalid="ignore"):
                bad_range = np.logical_or.reduceat((values < 0) | (values > 1), starts)
            sums = np.add.reduceat(np.nan_to_num(values), starts)
            bad_sum = np.abs(sums - 1.0) > SUM_TOLERANCE
            for j in np.flatnonzero(not_number | bad_range | bad_sum):
                reasons[int(rows[j])] = (
                    "not_number" if not_number[j] else "out_of_range" if bad_range[j] else "bad_sum"
                )
            good = ~(not_number | bad_range | bad_sum)
            valid[rows[good]] = True
            safe = np.where(np.isnan(values), -np.inf, values)
            per = lengths[rows]
            first = np.maximum.reduceat(safe, starts)
            position = np.arange(len(safe))
            at_max = np.where(safe == np.repeat(first, per), position, len(safe))
            arg = np.minimum.reduceat(at_max, starts)
            rest = safe.copy()
            rest[arg] = -np.inf
            second = np.maximum(np.maximum.reduceat(rest, starts), 0.0)
            scale = np.where(good, sums, 1.0)
            top[rows[good]] = (first / scale)[good]
            margin[rows[good]] = ((first - second) / scale)[good]
            for j in np.flatnonzero(good):
                names[int(rows[j])] = keys[int(arg[j])]
            # The table: one column per class name, pooled past max_classes.
            element_rows = np.repeat(rows, per)
            element_ok = np.repeat(good, per)
            cols = self._columns(models, element_rows, keys, element_ok)
            argcol[rows[good]] = cols[arg[good]]
            weights = np.where(element_ok, values / np.repeat(scale, per), 0.0)
            flat = np.bincount(element_rows * width + cols, weights=weights, minlength=n * width)
            probs = np.asarray(flat, dtype=np.float64).reshape(n, width)
        return probs, valid, top, margin, argcol, names, reasons

    def _columns(
        self, models: Sequence[str], element_rows: IntArray, keys: list[Any], ok: BoolArray
    ) -> IntArray:
        """The column of each flattened class name (of a valid vector), per model."""
        vocab = self.vocabulary
        cols = np.full(len(keys), vocab.other, dtype=np.int64)
        element_models = [models[r] for r in element_rows.tolist()]
        if len(set(element_models)) <= 1:
            model = element_models[0] if element_models else ""
            column = vocab.column
            table = vocab.columns(model)
            cols[:] = [
                table[key] if key in table else column(model, key) if good else vocab.other
                for key, good in zip(keys, ok.tolist(), strict=True)
            ]
            return cols
        cols[:] = [
            vocab.column(m, key) if good else vocab.other
            for m, key, good in zip(element_models, keys, ok.tolist(), strict=True)
        ]
        return cols


@dataclass(frozen=True)
class ClassBatch:
    """What a batch of a multi-class model adds to state: the window histogram bins and
    weights of :mod:`~tilewatch.aggregators.stats.multiclass_window`, the counters (dropped
    vectors by reason, ``bad_label``, ``pooled``), the predictions for the drift profile, and
    the labels left for the binary performance path (None for events with a vector)."""

    scores: ClassScores
    bins: dict[str, IntArray]
    counts: dict[str, int]
    binary_labels: list[Any] | None
    weights: dict[str, IntArray] = field(default_factory=dict)
    #: Per event: 1 the prediction was wrong, 0 right, -1 not a labeled multi-class event.
    errors: IntArray | None = None
    #: Per event, what the label join keeps of it for a label from the outcomes topic.
    rows: ClassRows | None = None


def encode_batch(
    encoder: ClassScoreEncoder,
    models: Sequence[str],
    vectors: Sequence[Any],
    predictions: Sequence[Any] | None,
    labels: Sequence[Any] | None,
) -> ClassBatch:
    """Encode a batch's vectors and turn its labels (class names) into class columns.

    Examples
    --------
    >>> enc = ClassScoreEncoder(ClassVocabulary(2, ("a", "b")))
    >>> out = encode_batch(enc, ["m", "m"], [[0.9, 0.1], None], None, ["b", 1])
    >>> out.bins["mc_confusion"].tolist(), out.binary_labels
    ([3, -1], [None, 1])
    """
    present = _present(vectors)
    scores = encoder.encode(models, vectors, predictions, present)
    vocab = encoder.vocabulary
    columns = np.full(len(models), -1, dtype=np.int64)
    binary: list[Any] | None = None
    bad_labels = 0
    if labels is not None:
        # A multi-class event's label is a class name: not a binary label.
        binary = (
            [None] * len(labels)
            if present.all()
            else [None if p else lab for lab, p in zip(labels, present.tolist(), strict=True)]
        )
        labeled = np.flatnonzero(present & _present(labels)).tolist()
        judged = (scores.predicted >= 0).tolist()
        # The column of each (model, label type, label) met in this batch, looked up once.
        known: dict[tuple[str, type, Any], int] = {}
        at: list[int] = []
        cols: list[int] = []
        for i in labeled:
            label = labels[i]
            kind = type(label)
            if kind not in _LABEL_TYPES or not (label or kind is not str):
                bad_labels += 1  # kept, unlabeled
                continue
            if judged[i]:
                key = (models[i], kind, label)
                col = known.get(key)
                if col is None:
                    col = known[key] = vocab.column(
                        models[i], label if kind is str else _class_name(label)
                    )
                at.append(i)
                cols.append(col)
        columns[at] = cols
    thresholds = vocab.event_thresholds(models, scores.predicted)
    bins = window_bins(scores.probs, scores.valid, scores.predicted, columns, thresholds=thresholds)
    # A histogram with nothing to count in this batch (no label, no vector) is left out.
    bins = {name: b for name, b in bins.items() if (b >= 0).any()}
    weights = {name: w for name, w in window_weights(scores.probs, columns).items() if name in bins}
    counts: dict[str, int] = {}
    for (_model, reason), n in scores.malformed.items():
        counts[reason] = counts.get(reason, 0) + n
    if bad_labels:
        counts["bad_label"] = bad_labels
    if scores.pooled:
        counts["pooled"] = sum(scores.pooled.values())
    judged = (columns >= 0) & (scores.predicted >= 0)
    errors = np.where(judged, (scores.predicted != columns).astype(np.int64), -1)
    rows = ClassRows(
        scores.probs, scores.valid, np.where(present, scores.predicted, NOT_MULTICLASS)
    )
    return ClassBatch(scores, bins, counts, binary, weights, errors if judged.any() else None, rows)


def _present(values: Sequence[Any]) -> BoolArray:
    """Which values are not None (at C speed; a column of Nones, such as the predictions of
    events without one, at the speed of ``list.count``)."""
    if values and values[0] is None and values.count(None) == len(values):
        return np.zeros(len(values), dtype=np.bool_)
    return np.array(list(map(operator.is_not, values, repeat(None))), dtype=np.bool_)


def _class_name(value: Any) -> str:
    """A prediction value as a class name (booleans as ``true`` / ``false``)."""
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)
