"""Errors of the ``streams`` package.

Both derive from the one root, :class:`tilewatch.aggregators.errors.TilewatchError`::

    TilewatchError
    └── StreamError       Kafka clients, topics, the embedded broker, the runtime loop
        └── DecodeError   one record that is not a valid event

Third-party errors (kafka-python, the broker process) are wrapped with ``raise ... from exc``
so the cause stays visible.
"""

from __future__ import annotations

from tilewatch.aggregators.errors import TilewatchError

__all__ = ["DecodeError", "StreamError"]


class StreamError(TilewatchError):
    """A failure of the Kafka side: a client, a topic, the embedded broker or the runtime loop."""


class DecodeError(StreamError):
    """One record whose bytes are not a valid prediction event.

    ``reason`` is a short code from :data:`tilewatch.streams.decoding.record.REASONS` (a metric
    label value) and ``detail`` says which field was wrong and what was found.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
