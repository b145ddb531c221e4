"""The TOML config file: one module per section, and the loader that builds every settings
object.

May import: ``tilewatch.aggregators``, ``tilewatch.streams``, ``tilewatch.exporters``.
"""
