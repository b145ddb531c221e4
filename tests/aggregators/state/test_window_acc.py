"""WindowAcc histograms: counts in int32, summed weights (multi-class sums) in int64."""

from __future__ import annotations

import numpy as np
import pytest

from tilewatch.aggregators.state.window_acc import HIST_DTYPE, SUMMED_HISTOGRAMS, WindowAcc
from tilewatch.aggregators.stats.moments import group_moments, merge_moments
from tilewatch.aggregators.stats.multiclass_window import SUM_SCALE, window_weights


def test_summed_histograms_are_exactly_the_weighted_ones() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=5)
    labels = np.array([0, 1, 2, 3, 0])
    weighted = window_weights(p, labels)
    assert set(weighted) == SUMMED_HISTOGRAMS


def test_weighted_sums_do_not_overflow_and_counts_stay_small() -> None:
    acc = WindowAcc()
    n = 50_000
    cells = np.zeros(n, dtype=np.int64)
    bins = np.zeros(n, dtype=np.int64)
    weights = np.full(n, 20 * SUM_SCALE, dtype=np.int64)  # a log loss of 20 per event
    acc.add_hist("mc_logloss", cells, bins, 1, 1, weights)
    acc.add_hist("score", cells, bins, 1, 10)
    assert acc.hist["mc_logloss"].dtype == np.int64
    assert int(acc.hist["mc_logloss"][0, 0]) == n * 20 * SUM_SCALE
    assert acc.hist["score"].dtype == HIST_DTYPE
    assert int(acc.hist["score"][0, 0]) == n
    # restoring (add_counts) keeps the wide table wide
    restored = WindowAcc()
    restored.add_counts("mc_logloss", acc.hist["mc_logloss"].astype(np.int64))
    assert int(restored.hist["mc_logloss"][0, 0]) == n * 20 * SUM_SCALE


def test_a_histogram_written_for_fewer_cells_than_another_reads_back_its_own_rows() -> None:
    """The rows are shared by the window's histograms; a histogram of few cells (a multi-class
    model's beside every cell's score) is read, copied and densified without the other's rows."""
    acc = WindowAcc()
    acc.add_hist("mc_class", np.array([1, 1, 3]), np.array([0, 2, 1]), n_cells=4, n_bins=3)
    cells = np.arange(40)
    acc.add_hist("score", cells, cells % 5, n_cells=40, n_bins=5)
    got_cells, counts = acc.hist_copy("mc_class", 40, 3)
    assert dict(zip(got_cells.tolist(), counts.tolist(), strict=True)) == {
        1: [1, 0, 1],
        3: [0, 1, 0],
    }
    dense = acc.hist_sized("mc_class", 40, 3)
    assert dense.sum() == 3 and dense[1].tolist() == [1, 0, 1] and dense[3].tolist() == [0, 1, 0]
    score = acc.hist_sized("score", 40, 5)
    assert (score.sum(axis=1) == 1).all() and (score.argmax(axis=1) == cells % 5).all()


@pytest.mark.parametrize("events", [3, 40, 5000])
def test_several_histograms_at_once_count_what_add_at_counts(events: int) -> None:
    """``add_hists`` counts densely (small tables against the batch) or by sorting (large
    ones); over batches of every size, with uncounted bins and weights, the tables equal
    ``np.add.at`` counts, and a batch after the first adds to what is there."""
    rng = np.random.default_rng(events)
    n_cells = 300
    widths = {"mc_class": 7, "mc_confusion": 49, "mc_brier": 1}
    expected = {name: np.zeros((n_cells, w), dtype=np.int64) for name, w in widths.items()}
    acc = WindowAcc()
    for _ in range(3):
        cells = rng.integers(0, n_cells, events)
        hists = []
        for name, width in widths.items():
            bins = rng.integers(-1, width, events)  # -1: not counted
            weights = rng.integers(0, 10**9, events) if name in SUMMED_HISTOGRAMS else None
            ok = bins >= 0
            np.add.at(expected[name], (cells[ok], bins[ok]), 1 if weights is None else weights[ok])
            hists.append((name, bins, width, weights))
        acc.add_hists(cells, hists, n_cells)
    for name, width in widths.items():
        assert acc.hist_sized(name, n_cells, width).tolist() == expected[name].tolist(), name


