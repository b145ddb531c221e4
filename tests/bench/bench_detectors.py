"""Detector benchmark: false alarms on stable streams and delays after a step, per detector.

Every detector tilewatch wires, run through its own wrapper exactly as the monitor calls it:

- error-stream detectors (:class:`tilewatch.aggregators.labels.error_detectors.ErrorDetectors`:
  river's DDM, HDDM_A, HDDM_W with the wired parameters, and HDDM_A at river's default) on
  0/1 error streams at steady rates of 2 %, 10 % and 40 %, and
  after a step to 1.5 times the rate;
- ADWIN on every score (:meth:`CellDetectors.update_scores`) at a few ``delta``, on
  Beta(2, 5) scores, and after a step of the score mean by 0.05 (Beta(2.6, 5));
- PageHinkley on each closed window (:meth:`CellDetectors.update_windows`, standardized) for
  cells of 20, 150 and 1,500 events per window, stable, and after the same score step.

Reported: false alarms per 10,000 events (per 1,000 windows for PageHinkley) on the stable
streams, and after the step the share of streams detected and the median delay (events, or
windows). Seeded; about a minute with the defaults::

    .venv/bin/python tests/bench/bench_detectors.py
    .venv/bin/python tests/bench/bench_detectors.py --streams 10 --events 5000  # quick
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tilewatch.aggregators.drift.detectors import CellDetectors  # noqa: E402
from tilewatch.aggregators.drift.profile import DriftSettings  # noqa: E402
from tilewatch.aggregators.labels.error_detectors import (  # noqa: E402
    ERROR_DETECTORS,
    PARAMETERS,
    ErrorDetectors,
)


def _record(det: CellDetectors | ErrorDetectors) -> list[tuple[int, float]]:
    """Every detection ``(cell, time)`` of ``det``, in order."""
    seen: list[tuple[int, float]] = []
    found = det._found

    def spy(cell: int, name: str, t: float) -> None:
        seen.append((cell, t))
        found(cell, name, t)

    det._found = spy  # type: ignore[method-assign]
    return seen


def _summary(
    seen: list[tuple[int, float]], streams: int, length: float, onset: float | None
) -> tuple[int, list[float]]:
    """(alarms before ``onset`` (all if None), delays of each stream's first alarm after it)."""
    before = [t for _c, t in seen if onset is None or t < onset]
    delays: list[float] = []
    if onset is not None:
        for cell in range(streams):
            after = [t for c, t in seen if c == cell and t >= onset]
            if after:
                delays.append(min(after) - onset)
    return len(before), delays


def _line(name: str, alarms: int, exposure: float, unit: str, delays: list[float] | None,
          streams: int) -> str:  # fmt: skip
    rate = f"{alarms / exposure:8.2f} per {unit}"
    if delays is None:
        return f"{name:44} {rate}"
    found = f"{len(delays)}/{streams}"
    median = f"{np.median(delays):8.0f}" if delays else "       -"
    return f"{name:44} {rate}   step: found {found:>7}, median delay {median}"


def error_detectors(streams: int, events: int, seed: int) -> list[str]:
    out = ["## error-stream detectors (0/1 errors per labelled event)"]
    rng = np.random.default_rng(seed)
    leaf = np.repeat(np.arange(streams), events)
    times = np.tile(np.arange(events, dtype=np.float64), streams)
    onset = events // 2
    for rate in (0.02, 0.1, 0.4):
        stable = rng.random((streams, events)) < rate
        step = stable.copy()
        step[:, onset:] = rng.random((streams, events - onset)) < 1.5 * rate
        # The wired parameters, and HDDM_A at river's default confidence (1e-3) beside them.
        for kind, params in [*((k, None) for k in ERROR_DETECTORS), ("hddm_a", {})]:
            t0 = time.perf_counter()
            saved = dict(PARAMETERS)
            if params is not None:
                PARAMETERS[kind] = params
            det = ErrorDetectors(kind)
            seen = _record(det)
            det.update(leaf, stable.ravel(), times)
            alarms, _ = _summary(seen, streams, events, None)
            det2 = ErrorDetectors(kind)
            PARAMETERS.clear()
            PARAMETERS.update(saved)
            seen2 = _record(det2)
            det2.update(leaf, step.ravel(), times)
            _, delays = _summary(seen2, streams, events, float(onset))
            us = (time.perf_counter() - t0) / (2 * streams * events) * 1e6
            name = kind if params is None else f"{kind} (river default 1e-3)"
            out.append(
                _line(
                    f"{name} at {rate:.0%} -> {1.5 * rate:.0%}",
                    alarms,
                    streams * events / 1e4,
                    "10k events",
                    delays,
                    streams,
                )
                + f"   {us:.1f} us/update"
            )
    return out


def adwin(streams: int, events: int, seed: int) -> list[str]:
    out = ["## ADWIN on every score (Beta(2, 5) scores; step: Beta(2.6, 5), mean +0.05)"]
    rng = np.random.default_rng(seed)
    leaf = np.repeat(np.arange(streams), events)
    times = np.tile(np.arange(events, dtype=np.float64), streams)
    onset = events // 2
    stable = rng.beta(2, 5, (streams, events))
    step = stable.copy()
    step[:, onset:] = rng.beta(2.6, 5, (streams, events - onset))
    for delta in (0.002, 1e-4, 1e-6):
        settings = DriftSettings(detectors=("adwin",), adwin_delta=delta)
        det = CellDetectors(settings)
        seen = _record(det)
        det.update_scores(leaf, stable.ravel(), times)
        alarms, _ = _summary(seen, streams, events, None)
        det2 = CellDetectors(settings)
        seen2 = _record(det2)
        det2.update_scores(leaf, step.ravel(), times)
        _, delays = _summary(seen2, streams, events, float(onset))
        out.append(
            _line(
                f"adwin delta={delta:g}",
                alarms,
                streams * events / 1e4,
                "10k events",
                delays,
                streams,
            )
        )
    return out


def _windows(
    rng: np.random.Generator, size: int, cells: int, windows: int, draw: Callable[..., np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per window and cell: events (Poisson around ``size``), mean and M2 of the scores."""
    counts = np.maximum(rng.poisson(size, (windows, cells)), 2)
    means, m2 = np.zeros((windows, cells)), np.zeros((windows, cells))
    for w in range(windows):
        for c in range(cells):
            x = draw(counts[w, c])
            means[w, c] = x.mean()
            m2[w, c] = ((x - x.mean()) ** 2).sum()
    return counts, means, m2, np.arange(cells)


def page_hinkley(streams: int, windows: int, seed: int) -> list[str]:
    out = ["## PageHinkley on each closed window, standardized (step: score mean +0.05)"]
    rng = np.random.default_rng(seed)
    onset = windows // 2
    settings = DriftSettings(detectors=("page_hinkley",))
    for size in (20, 150, 1500):
        stable = _windows(rng, size, streams, windows, lambda n: rng.beta(2, 5, n))
        first = _windows(rng, size, streams, onset, lambda n: rng.beta(2, 5, n))
        second = _windows(rng, size, streams, windows - onset, lambda n: rng.beta(2.6, 5, n))
        results = []
        for data in (stable, None):
            det = CellDetectors(settings)
            seen = _record(det)
            if data is not None:
                counts, means, m2, cells = data
                for w in range(windows):
                    det.update_windows(cells, counts[w], means[w], m2[w], float(w))
            else:
                for w in range(windows):
                    part, i = (first, w) if w < onset else (second, w - onset)
                    det.update_windows(part[3], part[0][i], part[1][i], part[2][i], float(w))
            results.append(seen)
        alarms, _ = _summary(results[0], streams, windows, None)
        _, delays = _summary(results[1], streams, windows, float(onset))
        raw = _raw_page_hinkley(stable[1], first[1], second[1], onset)
        out.append(
            _line(
                f"page_hinkley, {size} events/window",
                alarms,
                streams * windows / 1e3,
                "1k windows",
                delays,
                streams,
            )
        )
        out.append(
            _line(
                "  (before: raw means, 0.2 / 0.005)",
                raw[0],
                streams * windows / 1e3,
                "1k windows",
                raw[1],
                streams,
            )
        )
    return out


def _raw_page_hinkley(
    stable: np.ndarray, first: np.ndarray, second: np.ndarray, onset: int
) -> tuple[int, list[float]]:
    """The previous wiring: river's PageHinkley on raw window means, threshold 0.2, delta
    0.005 (score units). Returns (stable alarms, delays after the step)."""
    from river import drift

    alarms = 0
    delays: list[float] = []
    for c in range(stable.shape[1]):
        det = drift.PageHinkley(min_instances=3, delta=0.005, threshold=0.2)
        for x in stable[:, c].tolist():
            det.update(x)
            alarms += det.drift_detected
        det = drift.PageHinkley(min_instances=3, delta=0.005, threshold=0.2)
        series = np.r_[first[:, c], second[:, c]].tolist()
        for w, x in enumerate(series):
            det.update(x)
            if det.drift_detected and w >= onset:
                delays.append(float(w - onset))
                break
    return alarms, delays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=40, help="streams (cells) per case")
    parser.add_argument("--events", type=int, default=20_000, help="events per stream")
    parser.add_argument("--windows", type=int, default=400, help="windows per PH stream")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    for block in (
        error_detectors(args.streams, args.events, args.seed),
        adwin(args.streams, args.events, args.seed),
        page_hinkley(args.streams, args.windows, args.seed),
    ):
        print("\n".join(block) + "\n")
    print(
        f"({time.perf_counter() - t0:.0f} s; streams {args.streams}, events {args.events}, "
        f"windows {args.windows}, seed {args.seed})"
    )
    return 0 if math.isfinite(t0) else 1


if __name__ == "__main__":
    sys.exit(main())
