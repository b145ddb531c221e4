"""``tilewatch baseline``: read a holdout set, write the baseline file; and load it back.

The input files (JSON Lines, CSV or Parquet) hold prediction events laid out by the same
``[events]`` field mapping as the Kafka records. Each row is checked; a malformed one is reported as
``file:line: what is wrong``, counted and skipped. The valid rows of each model go to
:func:`tilewatch.aggregators.drift.reference.build_model_baseline`, and the result is written as one
JSON file (layout in ``docs/baseline.md``). :func:`load_baseline` reads such a file back and refuses
a foreign or corrupt one with a :class:`BaselineError` naming the file and the bad field.

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
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelBaseline,
    ModelColumns,
    build_model_baseline,
)
from tilewatch.config import ConfigError
from tilewatch.streams.settings import EventFields

__all__ = [
    "FORMATS",
    "BadRow",
    "BaselineError",
    "InputData",
    "build_baseline",
    "input_format",
    "load_baseline",
    "read_inputs",
    "run",
    "summarize",
    "write_baseline",
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


class _Bad(Exception):
    pass


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if isinstance(value, str | bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dig(obj: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


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

    def get(self, row: Mapping[str, Any], path: str, flat: bool) -> Any:
        if flat and path in row:
            return row[path]
        return _dig(row, path.split("."))

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
        columns = data.models.setdefault(model, ModelColumns())
        columns.scores.append(float(score))
        columns.labels.append(label)
        columns.predictions.append(prediction)
        columns.features.append(features)


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


def build_baseline(
    data: InputData, settings: BaselineSettings, fields: EventFields, max_bad_share: float
) -> Baseline:
    """Build the baseline of every model, or fail when too many rows are bad.

    Raises
    ------
    BaselineError
        If no valid row remains, or more than ``max_bad_share`` of the rows are bad (the
        message lists the first bad rows).
    """
    bad = len(data.bad)
    if bad and (bad == data.rows or bad > max_bad_share * data.rows):
        shown = "\n".join(f"  {b}" for b in data.bad[:SHOW_BAD_ROWS])
        more = f"\n  ... and {bad - SHOW_BAD_ROWS} more" if bad > SHOW_BAD_ROWS else ""
        what = (
            "no valid row"
            if bad == data.rows
            else f"more than --max-bad-share {max_bad_share:g} of the rows are bad"
        )
        raise BaselineError(
            f"{bad} of {data.rows} rows are malformed: {what}; the first ones:\n{shown}{more}"
        )
    if not data.models:
        raise BaselineError(
            "no valid row in " + ", ".join(s["path"] for s in data.sources) + " (empty input)"
        )
    models = {
        name: build_model_baseline(columns, settings, fields.score_min, fields.score_max)
        for name, columns in sorted(data.models.items())
    }
    return Baseline(
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        sources=data.sources,
        score_range=(fields.score_min, fields.score_max),
        settings=settings,
        models=models,
        rows_read=data.rows,
        rows_bad=bad,
    )


def write_baseline(baseline: Baseline, path: str) -> None:
    """Write the baseline as indented JSON, atomically (a temporary file, then a rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as file:
            file.write(orjson.dumps(baseline.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise BaselineError(f"{path}: cannot write the baseline: {exc.strerror or exc}") from exc


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read and check a baseline file written by ``tilewatch baseline``.

    Raises
    ------
    BaselineError
        If the file cannot be read, is not JSON, is not a tilewatch baseline, has an
        unsupported version, or has a field missing or of the wrong type (named in the message).
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise BaselineError(f"{source}: cannot read the baseline: {exc.strerror or exc}") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BaselineError(f"{source}: not a tilewatch baseline: not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or "format" not in data:
        raise BaselineError(f'{source}: not a tilewatch baseline: no "format" field')
    try:
        return Baseline.from_dict(data)
    except ValueError as exc:
        raise BaselineError(f"{source}: not a valid tilewatch baseline: {exc}") from exc


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _model_summary(name: str, m: ModelBaseline) -> str:
    numeric = sorted(k for k, f in m.features.items() if f.kind == "numeric")
    categorical = sorted(k for k, f in m.features.items() if f.kind == "categorical")
    parts = [
        f"model {name}: {m.rows} rows ({m.labeled_rows} labelled); score mean "
        f"{m.score.mean:.4g}, std {m.score.std:.4g}",
        f"{len(m.features)} features ({len(numeric)} numeric"
        + (f": {', '.join(numeric)}" if numeric else "")
        + f"; {len(categorical)} categorical"
        + (f": {', '.join(categorical)}" if categorical else "")
        + ")",
    ]
    t = m.threshold
    if t is None:
        reason = next((n for n in m.notes if "threshold" in n), "no threshold")
        parts.append(f"{reason} (none written)")
    else:
        parts.append(
            f"threshold {t.value:.6g} by {t.rule} on {t.labeled_rows} labelled rows "
            f"(F1 {t.f1:.3f}, precision {t.precision:.3f}, recall {t.recall:.3f}, accuracy "
            f"{t.accuracy:.3f}, FPR {t.fpr:.3f}, Youden J {t.youden_j:.3f}, cost {t.cost:.6g})"
        )
    if m.predictions:
        shares = ", ".join(f"{k} {_pct(v)}" for k, v in m.predictions.items())
        parts.append(f"predicted classes (from the {m.prediction_source}): {shares}")
    return "; ".join(parts) + "."


def summarize(baseline: Baseline, output: str) -> str:
    """One paragraph per model, and a closing line naming the output file."""
    paragraphs = [_model_summary(name, m) for name, m in baseline.models.items()]
    paragraphs.append(
        f"wrote {output}: {len(baseline.models)} model(s), {baseline.rows_read} rows from "
        f"{len(baseline.sources)} file(s), {baseline.rows_bad} malformed rows skipped."
    )
    return "\n\n".join(paragraphs)


def run(
    config_path: str,
    inputs: Sequence[str],
    output: str,
    fmt: str | None = None,
    max_bad_share: float = 0.01,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The ``tilewatch baseline`` command; errors are raised as :class:`ConfigError`."""
    from tilewatch.config import load_config

    out = out or sys.stdout
    err = err or sys.stderr
    config = load_config(config_path)
    data = read_inputs(inputs, config.events, fmt)
    baseline = build_baseline(data, config.baseline, config.events, max_bad_share)
    for bad in data.bad[:SHOW_BAD_ROWS]:
        print(f"tilewatch: skipped {bad}", file=err)
    if len(data.bad) > SHOW_BAD_ROWS:
        print(f"tilewatch: skipped {len(data.bad) - SHOW_BAD_ROWS} more bad rows", file=err)
    for name, model in baseline.models.items():
        for note in model.notes:
            print(f"tilewatch: warning: model {name}: {note}", file=err)
    write_baseline(baseline, output)
    print(summarize(baseline, output), file=out)
    for line in _calibration_lines(config, baseline, data):
        print(line, file=out)
    return 0


def _calibration_lines(config: Any, baseline: Baseline, data: InputData) -> list[str]:
    """Per model with labels: is it calibrated, so can its label-free estimate be trusted?

    The threshold is the one the monitor will use: ``[labels.thresholds]``, else the chosen
    one, else ``[labels] threshold``.
    """
    from tilewatch.calibration import calibration_check

    labels = config.labels
    lines = []
    for name, model in baseline.models.items():
        threshold = None if model.threshold is None else model.threshold.value
        if labels is not None:
            threshold = labels.thresholds.get(name, threshold)
            threshold = labels.threshold if threshold is None else threshold
        columns = data.models[name]
        check = calibration_check(
            columns.scores,
            columns.labels,
            threshold,
            bins=10 if labels is None else labels.performance.calibration_bins,
            confidence=0.95 if labels is None else labels.performance.confidence,
        )
        if check is not None:
            lines.append(f"\nmodel {name}: {check.describe()}.")
    return lines
