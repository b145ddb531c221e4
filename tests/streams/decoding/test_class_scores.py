"""Multi-class events: the score from the class probabilities, and the per-batch table."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tilewatch.aggregators.cells.classes import OTHER_CLASS, ClassVocabulary
from tilewatch.streams.decoding.class_scores import ClassScoreEncoder
from tilewatch.streams.decoding.predictions import EventDecoder
from tilewatch.streams.settings import EventFields

T = 1767225600.0


def rec(obj: Any, offset: int = 0) -> Any:
    value = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return SimpleNamespace(
        value=value, timestamp=None, topic="t", partition=0, offset=offset, key=None, headers=[]
    )


def event(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "segment": "a", "region": "r", "timestamp": T, **extra}


def test_score_is_the_top_probability_when_absent() -> None:
    dec = EventDecoder(EventFields(scores="probs"))
    batch = dec.decode(
        [
            rec(event(probs={"a": 0.1, "b": 0.7, "c": 0.2})),  # fast path
            rec(event(probs=[0, 1, 0])),  # integers: the full checker
            rec(event(probs={"a": 0.3, "b": 0.7}, score=0.25)),  # its own score wins
            rec(event(probs={"a": "x"})),  # no score, no usable vector: rejected
            rec(event()),  # neither score nor vector: rejected
            rec(event(probs={"a": 0.3, "b": 0.7}, timestamp=int(T * 1000))),  # slow path
            rec(event(probs=[0.5, 1.5])),  # a top probability out of range: bad_score
        ]
    )
    assert batch.scores == [0.7, 1.0, 0.25, 0.7]
    assert batch.class_scores == [
        {"a": 0.1, "b": 0.7, "c": 0.2},
        [0, 1, 0],
        {"a": 0.3, "b": 0.7},
        {"a": 0.3, "b": 0.7},
    ]
    assert [(r.record.offset, r.reason) for r in batch.rejected] == [
        (0, "bad_scores"),
        (0, "bad_scores"),
        (0, "bad_score"),
    ]
    assert "probs: the score is absent" in batch.rejected[0].detail


def test_nested_scores_path_and_binary_events_unchanged() -> None:
    dec = EventDecoder(EventFields(scores="out.probs"))
    batch = dec.decode([rec(event(out={"probs": {"x": 0.4, "y": 0.6}})), rec(event(score=0.3))])
    assert batch.scores == [0.6, 0.3]
    assert batch.class_scores == [{"x": 0.4, "y": 0.6}, None]
    plain = EventDecoder(EventFields()).decode([rec(event(probs=[0.5, 0.5]))])
    assert [r.reason for r in plain.rejected] == ["missing_field"]


def reference_table(
    vectors: list[dict[str, float]], classes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Probabilities, top, margin and argmax name, one event at a time."""
    probs = np.array([[v.get(c, 0.0) for c in classes] for v in vectors])
    probs = probs / probs.sum(axis=1, keepdims=True)
    ordered = np.sort(probs, axis=1)
    names = [max(v, key=lambda c: (v[c], -classes.index(c))) for v in vectors]
    return probs, ordered[:, -1], ordered[:, -1] - ordered[:, -2], names


