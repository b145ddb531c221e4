"""Holdout sets: prediction events read from JSON Lines, CSV or Parquet files, per model.

The input files hold prediction events laid out by the same ``[events]`` field mapping as the
Kafka records. Each row is checked; a malformed one is reported as ``file:line: what is wrong``,
counted and skipped. :func:`read_inputs` returns the valid rows of each model as columns, which
:mod:`tilewatch.reference_file` turns into the baseline file.

Errors (both exit the CLI with code 2)::

    TilewatchError
    └── ConfigError           tilewatch.config.loader
        └── BaselineError     an input or baseline file that cannot be read or used
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tilewatch.aggregators.cells.settings import UNKNOWN
from tilewatch.aggregators.drift.reference import (
    ModelColumns,
)
from tilewatch.config import ConfigError
from tilewatch.streams.decoding.class_scores import SUM_TOLERANCE
from tilewatch.streams.decoding.record import dig
from tilewatch.streams.settings import EventFields

__all__ = [
    "FORMATS",
    "SHOW_BAD_ROWS",
    "BadRow",
    "BaselineError",
    "InputData",
    "input_format",
    "read_inputs",
]

#: Input formats, and the file extensions that select them when ``--format`` is not given.
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
#: How many bad rows are listed on stderr (all are counted).
SHOW_BAD_ROWS = 20

_INT = re.compile(r"[+-]?[0-9]+")


class BaselineError(ConfigError):
    """An input file or a baseline file that cannot be read or used."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A malformed input row: file, line (Parquet: row number, from 1) and what is wrong."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(slots=True)
class InputData:
    """The valid rows per model, the malformed rows, and per-file counts."""

    models: dict[str, ModelColumns] = field(default_factory=dict)
    bad: list[BadRow] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    #: With ``[events] embedding`` / ``attributions``: each valid row's raw value, per model,
    #: in the order of the model's columns (checked by the vector reference's builder).
    embeddings: dict[str, list[Any]] = field(default_factory=dict)
    attributions: dict[str, list[Any]] = field(default_factory=dict)


class _Bad(Exception):
    pass


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if isinstance(value, str | bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _flatten(obj: Mapping[str, Any], prefix: str, out: dict[str, object]) -> None:
    for key, value in obj.items():
        if isinstance(value, dict):
            _flatten(value, f"{prefix}{key}.", out)
        else:
            out[f"{prefix}{key}"] = value


class _Rows:
    """Checks one input row and adds it to its model's columns."""

    def __init__(self, fields: EventFields) -> None:
        self.fields = fields
        self.lo, self.hi = fields.score_min, fields.score_max
        self.prefix = fields.features + "."
        self.scores_prefix = f"{fields.scores}."

    def get(self, row: dict[str, Any], path: str, flat: bool) -> Any:
        if flat and path in row:
            return row[path]
        return dig(row, tuple(path.split(".")))

    def dimension(self, row: dict[str, Any], name: str, path: str, flat: bool) -> str:
        """A cell dimension's value as the monitor's decoder reads it (absent: ``unknown``)."""
        value = self.get(row, path, flat)
        if value is None or value == "":
            return UNKNOWN
        if isinstance(value, str):
            return value
        if type(value) is int:
            return str(value)
        raise _Bad(
            f"{path}: dimension {name!r} expected a string or an integer, got {_show(value)}"
        )

    def add(self, row: Any, flat: bool, data: InputData) -> None:
        f = self.fields
        if not isinstance(row, dict):
            raise _Bad(f"expected a JSON object, got a {type(row).__name__}")
        model = self.get(row, f.model, flat)
        if not isinstance(model, str) or not model:
            if model is None:
                raise _Bad(f"{f.model}: required field is missing")
            raise _Bad(f"{f.model}: expected a non-empty string, got {_show(model)}")
        score = self.get(row, f.score, flat)
        top_class = None
        if f.scores is not None:  # a multi-class model: its top class and probability
            vector = self.get(row, f.scores, flat)
            if vector is None and flat:
                vector = {
                    k[len(self.scores_prefix) :]: v
                    for k, v in row.items()
                    if k.startswith(self.scores_prefix) and v is not None
                } or None
            if vector is not None:
                top_class, top = _top_class(vector, f.scores, f.classes)
                score = top if score is None else score
        if score is None:
            raise _Bad(f"{f.score}: required field is missing")
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not (math.isfinite(score) and self.lo <= score <= self.hi)
        ):
            raise _Bad(
                f"{f.score}: expected a number in [{self.lo:g}, {self.hi:g}], got {_show(score)}"
            )
        label = self.get(row, f.label, flat)
        if isinstance(label, float) and math.isnan(label):
            label = None
        if top_class is not None:
            label = None  # a class name: not a binary label (multi-class labels: not yet)
        if label is not None:
            if not isinstance(label, int | float) or label not in (0, 1):
                raise _Bad(f"{f.label}: expected 0, 1, true, false or null, got {_show(label)}")
            label = int(label)
        features: dict[str, object] = {}
        nested = self.get(row, f.features, flat)
        if isinstance(nested, dict):
            _flatten(nested, "", features)
        elif nested is not None:
            raise _Bad(f"{f.features}: expected an object of features, got {_show(nested)}")
        if flat:
            for key, value in row.items():
                if key.startswith(self.prefix):
                    features[key[len(self.prefix) :]] = value
        prediction = self.get(row, f.prediction, flat)
        if isinstance(prediction, float) and math.isnan(prediction):
            prediction = None
        if prediction is None:
            prediction = top_class
        cell = tuple(self.dimension(row, name, path, flat) for name, path in f.dimensions.items())
        columns = data.models.setdefault(model, ModelColumns())
        columns.cells.append(cell)
        columns.scores.append(float(score))
        columns.labels.append(label)
        columns.predictions.append(prediction)
        columns.features.append(features)
        if f.embedding is not None:
            data.embeddings.setdefault(model, []).append(self.get(row, f.embedding, flat))
        if f.attributions is not None:
            data.attributions.setdefault(model, []).append(self.get(row, f.attributions, flat))


