"""Development helpers: the embedded broker, synthetic traffic and the demo producer.

``broker`` (the embedded Kafka-protocol broker), ``traffic`` (the seeded traffic generator and
its spec; ``population`` draws each cell's parameters and features, ``columns`` holds a
generated batch and its deliberately invalid records) and ``producer`` (sends traffic to a
topic). Not used by ``tilewatch run``. May import: ``tilewatch.streams``.
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
