"""The JSON API of the tile page (documented in ``docs/page.md``).

Every endpoint reads one :class:`~tilewatch.exporters.web.source.TileFrame` (a snapshot taken
under the state lock, shared by the requests of about a second) and returns a bounded answer:
lists are paged (at most :data:`~tilewatch.exporters.web.query.MAX_PAGE_SIZE` items, or that many
rows and columns of the grid), histories hold at most the history depth of windows.

- ``/api/meta``: dimensions, models and their windows, statistics with their colour scales,
  normalisations, limits, the hierarchy's components and indicators;
- ``/api/cells``: a page of cells of a model (filtered by dimension values) as tiles;
- ``/api/grid``: a page of the two-dimensional grid (rows x columns), with its roll-up margins;
- ``/api/cell``: one cell's tile, its last windows (the time strip), its forecast of the next
  windows (``forecast``, with intervals) and its health drivers;
- ``/api/timeline``: the values of one dimension (roll-ups) x the last windows;
- ``/api/health``: each component's and business indicator's status per model and its driver;
- ``/api/embeddings``: one cell and class's projected points, reference against serving
  (:mod:`tilewatch.exporters.web.embeddings_api`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from tilewatch.aggregators.health.evaluate import Driver
from tilewatch.exporters.web.embeddings_api import embedding_points
from tilewatch.exporters.web.query import (
    HEALTH,
    MAX_PAGE_SIZE,
    NORMS,
    Params,
    QueryError,
)
from tilewatch.exporters.web.source import TileFrame, TileSource
from tilewatch.exporters.web.tiles import current_windows, strips, tiles, window_size

__all__ = ["ALL", "ENDPOINTS", "Api"]

ALL = "__all__"


def _f(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


class Api:
    """The endpoints, each ``(params) -> JSON-ready dict``; see the module docstring.

    ``metric_statistic`` maps each base metric of the hierarchy to the statistic it reads
    (for the drivers).
    """

    def __init__(
        self,
        source: TileSource,
        metric_statistic: dict[str, str],
        vectors: Any = None,
        vectors_lock: Any = None,
    ) -> None:
        self.source = source
        self._metric_statistic = dict(metric_statistic)
        #: The monitor's VectorTracker (None: no embeddings read) and the lock it is read under.
        self.vectors = vectors
        self._vectors_lock = vectors_lock if vectors_lock is not None else threading.RLock()

    # --- shared checks ----------------------------------------------------------------------
    def _model(self, params: Params, frame: TileFrame) -> tuple[str, int]:
        model = params.text("model")
        names = frame.snap.model_names
        if model not in names:
            raise QueryError(f"model: no model named {model!r} in this replica's cells")
        return model, names.index(model)

    def _statistic(self, params: Params) -> tuple[str, str]:
        keys = [HEALTH, *self.source.by_key]
        statistic = params.choice("statistic", keys, HEALTH)
        norm = params.choice("norm", NORMS, "raw")
        if statistic == HEALTH and norm != "raw":
            raise QueryError("norm: the health status has no normalisation; use norm=raw")
        return statistic, norm

    def _dims(self, frame: TileFrame) -> tuple[str, ...]:
        return frame.snap.dimensions

    def _filters(self, params: Params, dims: tuple[str, ...]) -> dict[int, str]:
        return {j: params.values[d] for j, d in enumerate(dims) if d in params.values}

    def _window(self, frame: TileFrame, model: str) -> dict[str, float | None]:
        snap = frame.snap
        perf_end = None if snap.performance is None else snap.performance.window_end.get(model)
        return {
            "start": snap.window_start.get(model),
            "end": snap.window_end.get(model),
            "performance_end": perf_end,
        }

    # --- endpoints ---------------------------------------------------------------------------
    def meta(self, params: Params) -> dict[str, Any]:
        params.only([])
        frame = self.source.frame()
        snap = frame.snap
        cells = np.bincount(snap.model_ids[snap.is_leaf], minlength=len(snap.model_names))
        return {
            "dimensions": list(snap.dimensions),
            "models": [
                {"name": m, "leaf_cells": int(cells[i]), "window": self._window(frame, m)}
                for i, m in enumerate(snap.model_names)
            ],
            "statistics": [
                {
                    "key": HEALTH,
                    "title": "Health status",
                    "kind": "status",
                    "meaning": "Worst component status of the cell (metrics hierarchy): "
                    "OK green, WARN amber, CRIT red; grey = no verdict.",
                },
                *(
                    {
                        "key": s.key,
                        "title": s.title,
                        "kind": "value",
                        "unit": s.unit,
                        "low": s.low,
                        "high": s.high,
                        "direction": str(s.direction),
                        "reverse": s.reverse,
                        "amber": s.amber,
                        "red": s.red,
                        "scheme": s.scheme,
                        "count": s.count,
                        "min_samples": self.source.min_samples.get(s.count, 1),
                        "meaning": s.meaning,
                    }
                    for s in self.source.statistics
                ),
            ],
            "norms": list(NORMS),
            "history_depth": None if self.source.history is None else self.source.history.depth,
            "max_page_size": MAX_PAGE_SIZE,
            "components": [c.name for c in frame.health.components],
            "indicators": [i.name for i in frame.health.indicators],
        }

    def cells(self, params: Params) -> dict[str, Any]:
        frame = self.source.frame()
        dims = self._dims(frame)
        params.only(["model", "statistic", "norm", "page", "page_size", *dims])
        model, mid = self._model(params, frame)
        statistic, norm = self._statistic(params)
        page, size = params.page(50)
        filters = self._filters(params, dims)
        chosen = [
            i
            for i in np.flatnonzero(frame.snap.model_ids == mid).tolist()
            if _matches(frame.snap.keys[i], filters, leaf_default=True)
        ]
        chosen.sort(key=lambda i: frame.snap.keys[i])
        total = len(chosen)
        part = chosen[page * size : (page + 1) * size]
        return {
            "model": model,
            "statistic": statistic,
            "norm": norm,
            "window": self._window(frame, model),
            "total": total,
            "page": page,
            "page_size": size,
            "pages": max(1, -(-total // size)),
            "cells": tiles(self.source, frame, part, statistic, norm),
        }

    def grid(self, params: Params) -> dict[str, Any]:
        frame = self.source.frame()
        dims = self._dims(frame)
        if len(dims) < 2:
            raise QueryError("the grid needs two cell dimensions; use /api/cells")
        params.only(
            [
                "model",
                "statistic",
                "norm",
                "rows",
                "cols",
                "row_page",
                "col_page",
                "page_size",
                *dims[2:],
            ]
        )
        model, mid = self._model(params, frame)
        statistic, norm = self._statistic(params)
        r = dims.index(params.choice("rows", dims, dims[0]))
        c = dims.index(params.choice("cols", dims, dims[1]))
        if r == c:
            raise QueryError("rows and cols must be two different dimensions")
        size = params.integer("page_size", 30, 1, MAX_PAGE_SIZE)
        fixed = {j: params.values.get(d, ALL) for j, d in enumerate(dims) if j not in (r, c)}
        snap = frame.snap
        place: dict[tuple[str, str], int] = {}
        for i in np.flatnonzero(snap.model_ids == mid).tolist():
            key = snap.keys[i][1:]
            if all(key[j] == v for j, v in fixed.items()):
                place[(key[r], key[c])] = i
        row_values = sorted({a for a, _b in place if a != ALL})
        col_values = sorted({b for _a, b in place if b != ALL})
        row_page = params.integer("row_page", 0, 0, max(0, (len(row_values) - 1) // size))
        col_page = params.integer("col_page", 0, 0, max(0, (len(col_values) - 1) // size))
        rows = row_values[row_page * size : (row_page + 1) * size]
        cols = col_values[col_page * size : (col_page + 1) * size]
        wanted = [(a, b) for a in [*rows, ALL] for b in [*cols, ALL]]
        present = [k for k in wanted if k in place]
        made = dict(
            zip(
                present,
                tiles(self.source, frame, [place[k] for k in present], statistic, norm),
                strict=True,
            )
        )
        return {
            "model": model,
            "statistic": statistic,
            "norm": norm,
            "window": self._window(frame, model),
            "rows_dimension": dims[r],
            "cols_dimension": dims[c],
            "rows": rows,
            "cols": cols,
            "row_total": len(row_values),
            "col_total": len(col_values),
            "row_page": row_page,
            "col_page": col_page,
            "page_size": size,
            # tiles[i][j]: rows then the roll-up row (ALL), cols then the roll-up column.
            "tiles": [[made.get((a, b)) for b in [*cols, ALL]] for a in [*rows, ALL]],
        }

    def cell(self, params: Params) -> dict[str, Any]:
        frame = self.source.frame()
        dims = self._dims(frame)
        params.only(["model", "statistic", "norm", *dims])
        model, _mid = self._model(params, frame)
        statistic, norm = self._statistic(params)
        missing = [d for d in dims if d not in params.values]
        if missing:
            raise QueryError(f"a cell needs every dimension; missing {', '.join(missing)}")
        key = (model, *(params.values[d] for d in dims))
        i = frame.index.get(key)
        if i is None:
            raise QueryError("no such cell in this replica")
        out: dict[str, Any] = {
            "model": model,
            "key": list(key[1:]),
            "statistic": statistic,
            "norm": norm,
            "window": self._window(frame, model),
            "tile": tiles(self.source, frame, [i], statistic, norm)[0],
            "components": self._components(frame, i),
            "history": None,
        }
        stat = self.source.by_key.get(statistic)
        if stat is not None:
            out["history"] = self._strips(frame, np.array([i]), statistic, norm)[0]
        out["forecast"] = _forecast(frame, i, statistic)
        return out

    def timeline(self, params: Params) -> dict[str, Any]:
        frame = self.source.frame()
        dims = self._dims(frame)
        params.only(["model", "statistic", "norm", "dimension", "page", "page_size"])
        model, mid = self._model(params, frame)
        statistic, norm = self._statistic(params)
        if statistic == HEALTH:
            raise QueryError("statistic: the time views need a statistic, not the health status")
        if not dims:
            raise QueryError("the time views need a cell dimension")
        d = dims.index(params.choice("dimension", dims, dims[0]))
        page, size = params.page(30)
        snap = frame.snap
        rows = sorted(
            (snap.keys[i][1 + d], i)
            for i in np.flatnonzero(snap.model_ids == mid).tolist()
            if snap.keys[i][1 + d] != ALL
            and all(v == ALL for j, v in enumerate(snap.keys[i][1:]) if j != d)
        )
        part = rows[page * size : (page + 1) * size]
        found = self._strips(
            frame, np.array([i for _v, i in part], dtype=np.int64), statistic, norm
        )
        return {
            "model": model,
            "statistic": statistic,
            "norm": norm,
            "dimension": dims[d],
            "total": len(rows),
            "page": page,
            "page_size": size,
            "pages": max(1, -(-len(rows) // size)),
            "rows": [{"value": v, "history": h} for (v, _i), h in zip(part, found, strict=True)],
        }

    def health(self, params: Params) -> dict[str, Any]:
        params.only(["model"])
        frame = self.source.frame()
        _model, m = self._model(params, frame)
        result = frame.health
        return {
            "components": [
                {
                    "name": c.name,
                    "status": int(c.model_status[m]),
                    "score": _f(float(c.model_score[m])),
                    "cells": int(c.model_cells[m]),
                    "driver": _driver(c.model_drivers[m]),
                }
                for c in result.components
            ],
            "indicators": [
                {
                    "name": ind.name,
                    "kind": ind.kind,
                    "status": int(ind.status[m]),
                    "value": _f(float(ind.value[m])),
                    "driver": _driver(ind.drivers[m]),
                }
                for ind in result.indicators
            ],
        }

    # --- helpers -----------------------------------------------------------------------------
    def embeddings(self, params: Params) -> dict[str, Any]:
        dims = self.source.frame().snap.dimensions
        return embedding_points(self.vectors, self._vectors_lock, dims, params)

    def _components(self, frame: TileFrame, i: int) -> list[dict[str, Any]]:
        out = []
        for comp in frame.health.components:
            d = int(comp.driver[i])
            metric = comp.members[d] if 0 <= d < len(comp.members) else None
            out.append(
                {
                    "name": comp.name,
                    "status": int(comp.status[i]),
                    "score": _f(float(comp.score[i])),
                    "driver": None
                    if metric is None or comp.status[i] < 0
                    else {"metric": metric, "statistic": self._metric_statistic.get(metric, "")},
                }
            )
        return out

    def _strips(
        self, frame: TileFrame, cells: Any, statistic: str, norm: str
    ) -> list[dict[str, Any] | None]:
        stat = self.source.by_key[statistic]
        found = strips(self.source, frame, cells, stat, norm)
        if found is None:
            return [None] * len(cells)
        size = window_size(frame)
        current = current_windows(frame, stat, cells)
        out: list[dict[str, Any] | None] = []
        for j in range(len(cells)):
            ws = found.windows[j].tolist()
            out.append(
                {
                    "current": _f(int(current[j]) * size) if current[j] >= 0 else None,
                    "windows": [
                        {
                            "start": _f(w * size) if w >= 0 else None,
                            "value": _f(found.raw[j, k]),
                            "norm": _f(found.norm[j, k]),
                            "n": _f(found.counts[j, k]),
                        }
                        for k, w in enumerate(ws)
                    ],
                }
            )
        return out


def _driver(driver: Driver | None) -> dict[str, Any] | None:
    if driver is None:
        return None
    return {
        "metric": driver.metric,
        "statistic": driver.statistic,
        "key": list(driver.key),
        "component": driver.component,
    }


def _matches(key: tuple[str, ...], filters: dict[int, str], leaf_default: bool) -> bool:
    """Whether a cell key matches the dimension filters; unfiltered dimensions must be leaves."""
    for j, value in enumerate(key[1:]):
        want = filters.get(j)
        if want is None:
            if leaf_default and value == ALL:
                return False
        elif value != want:
            return False
    return True


#: Path under /api/ -> endpoint method name.
ENDPOINTS: dict[str, Callable[[Api, Params], dict[str, Any]]] = {
    "meta": Api.meta,
    "cells": Api.cells,
    "grid": Api.grid,
    "cell": Api.cell,
    "timeline": Api.timeline,
    "health": Api.health,
    "embeddings": Api.embeddings,
}


def _forecast(frame: TileFrame, i: int, statistic: str) -> list[dict[str, Any]] | None:
    """The cell's forecast of ``statistic`` for the next windows, with its interval (None:
    the statistic has no forecasts; empty: none yet for this cell). docs/forecast.md."""
    found = (frame.snap.forecasts or {}).get(statistic)
    if found is None:
        return None
    mean, lower, upper = (a[:, i].tolist() for a in found)
    if not math.isfinite(mean[0]):
        return []
    return [
        {"horizon": h + 1, "value": mean[h], "lower": lower[h], "upper": upper[h]}
        for h in range(len(mean))
    ]
