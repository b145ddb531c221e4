"""Labels joined from the outcomes topic, counted into a multi-class partition's windows.

The label join (:mod:`~tilewatch.aggregators.labels.label_state`) hands back the multi-class
predictions it matched with a label; :func:`credit_class_labels` counts them into the labeled
class histograms of their windows (:data:`LABELED_HISTS`), as inline labels are counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tilewatch.aggregators.cells.windows import window_numbers
from tilewatch.aggregators.state.window_acc import per_variant
from tilewatch.aggregators.stats.multiclass_window import LABELED_HISTS, window_bins, window_weights

if TYPE_CHECKING:
    from tilewatch.aggregators.state.partition import PartitionState

__all__ = ["credit_class_labels"]


def credit_class_labels(part: PartitionState) -> None:
    """Count the multi-class predictions the join matched with their labels into the
    class histograms of their windows, as inline labels are.

    A label counts in its prediction's window while the partition still holds that window
    (open, or closed and kept) and the label's time is before the window's end plus the
    label grace; otherwise it is counted in the label side's ``late``. A label that is not
    a class name (a binary value) leaves its multi-class prediction unlabeled and is
    counted as ``bad_label``. Every judged label (the prediction's class known) feeds the
    error-stream detector, when there is one.
    """
    assert part.labels is not None
    batches = part.labels.take_class_labels()
    if not batches or part.classes is None:
        return
    vocab, reg = part.classes, part.registry
    size = part.settings.window_seconds
    grace = part.labels.settings.grace_seconds
    n_cells = len(reg)
    names_of = reg.model_names
    for joined in batches:
        classes = joined.classes
        assert classes is not None and joined.names is not None
        models = reg.model_ids[joined.leaf].tolist()
        columns = np.array(
            [
                -1 if name is None else vocab.column(names_of[m], name)
                for m, name in zip(models, joined.names, strict=True)
            ],
            dtype=np.int64,
        )
        unnamed = int((columns < 0).sum())
        if unnamed:
            invalid = part.labels.invalid
            invalid["bad_label"] = invalid.get("bad_label", 0) + unnamed
        judged = (columns >= 0) & (classes.predicted >= 0)
        detectors = part.labels.detectors
        if detectors is not None and judged.any():
            errors = (classes.predicted != columns).astype(np.int64)
            detectors.update(joined.leaf[judged], errors[judged], joined.event_times[judged])
        windows = window_numbers(joined.event_times, size)
        held = np.array([w in part.open or w in part.closed for w in windows.tolist()])
        on_time = (columns >= 0) & held & (joined.label_times < (windows + 1) * size + grace)
        part.labels.late += int(((columns >= 0) & ~on_time).sum())
        if not on_time.any():
            continue
        thresholds = vocab.event_thresholds([names_of[m] for m in models], classes.predicted)
        bins = window_bins(
            classes.probs, classes.valid, classes.predicted, columns, thresholds=thresholds
        )
        weights = window_weights(classes.probs, columns)
        cells = reg.rollups[joined.leaf]
        k = cells.shape[1]
        for w in np.unique(windows[on_time]).tolist():
            sel = on_time & (windows == w)
            acc = part.open.get(w)
            if acc is None:
                acc = part.closed[w]
                part.closed_version += 1  # a closed window changed: snapshots recompute
            acc.add_hists(
                cells[sel].ravel(),
                [
                    (
                        name,
                        per_variant(bins[name], sel, k),
                        part.hist_bins[name],
                        None if name not in weights else per_variant(weights[name], sel, k),
                    )
                    for name in LABELED_HISTS
                ],
                n_cells,
            )