@pytest.mark.parametrize("k", [3, 10, 50])
def test_table_matches_a_per_event_reference(k: int) -> None:
    rng = np.random.default_rng(k)
    classes = [f"c{i}" for i in range(k)]
    raw = rng.dirichlet(np.full(k, 0.5), size=200)
    vectors = [dict(zip(classes, map(float, row), strict=True)) for row in raw]
    enc = ClassScoreEncoder(ClassVocabulary(max_classes=k))
    out = enc.encode(["m"] * 200, vectors)
    probs, top, margin, names = reference_table(vectors, classes)
    assert enc.vocabulary.names("m") == classes  # first seen, in order
    np.testing.assert_allclose(out.probs[:, :k], probs, rtol=1e-12)
    assert (out.probs[:, k] == 0).all()
    np.testing.assert_allclose(out.top, top, rtol=1e-12)
    np.testing.assert_allclose(out.margin, margin, rtol=1e-12, atol=1e-15)
    assert out.predictions == names
    assert out.predicted.tolist() == [classes.index(c) for c in names]
    assert out.valid.all() and out.malformed == {} and out.pooled == {}
    # With the classes configured, lists and objects take the dense path: the same table.
    configured = ClassScoreEncoder(ClassVocabulary(k, classes))
    for form in ([list(map(float, row)) for row in raw], vectors):
        dense = configured.encode(["m"] * 200, [*form, None])
        np.testing.assert_allclose(dense.probs[:200], out.probs, rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(dense.top[:200], out.top, rtol=1e-12)
        np.testing.assert_allclose(dense.margin[:200], out.margin, rtol=1e-12, atol=1e-15)
        assert dense.predictions == [*names, None]
        assert dense.predicted.tolist() == [*out.predicted.tolist(), -1]
        assert dense.valid.tolist() == [True] * 200 + [False]


def test_malformed_vectors_are_counted_and_dropped() -> None:
    enc = ClassScoreEncoder(ClassVocabulary(3, ("a", "b", "c")))
    vectors = [
        "x",  # wrong_type
        {},  # empty
        [],  # empty
        [0.5, 0.5],  # length
        {"a": True, "b": 0.0},  # not_number (a boolean)
        {"a": None, "b": 1.0},  # not_number
        [1.2, -0.2, 0.0],  # out_of_range
        [0.5, 0.3, 0.1],  # bad_sum (0.9)
        [0.504, 0.3, 0.2],  # within the tolerance: renormalised
        None,  # absent: not counted
    ]
    models = ["m"] * 9 + ["n"]
    out = enc.encode(models, vectors, [None, None, None, None, "b", None, None, 7, None, None])
    assert out.valid.tolist() == [False] * 8 + [True, False]
    assert out.malformed == {
        ("m", "wrong_type"): 1,
        ("m", "empty"): 2,
        ("m", "length"): 1,
        ("m", "not_number"): 2,
        ("m", "out_of_range"): 1,
        ("m", "bad_sum"): 1,
    }
    assert out.probs[8].sum() == pytest.approx(1.0)
    assert np.isnan(out.top[:8]).all() and np.isnan(out.margin[9])
    # Given predictions are kept (the 7 is class "7": not configured, so pooled).
    assert out.predictions[4] == "b" and out.predictions[7] == 7
    assert out.predicted.tolist() == [-1, -1, -1, -1, 1, -1, -1, 3, 0, -1]
    assert out.pooled == {"m": 1}


def test_classes_past_the_bound_are_pooled_and_counted() -> None:
    vocab = ClassVocabulary(max_classes=3)
    enc = ClassScoreEncoder(vocab)
    vectors = [
        {"a": 0.5, "b": 0.3, "c": 0.2},
        {"a": 0.1, "d": 0.6, "e": 0.3},  # d and e pooled: top is "d" (0.6) all the same
        {"b": 1.0},
    ]
    out = enc.encode(["m", "m", "m"], vectors)
    assert vocab.labels("m") == ["a", "b", "c", OTHER_CLASS]
    np.testing.assert_allclose(out.probs[1], [0.1, 0.0, 0.0, 0.9])
    assert out.predictions == ["a", "d", "b"] and out.predicted.tolist() == [0, 3, 1]
    np.testing.assert_allclose(out.top, [0.5, 0.6, 1.0])
    assert out.pooled == {"m": 1}


def test_models_have_their_own_columns() -> None:
    vocab = ClassVocabulary(max_classes=4)
    out = ClassScoreEncoder(vocab).encode(
        ["m", "n", "m"], [{"x": 0.9, "y": 0.1}, {"y": 0.2, "z": 0.8}, {"y": 0.7, "x": 0.3}]
    )
    assert vocab.to_dict() == {"m": ["x", "y"], "n": ["y", "z"]}
    assert out.probs[:, :2].tolist() == [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]
    assert out.predicted.tolist() == [0, 1, 1]


def test_vocabulary_checkpoint_names_classes() -> None:
    vocab = ClassVocabulary(max_classes=2)
    assert vocab.column("m", "b") == 0
    assert vocab.load({"m": ["a", "b"], "n": ["q"]}) == {"m": [1, 0], "n": [0]}
    assert vocab.load({"m": ["z"]}) == {"m": [2]}  # no room left: pooled
    with pytest.raises(Exception, match="repeated"):
        vocab.load({"k": ["a", "a"]})
    assert "k" not in vocab.models()


def test_events_without_a_vector_are_not_multiclass_events() -> None:
    vocab = ClassVocabulary(max_classes=4)
    out = ClassScoreEncoder(vocab).encode(["binary", "m"], [None, {"x": 1.0}], [1, None])
    assert out.predicted.tolist() == [-1, 0] and out.predictions == [1, "x"]
    assert vocab.models() == ["m"]  # the binary model's prediction named no class


def test_dense_batches_check_every_vector_too() -> None:
    """A batch of well-shaped lists takes the dense path; its checks are the same."""
    enc = ClassScoreEncoder(ClassVocabulary(3, ("a", "b", "c")))
    vectors = [[1.2, -0.2, 0.0], [0.5, 0.3, 0.1], [0.2, 0.2, 0.6], None]
    dense = enc.encode(["m"] * 4, vectors, [None, None, "a", None])
    general = enc.encode(["m"] * 5, [*vectors, "x"], [None, None, "a", None, None])
    for out in (dense, general):
        assert out.valid.tolist()[:4] == [False, False, True, False]
        assert out.predicted.tolist()[:4] == [-1, -1, 0, -1]
        assert out.predictions[:4] == [None, None, "a", None]
        np.testing.assert_allclose(out.top[2], 0.6) and np.testing.assert_allclose(
            out.margin[2], 0.4
        )
    assert dense.malformed == {("m", "out_of_range"): 1, ("m", "bad_sum"): 1}
    assert general.malformed == {**dense.malformed, ("m", "wrong_type"): 1}


def test_batches_leave_out_histograms_with_nothing_to_count() -> None:
    from tilewatch.streams.decoding.class_scores import encode_batch

    enc = ClassScoreEncoder(ClassVocabulary(2, ("a", "b")))
    unlabeled = encode_batch(enc, ["m", "m"], [[0.9, 0.1], [0.4, 0.6]], None, [None, None])
    assert sorted(unlabeled.bins) == ["mc_class", "mc_margin", "mc_top", "mc_top_sum"]
    assert sorted(unlabeled.weights) == ["mc_top_sum"]
    binary = encode_batch(enc, ["b"], [None], [1], [0])
    assert binary.bins == {} and binary.binary_labels == [0]


def test_the_prediction_column_without_capture() -> None:
    dec = EventDecoder(EventFields(scores="probs"), columns=["prediction"])
    batch = dec.decode(
        [rec(event(probs=[0.2, 0.8], prediction="b")), rec(event(probs={"a": 1.0}, score=1))]
    )
    assert batch.predictions == ["b", None] and batch.features == []
    captured = EventDecoder(EventFields(scores="probs"), capture=True, columns=["prediction"])
    assert captured.columns == ("class_scores",)
    assert captured.decode([rec(event(probs=[1.0], prediction="x"))]).predictions == ["x"]


def test_labels_that_name_no_class_are_counted() -> None:
    from tilewatch.streams.decoding.class_scores import encode_batch

    enc = ClassScoreEncoder(ClassVocabulary(3, ("a", "b", "c")))
    vectors = [[0.8, 0.1, 0.1]] * 4
    out = encode_batch(enc, ["m"] * 4, vectors, None, ["b", {"x": 1}, "", 2.5])
    assert out.bins["mc_confusion"].tolist() == [4, -1, -1, -1]  # label b (1) x predicted a (0)
    assert out.counts == {"bad_label": 3}


def test_a_batch_with_a_scalar_vector_takes_the_general_path() -> None:
    """Found by the property test: a scalar among well-shaped lists crashed the dense path."""
    enc = ClassScoreEncoder(ClassVocabulary(3, ("a", "b", "c")))
    out = enc.encode(["m"] * 3, [False, [0.5, 0.5, 0.0], 3], None)
    assert out.valid.tolist() == [False, True, False]
    assert out.malformed == {("m", "wrong_type"): 2}
