"""The tilewatch test suite: a package, so helpers are imported as ``tests.helpers`` and so on.

The layout mirrors the source folders (``tests/aggregators`` for ``aggregators/`` ...). Shared
helpers: ``tests.helpers`` (Kafka round trips, a throwaway Prometheus) and ``tests.e2e``'s
support modules (a ``tilewatch run`` subprocess and its expected output).
"""
