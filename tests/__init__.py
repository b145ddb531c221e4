"""The tilewatch test suite: a package, so helpers are imported as ``tests.helpers`` and so on.

The layout mirrors the source folders (``tests/aggregators`` for ``aggregators/`` ...). Shared
helpers, imported by module (``from tests.helpers import produce``, ``from tests import oracles``):

- ``tests.helpers``: Kafka round trips and a throwaway Prometheus;
- ``tests.oracles``: numpy references of every exported statistic and performance metric;
- ``tests.e2e.support``: a ``tilewatch run`` subprocess, its config, scrape and expected output;
- ``tests.bench.harness``: what the benchmark scripts share (broker, floor, timing, report).
"""
