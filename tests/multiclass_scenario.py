"""A multi-class stream with two planted changes, shared by the Monitor and broker tests.

Model ``intent`` over segments ``s1, s2`` x regions ``r1, r2``, three classes, one-minute
windows, every event labeled inline. For ``CLEAN`` windows the true class is drawn from
``PRIOR`` and the model puts most probability on it (argmax right about 85% of the time). In
the last window (``CHANGED``):

- segment ``s2``: the class ``hold`` is drawn twice as often (its share doubles) and the model
  follows it: the predicted-class shares of the ``s2`` cells shift;
- region ``r2``: events whose true class is ``buy`` are labeled ``sell`` (labels of one class
  confused with another; the predictions do not change): the error rate of ``r2`` cells rises;
- cell ``s1 x r1``: the model becomes unsure while staying as right (its probabilities mixed
  half and half with the uniform ones: the argmax is kept): confidence and margin drop.

One more event per cell, two windows later, closes the changed window (in every partition,
when producers key by cell).
"""

from __future__ import annotations

import numpy as np

T0 = 1767225600.0
WINDOW = 60.0
CLASSES = ("buy", "sell", "hold")
PRIOR = np.array([0.5, 0.3, 0.2])
SHIFTED = np.array([0.3, 0.3, 0.4])
CLEAN = 12
CHANGED = CLEAN  # the window index of the change
PER_CELL = 150
CELLS = (("s1", "r1"), ("s1", "r2"), ("s2", "r1"), ("s2", "r2"))
#: Leaf cells where each change must be flagged, and only there.
CLASS_SHIFT_CELLS = {("intent", "s2", "r1"), ("intent", "s2", "r2")}
ERROR_CELLS = {("intent", "s1", "r2"), ("intent", "s2", "r2")}
UNSURE_CELLS = {("intent", "s1", "r1")}


def events(seed: int = 3) -> list[dict]:
    """Every event in time order, then the closing one; each with its probability list."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(CLEAN + 1):
        for segment, region in CELLS:
            prior = SHIFTED if (w == CHANGED and segment == "s2") else PRIOR
            truth = rng.choice(3, PER_CELL, p=prior)
            logits = rng.normal(0.0, 1.0, (PER_CELL, 3))
            logits[np.arange(PER_CELL), truth] += 2.5
            probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            if w == CHANGED and (segment, region) == ("s1", "r1"):
                probs = 0.5 * probs + 0.5 / 3
            times = T0 + w * WINDOW + np.sort(rng.uniform(0.0, WINDOW - 1.0, PER_CELL))
            for i in range(PER_CELL):
                label = CLASSES[truth[i]]
                if w == CHANGED and region == "r2" and label == "buy":
                    label = "sell"
                out.append(
                    {
                        "model": "intent",
                        "segment": segment,
                        "region": region,
                        "timestamp": float(times[i]),
                        "probs": [round(float(p), 6) for p in probs[i]],
                        "label": label,
                    }
                )
    out.sort(key=lambda e: e["timestamp"])
    closing = [
        {
            "model": "intent",
            "segment": segment,
            "region": region,
            "timestamp": T0 + (CHANGED + 2) * WINDOW,
            "probs": [1.0, 0.0, 0.0],
        }
        for segment, region in CELLS
    ]
    return [*out, *closing]


def changed_window(stream: list[dict], segment: str | None, region: str | None) -> list[dict]:
    """The events of the changed window in a cell (None: every value, a roll-up)."""
    lo, hi = T0 + CHANGED * WINDOW, T0 + (CHANGED + 1) * WINDOW
    return [
        e
        for e in stream
        if lo <= e["timestamp"] < hi
        and segment in (None, e["segment"])
        and region in (None, e["region"])
    ]
