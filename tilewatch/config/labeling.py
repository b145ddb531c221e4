"""The ``[labeling]`` section: the labeling queue (``docs/labeling.md``).

Without the section there is no queue. With it::

    [labeling]
    reasons = ["least_confident", "confident_wrong"]  # default (no inline labels: the first)
    topic = ""                 # "": <predictions topic>.labeling
    threshold = 0.4            # binary decision threshold; default: [labels] / the baseline's
    margin = 0.05              # threshold_margin, and unsure vs confident (binary)
    confidence = 0.8           # multi-class: confident top-class probability
    rate = 0.01                # at most 1 % of a window's events ...
    max_per_window = 200       # ... and at most 200 records per window and partition
    cell_share = 0.05          # one cell takes at most 5 % of a reason's window budget ...
    flagged_cell_share = 0.2   # ... 20 % when amber or red in some health component

Maps to :class:`tilewatch.aggregators.labeling.settings.LabelingSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tilewatch.aggregators.labeling.settings import LABEL_REASONS, REASONS, LabelingSettings
from tilewatch.aggregators.labels.settings import LabelSettings
from tilewatch.config.base import TOPIC, ConfigError, Table

__all__ = ["KEYS", "parse_labeling"]

KEYS = (
    "cell_share",
    "confidence",
    "flagged_cell_share",
    "margin",
    "max_per_window",
    "rate",
    "reasons",
    "threshold",
    "topic",
)


def parse_labeling(
    data: Mapping[str, Any],
    source: str,
    *,
    present: bool,
    labels: LabelSettings | None,
    has_baseline: bool,
    multiclass: bool,
) -> LabelingSettings | None:
    """The queue's settings (None without the section); checks that every reason can be
    judged: a decision threshold from somewhere (never an assumed 0.5) and inline labels for
    the reasons that need them.

    Examples
    --------
    >>> s = parse_labeling({"threshold": 0.3, "reasons": ["least_confident"]}, "t.toml",
    ...                    present=True, labels=None, has_baseline=False, multiclass=False)
    >>> s.reasons, s.threshold, s.rate
    (('least_confident',), 0.3, 0.01)
    >>> parse_labeling({}, "t.toml", present=True, labels=None, has_baseline=False,
    ...                multiclass=False)
    Traceback (most recent call last):
    ...
    tilewatch.config.base.ConfigError: t.toml: [labeling].threshold: expected a decision threshold (or [labels] threshold(s), or a [baseline] path) for the binary model's confidence, got no key
    """  # noqa: E501
    if not present:
        return None
    table = Table(source, "labeling", data, KEYS)
    d = LabelingSettings()
    # Multi-class models read their class labels inline whenever the event has one.
    inline = labels.source == "inline" if labels is not None else multiclass
    default = [*d.reasons, "confident_wrong"] if inline else list(d.reasons)
    reasons = table.data.get("reasons", default)
    if (
        not isinstance(reasons, list)
        or not reasons
        or any(r not in REASONS for r in reasons)
        or len(set(reasons)) != len(reasons)
    ):
        raise table.error("reasons", f"a list of distinct reasons from {list(REASONS)}", reasons)
    topic = table.data.get("topic", "")
    if not isinstance(topic, str) or (topic and TOPIC.fullmatch(topic) is None):
        raise table.error("topic", 'a Kafka topic name or ""', topic)
    threshold = table.number("threshold", 0.0) if "threshold" in table.data else None
    confidence = table.number("confidence", 0.0) if "confidence" in table.data else None
    has_threshold = (
        threshold is not None
        or has_baseline
        or (labels is not None and (labels.threshold is not None or bool(labels.thresholds)))
    )
    if not multiclass and not has_threshold:
        raise ConfigError(
            f"{table.where('threshold')}: expected a decision threshold (or [labels] "
            "threshold(s), or a [baseline] path) for the binary model's confidence, got no key"
        )
    needs_labels = [r for r in reasons if r in LABEL_REASONS]
    if needs_labels and not inline:
        raise table.error(
            "reasons",
            f'inline labels ([labels] source = "inline") for {", ".join(needs_labels)}',
            reasons,
        )
    if multiclass and needs_labels and confidence is None and threshold is None:
        raise table.error("confidence", f"a top-class probability for {needs_labels[0]}", None)
    fields: dict[str, Any] = {
        "rate": table.number("rate", d.rate),
        "max_per_window": table.integer("max_per_window", d.max_per_window, 1),
        "cell_share": table.number("cell_share", d.cell_share),
        "flagged_cell_share": table.number("flagged_cell_share", d.flagged_cell_share),
        "margin": table.number("margin", d.margin),
    }
    try:
        return LabelingSettings(
            reasons=tuple(reasons),
            topic=topic or None,
            threshold=threshold,
            confidence=confidence,
            **fields,
        )
    except ValueError as exc:
        raise ConfigError(f"{source}: [labeling]: {exc}") from None
