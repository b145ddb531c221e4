"""The multi-class families: class shares and per-class performance of each cell's window.

Exported with ``[events] scores`` for the cells of multi-class models (those with predicted
classes in their window), from the window statistics the consumer thread computed
(:func:`tilewatch.aggregators.stats.multiclass.window_metrics`); the ``class`` label takes at
most ``[events] max_classes`` + 1 values per model. Names, types and help are in
:data:`~tilewatch.exporters.prometheus.catalog.MULTICLASS_METRICS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client.core import Metric

from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.families import CellRows, family

__all__ = ["multiclass_families"]

#: The top-k accuracies exported (the ``k`` label).
TOP_K = ("1", "2", "3", "4", "5")


def multiclass_families(snap: Snapshot, rows: CellRows) -> Iterator[Metric]:
    """The multi-class families of a snapshot (none without a multi-class model)."""
    m, names = snap.multiclass, snap.class_labels
    if m is None or names is None:
        return
    # The cells of multi-class models: those with predicted classes in the window.
    cells = np.asarray([i for i in rows.present if m.events[i] > 0], dtype=np.intp)
    per_class: list[tuple[str, Any]] = [
        ("tilewatch_window_class_share_ratio", m.class_share),
        ("tilewatch_window_class_precision_ratio", m.precision),
        ("tilewatch_window_class_recall_ratio", m.recall),
        ("tilewatch_window_class_f1_ratio", m.f1),
    ]
    if m.below_threshold is not None:  # per-class thresholds (the window histograms of them)
        per_class += [
            ("tilewatch_window_class_below_threshold_ratio", m.below_threshold),
            ("tilewatch_window_class_below_threshold_right_events", m.below_threshold_right),
            ("tilewatch_window_class_below_threshold_right_ratio", m.below_threshold_right_share),
        ]
    thresholds = snap.class_thresholds or {}
    by_model: dict[str, list[int]] = {}
    for i in cells.tolist():
        by_model.setdefault(rows.keys[i][0], []).append(i)
    model_cells = {model: np.asarray(at, dtype=np.intp) for model, at in by_model.items()}
    for name, table in per_class:
        # Every family here holds the reported window's values: kept while ``m`` is the same.
        fam = rows.keep(family(name, rows.labels), m)
        below = "below_threshold" in name  # only classes with a threshold
        for model, at in model_cells.items():
            limits = thresholds.get(model, [])
            for j, label in enumerate(names[model]):
                if label and not (below and not (j < len(limits) and limits[j] == limits[j])):
                    rows.add(fam, table[:, j], label, cells=at)
        yield fam
    yield rows.keep(rows.family("tilewatch_window_class_labeled_events", m.labeled), m)
    for name, values in (
        ("tilewatch_window_class_expected_accuracy_ratio", m.expected_accuracy),
        ("tilewatch_window_class_brier_score", m.brier),
        ("tilewatch_window_class_log_loss", m.log_loss),
        ("tilewatch_window_class_calibration_error", m.calibration_error),
        ("tilewatch_window_class_accuracy_ratio", m.accuracy),
        ("tilewatch_window_macro_f1_ratio", m.macro_f1),
        ("tilewatch_window_weighted_f1_ratio", m.weighted_f1),
    ):
        fam = rows.keep(family(name, rows.labels), m)
        rows.add(fam, values, cells=cells)
        yield fam
    fam = rows.keep(family("tilewatch_window_topk_accuracy_ratio", rows.labels), m)
    for j, k in enumerate(TOP_K[: m.topk_accuracy.shape[1]]):
        rows.add(fam, m.topk_accuracy[:, j], k, cells=cells)
    yield fam
    errors = snap.class_errors
    if errors is not None:
        for name, values in (
            ("tilewatch_window_class_error_increase", errors.increase),
            ("tilewatch_window_class_error_pvalue", errors.pvalue),
            ("tilewatch_window_class_error_flag", errors.flag.astype(float)),
        ):
            fam = rows.keep(family(name, rows.labels), errors)
            rows.add(fam, values, cells=cells)
            yield fam
    gap = family("tilewatch_window_class_accuracy_gap_ratio")
    info = family("tilewatch_window_class_gap_info")
    for g in snap.class_gaps:
        gap.add_metric([g.model, g.dimension], g.gap)
        info.add_metric([g.model, g.dimension, g.worst, g.best], 1.0)
    yield gap
    yield info
    drift = snap.class_drift
    if drift is not None:
        psi = rows.keep(family("tilewatch_window_class_drift_psi", rows.labels), drift)
        flag = rows.keep(family("tilewatch_window_class_drift_flag", rows.labels), drift)
        for signal in drift.flag:
            rows.add(psi, drift.effect[signal], signal, cells=cells)
            rows.add(flag, drift.flag[signal].astype(float), signal, cells=cells)
        yield psi
        yield flag
