"""render_heatmap: layout, ordering, formatting, colours and the degenerate cases."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tilewatch.aggregators.cells.settings import ALL, CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.terminal import STATISTICS, render_heatmap

LABEL_WIDTH = 16
TILE_WIDTH = 12


@pytest.fixture
def snap() -> Snapshot:
    """Window 0 ([0, 10)) of model m closed by an event at 12; gamma/us only in window 1.

    window 0: beta/us 0.2; alpha/eu 0.4, 0.6; beta/eu 0.9. window 1: gamma/us 0.5.
    """
    state = ReplicaState(
        CellSettings(
            dimensions=("segment", "region"), window_seconds=10, grace_seconds=0, rolling_events=5
        )
    )
    state.apply(
        ("t", 0),
        [
            ("m", "beta", "us"),
            ("m", "alpha", "eu"),
            ("m", "alpha", "eu"),
            ("m", "beta", "eu"),
            ("m", "gamma", "us"),
        ],
        np.array([1.0, 2.0, 3.0, 4.0, 12.0]),
        np.array([0.2, 0.4, 0.6, 0.9, 0.5]),
        next_offset=5,
    )
    state.refresh()
    return state.snapshot()


def parse(text: str) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """Column names, and per row the tile texts and the count texts ('' for no tile)."""
    lines = text.splitlines()
    columns = lines[1].split()
    values: dict[str, list[str]] = {}
    counts: dict[str, list[str]] = {}
    body = [line for line in lines[2:] if not line.startswith(("colour scale", "health:"))]
    for top, bottom in zip(body[::2], body[1::2], strict=True):
        row = top[:LABEL_WIDTH].strip()

        def tiles(line: str) -> list[str]:
            rest = line[LABEL_WIDTH:]
            return [
                rest[i : i + TILE_WIDTH].strip()
                for i in range(0, len(columns) * TILE_WIDTH, TILE_WIDTH)
            ]

        values[row] = tiles(top)
        counts[row] = tiles(bottom)
    return columns, values, counts


def test_layout_order_values_and_counts(snap: Snapshot) -> None:
    text = render_heatmap(snap, "window_score_mean", color=False)
    lines = text.splitlines()
    assert lines[0] == "m: window_score_mean   (last closed window ends 1970-01-01 00:00:10 UTC)"
    columns, values, counts = parse(text)
    assert columns == ["eu", "us", ALL]
    assert list(values) == ["alpha", "beta", "gamma", ALL]
    assert values["alpha"] == ["0.500", "", "0.500"]
    assert counts["alpha"] == ["n=2", "", "n=2"]
    assert values["beta"] == ["0.900", "0.200", "0.550"]
    assert counts["beta"] == ["n=1", "n=1", "n=2"]
    # gamma has events, but none in the last closed window: NaN shows as '-'.
    assert values["gamma"] == ["", "-", "-"]
    assert counts["gamma"] == ["", "n=0", "n=0"]
    assert values[ALL] == ["0.633", "0.200", "0.525"]
    assert counts[ALL] == ["n=3", "n=1", "n=4"]
    assert lines[-1] == "colour scale: 0 (dark) .. 1 (yellow); '-' = no value (no events)"


def test_count_statistics_are_integers_without_scale(snap: Snapshot) -> None:
    text = render_heatmap(snap, "events_total", color=False)
    _columns, values, counts = parse(text)
    assert values[ALL] == ["3", "2", "5"]
    assert values["gamma"] == ["", "1", "1"]
    assert counts == {r: [f"n={v}" if v else "" for v in vs] for r, vs in values.items()}
    assert "colour scale" not in text


def test_rolling_statistic(snap: Snapshot) -> None:
    _columns, values, counts = parse(render_heatmap(snap, "rolling_score_mean", color=False))
    assert values["gamma"] == ["", "0.500", "0.500"]
    assert counts[ALL] == ["n=3", "n=2", "n=5"]
    variance = parse(render_heatmap(snap, "rolling_score_variance", color=False))[1]
    assert variance["beta"][1] == "-"  # one event: no sample variance
    assert variance["alpha"][0] == f"{np.var([0.4, 0.6], ddof=1):.3f}"


def test_unknown_statistic_lists_the_choices(snap: Snapshot) -> None:
    with pytest.raises(ValueError, match="unknown statistic 'p99'") as info:
        render_heatmap(snap, "p99")
    for name in STATISTICS:
        assert name in str(info.value)


def test_colour_codes_only_when_asked(snap: Snapshot) -> None:
    plain = render_heatmap(snap, color=False)
    assert "\x1b" not in plain
    coloured = render_heatmap(snap, color=True)
    assert "\x1b[48;5;" in coloured and "\x1b[0m" in coloured
    # NaN tiles are never coloured; stripping the codes gives the plain text back.
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_no_events_yet() -> None:
    empty = ReplicaState(CellSettings(dimensions=("segment", "region"))).snapshot()
    assert render_heatmap(empty) == "no events yet"


@pytest.mark.parametrize("dimensions", [(), ("segment",)])
def test_fewer_than_two_dimensions(dimensions: tuple[str, ...]) -> None:
    state = ReplicaState(
        CellSettings(dimensions=dimensions, window_seconds=10, grace_seconds=0, rolling_events=5)
    )
    keys = [("m", *(["a"] * len(dimensions))), ("m", *(["b"] * len(dimensions)))]
    state.apply(
        ("t", 0),
        [keys[0], keys[1], keys[0]],
        np.array([1.0, 2.0, 12.0]),
        np.array([0.25, 0.75, 0.5]),
        next_offset=3,
    )
    text = render_heatmap(state.snapshot(), color=False)
    columns, values, counts = parse(text)
    assert columns == [ALL]
    expected_rows = ["a", "b", ALL] if dimensions else [ALL]
    assert list(values) == expected_rows
    assert values[ALL] == ["0.500"]
    assert counts[ALL] == ["n=2"]


def test_choose_the_model(snap: Snapshot) -> None:
    state = ReplicaState(
        CellSettings(dimensions=("segment", "region"), window_seconds=10, grace_seconds=0)
    )
    state.apply(
        ("t", 0),
        [("first", "a", "x"), ("second", "b", "y")],
        np.array([1.0, 2.0]),
        np.array([0.5, 0.5]),
        next_offset=2,
    )
    snapshot = state.snapshot()
    assert render_heatmap(snapshot, color=False).startswith("first: window_score_mean")
    text = render_heatmap(snapshot, model="second", color=False)
    # No window of "second" closed yet: no grid of n=0 tiles, a sentence.
    assert (
        text
        == "second: window_score_mean   waiting for the first window to close (events so far: 1)"
    )
    rolling = render_heatmap(snapshot, "rolling_score_mean", model="second", color=False)
    assert list(parse(rolling)[1]) == ["b", ALL]  # rolling values need no closed window


def test_column_headers_line_up_with_values(snap: Snapshot) -> None:
    lines = render_heatmap(snap, color=False).splitlines()
    header, first_row = lines[1], lines[2]
    assert header.rstrip().endswith(ALL)
    assert first_row.rstrip().endswith("0.500")
    assert len(header.rstrip()) == len(first_row.rstrip())


def test_tiles_below_min_samples_show_a_dash_and_the_legend_says_why(snap: Snapshot) -> None:
    text = render_heatmap(snap, "window_score_mean", color=False, min_samples={"events": 2})
    _columns, values, counts = parse(text)
    assert values["alpha"] == ["0.500", "", "0.500"]  # n=2: shown
    assert values["beta"] == ["-", "-", "0.550"]  # n=1, n=1, n=2
    assert counts["beta"] == ["n=1", "n=1", "n=2"]
    assert values[ALL] == ["0.633", "-", "0.525"]
    assert text.splitlines()[-1] == (
        "colour scale: 0 (dark) .. 1 (yellow); '-' = fewer than 2 events (min_samples)"
    )
    # Counts are never hidden; rolling values have no window rule.
    assert parse(render_heatmap(snap, "window_events", color=False, min_samples={"events": 2}))[1][
        "beta"
    ] == [
        "1",
        "1",
        "2",
    ]
    rolling = render_heatmap(snap, "rolling_score_mean", color=False, min_samples={"events": 2})
    assert "-" not in parse(rolling)[1]["beta"]


def test_flagged_tiles_carry_a_symbol(snap: Snapshot) -> None:
    status = np.full(len(snap.keys), -1)
    status[snap.cell(("m", "beta", "eu"))] = 2
    status[snap.cell(("m", "alpha", "eu"))] = 1
    status[snap.cell(("m", "beta", "us"))] = 0
    for color in (False, True):
        text = render_heatmap(snap, color=color, status=status)
        plain = re.sub(r"\x1b\[[\d;]*m", "", text)
        _columns, values, _counts = parse(plain)
        assert values["beta"] == ["0.900 !!", "0.200", "0.550"]
        assert values["alpha"] == ["0.500 !", "", "0.500"]
        assert plain.splitlines()[-1] == "health: '!' amber, '!!' red"
    quiet = render_heatmap(snap, color=False, status=np.zeros(len(snap.keys)))
    assert "!" not in quiet.replace("health: '!' amber, '!!' red (no tile flagged)", "")
