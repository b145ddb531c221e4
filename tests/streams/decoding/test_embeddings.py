"""Embedding vectors of a batch: checks, reasons, and the fast path against the row path."""

from __future__ import annotations

import numpy as np
import pytest

from tilewatch.streams.decoding.embeddings import BAD_EMBEDDING_REASONS, EmbeddingEncoder


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"a": 1}, "wrong_type"),
        ("1,2,3", "wrong_type"),
        ([1.0, 2.0], "dimension"),
        ([], "dimension"),
        ([1.0, "2", 3.0], "not_number"),
        ([1.0, None, 3.0], "not_number"),
        ([1.0, [2.0], 3.0], "not_number"),
        ([1.0, 10**40, 3.0], "not_finite"),
    ],
)
def test_a_bad_vector_is_counted_by_reason_and_dropped(value: object, reason: str) -> None:
    enc = EmbeddingEncoder({"m": 3})
    out = enc.encode(["m", "m"], [[0.1, 0.2, 0.3], value])
    assert out.bad == {("m", reason): 1}
    assert reason in BAD_EMBEDDING_REASONS
    rows, x = out.by_model["m"]
    assert rows.tolist() == [0]
    np.testing.assert_allclose(x, [[0.1, 0.2, 0.3]], rtol=1e-6)


def test_the_common_batch_equals_the_row_by_row_matrix() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).tolist()
    good = EmbeddingEncoder({"m": 8}).encode(["m"] * 50, vectors)
    odd = EmbeddingEncoder({"m": 8}).encode(["m"] * 51, [*vectors, "x"])  # the row path
    np.testing.assert_array_equal(good.by_model["m"][1], odd.by_model["m"][1])
    assert good.by_model["m"][1].dtype == np.float32
    assert odd.bad == {("m", "wrong_type"): 1}


def test_a_model_without_a_reference_keeps_its_first_dimension() -> None:
    enc = EmbeddingEncoder()
    first = enc.encode(["n", "n"], [["x", "y"], [1, 2]])
    assert enc.dims == {"n": 2} and first.bad == {("n", "not_number"): 1}
    later = enc.encode(["n"], [[1.0, 2.0, 3.0]])
    assert later.bad == {("n", "dimension"): 1} and "n" not in later.by_model
