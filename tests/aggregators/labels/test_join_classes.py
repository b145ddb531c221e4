"""The label join with class columns: class rows and class names through the join and its
checkpoints; the outcomes decoder with class names."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from tilewatch.aggregators.errors import StateError
from tilewatch.aggregators.labels.class_rows import NOT_MULTICLASS, ClassRows
from tilewatch.aggregators.labels.join import JoinSettings, LabelJoin
from tilewatch.streams.decoding.outcomes import LabelDecoder
from tilewatch.streams.settings import LabelTopic

KEYS = [("m", "a"), ("m", "b")]
SETTINGS = JoinSettings(ttl_seconds=100, orphan_ttl_seconds=100)


def rows() -> ClassRows:
    probs = np.array([[0.6, 0.3, 0.1, 0.0], [0.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.6, 0.0]])
    return ClassRows(probs, np.array([True, False, True]), np.array([0, NOT_MULTICLASS, 2]))


def filled() -> LabelJoin:
    j = LabelJoin(SETTINGS, class_width=4)
    j.add_labels(["c"], np.array([np.nan]), np.array([5.0]), ["hold"])  # held: a name only
    out = j.add_predictions(
        ["a", "b", "c"], np.array([0, 1, 0]), np.array([1.0, 2.0, 3.0]), np.zeros(3), rows()
    )
    assert out.names == ["hold"] and out.classes is not None
    assert out.classes.predicted.tolist() == [2] and out.classes.probs[0, 2] == 0.6
    j.add_labels(["z"], np.array([1.0]), np.array([6.0]), ["1"])  # held: both
    return j


def test_class_rows_and_names_survive_a_checkpoint() -> None:
    j = filled()
    data = orjson.loads(orjson.dumps(j.to_dict(KEYS)))
    assert data["pending"][0][4:] == [0, [0.6, 0.3, 0.1, 0.0]]
    assert data["pending"][1][4:] == [NOT_MULTICLASS, []]
    assert data["held"] == [["z", 1.0, 6.0, "1"]]
    back = LabelJoin.from_parsed(SETTINGS, LabelJoin.parse(data, 2, 4), KEYS.index)
    for join in (j, back):
        out = join.add_labels(
            ["a", "b"], np.array([np.nan, 1.0]), np.array([7.0, 8.0]), ["sell", "1"]
        )
        assert out.names == ["sell", "1"] and out.classes is not None
        assert out.classes.predicted.tolist() == [0, NOT_MULTICLASS]
        assert out.classes.valid.tolist() == [True, False]
        assert out.classes.probs[0].tolist() == [0.6, 0.3, 0.1, 0.0]
        assert np.isnan(out.labels[0]) and out.labels[1] == 1.0
        got = join.add_predictions(["z"], np.array([1]), np.array([9.0]), np.zeros(1))
        assert got.names == ["1"] and got.labels.tolist() == [1.0]


def test_a_checkpoint_without_class_columns_loads_as_binary() -> None:
    old = LabelJoin(SETTINGS)
    old.add_predictions(["a"], np.array([0]), np.array([1.0]), np.array([0.9]))
    old.add_labels(["q"], np.array([0.0]), np.array([2.0]))
    data = orjson.loads(orjson.dumps(old.to_dict(KEYS)))
    back = LabelJoin.from_parsed(SETTINGS, LabelJoin.parse(data, 2, 4), lambda k: 0)
    out = back.add_labels(["a"], np.array([1.0]), np.array([3.0]), [None])
    assert out.classes is not None and out.classes.predicted.tolist() == [NOT_MULTICLASS]
    got = back.add_predictions(["q"], np.array([0]), np.array([4.0]), np.zeros(1))
    assert got.names == [None] and got.labels.tolist() == [0.0]


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("pending", [0, [0.5, 0.5]], "class row of 4"),
        ("pending", ["x", []], "class column"),
        ("pending", [0, [0.5, "a", 0.2, 0.3]], "finite numbers"),
        ("held", [""], "class name"),
    ],
)
def test_bad_class_columns_are_refused(where: str, value: list, message: str) -> None:
    data = orjson.loads(orjson.dumps(filled().to_dict(KEYS)))
    row = data[where][0]
    data[where][0] = row[: len(row) - len(value)] + value
    with pytest.raises(StateError, match=message):
        LabelJoin.parse(data, 2, 4)


def test_a_label_that_is_neither_is_refused() -> None:
    data = orjson.loads(orjson.dumps(filled().to_dict(KEYS)))
    data["held"][0] = ["z", None, 6.0, None]
    with pytest.raises(StateError, match="neither a value nor a class name"):
        LabelJoin.parse(data, 2, 4)


def test_the_decoder_keeps_class_names() -> None:
    dec = LabelDecoder(LabelTopic("o"), class_names=True)
    values = [
        {"event_id": "a", "label": "buy", "timestamp": 1.0},
        {"event_id": "b", "label": 3, "timestamp": 1.0},
        {"event_id": "c", "label": True, "timestamp": 1.0},
        {"event_id": "d", "label": 1.0, "timestamp": 1.0},
        {"event_id": "e", "label": 2.5, "timestamp": 1.0},
        {"event_id": "f", "label": "", "timestamp": 1.0},
    ]
    recs = [
        SimpleNamespace(
            value=orjson.dumps(v),
            timestamp=None,
            topic="o",
            partition=0,
            offset=i,
            key=None,
            headers=[],
        )
        for i, v in enumerate(values)
    ]
    batch = dec.decode(recs)
    assert batch.event_ids == ["a", "b", "c", "d"]
    assert batch.labels == ["buy", 3, True, 1.0]
    assert [(r.reason, r.detail) for r in batch.rejected] == [
        ("bad_label", "label: expected a class name, 0, 1, true or false, got 2.5"),
        ("bad_label", 'label: expected a class name, 0, 1, true or false, got ""'),
    ]
