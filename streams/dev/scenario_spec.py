"""What a detection scenario is made of: its shape (:class:`ScenarioSpec`), the features and
categories of its traffic, and the changes injected into it with their ground truth.

:mod:`tilewatch.streams.dev.scenarios` generates the traffic; this module only describes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "ALL",
    "CATEGORIES",
    "DEFAULT_REGIONS",
    "DEFAULT_SEGMENTS",
    "FEATURES",
    "INCOME_CENTRE",
    "INCOME_SIGMA",
    "SIGNALS",
    "TENURE_CENTRE",
    "Change",
    "ScenarioSpec",
    "class_prior_shift",
    "concept_drift",
    "covariate_shift",
    "default_changes",
    "dropped_feature",
    "slow_drift",
]

DEFAULT_SEGMENTS: tuple[str, ...] = (
    "retail",
    "premium",
    "student",
    "smb",
    "corporate",
    "gig",
    "senior",
    "newcomer",
    "private",
    "public",
)
DEFAULT_REGIONS: tuple[str, ...] = (
    "us-east",
    "us-west",
    "us-central",
    "ca",
    "uk",
    "de",
    "fr",
    "es",
    "br",
    "mx",
    "in",
    "jp",
)
#: The roll-up value of a dimension (as the cell registry names it).
ALL = "__all__"
#: Feature names, in the order of the ``features`` object.
FEATURES: tuple[str, ...] = ("income", "tenure", "product", "merchant", "channel")
#: Values of the categorical features (``merchant``: ``m000`` .. ``m399``).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "product": ("card", "loan", "mortgage", "savings", "auto", "bnpl"),
    "merchant": tuple(f"m{i:03d}" for i in range(400)),
    "channel": ("web", "app", "branch", "partner"),
}
#: Signals a change can require: drift of the score, of a feature, of the predicted-class
#: shares, of a feature's missing share, of the error rate and of calibration (labels).
SIGNALS: tuple[str, ...] = (
    "score_psi",
    "feature_psi",
    "class_shift",
    "missing",
    "error_rate",
    "calibration",
)

#: Where the income and tenure distributions are centred (regions and segments move them).
INCOME_CENTRE = math.log(40_000.0)
INCOME_SIGMA = 0.45
TENURE_CENTRE = 24.0


@dataclass(frozen=True)
class ScenarioSpec:
    """What the traffic looks like.

    Parameters
    ----------
    segments, regions
        The two cell dimensions; the first of each is the busiest (Zipf-like weights).
    windows
        Number of event-time windows.
    window_seconds
        Length of a window; window ``w`` covers ``[start_time + w * window_seconds, ...)``.
    start_time
        Epoch seconds of window 0 (a multiple of ``window_seconds``, so windows align).
    min_cell_events, max_cell_events
        Expected events per window of the smallest and the busiest leaf cell.
    label_share
        Share of events with an inline label (the others have ``"label": null``).
    threshold
        ``prediction = int(score >= threshold)``.
    disorder_seconds
        Event times are moved back by up to this much (within their window), so the stream is
        in time order up to a few seconds.
    model, model_version
        The model's name and the version every event carries.
    seed
        Seed of every random draw.
    """

    segments: tuple[str, ...] = DEFAULT_SEGMENTS
    regions: tuple[str, ...] = DEFAULT_REGIONS
    windows: int = 120
    window_seconds: float = 60.0
    start_time: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    min_cell_events: float = 20.0
    max_cell_events: float = 5000.0
    label_share: float = 0.5
    threshold: float = 0.5
    disorder_seconds: float = 2.0
    model: str = "credit"
    model_version: str = "2026.1.0"
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.segments) < 1 or len(self.regions) < 1:
            raise ValueError("ScenarioSpec: segments and regions must not be empty")
        if len(set(self.segments)) != len(self.segments) or len(set(self.regions)) != len(
            self.regions
        ):
            raise ValueError("ScenarioSpec: segment and region names must be unique")
        if self.windows < 1 or not self.window_seconds > 0:
            raise ValueError("ScenarioSpec: windows >= 1 and window_seconds > 0 expected")
        if not 0 < self.min_cell_events <= self.max_cell_events:
            raise ValueError("ScenarioSpec: 0 < min_cell_events <= max_cell_events expected")
        for name in ("label_share", "threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ScenarioSpec.{name}: expected a share in [0, 1]")
        if not 0.0 <= self.disorder_seconds < self.window_seconds:
            raise ValueError("ScenarioSpec.disorder_seconds: expected 0 <= value < window")

    @property
    def cells(self) -> list[tuple[str, str]]:
        """Leaf cells ``(segment, region)``, segment-major (the generator's cell index)."""
        return [(s, r) for s in self.segments for r in self.regions]


@dataclass(frozen=True)
class Change:
    """An injected change and its ground truth.

    ``cells`` are the leaf cells ``(segment, region)`` it touches; in each, every signal of
    ``signals`` should fire from ``onset_window`` on (a ``slow_drift`` grows over
    ``ramp_windows``). ``affected`` adds the roll-ups that contain a touched leaf: they may
    fire too. ``feature`` and ``size`` parametrize the change (see the factory functions).
    """

    kind: str
    cells: tuple[tuple[str, str], ...]
    onset_window: int
    signals: tuple[str, ...]
    feature: str | None = None
    size: float = 0.0
    ramp_windows: int = 0
    description: str = ""

    def active(self, window: int) -> bool:
        """Whether the change is in effect in ``window``."""
        return window >= self.onset_window

    @property
    def affected(self) -> frozenset[tuple[str, str]]:
        """The touched leaves and every roll-up containing one (``ALL`` for a rolled-up
        dimension)."""
        out = set()
        for seg, reg in self.cells:
            out |= {(seg, reg), (seg, ALL), (ALL, reg), (ALL, ALL)}
        return frozenset(out)


def _check(spec: ScenarioSpec, segment: str | None = None, region: str | None = None) -> None:
    if segment is not None and segment not in spec.segments:
        raise ValueError(f"unknown segment {segment!r}")
    if region is not None and region not in spec.regions:
        raise ValueError(f"unknown region {region!r}")


def covariate_shift(
    spec: ScenarioSpec, segment: str, region: str, onset: int, size: float = 1.0
) -> Change:
    """One leaf cell's inputs move: ``income`` falls by a factor ``e^(0.7 size)`` and
    ``tenure`` shrinks by a factor ``1 + size``; the score follows (labels stay calibrated)."""
    _check(spec, segment, region)
    return Change(
        "covariate_shift",
        ((segment, region),),
        onset,
        ("feature_psi", "score_psi"),
        "income,tenure",
        size,
        0,
        f"income and tenure of {segment}/{region} move, the score follows",
    )


def dropped_feature(spec: ScenarioSpec, region: str, onset: int, feature: str = "tenure") -> Change:
    """A feature disappears from every event of a region (the key is absent); the model
    imputes the median, the labels still follow the true value. What must fire is the missing
    share: with no value left there is no value histogram to compare."""
    _check(spec, region=region)
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}")
    cells = tuple((s, region) for s in spec.segments)
    return Change(
        "dropped_feature",
        cells,
        onset,
        ("missing",),
        feature,
        1.0,
        0,
        f"{feature} is missing in region {region}",
    )


