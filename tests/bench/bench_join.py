"""Label join and error detector cost: time per prediction and label, bytes per entry.

Run from the repository root (a script, not a pytest test)::

    python tests/bench/bench_join.py [--predictions 1000000] [--labels 900000] [--batch 500]

1. **Registration and join, separately**: ``--predictions`` predictions registered in batches
   (no label yet, no expiry), then ``--labels`` labels (a random subset, shuffled) joined.
2. **Steady state**: the same volumes interleaved as a consumer sees them, with the default
   settings (TTL 2 h, orphan TTL 10 min): labels arrive about 5,000 events after their
   prediction, ``expire`` runs after every prediction batch (100 events per second of event
   time, so ids are forgotten and predictions expire while the run goes on).
3. **Memory**: tracemalloc bytes per pending prediction (ids created before tracing, so the
   figure excludes the id strings, which are reported apart) and ``LabelJoin.nbytes()``.
4. **Error detectors**: microseconds per ``ErrorDetectors.update`` event for each kind.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

import numpy as np

from tilewatch.aggregators.labels.error_detectors import ERROR_DETECTORS, ErrorDetectors
from tilewatch.aggregators.labels.join import JoinSettings, LabelJoin


def _separate(n: int, n_labels: int, batch: int) -> None:
    rng = np.random.default_rng(0)
    ids = [f"evt-{i:012d}" for i in range(n)]
    leaf, times, scores = rng.integers(0, 1000, n), np.arange(n) / 100, rng.random(n)
    lab = rng.permutation(n)[:n_labels]
    lids = [f"evt-{i:012d}" for i in lab.tolist()]  # new str objects, as a decoder makes them
    lv, lt = (rng.random(n_labels) < 0.3).astype(float), times[lab] + 5
    j = LabelJoin(JoinSettings(max_pending=2 * n))
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        e = s + batch
        j.add_predictions(ids[s:e], leaf[s:e], times[s:e], scores[s:e])
    t1 = time.perf_counter()
    for s in range(0, n_labels, batch):
        e = s + batch
        j.add_labels(lids[s:e], lv[s:e], lt[s:e])
    t2 = time.perf_counter()
    print(f"separate:  {(t1 - t0) / n * 1e9:5.0f} ns per prediction registered")
    print(f"           {(t2 - t1) / n_labels * 1e9:5.0f} ns per label joined ({j.joined} joined)")


def _steady(n: int, n_labels: int, batch: int, lag: int = 5000) -> None:
    rng = np.random.default_rng(1)
    ids = [f"evt-{i:012d}" for i in range(n)]
    leaf, times, scores = rng.integers(0, 1000, n), np.arange(n) / 100, rng.random(n)
    lab = np.sort(rng.permutation(n)[:n_labels])
    arrive = lab + lag + rng.integers(0, 2000, len(lab))  # in events read, jittered
    order = np.argsort(arrive, kind="stable")
    lab, arrive = lab[order], arrive[order]
    lids = [f"evt-{i:012d}" for i in lab.tolist()]
    lv, lt = (rng.random(len(lab)) < 0.3).astype(float), times[lab] + 50
    j = LabelJoin(JoinSettings())
    tp = te = tl = 0.0
    li = 0
    for s in range(0, n, batch):
        e = min(s + batch, n)
        a = time.perf_counter()
        j.add_predictions(ids[s:e], leaf[s:e], times[s:e], scores[s:e])
        b = time.perf_counter()
        j.expire(float(times[e - 1]))
        c = time.perf_counter()
        hi = int(np.searchsorted(arrive, e, side="right"))
        if hi > li:
            j.add_labels(lids[li:hi], lv[li:hi], lt[li:hi])
        d = time.perf_counter()
        tp, te, tl, li = tp + b - a, te + c - b, tl + d - c, max(li, hi)
    a = time.perf_counter()
    j.add_labels(lids[li:], lv[li:], lt[li:])
    tl += time.perf_counter() - a
    print(f"steady:    {tp / n * 1e9:5.0f} ns per prediction + {te / n * 1e9:.0f} ns expire")
    print(f"           {tl / len(lab) * 1e9:5.0f} ns per label")
    print(
        f"           joined {j.joined}, expired {j.expired}, pending {j.pending}, "
        f"recent {j.recent}, nbytes {j.nbytes() / 1e6:.0f} MB"
    )


def _memory(n: int, batch: int) -> None:
    rng = np.random.default_rng(2)
    ids = [f"evt-{i:012d}" for i in range(n)]
    leaf, times, scores = rng.integers(0, 1000, n), np.arange(n) / 100, rng.random(n)
    tracemalloc.start()
    j = LabelJoin(JoinSettings(max_pending=n))
    for s in range(0, n, batch):
        e = s + batch
        j.add_predictions(ids[s:e], leaf[s:e], times[s:e], scores[s:e])
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_id = sys.getsizeof(ids[0])
    print(
        f"memory:    {held / n:5.0f} B per pending prediction (peak {peak / n:.0f}) + {per_id} B id"
    )
    print(f"           nbytes() {j.nbytes() / n:.0f} B per pending prediction, id included")


def _detectors() -> None:
    rng = np.random.default_rng(7)
    errors = np.r_[rng.random(50_000) < 0.05, rng.random(50_000) < 0.4]
    cells = rng.integers(0, 100, len(errors))
    times = np.arange(len(errors), dtype=float)
    for kind in ERROR_DETECTORS:
        det = ErrorDetectors(kind)
        t0 = time.perf_counter()
        det.update(cells, errors, times)
        cost = (time.perf_counter() - t0) / len(errors)
        found = sum(det.detections.values())
        print(f"detector:  {kind:7s} {cost * 1e6:.2f} µs per update, {found} detections")


def main() -> None:
    """Parse the options and print every figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=900_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    _separate(args.predictions, args.labels, args.batch)
    _steady(args.predictions, args.labels, args.batch)
    _memory(args.predictions, args.batch)
    _detectors()


if __name__ == "__main__":
    main()
