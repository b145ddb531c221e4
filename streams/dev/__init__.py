"""Development helpers: the embedded broker, synthetic traffic and the demo producer.

Not used by ``tilewatch run``. May import: ``tilewatch.streams``.
"""