def class_prior_shift(
    spec: ScenarioSpec, segment: str, onset: int, logit_shift: float = 1.5
) -> Change:
    """A segment's risk rises: its true and predicted log-odds both move up by
    ``logit_shift``, so the positive class's share rises (the model stays calibrated)."""
    _check(spec, segment)
    cells = tuple((segment, r) for r in spec.regions)
    return Change(
        "class_prior_shift",
        cells,
        onset,
        ("class_shift", "score_psi"),
        None,
        logit_shift,
        0,
        f"scores and outcomes of segment {segment} move up",
    )


def concept_drift(spec: ScenarioSpec, region: str, onset: int, strength: float = 0.8) -> Change:
    """A region's outcomes stop following the scores: ``P(y = 1) = (1 - strength) score +
    strength m``, ``m`` the cell's clean mean score; the scores do not change."""
    _check(spec, region=region)
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength!r}")
    cells = tuple((s, region) for s in spec.segments)
    return Change(
        "concept_drift",
        cells,
        onset,
        ("error_rate", "calibration"),
        None,
        strength,
        0,
        f"labels of region {region} stop following the scores",
    )


def slow_drift(
    spec: ScenarioSpec,
    segment: str,
    onset: int,
    feature: str = "income",
    size: float = 1.5,
    ramp_windows: int = 60,
) -> Change:
    """A numeric feature of a segment moves linearly in event time, from nothing at the
    onset to ``size`` (log-income, or tenure in units of 24 months) after ``ramp_windows``
    windows, then stays; the score follows."""
    _check(spec, segment)
    if feature not in ("income", "tenure"):
        raise ValueError(f"slow_drift moves a numeric feature (income, tenure), got {feature!r}")
    if ramp_windows < 1:
        raise ValueError("ramp_windows must be >= 1")
    cells = tuple((segment, r) for r in spec.regions)
    return Change(
        "slow_drift",
        cells,
        onset,
        ("feature_psi",),
        feature,
        size,
        ramp_windows,
        f"{feature} of segment {segment} drifts over {ramp_windows} windows",
    )


def default_changes(spec: ScenarioSpec) -> list[Change]:
    """One change of each kind, with clean stretches first (onsets from 25% of the windows on).

    Segments and regions are picked by position (modulo their number): a slow drift in the
    4th segment, a covariate shift in leaf (6th segment, 8th region), a dropped ``tenure`` in
    the 3rd region, a class-prior shift in the 2nd segment, concept drift in the 5th region.
    With the default 10 x 12 grid, 79 of the 120 leaf cells are never touched.
    """
    w = spec.windows
    seg = spec.segments
    reg = spec.regions

    def s(i: int) -> str:
        return seg[i % len(seg)]

    def r(i: int) -> str:
        return reg[i % len(reg)]

    return [
        slow_drift(spec, s(3), int(w * 0.25)),
        covariate_shift(spec, s(5), r(7), int(w * 0.3)),
        dropped_feature(spec, r(2), int(w * 0.35)),
        class_prior_shift(spec, s(1), int(w * 0.5)),
        concept_drift(spec, r(4), int(w * 0.6)),
    ]