def test_moments_of_a_few_cells_among_many_equal_a_merge_per_sorted_cell() -> None:
    """A batch touching few cells of a large table merges only the touched rows, grouped
    without a sort; the moments equal, bit for bit, a merge of each batch's cells grouped by
    ``np.unique`` and written out here, and cells never touched stay zero."""
    rng = np.random.default_rng(11)
    n = 50_000
    acc = WindowAcc()
    count, mean, m2 = np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n)
    for size in (600, 1, 2000, 600):
        cells = rng.integers(0, n // 10, size) * 10  # repeats within a batch
        values = rng.normal(0.4, 0.2, size)
        acc.add(cells, values, n)  # n > 2 x the batch: the touched rows
        touched, local = np.unique(cells, return_inverse=True)
        c, m, s = group_moments(local, values, len(touched))
        count[touched], mean[touched], m2[touched] = merge_moments(
            count[touched], mean[touched], m2[touched], c, m, s
        )
    got = acc.sized(n)
    assert got[0].tolist() == count.tolist()
    assert got[1].tolist() == mean.tolist() and got[2].tolist() == m2.tolist()
    assert count.sum() == 3201 and (count[1::10] == 0).all()


def test_rows_expected_ahead_change_no_count() -> None:
    """A window told to expect the rows its predecessor had allocates them at once; its
    tables read as those of a window that grew a quarter at a time."""
    rng = np.random.default_rng(12)
    grown, ahead = WindowAcc(), WindowAcc(expect_rows=700)
    for _ in range(5):
        cells = rng.integers(0, 1000, 300)
        bins = rng.integers(-1, 62, 300)
        for acc in (grown, ahead):
            acc.add_hists(cells, [("latency", bins, 62, None)], 1000)
    assert ahead.hist["latency"].shape[0] >= 700
    assert ahead.hist_row_count == grown.hist_row_count
    assert ahead.hist_cells().tolist() == grown.hist_cells().tolist()
    want = grown.hist_sized("latency", 1000, 62)
    assert ahead.hist_sized("latency", 1000, 62).tolist() == want.tolist()
    assert want.sum() > 1000


def test_compact_narrows_a_closed_window_and_a_later_write_widens_it_back() -> None:
    """A closed window's tables are trimmed to the rows in use and stored as uint8 while every
    count is below 256 (a quarter of int32), counts unchanged; a write widens them back."""
    rng = np.random.default_rng(3)
    n_cells, n_bins = 10_000, 62
    cells = rng.integers(0, n_cells, 20_000)
    bins = rng.integers(0, n_bins, 20_000)
    acc = WindowAcc()
    acc.add(cells, rng.random(20_000), n_cells)
    acc.add_hist("latency", cells, bins, n_cells, n_bins)
    acc.add_hist("score", np.zeros(300, dtype=np.int64), np.zeros(300, dtype=np.int64), n_cells, 5)
    before = {name: acc.hist_sized(name, n_cells, b) for name, b in (("latency", 62), ("score", 5))}
    wide = acc.nbytes
    acc.compact()
    assert acc.hist["latency"].dtype == np.uint8
    assert acc.hist["score"].dtype == np.uint8  # its one row with a count of 300 kept apart
    rows = acc.hist_row_count
    assert acc.hist["latency"].shape == (rows, n_bins)
    assert acc.hist["latency"].nbytes == rows * n_bins  # one byte a bin, no spare rows
    assert acc.nbytes < wide / 2
    for name, b in (("latency", 62), ("score", 5)):
        assert (acc.hist_sized(name, n_cells, b) == before[name]).all()
    # a label joined later adds to the closed window: the table is int32 again, counts exact
    acc.add_hist("latency", np.array([7, 7]), np.array([3, 3]), n_cells, n_bins)
    assert acc.hist["latency"].dtype == HIST_DTYPE
    expected = before["latency"]
    expected[7, 3] += 2
    assert (acc.hist_sized("latency", n_cells, n_bins) == expected).all()


def test_compact_keeps_a_few_large_rows_apart_and_the_rest_in_one_byte() -> None:
    """Roll-up cells count thousands of events a window: their few rows are kept apart, so
    the other rows stay uint8 (not uint16 for all); every reader sees the counts unchanged,
    and a later write joins them back into one int32 table."""
    rng = np.random.default_rng(5)
    n_cells, n_bins = 5_000, 62
    cells = np.concatenate([rng.integers(0, n_cells, 8_000), np.full(3_000, 17)])
    bins = np.concatenate([rng.integers(0, n_bins, 8_000), rng.integers(10, 14, 3_000)])
    acc = WindowAcc()
    acc.add(cells, rng.random(len(cells)), n_cells)
    acc.add_hist("latency", cells, bins, n_cells, n_bins)
    before = acc.hist_sized("latency", n_cells, n_bins)
    assert before[17].max() >= 256  # the "roll-up" row
    wide = acc.nbytes
    acc.compact()
    assert acc.hist["latency"].dtype == np.uint8
    assert acc.hist["latency"].nbytes == acc.hist_row_count * n_bins  # one byte a bin
    assert acc.nbytes < wide / 2
    assert (acc.hist_sized("latency", n_cells, n_bins) == before).all()
    hcells, h = acc.hist_of("latency")
    assert h.dtype == np.uint16 and (before[hcells] == h).all()
    c, copied = acc.hist_copy("latency", n_cells, n_bins)
    assert (before[c] == copied).all()
    acc.compact()  # compacting again changes nothing
    assert (acc.hist_sized("latency", n_cells, n_bins) == before).all()
    acc.add_hist("latency", np.array([17, 3]), np.array([0, 1]), n_cells, n_bins)
    assert acc.hist["latency"].dtype == HIST_DTYPE
    before[17, 0] += 1
    before[3, 1] += 1
    assert (acc.hist_sized("latency", n_cells, n_bins) == before).all()
