"""Errors of tilewatch.

One root, :class:`TilewatchError`, lives here because ``aggregators`` is the bottom of the
dependency graph (``tilewatch`` -> ``streams``, ``exporters`` -> ``aggregators``). Each package
adds its own subclasses::

    TilewatchError
    ├── StateError            aggregators: state that cannot be restored or merged
    ├── ConfigError           tilewatch.config: a config file that does not validate
    │   └── BaselineError     tilewatch.holdout: a baseline input or file that is unusable
    ├── StreamError           streams: Kafka clients, topics, the runtime loop
    │   └── DecodeError       streams.decoding: one record that is not a valid event
    └── ExporterError         exporters: the metrics endpoint, generated files

Third-party errors are wrapped with ``raise ... from exc`` so the cause stays visible.

May import: nothing from tilewatch (a basic module of ``tilewatch.aggregators``).
"""

from __future__ import annotations

__all__ = ["StateError", "TilewatchError"]


class TilewatchError(Exception):
    """Root of every error tilewatch raises on purpose."""


class StateError(TilewatchError):
    """Aggregator state that cannot be restored from plain data or merged."""
