"""Cost per event and memory per cell of the vector signals (embeddings, attributions).

Usage: ``python tests/bench/bench_embeddings.py [--events 20000] [--cells 100]
[--dims 384 768] [--batch 5000] [--json PATH]``

No broker: records are built in memory as the consumer hands them over (orjson bytes), and each
stage of the per-batch path is timed on the same batches, best of ``--repeat``:

- ``decode``: :class:`~tilewatch.streams.decoding.predictions.EventDecoder` with the
  ``embedding`` and ``attributions`` columns (the JSON parse of the vector is most of it);
- ``parse_floor``: ``orjson.loads`` of the same records alone (the floor of ``decode``);
- ``decode_plain``: the same events without those two fields (the spine's decode);
- ``encode``: :class:`~tilewatch.streams.decoding.embeddings.EmbeddingEncoder` (checks, one
  float32 matrix per model);
- ``track``: :meth:`~tilewatch.aggregators.vectors.tracker.VectorTracker.apply` (projection,
  per-group sums, bins, reservoir, attribution sums);
- ``judge``: judging one closed window over every group (per window, not per event); the
  first judgement also builds one-time tables and each reference's precision matrix.

Memory: the bytes of one window's sums per group, the groups per cell (leaf x 2 classes + all),
and the reference's bytes per group (JSON in the baseline file).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from tests.bench.harness import Record, apply_gc, print_rows, write_json  # noqa: E402
from tilewatch.aggregators.vectors.settings import VectorSettings  # noqa: E402
from tilewatch.aggregators.vectors.tracker import VectorTracker, WindowSums  # noqa: E402
from tilewatch.aggregators.vectors.vector_reference import build_model_vectors  # noqa: E402
from tilewatch.streams.decoding.embeddings import EmbeddingEncoder  # noqa: E402
from tilewatch.streams.decoding.predictions import EventDecoder  # noqa: E402
from tilewatch.streams.settings import EventFields  # noqa: E402

FIELDS = EventFields(embedding="emb", attributions="shap")
FEATURES = [f"f{j}" for j in range(10)]


def _events(n: int, dim: int, cells: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    a = rng.normal(size=(n, len(FEATURES)))
    return [
        {
            "model": "m",
            "score": 0.5,
            "segment": f"s{i % cells}",
            "region": "r",
            "prediction": "a" if i % 2 else "b",
            "timestamp": 1_767_225_600.0 + i * 0.001,
            "emb": x[i].tolist(),
            "shap": dict(zip(FEATURES, a[i].tolist(), strict=True)),
        }
        for i in range(n)
    ]


def _records(events: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[Record]:
    out = []
    for i, e in enumerate(events):
        value = orjson.dumps({k: v for k, v in e.items() if k not in drop})
        out.append(Record("t", 0, i, b"", value))
    return out


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(dim: int, n: int, cells: int, batch: int, repeat: int) -> dict[str, Any]:
    settings = VectorSettings()
    ref_events = _events(4000, dim, cells, seed=1)
    reference = build_model_vectors(
        settings,
        [(e["segment"], e["region"]) for e in ref_events],
        [e["prediction"] for e in ref_events],
        np.array([e["emb"] for e in ref_events], dtype=np.float32),
        range(len(ref_events)),
        [e["shap"] for e in ref_events],
    )
    events = _events(n, dim, cells, seed=2)
    records = _records(events)
    plain = _records(events, drop=("emb", "shap"))
    batches = [records[i : i + batch] for i in range(0, n, batch)]
    plain_batches = [plain[i : i + batch] for i in range(0, n, batch)]
    decoder = EventDecoder(FIELDS, columns=("prediction", "embedding", "attributions"))
    plain_decoder = EventDecoder(FIELDS, columns=("prediction",))
    decoded = [decoder.decode(b) for b in batches]
    encoder = EmbeddingEncoder({"m": dim})
    encoded = [encoder.encode([k[0] for k in d.keys], d.embeddings) for d in decoded]

    def track() -> VectorTracker:
        tracker = VectorTracker(settings, {"m": reference}, 3600.0)
        for d, e in zip(decoded, encoded, strict=True):
            tracker.apply(
                d.keys, np.array(d.event_times), d.predictions, e.by_model, d.attributions
            )
        return tracker

    seconds = {
        "decode": _best(lambda: [decoder.decode(b) for b in batches], repeat),
        "parse_floor": _best(lambda: [[orjson.loads(r.value) for r in b] for b in batches], repeat),
        "decode_plain": _best(lambda: [plain_decoder.decode(b) for b in plain_batches], repeat),
        "encode": _best(
            lambda: [encoder.encode([k[0] for k in d.keys], d.embeddings) for d in decoded],
            repeat,
        ),
        "track": _best(track, repeat),
    }
    tracker = track()
    t0 = time.perf_counter()
    tracker.close_before(1e12)
    judge_cold = time.perf_counter() - t0  # with the one-time tables and precision matrices
    for d, e in zip(decoded, encoded, strict=True):  # the next window: the same events
        tracker.apply(
            d.keys, np.array(d.event_times) + 3600.0, d.predictions, e.by_model, d.attributions
        )
    t0 = time.perf_counter()
    tracker.close_before(1e12)
    judge = time.perf_counter() - t0
    groups = len(tracker.group_keys("m"))
    k, nb, nf = (
        reference.projection.k if reference.projection else 0,
        settings.bins,
        len(reference.features),
    )
    sums = WindowSums(k, nb, nf, settings.reservoir)
    sums.ensure(1)
    per_group = sum(
        getattr(sums, f).nbytes
        for f in ("count", "zsum", "hist", "attr_count", "attr_sum", "attr_sq", "points", "seen")
    )
    ref_json = len(orjson.dumps(reference.to_dict()))
    per_event = {name: 1e6 * s / n for name, s in seconds.items()}
    return {
        "dim": dim,
        "events": n,
        "cells": cells,
        "us_per_event": per_event,
        "us_per_event_added": per_event["decode"]
        - per_event["decode_plain"]
        + per_event["encode"]
        + per_event["track"],
        "judge_seconds": judge,
        "judge_cold_seconds": judge_cold,
        "groups": groups,
        "window_bytes_per_group": per_group,
        "groups_per_leaf_cell": 3,
        "window_bytes_per_leaf_cell": 3 * per_group,
        "reference_json_bytes_per_group": ref_json / max(len(reference.groups), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    apply_gc("tuned")  # what tilewatch run does
    results = []
    for dim in args.dims:
        r = run(dim, args.events, args.cells, args.batch, args.repeat)
        results.append(r)
        us = r["us_per_event"]
        print_rows(
            f"{dim} dimensions, {args.events} events, {args.cells} cells",
            [
                ("decode (with vectors)", f"{us['decode']:.1f} us/event"),
                ("orjson.loads alone", f"{us['parse_floor']:.1f} us/event"),
                ("decode (without)", f"{us['decode_plain']:.1f} us/event"),
                ("encode", f"{us['encode']:.1f} us/event"),
                ("track", f"{us['track']:.1f} us/event"),
                ("added by vectors", f"{r['us_per_event_added']:.1f} us/event"),
                (
                    "judge one window",
                    f"{1000 * r['judge_seconds']:.1f} ms ({r['groups']} groups; "
                    f"first: {1000 * r['judge_cold_seconds']:.1f} ms)",
                ),
                ("window sums", f"{r['window_bytes_per_leaf_cell'] / 1024:.1f} KiB per leaf cell"),
                (
                    "reference",
                    f"{r['reference_json_bytes_per_group'] / 1024:.1f} KiB JSON per group",
                ),
            ],
        )
    write_json(args.json, {"results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
