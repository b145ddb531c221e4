"""The TOML config file: one module per section, and the loader that builds every settings
object.

``load_config(path)`` or ``parse_config(data)`` returns a :class:`Config`; the section modules
(``kafka``, ``events``, ``cells``, ``drift``, ``baseline``, ``labels``, ``state``, ``exporter``,
``hierarchy`` with ``alerts``) each own their keys (``KEYS``) and parser; ``base`` holds the
shared table reader and :class:`ConfigError`.

May import: ``tilewatch.aggregators``, ``tilewatch.streams``, ``tilewatch.exporters`` (their
settings dataclasses).
"""

from __future__ import annotations

from tilewatch.config.base import ConfigError, parse_duration
from tilewatch.config.loader import Config, load_config, parse_config

__all__ = ["Config", "ConfigError", "load_config", "parse_config", "parse_duration"]
