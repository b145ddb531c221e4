"""``tilewatch baseline``: build the baseline file from a holdout set, write it, load it back.

The valid rows of each model (read by :mod:`tilewatch.holdout`) go to
:func:`tilewatch.aggregators.drift.reference.build_model_baseline`, and the result is written as
one JSON file (layout in ``docs/baseline.md``). :func:`load_baseline` reads such a file back and
refuses a foreign or corrupt one with a :class:`~tilewatch.holdout.BaselineError` naming the file
and the bad field.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from tilewatch.aggregators.drift.cell_reference import count_cells
from tilewatch.aggregators.drift.reference import (
    Baseline,
    BaselineSettings,
    ModelBaseline,
    build_model_baseline,
)
from tilewatch.aggregators.vectors.settings import VectorSettings
from tilewatch.aggregators.vectors.vector_reference import (
    ModelVectors,
    build_model_vectors,
    class_name,
)
from tilewatch.holdout import SHOW_BAD_ROWS, BaselineError, InputData, read_inputs
from tilewatch.streams.decoding.embeddings import EmbeddingEncoder
from tilewatch.streams.settings import EventFields

__all__ = [
    "build_baseline",
    "build_vectors",
    "load_baseline",
    "load_vectors",
    "run",
    "summarize",
    "write_baseline",
]


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
    score_range = (fields.score_min, fields.score_max)
    models = {}
    for name, columns in sorted(data.models.items()):
        model = build_model_baseline(columns, settings, *score_range)
        cells = count_cells(
            name,
            model,
            score_range,
            tuple(fields.dimensions),
            columns.cells,
            columns.scores,
            columns.predictions,
            columns.features,
            columns.labels,
        )
        models[name] = dataclasses.replace(model, cells=cells)
    return Baseline(
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        sources=data.sources,
        score_range=score_range,
        settings=settings,
        models=models,
        rows_read=data.rows,
        rows_bad=bad,
    )


def build_vectors(
    data: InputData, settings: VectorSettings, fields: EventFields
) -> dict[str, ModelVectors]:
    """The vector reference of every model with embeddings or attributions in the holdout
    (``docs/embeddings.md``); bad vectors are left out as the monitor drops them."""
    out: dict[str, ModelVectors] = {}
    encoder = EmbeddingEncoder()
    for name, columns in sorted(data.models.items()):
        raw = data.embeddings.get(name)
        attributions = data.attributions.get(name)
        if raw is None and attributions is None:
            continue
        rows: Sequence[int] = ()
        matrix = None
        if raw is not None:
            encoded = encoder.encode([name] * len(raw), raw).by_model.get(name)
            if encoded is not None:
                rows, matrix = encoded[0].tolist(), encoded[1]
        classes = [class_name(p) for p in columns.predictions]
        out[name] = build_model_vectors(
            settings, columns.cells, classes, matrix, rows, attributions
        )
    return out


def write_baseline(
    baseline: Baseline, path: str, vectors: dict[str, ModelVectors] | None = None
) -> None:
    """Write the baseline as indented JSON, atomically (a temporary file, then a rename);
    ``vectors`` go under the top-level key ``vectors``, which older readers ignore."""
    tmp = f"{path}.tmp-{os.getpid()}"
    data = baseline.to_dict()
    if vectors:
        data["vectors"] = {name: v.to_dict() for name, v in vectors.items()}
    try:
        with open(tmp, "wb") as file:
            file.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
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


def load_vectors(path: str | os.PathLike[str]) -> dict[str, ModelVectors]:
    """The vector references of a baseline file (empty when it has none).

    Raises
    ------
    BaselineError
        If the file cannot be read or its ``vectors`` are malformed (the field is named).
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = orjson.loads(file.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BaselineError(f"{source}: cannot read the baseline: {exc}") from exc
    raw = data.get("vectors") if isinstance(data, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BaselineError(f"{source}: vectors: expected an object of models")
    try:
        return {str(name): ModelVectors.from_dict(m, f"vectors.{name}") for name, m in raw.items()}
    except ValueError as exc:
        raise BaselineError(f"{source}: not a valid tilewatch baseline: {exc}") from exc


def vector_settings(config: Any) -> VectorSettings:
    """The vector settings of a config: ``[drift]``'s decision settings, the defaults else."""
    drift = config.drift
    return VectorSettings(
        min_samples=drift.min_samples,
        fdr_rate=drift.fdr_rate,
        psi_alert=drift.psi_alert,
        max_features=drift.max_features,
        prior_strength=drift.prior_strength,
    )


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
    used = baseline.rows_read - baseline.rows_bad
    paragraphs.append(
        f"wrote {output}: {len(baseline.models)} model(s) from {len(baseline.sources)} "
        f"file(s): {baseline.rows_read} rows read, {used} used, {baseline.rows_bad} skipped "
        "as malformed."
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
    vectors = None
    if config.events.embedding is not None or config.events.attributions is not None:
        vectors = build_vectors(data, vector_settings(config), config.events)
    write_baseline(baseline, output, vectors)
    print(summarize(baseline, output), file=out)
    for name, mv in (vectors or {}).items():
        print(_vector_summary(name, mv), file=out)
    for line in _calibration_lines(config, baseline, data):
        print(line, file=out)
    return 0


def _vector_summary(name: str, mv: ModelVectors) -> str:
    """One line per model with vectors: the PCA's explained variance and the features."""
    parts = [f"\nmodel {name}: vectors:"]
    if mv.projection is not None:
        explained = ", ".join(f"{100 * x:.1f}%" for x in mv.projection.explained)
        parts.append(
            f"PCA of {mv.projection.dim}-dimensional embeddings, {mv.projection.k} components "
            f"explaining {explained} of the variance;"
        )
    if mv.features:
        parts.append(f"attributions of {', '.join(mv.features)};")
    parts.append(f"{len(mv.groups)} (cell, class) references.")
    return " ".join(parts)


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
