"""The basic modules of aggregators (arrays, codec) and the window retention rule."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import pytest

from tilewatch.aggregators.arrays import group, grow, resized
from tilewatch.aggregators.cells.windows import models_in, retained, window_numbers
from tilewatch.aggregators.codec import Check, is_number, numbers
from tilewatch.aggregators.errors import StateError

# --- arrays -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "need", "expected"), [(0, 1, 16), (16, 17, 20), (400, 401, 500), (40, 100, 100)]
)
def test_grow_adds_a_quarter_and_keeps_values(start: int, need: int, expected: int) -> None:
    arr = np.arange(start, dtype=np.int64)
    out = grow(arr, need, fill=-1)
    assert len(out) == expected
    assert out[:start].tolist() == arr.tolist()
    assert (out[start:] == -1).all()


def test_grow_returns_the_array_itself_when_long_enough() -> None:
    arr = np.zeros(8)
    assert grow(arr, 8) is arr


def test_grow_along_another_axis_keeps_the_other_axes() -> None:
    arr = np.ones((2, 3, 4))
    out = grow(arr, 5, axis=1)
    assert out.shape == (2, 16, 4)
    assert out[:, :3].sum() == arr.sum() and out[:, 3:].sum() == 0


def test_resized_cuts_and_pads_every_axis() -> None:
    arr = np.arange(6).reshape(2, 3)
    assert resized(arr, (3, 2)).tolist() == [[0, 1], [3, 4], [0, 0]]
    assert resized(arr, (1, 4)).tolist() == [[0, 1, 2, 0]]
    out = resized(arr, (2, 3))
    assert out is not arr and out.tolist() == arr.tolist()


@pytest.mark.parametrize(
    "keys",
    [[], [5], [2, 2, 2], [9, 0, 9, 3, 0, 0, 7], list(range(50))[::-1], [4] * 3 + [1] * 5000],
)
def test_group_finds_what_unique_finds(keys: list[int]) -> None:
    arr = np.array(keys, dtype=np.int64)
    distinct, local = group(arr, 10_000)
    assert sorted(distinct.tolist()) == np.unique(arr).tolist()
    assert (distinct[local] == arr).all() and local.dtype.kind == "i"


def test_group_over_random_batches_of_a_large_table_and_a_second_thread() -> None:
    """The scratch array is never cleared: slots left by an earlier batch, a larger table
    asked for later, and another thread's own scratch do not change a result."""
    rng = np.random.default_rng(3)
    for n, size in [(100_000, 2000), (300, 2000), (250_000, 40), (10, 10)]:
        keys = rng.integers(0, n, size)
        distinct, local = group(keys, n)
        assert len(distinct) == len(np.unique(keys)) and (distinct[local] == keys).all()
    seen: list[bool] = []
    keys = rng.integers(0, 400_000, 3000)

    def other() -> None:
        d, loc = group(keys, 400_000)
        seen.append(len(d) == len(np.unique(keys)) and bool((d[loc] == keys).all()))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [True]


# --- codec ------------------------------------------------------------------------------------

CHECK = Check("thing state")


NUMBERS = [(0, True), (-3, True), (2.5, True), (2**63 - 1, True), (2**63, False)]
NOT_NUMBERS = [(True, False), (math.nan, False), (math.inf, False), ("1", False), (None, False)]


@pytest.mark.parametrize(("value", "ok"), [*NUMBERS, *NOT_NUMBERS])
def test_number_accepts_finite_ints_and_floats_only(value: Any, ok: bool) -> None:
    assert is_number(value) is ok
    assert (numbers([1.0, value]) is not None) is ok
    if ok:
        assert CHECK.number(value, "x") == float(value)
    else:
        with pytest.raises(StateError, match=r"^thing state is malformed: x: expected a finite"):
            CHECK.number(value, "x")


@pytest.mark.parametrize("value", [-1, True, 1.0, 2**63, "3", None])
def test_integer_refusals_name_the_place_and_the_value(value: Any) -> None:
    with pytest.raises(StateError) as info:
        CHECK.integer(value, "cells[2]")
    assert (
        str(info.value)
        == f"thing state is malformed: cells[2]: expected an integer >= 0, got {value!r}"
    )


def test_messages_cut_long_values_to_40_characters() -> None:
    with pytest.raises(StateError) as info:
        CHECK.text(["x" * 100], "name")
    assert str(info.value).endswith("got " + repr(["x" * 100])[:40])


@pytest.mark.parametrize("key", [["m"], ["m", ""], ["m", 3], "m|a", None])
def test_key_must_be_a_list_of_non_empty_strings(key: Any) -> None:
    with pytest.raises(StateError, match="expected a cell key of 2 non-empty strings"):
        CHECK.key(key, "k", 2)
    assert CHECK.key(["m", "a"], "k", 2) == ("m", "a")


def test_ints_and_floats_check_length_and_every_element() -> None:
    assert CHECK.ints([1, 2], "c", 2) == [1, 2]
    assert CHECK.floats([1, 2.5], "s", 2) == [1.0, 2.5]
    with pytest.raises(StateError, match="c: expected a list of 3 integers"):
        CHECK.ints([1, 2], "c", 3)
    with pytest.raises(StateError, match="c: expected integers >= 0, got -1"):
        CHECK.ints([1, -1], "c", 2)
    with pytest.raises(StateError, match="s: expected finite numbers, got 'x'"):
        CHECK.floats([1, "x"], "s")
    with pytest.raises(StateError, match="s: expected a list of finite numbers"):
        CHECK.floats("x", "s")


def test_within_prefixes_every_place_and_error_type_is_the_readers() -> None:
    nested = Check("partition state", within="labels")
    with pytest.raises(StateError, match=r"^partition state is malformed: labels\.late: "):
        nested.integer(-1, "late")
    with pytest.raises(StateError, match=r"^partition state is malformed: labels: missing key"):
        raise nested.fail("", "missing key 'late'")
    plain = Check(error=ValueError)
    with pytest.raises(ValueError, match=r"^score\.count: missing$"):
        plain.fields({}, "score").integer("count")
    with pytest.raises(ValueError, match=r"^models: expected an object, got \[\]$"):
        plain.fields([], "models")


# --- windows ----------------------------------------------------------------------------------


def test_window_numbers_floor_event_times() -> None:
    assert window_numbers(np.array([-0.5, 0.0, 9.99, 10.0]), 10.0).tolist() == [-1, 0, 0, 1]


def test_models_in_tolerates_arrays_of_different_lengths() -> None:
    ids = np.array([0, 0, 1, 2])
    assert models_in(np.array([False, True, True]), ids) == {0, 1}
    assert models_in(np.array([True, False, False, False, True]), ids) == {0}


@pytest.mark.parametrize("seed", range(5))
def test_models_in_is_the_set_of_the_selected_cells_model_ids(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 7, 1000)
    cells = rng.random(900) < rng.random()
    assert models_in(cells, ids) == set(ids[:900][cells].tolist())
    assert models_in(np.zeros(0, dtype=bool), ids) == set()


def test_retained_keeps_the_newest_and_each_models_latest() -> None:
    held = {w: {0} for w in range(10)} | {2: {0, 1}, 11: {2}}
    kept = retained(held, 3, held.__getitem__)
    # Newest 3 (11, 9, 8), model 0's latest is 9 (already kept), model 1's latest is 2.
    assert kept == {11, 9, 8, 2}
    assert retained({}, 3, held.__getitem__) == set()
    assert retained(held, 100, held.__getitem__) == set(held)
