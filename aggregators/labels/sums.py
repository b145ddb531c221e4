"""Model performance per cell and event-time window, from sums that merge by adding.

A window keeps, per cell, the sufficient statistics of its model's performance; windows,
partitions and replicas combine by adding them, so every metric of a merged cell is exact.
Each batch updates all its cells with a few ``bincount`` calls (roll-up cells come in already
expanded, as repeated cell indices); nothing loops over events in Python.

Binary classification: ``score`` is the probability of the positive class, the label is 0 or
1 and the caller passes the decision (``score >= threshold``) per event. Regression: ``score``
is the predicted value and the label the target.

Sums kept per cell (``n`` labeled events, ``q`` = probability that the prediction is right):

* every prediction, labeled or not: ``predictions``, ``sum q``, ``sum q (1 - q)``; under
  calibrated scores they give a label-free estimate of accuracy and its error bound;
* labeled classification events: ``labeled``, ``correct``, ``tp``, ``fp``, ``fn`` (``tn`` is
  derived), ``sum (score - label)^2``, ``sum`` of log-loss terms (``p`` clipped to
  ``[1e-15, 1 - 1e-15]``), ``sum q`` and ``sum q (1 - q)`` over the labeled events, and per
  equal-width score bin the count, the positives and the sum of scores (for the ECE);
* labeled regression events: ``labeled`` and the sums of ``err``, ``|err|`` and ``err^2`` with
  ``err = prediction - target``.

:func:`derive_performance` turns the sums into metrics for the whole grid at once, NaN where a
cell has fewer than ``min_samples`` labeled events. Checkpoints store the sums as plain JSON,
cells by key (:meth:`PerfAcc.to_rows`), and :meth:`PerfAcc.from_rows` validates everything
before it resolves a single key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tilewatch.aggregators.arrays import BoolArray, FloatArray, IntArray, grow, resized
from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.labels.settings import PerformanceSettings, Task
from tilewatch.aggregators.labels.sums_codec import COUNT_FIELDS, SUM_FIELDS, ParsedRows, parse_rows

__all__ = ["PerfAcc", "correct_probability"]

_CLIP = 1e-15
_PRED, _LAB, _CORRECT, _TP, _FP, _FN = range(6)
_Q, _QV, _LQ, _LQV, _BRIER, _LOGLOSS = range(6)
_ERR, _ABS, _SQ = range(3)


def correct_probability(scores: FloatArray, predicted: BoolArray) -> FloatArray:
    """``q`` = P(the prediction is right | a calibrated score), per event.

    ``q = score`` where the prediction is positive, ``1 - score`` where it is negative. With
    calibrated scores the number of right predictions has mean ``sum q`` and variance
    ``sum q (1 - q)``, which is what the label-free estimate rests on.

    Parameters
    ----------
    scores : numpy.ndarray of float, shape (events,)
        Probability of the positive class.
    predicted : numpy.ndarray of bool, shape (events,)
        The decision per event (``score >= threshold``).

    Returns
    -------
    numpy.ndarray of float64, shape (events,)

    Examples
    --------
    >>> s = np.array([0.9, 0.2, 0.6])
    >>> correct_probability(s, s >= 0.5).tolist()
    [0.9, 0.8, 0.6]
    """
    s = np.asarray(scores, dtype=np.float64)
    return np.where(np.asarray(predicted, dtype=np.bool_), s, 1.0 - s)


class PerfAcc:
    """Performance sums of one event-time window, per cell; mergeable by adding.

    Arrays are indexed by cell and grown as needed; :attr:`size` is the largest ``n_cells``
    seen. The caller expands roll-ups, so ``cells`` may repeat an event's index once per
    roll-up variant (the other columns repeated alike).

    Parameters
    ----------
    settings
        Task, calibration bins, ``min_samples`` and confidence.

    Examples
    --------
    >>> acc = PerfAcc(PerformanceSettings(min_samples=1))
    >>> cells, s = np.array([0, 0, 1]), np.array([0.8, 0.3, 0.6])
    >>> acc.add_predictions(cells, correct_probability(s, s >= 0.5), n_cells=2)
    >>> acc.add_classified(cells, s, np.array([1.0, 1.0, 0.0]), s >= 0.5, n_cells=2)
    >>> acc.labeled().tolist(), acc.column("correct").tolist(), acc.column("fn").tolist()
    ([2, 1], [1, 0], [1, 0])
    """

    __slots__ = (
        "_bin_count",
        "_bin_pos",
        "_bin_score",
        "_bin_square",
        "_counts",
        "_sums",
        "settings",
        "size",
    )

    def __init__(self, settings: PerformanceSettings) -> None:
        self.settings = settings
        #: Number of cells the arrays cover (the largest ``n_cells`` seen).
        self.size = 0
        bins = settings.calibration_bins if settings.task == "classification" else 0
        self._counts = np.zeros((len(COUNT_FIELDS[settings.task]), 0), dtype=np.int64)
        self._sums = np.zeros((len(SUM_FIELDS[settings.task]), 0))
        # Calibration per (cell, bin), one leading axis of length 1 so the cell axis is axis 1.
        self._bin_count = np.zeros((1, 0, bins), dtype=np.int64)
        self._bin_pos = np.zeros((1, 0, bins), dtype=np.int64)
        self._bin_score = np.zeros((1, 0, bins))
        # Sum of squared scores per bin: the exact variance of a bin's positives under
        # calibration (sum p (1 - p)), for the calibration test.
        self._bin_square = np.zeros((1, 0, bins))

    @property
    def count_fields(self) -> tuple[str, ...]:
        """Names of the integer sums, in checkpoint order."""
        return COUNT_FIELDS[self.settings.task]

    @property
    def sum_fields(self) -> tuple[str, ...]:
        """Names of the float sums, in checkpoint order."""
        return SUM_FIELDS[self.settings.task]

    def _reserve(self, n: int) -> None:
        # The cell axis is axis 1 of every table.
        self._counts, self._sums = grow(self._counts, n, axis=1), grow(self._sums, n, axis=1)
        self._bin_count = grow(self._bin_count, n, axis=1)
        self._bin_pos = grow(self._bin_pos, n, axis=1)
        self._bin_score = grow(self._bin_score, n, axis=1)
        self._bin_square = grow(self._bin_square, n, axis=1)
        self.size = max(self.size, n)

    def _batch(self, cells: IntArray, n_cells: int, task: Task, *columns: npt.ArrayLike) -> int:
        """Check one batch's shapes and cell range, and reserve ``n_cells``; its length."""
        if task != self.settings.task:
            raise ValueError(f"this accumulator measures {self.settings.task}, not {task}")
        n = len(cells)
        if any(np.shape(c) != (n,) for c in columns):
            raise ValueError("every column of a batch must have one value per cell index")
        if n and (int(cells.min()) < 0 or int(cells.max()) >= n_cells):
            raise ValueError(f"cell indices must lie in [0, {n_cells})")
        self._reserve(n_cells)
        return n

    def _add(self, table: npt.NDArray[Any], row: int, cells: IntArray, n: int, w: Any) -> None:
        table[row, :n] += np.bincount(cells, weights=w, minlength=n).astype(table.dtype)

    def add_predictions(self, cells: IntArray, q: FloatArray, n_cells: int) -> None:
        """Count every prediction, labeled or not, with its ``q`` (:func:`correct_probability`).

        For regression only the predictions are counted (``q`` is checked for length only).

        Raises
        ------
        ValueError
            On mismatched lengths, cell indices outside ``[0, n_cells)`` or, for
            classification, a ``q`` outside ``[0, 1]``.
        """
        task = self.settings.task
        if not self._batch(cells, n_cells, task, q):
            return
        if task == "classification":
            q = np.asarray(q, dtype=np.float64)
            if not ((q >= 0.0) & (q <= 1.0)).all():
                raise ValueError("q must lie in [0, 1]")
        self._add(self._counts, _PRED, cells, n_cells, None)
        if task == "classification":
            self._add(self._sums, _Q, cells, n_cells, q)
            self._add(self._sums, _QV, cells, n_cells, q * (1.0 - q))

    def add_classified(
        self,
        cells: IntArray,
        scores: FloatArray,
        labels: FloatArray,
        predicted: BoolArray,
        n_cells: int,
    ) -> None:
        """Add labeled classification events: scores in ``[0, 1]``, labels 0 or 1.

        Raises
        ------
        ValueError
            On a regression accumulator, mismatched lengths, cell indices outside
            ``[0, n_cells)``, a score outside ``[0, 1]`` or a label other than 0 or 1.
        """
        if not self._batch(cells, n_cells, "classification", scores, labels, predicted):
            return
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=np.float64)
        pred = np.asarray(predicted, dtype=np.bool_)
        if not ((s >= 0.0) & (s <= 1.0)).all():
            raise ValueError("classification scores must lie in [0, 1]")
        pos = y == 1.0
        if not (pos | (y == 0.0)).all():
            raise ValueError("classification labels must be 0 or 1")
        n = n_cells
        add, counts, sums = self._add, self._counts, self._sums
        add(counts, _LAB, cells, n, None)
        add(counts, _CORRECT, cells[pred == pos], n, None)
        add(counts, _TP, cells[pred & pos], n, None)
        add(counts, _FP, cells[pred & ~pos], n, None)
        add(counts, _FN, cells[~pred & pos], n, None)
        q = np.where(pred, s, 1.0 - s)
        add(sums, _LQ, cells, n, q)
        add(sums, _LQV, cells, n, q * (1.0 - q))
        add(sums, _BRIER, cells, n, (s - y) ** 2)
        p = np.clip(s, _CLIP, 1.0 - _CLIP)
        add(sums, _LOGLOSS, cells, n, -np.log(np.where(pos, p, 1.0 - p)))
        bins = self.settings.calibration_bins
        flat = cells * bins + np.minimum((s * bins).astype(np.int64), bins - 1)
        shape = (n, bins)
        self._bin_count[0, :n] += np.bincount(flat, minlength=n * bins).reshape(shape)
        self._bin_pos[0, :n] += np.bincount(flat[pos], minlength=n * bins).reshape(shape)
        self._bin_score[0, :n] += np.bincount(flat, weights=s, minlength=n * bins).reshape(shape)
        self._bin_square[0, :n] += np.bincount(flat, weights=s * s, minlength=n * bins).reshape(
            shape
        )

    def add_regressed(
        self, cells: IntArray, predictions: FloatArray, targets: FloatArray, n_cells: int
    ) -> None:
        """Add labeled regression events (``err = prediction - target``, all finite).

        Raises
        ------
        ValueError
            On a classification accumulator, mismatched lengths, cell indices outside
            ``[0, n_cells)`` or a value that is not finite.
        """
        if not self._batch(cells, n_cells, "regression", predictions, targets):
            return
        err = np.asarray(predictions, dtype=np.float64) - np.asarray(targets, dtype=np.float64)
        if not np.isfinite(err).all():
            raise ValueError("regression predictions and targets must be finite")
        self._add(self._counts, _LAB, cells, n_cells, None)
        self._add(self._sums, _ERR, cells, n_cells, err)
        self._add(self._sums, _ABS, cells, n_cells, np.abs(err))
        self._add(self._sums, _SQ, cells, n_cells, err * err)

    def merge(self, other: PerfAcc) -> None:
        """Add ``other``'s sums into this accumulator, in place (exact).

        Raises
        ------
        StateError
            If the two measure different tasks or use different calibration bins.
        """
        a, b = self.settings, other.settings
        if (a.task, a.calibration_bins) != (b.task, b.calibration_bins):
            raise StateError(
                f"cannot merge {b.task} sums with {b.calibration_bins} bins into "
                f"{a.task} sums with {a.calibration_bins} bins"
            )
        k = other.size
        self._reserve(k)
        self._counts[:, :k] += other._counts[:, :k]
        self._sums[:, :k] += other._sums[:, :k]
        self._bin_count[:, :k] += other._bin_count[:, :k]
        self._bin_pos[:, :k] += other._bin_pos[:, :k]
        self._bin_score[:, :k] += other._bin_score[:, :k]
        self._bin_square[:, :k] += other._bin_square[:, :k]

    def sized(self, n: int) -> PerfAcc:
        """A copy of this accumulator cut or zero-padded to exactly ``n`` cells."""
        out = PerfAcc(self.settings)
        for name in ("_counts", "_sums", "_bin_count", "_bin_pos", "_bin_score", "_bin_square"):
            mine = getattr(self, name)[:, : self.size]
            setattr(out, name, resized(mine, (mine.shape[0], n, *mine.shape[2:])))
        out.size = n
        return out

    def column(self, name: str) -> npt.NDArray[Any]:
        """One sum per cell, by name (:attr:`count_fields`, :attr:`sum_fields`, or ``bin_count``,
        ``bin_positives``, ``bin_score``, ``bin_square`` of shape ``(cells, bins)``); a copy,
        ``size`` long."""
        if name in self.count_fields:
            return self._counts[self.count_fields.index(name), : self.size].copy()
        if name in self.sum_fields:
            return self._sums[self.sum_fields.index(name), : self.size].copy()
        bins: dict[str, npt.NDArray[Any]] = {
            "bin_count": self._bin_count,
            "bin_positives": self._bin_pos,
            "bin_score": self._bin_score,
            "bin_square": self._bin_square,
        }
        if name in bins:
            return bins[name][0, : self.size].copy()
        raise KeyError(name)

    def labeled(self) -> IntArray:
        """Labeled events per cell (``size`` long)."""
        return self._counts[_LAB, : self.size].copy()

    def touched(self) -> BoolArray:
        """Which cells have a prediction or a labeled event (``size`` long)."""
        return (self._counts[_PRED, : self.size] > 0) | (self._counts[_LAB, : self.size] > 0)

    def to_rows(self, keys: list[tuple[str, ...]]) -> list[list[Any]]:
        """Plain JSON rows of the touched cells (with a prediction or a label), named by key.

        A row is ``[key, counts, sums]`` (fields in :attr:`count_fields` and
        :attr:`sum_fields` order); classification rows add the per-bin counts, positives
        and score sums and squared score sums.

        Examples
        --------
        >>> acc = PerfAcc(PerformanceSettings(task="regression"))
        >>> acc.add_regressed(np.array([1]), np.array([2.5]), np.array([2.0]), n_cells=2)
        >>> acc.to_rows([("m", "a"), ("m", "b")])
        [[['m', 'b'], [0, 1], [0.5, 0.5, 0.25]]]
        """
        touched = np.flatnonzero(self.touched())
        if len(touched) and int(touched[-1]) >= len(keys):
            raise ValueError(f"{len(keys)} keys name fewer cells than the sums touch")
        cols = [self._counts[:, touched].T.tolist(), self._sums[:, touched].T.tolist()]
        if self.settings.task == "classification":
            cols += [b[0, touched].tolist() for b in (self._bin_count, self._bin_pos)]
            cols.append(self._bin_score[0, touched].tolist())
            cols.append(self._bin_square[0, touched].tolist())
        return [[list(keys[i]), *row] for i, *row in zip(touched.tolist(), *cols, strict=True)]

    @staticmethod
    def parse_rows(rows: Any, settings: PerformanceSettings, key_len: int) -> ParsedRows:
        """Check :meth:`to_rows` output completely; pure, raises StateError naming where."""
        return parse_rows(rows, settings.task, settings.calibration_bins, key_len)

    @classmethod
    def from_rows(
        cls,
        settings: PerformanceSettings,
        rows: Any,
        index: Callable[[tuple[str, ...]], int],
        n: int,
        key_len: int | None = None,
    ) -> PerfAcc:
        """Rebuild sums from :meth:`to_rows` output; raises StateError on bad data.

        Everything is validated first (:meth:`parse_rows`); only then is ``index`` called,
        once per key, so bad data never creates a cell. Keys that ``index`` maps to the same
        cell are added together. The result covers ``max(n, largest index + 1)`` cells.
        ``key_len`` defaults to the length of the first row's key (all rows must agree).

        Examples
        --------
        >>> s = PerformanceSettings(task="regression")
        >>> rows = [[["m", "b"], [0, 1], [0.5, 0.5, 0.25]]]
        >>> keys = {("m", "a"): 0, ("m", "b"): 1}
        >>> PerfAcc.from_rows(s, rows, keys.__getitem__, n=2).labeled().tolist()
        [0, 1]
        """
        if key_len is None:
            first = rows[0] if type(rows) is list and rows else None
            head = first[0] if type(first) is list and first else None
            key_len = len(head) if type(head) is list else 1
        return cls.from_parsed(settings, cls.parse_rows(rows, settings, key_len), index, n)

    @classmethod
    def from_parsed(
        cls,
        settings: PerformanceSettings,
        parsed: ParsedRows,
        index: Callable[[tuple[str, ...]], int],
        n: int,
    ) -> PerfAcc:
        """The second phase of :meth:`from_rows`: resolve each key with ``index`` and add.

        Raises
        ------
        StateError
            If ``parsed`` was checked for another task or number of calibration bins.
        """
        width = settings.calibration_bins if settings.task == "classification" else 0
        fields = (len(COUNT_FIELDS[settings.task]), len(SUM_FIELDS[settings.task]), width)
        if (parsed.counts.shape[1], parsed.sums.shape[1], parsed.bin_count.shape[1]) != fields:
            raise StateError("performance rows were parsed for other performance settings")
        idx = np.array([index(key) for key in parsed.keys], dtype=np.int64)
        out = cls(settings)
        out._reserve(max(n, int(idx.max()) + 1 if len(idx) else 0))
        np.add.at(out._counts.T, idx, parsed.counts)
        np.add.at(out._sums.T, idx, parsed.sums)
        np.add.at(out._bin_count[0], idx, parsed.bin_count)
        np.add.at(out._bin_pos[0], idx, parsed.bin_positives)
        np.add.at(out._bin_score[0], idx, parsed.bin_score)
        np.add.at(out._bin_square[0], idx, parsed.bin_square)
        return out
