"""Support of the end-to-end tests, one module per kind (import from the module itself).

- :mod:`.layout`: the e2e stream's cells and times (models, segments, regions, window, grace),
  roll-ups and label sets.
- :mod:`.config`: write a ``tilewatch run`` config for a topic, and edit it in place.
- :mod:`.process`: ``tilewatch run`` as a subprocess (start, wait on its scrape, signal, stop)
  and its exit summary.
- :mod:`.scrape`: fetch and parse an exposition text; compare two scrapes.
- :mod:`.events`: factories of valid events and bad records, and their Kafka values and keys.
- :mod:`.expected`: what a scrape must show for a stream (numpy, from the events alone).

The fixtures that start and always stop the subprocess live in ``tests/e2e/conftest.py``; the
metric definitions (accuracy, F1, ... and the sample mean and variance) in ``tests.oracles``.
These modules may import ``tests.helpers``, ``tests.oracles``, numpy, kafka-python,
prometheus_client and pytest; never ``tilewatch`` itself, whose output they check.
"""
