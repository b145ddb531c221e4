"""Metric families built from the catalog: the loops every collector shares.

:func:`family` makes an empty family of a catalogued metric (type, family name, label names and
help all read from :data:`~tilewatch.exporters.prometheus.catalog.CATALOG`), :func:`table_family`
fills one from a dict in key order, and :class:`CellRows` from a per-cell array, one sample per
cell that has events. prometheus-client formats the families.

Examples
--------
>>> fam = table_family("tilewatch_invalid_events_total", {"score_range": 1, "not_json": 2})
>>> fam.name, [(s.labels["reason"], s.value) for s in fam.samples]
('tilewatch_invalid_events', [('not_json', 2), ('score_range', 1)])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.catalog import CATALOG, COUNTER, MetricDoc
from tilewatch.exporters.prometheus.cell_labels import CellLabels
from tilewatch.exporters.prometheus.exposition import CellFamily, WindowTexts

__all__ = ["CellRows", "Family", "describe", "family", "table_family"]

#: A metric family of either type (all take ``add_metric(labels, value)``).
Family = CounterMetricFamily | GaugeMetricFamily | CellFamily


def family(name: str, cell: Sequence[str] = (), *, value: float | None = None) -> Family:
    """An empty family of the catalogued metric ``name``, or one sample ``value`` without labels.

    ``cell`` are the cell's label names (``model`` and the dimensions), put where the catalog
    says ``cell``; a family with cell labels is a
    :class:`~tilewatch.exporters.prometheus.exposition.CellFamily`, written in bulk.
    """
    doc = CATALOG[name]
    labels = None if value is not None else doc.label_names(cell)
    if cell and labels is not None and "cell" in [p.strip() for p in doc.labels.split(",")]:
        return CellFamily(doc.family, doc.help, doc.kind, labels)
    if doc.kind == COUNTER:
        return CounterMetricFamily(doc.family, doc.help, labels=labels, value=value)
    return GaugeMetricFamily(doc.family, doc.help, labels=labels, value=value)


def table_family(
    name: str, table: Mapping[Any, float], cell: Sequence[str] = (), *, sort: bool = True
) -> Family:
    """A family with one sample per entry of ``table``, in key order (``sort=False``: in the
    table's order).

    A key is the label value, or a tuple of label values (written with ``str``, so a partition
    number sorts as a number and is exposed as text).
    """
    fam = family(name, cell)
    items = sorted(table.items()) if sort else table.items()
    for key, value in items:
        values = key if isinstance(key, tuple) else (key,)
        fam.add_metric([str(v) for v in values], value)
    return fam


def describe(docs: Sequence[MetricDoc]) -> Iterator[Metric]:
    """Names and types only (``Collector.describe``), so registering takes no snapshot."""
    for doc in docs:
        yield family(doc.name)


class CellRows:
    """The cells one scrape exports (those with events) and their label values.

    Parameters
    ----------
    snap
        The scrape's snapshot.
    cell
        The cell's label names: ``model`` and the dimensions.
    labels
        The collector's cache of formatted label sets (kept across scrapes); a fresh one if
        not given.
    exported
        The cells to export (the series budget's choice, :mod:`.budget`); default: every cell
        with events.
    unexported
        Leaf cells with events that the budget left out.
    """

    def __init__(
        self,
        snap: Snapshot,
        cell: Sequence[str],
        labels: CellLabels | None = None,
        exported: npt.NDArray[np.bool_] | None = None,
        unexported: int = 0,
        window_texts: WindowTexts | None = None,
    ) -> None:
        self.labels = list(cell)
        self.keys = snap.keys
        self.mask = snap.events_total > 0 if exported is None else exported
        self._present = np.flatnonzero(self.mask)
        self.present: list[int] = self._present.tolist()
        # Index arrays passed as ``cells`` (one serves several families) and their lists.
        self._lists: dict[int, tuple[object, list[int]]] = {}  # the array kept: its id stays
        self.cells = labels if labels is not None else CellLabels(cell)
        self.unexported = unexported
        self._texts = window_texts
        # The window arrays and the drift view are the same objects across snapshots until a
        # reported window changes (the replica caches them): they identify the windows.
        self._token: tuple[object, ...] = (snap.window_count, snap.drift)
        self._cells_digest = hash(self.mask.tobytes()) if window_texts is not None else None

    def family(self, name: str, values: npt.NDArray[np.generic], *, window: bool = False) -> Family:
        """The per-cell family ``name`` with one sample per present cell; ``window``: its
        values belong to the reported windows (its text is kept across scrapes)."""
        fam = family(name, self.labels)
        self.add(fam, values)
        if window:
            self.window(fam)
        return fam

    def window(self, fam: Family) -> Family:
        """Mark ``fam`` as holding only values of the reported windows: with the collector's
        :class:`~tilewatch.exporters.prometheus.exposition.WindowTexts`, its text is formatted
        once per reported window and exported set of cells."""
        if self._texts is not None and isinstance(fam, CellFamily):
            self._texts.attach(fam, self._token, self._cells_digest)
        return fam

    def keep(self, fam: Family, *token: object) -> Family:
        """Like :meth:`window` for a family whose values change only with ``token`` (objects
        replaced, never changed in place, when the values change): its text is formatted once
        per token and exported set of cells."""
        if self._texts is not None and isinstance(fam, CellFamily):
            self._texts.attach(fam, token, self._cells_digest)
        return fam

    def _as_list(self, cells: Sequence[int] | npt.NDArray[np.intp]) -> list[int]:
        """``cells`` as a list, converted once per index array."""
        if isinstance(cells, list):
            return cells
        kept = self._lists.get(id(cells))
        if kept is not None and kept[0] is cells:
            return kept[1]
        out: list[int] = np.asarray(cells, dtype=np.intp).tolist()
        self._lists[id(cells)] = (cells, out)
        return out

    def add(
        self,
        fam: Family,
        values: npt.NDArray[np.generic],
        *extra: str,
        cells: Sequence[int] | npt.NDArray[np.intp] | None = None,
    ) -> None:
        """Add ``values[i]`` for each present cell ``i`` (or each of ``cells``: an index
        array is cheaper than a list when ``cells`` serves several calls), labelled with the
        cell's key followed by ``extra``."""
        keys = self.keys
        index = self._present if cells is None else np.asarray(cells, dtype=np.intp)
        if isinstance(fam, CellFamily):
            rows = self.present if cells is None else self._as_list(cells)
            after = tuple(zip(fam.label_names[len(self.labels) :], extra, strict=True))
            fam.add_cells(self.cells, keys, rows, values[index], after=after)
            return
        add = fam.add_metric
        if extra:
            for i, v in zip(index.tolist(), values[index].tolist(), strict=True):
                add([*keys[i], *extra], v)
        else:
            for i, v in zip(index.tolist(), values[index].tolist(), strict=True):
                add(keys[i], v)