def _top_class(vector: Any, path: str, classes: Sequence[str]) -> tuple[str, float]:
    """The top class of a probability vector and its probability (renormalised), checked as
    the monitor checks it (:data:`tilewatch.streams.decoding.class_scores.MALFORMED_REASONS`).
    A list needs ``[events] classes`` of its length; ties go to the first class."""
    if isinstance(vector, dict):
        names, values = list(vector), list(vector.values())
    elif isinstance(vector, list):
        if len(vector) != len(classes):
            raise _Bad(
                f"{path}: a list of {len(classes)} probabilities ([events] classes) "
                f"expected, got {len(vector)} values"
            )
        names, values = list(classes), vector
    else:
        raise _Bad(
            f"{path}: expected an object or a list of class probabilities, got {_show(vector)}"
        )
    if not values:
        raise _Bad(f"{path}: no class probabilities")
    for name, value in zip(names, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"{path}: probability of {name!r} is not a number: {_show(value)}")
        if not 0.0 <= value <= 1.0:
            raise _Bad(f"{path}: probability of {name!r} is outside [0, 1]: {_show(value)}")
    total = float(sum(values))
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise _Bad(f"{path}: probabilities sum to {total:g}, not 1")
    best = max(range(len(values)), key=values.__getitem__)
    return str(names[best]), float(values[best]) / total


def _csv_value(text: str) -> object:
    """A CSV cell as JSON would have it: "" missing, true/false, integers, finite floats."""
    if not text:
        return None
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.fullmatch(low):
        return int(low)
    try:
        number = float(low)
    except ValueError:
        return text
    return number if math.isfinite(number) else None


def _open(path: str, binary: bool) -> Any:
    try:
        if binary:
            return open(path, "rb")
        return open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read the input file: {exc.strerror or exc}") from exc


def _jsonl(path: str) -> Iterator[tuple[int, Any]]:
    with _open(path, binary=True) as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, _Bad(f"not valid JSON: {exc}")


def _csv(path: str, model_path: str) -> Iterator[tuple[int, Any]]:
    with _open(path, binary=False) as file:
        reader = csv.reader(file)
        try:
            header = next(reader, None)
            if header is None:
                return
            for cells in reader:
                if not any(cells):
                    continue
                if len(cells) != len(header):
                    yield (
                        reader.line_num,
                        _Bad(f"expected {len(header)} columns as in the header, got {len(cells)}"),
                    )
                    continue
                yield (
                    reader.line_num,
                    {
                        name: (text or None) if name == model_path else _csv_value(text)
                        for name, text in zip(header, cells, strict=True)
                    },
                )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BaselineError(
                f"{path}:{reader.line_num}: not a readable CSV file: {exc}"
            ) from exc


def _parquet(path: str) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BaselineError(
            f"{path}: reading Parquet needs pyarrow, which is not installed "
            "(pip install pyarrow), or convert the file to CSV or JSON Lines"
        ) from None
    try:
        table = pq.read_table(path)
    except OSError as exc:  # pyarrow's ArrowIOError and ArrowInvalid derive from it or ValueError
        raise BaselineError(f"{path}: cannot read the Parquet file: {exc}") from exc
    except ValueError as exc:
        raise BaselineError(f"{path}: not a valid Parquet file: {exc}") from exc
    yield from enumerate(table.to_pylist(), 1)


def input_format(path: str, given: str | None) -> str:
    """The format of ``path``: ``given``, or from its extension."""
    if given is not None:
        return given
    fmt = FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise BaselineError(
            f"{path}: cannot tell the format from the extension (.csv, .jsonl, .ndjson, "
            ".parquet); pass --format csv|jsonl|parquet"
        )
    return fmt


def read_inputs(paths: Sequence[str], fields: EventFields, fmt: str | None = None) -> InputData:
    """Read and check every row of the input files.

    Raises
    ------
    BaselineError
        If a file cannot be read at all (missing, unreadable, no pyarrow for Parquet).
    """
    data = InputData()
    rows = _Rows(fields)
    for path in paths:
        kind = input_format(path, fmt)
        if kind == "jsonl":
            source: Iterator[tuple[int, Any]] = _jsonl(path)
        elif kind == "csv":
            source = _csv(path, fields.model)
        else:
            source = _parquet(path)
        read = bad = 0
        for line, row in source:
            read += 1
            try:
                if isinstance(row, _Bad):
                    raise row
                rows.add(row, kind != "jsonl", data)
            except _Bad as exc:
                bad += 1
                data.bad.append(BadRow(path, line, str(exc)))
        data.rows += read
        data.sources.append({"path": path, "format": kind, "rows": read, "bad_rows": bad})
    return data
