"""The cell registry: cell keys to dense indices, roll-up cells and the ``max_cells`` bound.

A cell key is ``(model, value of dimension 1, ..., value of dimension d)``. Each leaf cell has
``2 ** d`` roll-up variants (every subset of its dimensions replaced by ``__all__``, the leaf
itself included), so a heatmap gets totals rows and columns. Every cell, leaf or roll-up, has
one dense index; per-cell state elsewhere is numpy arrays indexed by it, so a batch updates all
its cells with a few vectorized calls.

One registry is shared by all partitions of a replica, so the arrays of different partitions
line up and merge element-wise. Partition checkpoints store keys, never indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tilewatch.aggregators.arrays import BoolArray, IntArray, grow
from tilewatch.aggregators.cells.settings import ALL, OTHER, CellSettings

__all__ = ["CellKey", "CellRegistry", "canonical_value"]

_RESERVED = frozenset({ALL, OTHER})

CellKey = tuple[str, ...]


def canonical_value(value: str, max_length: int) -> str:
    """A dimension value as the registry stores it: cut to ``max_length``; a value equal to a
    reserved label (``__all__``, ``__other__``) gets a ``_`` suffix.

    Examples
    --------
    >>> canonical_value("__all__", 64), canonical_value("abcdef", 3)
    ('__all___', 'abc')
    """
    value = value[:max_length]
    return value + "_" if value in _RESERVED else value


class CellRegistry:
    """Dense indices for cell keys, with roll-ups, overflow and label capping.

    Parameters
    ----------
    settings
        ``dimensions``, ``max_cells`` (leaf cells; past it new leaf cells map to the model's
        ``__other__`` cell, or to ``(__other__, ...)`` for a model never seen) and
        ``label_max_length`` (longer values are cut).

    Examples
    --------
    >>> reg = CellRegistry(CellSettings(dimensions=("segment", "region"), max_cells=2))
    >>> reg.index_many([("m", "a", "x"), ("m", "b", "y"), ("m", "a", "x")]).tolist()
    [0, 4, 0]
    >>> [reg.keys[i] for i in reg.rollups[0]]
    [('m', 'a', 'x'), ('m', '__all__', 'x'), ('m', 'a', '__all__'), ('m', '__all__', '__all__')]
    >>> reg.keys[int(reg.index_many([("m", "c", "z")])[0])]
    ('m', '__other__', '__other__')
    >>> reg.overflow
    {'m': 1}
    """

    def __init__(self, settings: CellSettings) -> None:
        self.settings = settings
        self.ndims = len(settings.dimensions)
        self.nvariants = 1 << self.ndims
        #: Key of every cell, by index.
        self.keys: list[CellKey] = []
        #: Whether a cell is a leaf (no ``__all__`` value).
        self._is_leaf: list[bool] = []
        #: Every cell by key (leaves, roll-ups and overflow cells: one dict, not one per kind).
        self._index: dict[CellKey, int] = {}
        #: Whether a raw key may reach the cell by plain lookup: True for leaf cells only, so
        #: no raw key reaches a roll-up or overflow cell (grown with the cells).
        self._direct = np.zeros(16, dtype=bool)
        #: Overflow cells by model.
        self._other: dict[str, int] = {}
        #: Each distinct model name and dimension value of the cells, once: the keys share
        #: these strings rather than each keeping the ones of the event that created it.
        self._values: dict[str, str] = {}
        self._rollups = np.zeros((16, self.nvariants), dtype=np.int64)
        #: Rows of ``_rollups`` written so far; cells added since are written in bulk by
        #: :meth:`_flush` (new leaves' variant rows in ``_pending``), which costs one numpy
        #: call per batch instead of two per cell.
        self._flushed = 0
        self._pending: list[list[int]] = []
        #: Leaf cells created, per model (the ``max_cells`` bound counts leaves).
        self.leaf_count = 0
        #: Events sent to an ``__other__`` cell because ``max_cells`` was reached, per model.
        self.overflow: dict[str, int] = {}
        #: Model names, by model id.
        self.model_names: list[str] = []
        self._model_index: dict[str, int] = {}
        self._model_of: list[int] = []
        self._model_ids_cache: IntArray | None = None
        self._is_leaf_cache: BoolArray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def rollups(self) -> IntArray:
        """``rollups[leaf]`` lists the indices of the leaf's roll-up variants (leaf first)."""
        if self._flushed != len(self.keys):
            self._flush()
        return self._rollups[: len(self.keys)]

    @property
    def is_leaf(self) -> BoolArray:
        """Boolean mask over cell indices: True for leaf cells (read-only; rebuilt only when
        cells were added since the last call, as :attr:`model_ids`)."""
        cached = self._is_leaf_cache
        if cached is None or len(cached) != len(self._is_leaf):
            cached = np.array(self._is_leaf, dtype=bool)
            cached.flags.writeable = False
            self._is_leaf_cache = cached
        return cached

    @property
    def model_ids(self) -> IntArray:
        """Model id (an index into :attr:`model_names`) of every cell (read-only; rebuilt only
        when cells were added since the last call, since every window and snapshot reads it)."""
        cached = self._model_ids_cache
        if cached is None or len(cached) != len(self._model_of):
            cached = np.array(self._model_of, dtype=np.int64)
            cached.flags.writeable = False
            self._model_ids_cache = cached
        return cached

    def index_many(self, keys: Sequence[CellKey], counted: bool = True) -> IntArray:
        """Leaf index of each key, creating cells as needed (one dict lookup per known key).

        ``counted=False``: a second look-up of keys already applied (overflow not counted again).
        """
        get = self._index.get
        out = [get(k, -1) for k in keys]
        arr = np.array(out, dtype=np.int64)
        miss = ~self._direct[arr]  # not found (-1 reads the last entry: False or not) ...
        miss |= arr < 0  # ... or a roll-up or overflow cell, which a raw key must not reach
        if miss.any():
            for pos in np.flatnonzero(miss).tolist():
                arr[pos] = self._resolve(keys[pos], counted)
            self._flush()
        return arr

    def _flush(self) -> None:
        """Write the roll-up rows of the cells added since the last flush."""
        n = len(self.keys)
        if self._flushed == n:
            return
        self._rollups = grow(self._rollups, n)
        new = np.arange(self._flushed, n)
        self._rollups[new] = new[:, None]  # a roll-up cell rolls up to itself only
        if self._pending:
            rows = np.array(self._pending, dtype=np.int64)
            self._rollups[rows[:, 0]] = rows
            self._pending = []
        self._flushed = n

    def lookup(self, key: CellKey) -> int | None:
        """Index of an existing cell, or None."""
        return self._index.get(key)

    def resolve(self, key: CellKey, counted: bool = True) -> int:
        """:meth:`_resolve`, with the roll-up table brought up to date."""
        idx = self._resolve(key, counted)
        self._flush()
        return idx

    def _resolve(self, key: CellKey, counted: bool = True) -> int:
        """Leaf index for a key not found by plain lookup: cap labels, apply ``max_cells``.

        Values equal to ``__all__`` or ``__other__`` get a ``_`` suffix so a producer cannot
        write into a roll-up or overflow cell. Only canonical keys are stored, so a flood of
        over-long or overflowing values costs a little time per event, never memory.
        """
        if len(key) != self.ndims + 1:
            raise ValueError(f"cell key {key!r} must have {self.ndims + 1} parts")
        canon = tuple(self._canonical(v) for v in key)
        # A canonical value is never ``__all__`` or ``__other__``: the key names a leaf.
        found = self._index.get(canon)
        if found is not None:
            return found
        if self.leaf_count >= self.settings.max_cells:
            model = canon[0] if canon[0] in self._model_index else OTHER
            self.overflow[model] = self.overflow.get(model, 0) + int(counted)
            found = self._other.get(model)
            return found if found is not None else self._create((model,) + (OTHER,) * self.ndims)
        return self._create(canon)

    def _canonical(self, value: str) -> str:
        return canonical_value(value, self.settings.label_max_length)

    def ensure(self, key: CellKey) -> int:
        """Index of any cell key written by this registry before (leaf, roll-up or overflow).

        Used when restoring checkpoints: a roll-up key is created on its own if needed (its
        leaves will find it later) and an overflow key is taken as it is.
        """
        found = self._index.get(key)
        if found is not None:
            return found
        if len(key) != self.ndims + 1:
            raise ValueError(f"cell key {key!r} must have {self.ndims + 1} parts")
        dims = key[1:]
        if ALL in dims:
            idx = self._add(key, leaf=False)
        elif dims and all(v == OTHER for v in dims):
            idx = self._create(key)
        else:
            idx = self._resolve(key)
        self._flush()
        return idx

    def _model_id(self, model: str) -> int:
        model_id = self._model_index.get(model)
        if model_id is None:
            model_id = self._model_index[model] = len(self.model_names)
            self.model_names.append(model)
        return model_id

    def _add(self, key: CellKey, leaf: bool) -> int:
        idx = len(self.keys)
        self.keys.append(key)
        self._is_leaf.append(leaf)
        self._model_of.append(self._model_id(key[0]))
        self._index[key] = idx
        self._direct = grow(self._direct, idx + 1)
        return idx  # its roll-up row is written by _flush

    def _create(self, leaf: CellKey) -> int:
        shared = self._values.setdefault
        leaf = tuple([shared(v, v) for v in leaf])
        variants: list[int] = []
        for mask in range(self.nvariants):
            key = (leaf[0], *(ALL if mask & (1 << d) else v for d, v in enumerate(leaf[1:])))
            idx = self._index.get(key)
            if idx is None:
                idx = self._add(key, leaf=mask == 0)
            variants.append(idx)
        self._pending.append(variants)  # variants[0] is the leaf: its row, written by _flush
        if self.ndims and all(v == OTHER for v in leaf[1:]):
            self._other[leaf[0]] = variants[0]
        else:
            self._direct[variants[0]] = True
        self.leaf_count += 1
        return variants[0]
