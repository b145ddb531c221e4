"""``/api/embeddings``: one cell and class's projected points, reference against serving.

The answer holds, for the model's latest judged window (or an older one still kept, with
``end``), the reference sample and the window's reservoir sample of the group (cell, predicted
class) on the first two principal components, the components' explained variance, and the
group's statistics and flags. Grafana's XY chart (the cell dashboard's scatter, through the
Infinity data source) and a person with ``curl`` read the same JSON; two frames, ``reference``
and ``live``, each a list of ``{"x", "y"}`` rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tilewatch.aggregators.vectors.tracker import ClosedWindow, VectorTracker
from tilewatch.aggregators.vectors.vector_flags import VECTOR_SIGNALS
from tilewatch.exporters.web.query import Params, QueryError

__all__ = ["embedding_points"]

ALL = "__all__"


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _rows(points: Any) -> list[dict[str, float]]:
    return [{"x": float(x), "y": float(y)} for x, y in points.tolist()]


def embedding_points(
    tracker: VectorTracker | None, lock: Any, dims: Sequence[str], params: Params
) -> dict[str, Any]:
    """The answer of ``/api/embeddings?model=..&<dimension>=..&class=..[&end=..]``; a
    dimension left out means ``__all__`` (the model-wide cell)."""
    params.only(["model", "class", "end", *dims])
    if tracker is None:
        raise QueryError("embeddings: this monitor reads no [events] embedding")
    model = params.text("model")
    cls = params.text("class", ALL)
    cell = tuple(params.values.get(d, ALL) for d in dims)
    with lock:
        history = dict(tracker.history.get(model, {}))
        reference = tracker.references.get(model)
    if reference is None or reference.projection is None:
        raise QueryError(f"model: no embedding reference for {model!r}")
    if not history:
        raise QueryError(f"model: no judged window of {model!r} yet")
    if "end" in params.values:
        try:
            end = float(params.values["end"])
        except ValueError:
            raise QueryError(
                f"end: expected a window end (epoch seconds), got {params.values['end']!r}"
            ) from None
        if end not in history:
            raise QueryError(f"end: no kept window of {model!r} ends at {end:g}")
    else:
        end = max(history)
    window: ClosedWindow = history[end]
    key = (cell, cls)
    ref = reference.reference_of(key)
    d = window.decisions
    stats: dict[str, Any] = {"events": 0, "distance": None, "distance_pvalue": None, "flags": {}}
    if key in d.keys:
        i = d.keys.index(key)
        stats = {
            "events": int(d.count[i]),
            "distance": _f(d.distance[i]),
            "distance_pvalue": _f(d.distance_pvalue[i]),
            "psi": [_f(v) for v in d.psi[i].tolist()],
            "flags": {s: bool(d.flags[s][i]) for s in VECTOR_SIGNALS},
        }
    live = window.points.get(key)
    return {
        "model": model,
        "key": list(cell),
        "class": cls,
        "window_end": end,
        "windows": sorted(history),
        "explained": [float(x) for x in reference.projection.explained[:2].tolist()],
        "reference_rows": 0 if ref is None else ref.rows,
        "reference": [] if ref is None else _rows(ref.points),
        "live": [] if live is None else _rows(live),
        **stats,
    }
