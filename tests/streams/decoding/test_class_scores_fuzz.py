"""Property tests of the class table: whatever the vectors, labels and predictions of a batch,
encoding never raises, every kept row is a probability vector, and every vector is either kept
or counted."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tilewatch.aggregators.cells.classes import ClassVocabulary
from tilewatch.streams.decoding.class_scores import ClassScoreEncoder, encode_batch

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NAMES = st.sampled_from(["a", "b", "c", "d", "e", "__x", ""]) | st.text(max_size=4)
JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-2, max_value=2)
    | st.text(max_size=3)
)
PROB = st.floats(min_value=0.0, max_value=1.0) | JSON_SCALAR
VECTOR = (
    st.none()
    | st.lists(PROB, max_size=5)
    | st.dictionaries(NAMES, PROB, max_size=6)
    | JSON_SCALAR
    | st.lists(st.lists(PROB, max_size=2), max_size=2)
)
EVENTS = st.lists(
    st.tuples(st.sampled_from(["m", "n"]), VECTOR, JSON_SCALAR | st.dictionaries(NAMES, PROB)),
    max_size=30,
)


def check(enc: ClassScoreEncoder, events: list[tuple[str, Any, Any]]) -> None:
    models = [m for m, _v, _l in events]
    vectors = [v for _m, v, _l in events]
    labels = [lab for _m, _v, lab in events]
    out = encode_batch(enc, models, vectors, labels, labels)
    s = out.scores
    n, width = len(events), enc.vocabulary.width
    assert s.probs.shape == (n, width)
    sums = s.probs.sum(axis=1)
    assert np.allclose(sums[s.valid], 1.0) and (sums[~s.valid] == 0).all()
    assert ((s.probs >= 0) & (s.probs <= 1 + 1e-12)).all()
    assert np.isfinite(s.top[s.valid]).all() and np.isnan(s.top[~s.valid]).all()
    assert (s.margin[s.valid] >= 0).all() and (s.margin[s.valid] <= s.top[s.valid]).all()
    present = np.array([v is not None for v in vectors], dtype=bool)
    malformed = sum(c for (_m, reason), c in s.malformed.items())
    assert malformed == int((present & ~s.valid).sum())  # every vector: kept or counted
    assert ((s.predicted >= -1) & (s.predicted < width)).all()
    assert (s.predicted[~present] == -1).all()
    for name, bins in out.bins.items():
        assert len(bins) == n and bins.max() < {
            "mc_confusion": width * width,
            "mc_class": width,
        }.get(name, 11), name
    for name, w in out.weights.items():
        assert (w >= 0).all(), name


@FUZZ
@given(EVENTS)
def test_configured_classes(events: list[tuple[str, Any, Any]]) -> None:
    check(ClassScoreEncoder(ClassVocabulary(3, ("a", "b", "c"))), events)


@FUZZ
@given(EVENTS)
def test_learned_classes(events: list[tuple[str, Any, Any]]) -> None:
    enc = ClassScoreEncoder(ClassVocabulary(2))
    check(enc, events)
    assert all(len(enc.vocabulary.names(m)) <= 2 for m in ("m", "n"))


@FUZZ
@given(st.lists(st.tuples(VECTOR, st.none() | JSON_SCALAR), max_size=20))
def test_decoder_with_scores_never_raises(rows: list[tuple[Any, Any]]) -> None:
    """Events without a score take their top probability; whatever the vector, every record
    becomes an event with a score in range or a rejection with a known reason."""
    from types import SimpleNamespace

    import orjson

    from tilewatch.streams.decoding.predictions import EventDecoder
    from tilewatch.streams.decoding.record import REASONS
    from tilewatch.streams.settings import EventFields

    dec = EventDecoder(EventFields(scores="probs"), columns=["prediction"])
    records = []
    for i, (vector, score) in enumerate(rows):
        obj: dict[str, Any] = {"model": "m", "timestamp": 1767225600.0, "probs": vector}
        if score is not None:
            obj["score"] = score
        records.append(
            SimpleNamespace(
                value=orjson.dumps(obj),
                timestamp=None,
                topic="t",
                partition=0,
                offset=i,
                key=None,
                headers=[],
            )
        )
    batch = dec.decode(records)
    assert len(batch) + len(batch.rejected) == len(rows)
    assert all(0.0 <= s <= 1.0 for s in batch.scores)
    assert len(batch.class_scores) == len(batch.predictions) == len(batch)
    assert {r.reason for r in batch.rejected} <= set(REASONS) - {"internal"}
