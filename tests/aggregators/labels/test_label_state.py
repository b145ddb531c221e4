"""PartitionLabels inside a partition: the grace rule, inline labels, retention, checkpoints.

The rule under test (``aggregators/labels/label_state.py``): a label is credited to its prediction's
cell and window when its time is before the window's end plus the label grace and the window
is not final yet; otherwise it counts in the cumulative counters and in ``late`` only. A window
is final once closed and the label clock (the largest label time read; inline: the watermark)
has passed its end plus the grace, or once the watermark has passed its end plus
``max(grace, ttl)`` (the outcomes topic fell silent). Predictions that are late for the cells
(past the cell grace) take no part.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from tilewatch.aggregators import ALL, CellRegistry, CellSettings, PartitionState, StateError
from tilewatch.aggregators.labels.join import JoinSettings
from tilewatch.aggregators.labels.label_state import RETAIN_FINAL, PartitionLabels, label_values
from tilewatch.aggregators.labels.settings import LabelSettings, PerformanceSettings

SIZE = 10.0
CELL_GRACE = 3.0
LABEL_GRACE = 7.0
CELLS = CellSettings(dimensions=("segment",), window_seconds=SIZE, grace_seconds=CELL_GRACE)


def _settings(source: str = "topic", **kw: Any) -> LabelSettings:
    return LabelSettings(
        source=source,
        grace_seconds=kw.pop("grace", LABEL_GRACE),
        threshold=0.5,
        error_detector=kw.pop("error_detector", None),
        performance=PerformanceSettings(min_samples=1, task=kw.pop("task", "classification")),
        join=JoinSettings(ttl_seconds=1000.0, orphan_ttl_seconds=1000.0),
    )


def _partition(settings: LabelSettings) -> PartitionState:
    registry = CellRegistry(CELLS)
    part = PartitionState(registry)
    part.labels = PartitionLabels(
        settings, registry, SIZE, lambda leaf: np.full(len(leaf), settings.threshold or 0.5)
    )
    return part


def _labels(part: PartitionState) -> PartitionLabels:
    assert part.labels is not None
    return part.labels


def _predict(part: PartitionState, ids: list[str], times: list[float], **kw: Any) -> int:
    n = len(ids)
    res = part.apply(
        kw.get("keys", [("m", "a")] * n),
        np.array(times, dtype=np.float64),
        np.array(kw.get("scores", [0.9] * n), dtype=np.float64),
        event_ids=ids,
        labels=kw.get("labels"),
    )
    return res.late


def _label(part: PartitionState, ids: list[str], values: list[Any], times: list[float]) -> None:
    offset = (_labels(part).offset or 0) + len(ids)
    part.apply_labels(ids, values, np.array(times, dtype=np.float64), offset)


def _labeled(part: PartitionState, w: int) -> int:
    labels = _labels(part)
    acc = labels.perf.get(w) or labels.final.get(w)
    if acc is None:
        return 0
    i = part.registry.lookup(("m", "a"))
    assert i is not None
    return int(acc.labeled()[i]) if i < acc.size else 0


# -- the grace rule ---------------------------------------------------------------------------


def test_a_label_is_on_time_until_window_end_plus_grace_by_its_own_time() -> None:
    part = _partition(_settings())
    _predict(part, ["a", "b", "c"], [1.0, 2.0, 3.0])  # window 0: on time until t = 17
    deadline = SIZE + LABEL_GRACE
    _label(part, ["a", "b", "c"], [1, 0, 1], [deadline - 1.0, deadline - 1e-6, deadline])
    labels = _labels(part)
    assert labels.late == 1  # exactly at the deadline: late
    assert _labeled(part, 0) == 2
    a = part.registry.lookup(("m", "a"))
    rollup = part.registry.lookup(("m", ALL))
    assert a is not None and rollup is not None
    # Cumulative counters: every label, late or not (b was wrong: 0.9 predicts 1).
    assert labels.labeled_total[[a, rollup]].tolist() == [3, 3]
    assert labels.errors_total[[a, rollup]].tolist() == [1, 1]


def test_a_window_is_final_once_closed_and_the_label_clock_passed_its_grace() -> None:
    part = _partition(_settings())
    labels = _labels(part)
    _predict(part, ["w0", "w1"], [1.0, 11.0])
    _label(part, ["w1"], [1], [SIZE + LABEL_GRACE + 5.0])  # the label clock passes 17
    assert sorted(labels.final) == []  # window 0 is not closed yet (watermark 8)
    _predict(part, ["x"], [SIZE + CELL_GRACE])  # watermark reaches 10: closed, and final
    assert sorted(labels.final) == [0] and sorted(labels.perf) == [1]
    assert labels.final_upto == 0
    # A label of window 0 with an on-time time now comes too late: the window is final.
    _label(part, ["w0"], [1], [2.0])
    assert labels.late == 1 and _labeled(part, 0) == 0
    assert labels.join is not None and labels.join.joined == 2


def test_without_labels_a_window_is_final_after_grace_and_ttl() -> None:
    """The outcomes topic is silent: windows become final on the watermark alone, once every
    prediction of the window has expired (end + max(grace, ttl))."""
    settings = _settings()
    part = _partition(settings)
    labels = _labels(part)
    _predict(part, ["a"], [1.0])
    stall = max(LABEL_GRACE, settings.join.ttl_seconds)
    _predict(part, ["x"], [SIZE + stall + CELL_GRACE - 0.001])
    assert labels.final == {}
    _predict(part, ["y"], [SIZE + stall + CELL_GRACE])
    assert sorted(labels.final) == [0]
    assert labels.join is not None and labels.join.expired == 1  # "a" waited ttl: expired


def test_a_held_label_joins_on_time_or_late_by_its_own_time() -> None:
    """A label read before its prediction waits; when the prediction arrives the label is
    credited if its time was before the window's end plus the grace, else it is late."""
    part = _partition(_settings())
    _label(part, ["early", "slow"], [0, 1], [5.0, SIZE + LABEL_GRACE + 1.0])
    labels = _labels(part)
    assert labels.join is not None and labels.join.held == 2
    late = _predict(part, ["early", "slow"], [4.0, 6.0])
    assert late == 0 and labels.join.joined == 2
    assert labels.late == 1 and _labeled(part, 0) == 1


