"""One generated batch of synthetic traffic, column by column, and its deliberately bad records.

:class:`Columns` holds plain Python lists, ready to encode; :func:`corrupt` turns one event
into an invalid record of a kind from :data:`INVALID_KINDS`, so a demo exercises the
dead-letter path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

__all__ = ["INVALID_KINDS", "Columns", "corrupt"]

#: The kinds of bad records ``invalid_share`` produces, in the order their codes are drawn.
INVALID_KINDS: tuple[str, ...] = (
    "not_json",
    "json_array",
    "score_out_of_range",
    "score_nan_string",
    "missing_model",
)


@dataclass
class Columns:
    """One generated batch, column by column (plain Python lists, ready to encode)."""

    model_version: str
    cell: list[int]
    cell_names: list[tuple[str, str, str]]
    event_id: list[str]
    timestamp: list[float]
    score: list[float]
    prediction: list[Any]
    label: list[Any]
    latency: list[float]
    features: dict[str, list[Any]]
    invalid: np.ndarray | None
    invalid_kind: np.ndarray
    #: Multi-class models' events: their class probabilities (class -> probability; None for
    #: other events). None: no multi-class model in the batch.
    probs: list[dict[str, float] | None] | None = None

    def rows(self) -> Iterator[dict[str, Any]]:
        """Yield the events as dicts, in order."""
        if self.probs is not None:
            for i in range(len(self.cell)):
                yield self.row(i)
            return
        version = self.model_version
        names = self.cell_names
        feature_names = list(self.features)
        feature_rows = zip(*self.features.values(), strict=True)
        for c, eid, t, s, p, lab, lat, row in zip(
            self.cell,
            self.event_id,
            self.timestamp,
            self.score,
            self.prediction,
            self.label,
            self.latency,
            feature_rows,
            strict=True,
        ):
            model, segment, region = names[c]
            yield {
                "event_id": eid,
                "timestamp": t,
                "model": model,
                "model_version": version,
                "segment": segment,
                "region": region,
                "score": s,
                "prediction": p,
                "label": lab,
                "latency_ms": lat,
                "features": dict(zip(feature_names, row, strict=True)),
            }

    def row(self, i: int) -> dict[str, Any]:
        """The event at index ``i``."""
        model, segment, region = self.cell_names[self.cell[i]]
        out = {
            "event_id": self.event_id[i],
            "timestamp": self.timestamp[i],
            "model": model,
            "model_version": self.model_version,
            "segment": segment,
            "region": region,
            "score": self.score[i],
            "prediction": self.prediction[i],
            "label": self.label[i],
            "latency_ms": self.latency[i],
            "features": {name: values[i] for name, values in self.features.items()},
        }
        if self.probs is not None and self.probs[i] is not None:
            out["probs"] = self.probs[i]
        return out

    def encoded(self) -> tuple[list[bytes], list[bool]]:
        """The orjson records, with the ``invalid`` ones corrupted, and which stayed valid."""
        dumps = orjson.dumps
        # Encode each dict as soon as it is built: keeping n dicts alive costs GC passes.
        values = [dumps(e) for e in self.rows()]
        valid = [True] * len(values)
        if self.invalid is not None:
            for i in np.flatnonzero(self.invalid).tolist():
                values[i] = corrupt(self.row(i), int(self.invalid_kind[i]))
                valid[i] = False
        return values, valid


def corrupt(event: dict[str, Any], kind: int) -> bytes:
    """Encode ``event`` as a record of invalid kind ``INVALID_KINDS[kind]``."""
    name = INVALID_KINDS[kind]
    if name == "not_json":
        return b"{not json: " + str(event["event_id"]).encode() + b"'"
    if name == "json_array":
        return orjson.dumps([event["event_id"], event["score"]])
    bad = dict(event)
    if name == "score_out_of_range":
        bad["score"] = 1.5 if event["score"] >= 0.5 else -0.25
    elif name == "score_nan_string":
        bad["score"] = "NaN"
    else:  # missing_model
        del bad["model"]
    return orjson.dumps(bad)