def test_late_predictions_take_no_part() -> None:
    part = _partition(_settings())
    _predict(part, ["a"], [50.0])
    late = _predict(part, ["old"], [5.0])  # its window closed long ago
    assert late == 1
    labels = _labels(part)
    assert labels.join is not None and labels.join.pending == 1  # only "a"
    _label(part, ["old"], [1], [6.0])
    assert labels.join.held == 1 and labels.join.joined == 0  # waits, then orphans
    assert 0 not in labels.perf and 0 not in labels.final


def test_inline_labels_are_credited_with_their_prediction() -> None:
    part = _partition(_settings("inline"))
    labels = _labels(part)
    assert labels.join is None
    late = _predict(
        part,
        ["i", "j", "k", "l"],
        [1.0, 2.0, 3.0, 4.0],
        labels=[1, None, 0, "yes"],
        scores=[0.9, 0.9, 0.2, 0.9],
    )
    assert late == 0
    assert _labeled(part, 0) == 2
    assert labels.invalid == {"bad_label": 1}
    a = part.registry.lookup(("m", "a"))
    assert a is not None
    assert labels.errors_total[a] == 0  # 0.9 -> 1 right, 0.2 -> 0 right
    acc = labels.perf[0]
    assert acc.column("predictions")[a] == 4  # the estimate counts every prediction
    assert labels.late == 0


# -- label values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "classification", "values", "bad"),
    [
        ([0, 1, 0.0, 1.0, True, False], True, [0, 1, 0, 1, 1, 0], 0),
        ([2, -1, 0.5, "1", [1], {"a": 1}], True, [math.nan] * 6, 6),
        ([None, None], True, [math.nan, math.nan], 0),
        ([1.5, -3, 0, 10**6], False, [1.5, -3, 0, 1e6], 0),
        ([True, math.nan, math.inf, -math.inf, "2"], False, [math.nan] * 5, 5),
    ],
)
def test_label_values(raw: list[Any], classification: bool, values: list[float], bad: int) -> None:
    got, n_bad = label_values(raw, classification)
    assert n_bad == bad
    np.testing.assert_array_equal(got, np.array(values, dtype=np.float64))


# -- retention ---------------------------------------------------------------------------------


def test_final_windows_are_evicted_but_each_models_latest_is_kept() -> None:
    part = _partition(_settings("inline", grace=0.0))
    # Model "old" only in window 0; model "m" in windows 0..9.
    part.apply([("old", "a")], np.array([1.0]), np.array([0.9]), labels=[1])
    for w in range(10):
        part.apply([("m", "a")], np.array([w * SIZE + 1.0]), np.array([0.9]), labels=[1])
    part.apply([("m", "a")], np.array([200.0]), np.array([0.9]), labels=[1])
    final = sorted(_labels(part).final)
    assert final == [0, *range(10 - RETAIN_FINAL, 10)]


# -- checkpoints of the label side ------------------------------------------------------------


def _busy_partition() -> PartitionState:
    part = _partition(_settings(error_detector="ddm"))
    rng = np.random.default_rng(4)
    n = 400
    times = np.sort(rng.uniform(0.0, 60.0, n))
    keys = [("m", "a") if i % 3 else ("m", "b") for i in range(n)]
    ids = [f"p{i}" for i in range(n)]
    part.apply(keys, times, rng.uniform(size=n), event_ids=ids)
    label_ids = [*ids[:300:2], "ghost"]
    label_times = [*(times[:300:2] + 20.0).tolist(), 1.0]  # late for the first windows
    _label(part, label_ids, [int(x) for x in rng.integers(0, 2, 151)], label_times)
    return part


def test_to_dict_from_dict_round_trip_is_exact() -> None:
    part = _busy_partition()
    labels = _labels(part)
    assert labels.final and labels.perf and labels.late > 0
    data = json.loads(json.dumps(labels.to_dict(part.registry.keys)))
    registry = CellRegistry(CELLS)
    back = PartitionLabels.from_dict(labels.settings, registry, SIZE, labels.thresholds_of, data)
    assert back.to_dict(registry.keys) == data
    assert back.late == labels.late and back.offset == labels.offset
    assert back.join is not None and labels.join is not None
    assert (back.join.pending, back.join.held, back.join.joined) == (
        labels.join.pending,
        labels.join.held,
        labels.join.joined,
    )


def test_from_dict_refuses_other_calibration_bins_without_building() -> None:
    part = _busy_partition()
    labels = _labels(part)
    data = json.loads(json.dumps(labels.to_dict(part.registry.keys)))
    other = LabelSettings(
        source="topic",
        threshold=0.5,
        performance=PerformanceSettings(calibration_bins=5),
    )
    registry = CellRegistry(CELLS)
    with pytest.raises(StateError, match="malformed"):
        PartitionLabels.from_dict(other, registry, SIZE, labels.thresholds_of, data)
    assert len(registry) == 0


def test_partition_checkpoint_without_labels_section_is_refused_when_malformed() -> None:
    part = _busy_partition()
    data = json.loads(json.dumps(part.to_dict()))
    data["labels"] = "nope"
    registry = CellRegistry(CELLS)
    with pytest.raises(StateError, match="labels"):
        PartitionState.validate(registry, data)
    assert len(registry) == 0


def test_final_windows_written_as_kept_json_match_their_rows() -> None:
    """A delta head takes each final window's rows as JSON made once; it must read back as the
    rows themselves, and follow windows as they become final or are dropped."""
    import orjson

    def frozen_json(rows: list[Any]) -> Any:  # what the changelog passes
        return orjson.Fragment(orjson.dumps(rows))

    part = _partition(_settings(grace=0.0))
    labels = _labels(part)
    keys = part.registry.keys
    for w in range(RETAIN_FINAL + 4):
        t0 = w * SIZE
        ids = [f"{w}-{i}" for i in range(5)]
        _predict(part, ids, [t0 + 1.0 + i for i in range(5)])
        _label(part, ids, [1, 0, 1, 1, 0], [t0 + 1.5 + i for i in range(5)])
        plain = orjson.loads(orjson.dumps(labels.to_dict(keys)))
        kept = orjson.loads(orjson.dumps(labels.to_dict(keys, frozen_json)))
        assert kept == plain
        assert sorted(labels.final_json) == sorted(labels.final)
    assert len(labels.final) >= 2  # windows became final, and old ones were dropped
    assert min(labels.final) > 0
