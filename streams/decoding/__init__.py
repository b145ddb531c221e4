"""Decoding and validation of Kafka record values: prediction events and label records.

``record`` is the prelude both decoders share (the record seam, reason codes, rejections, JSON
object, field paths, timestamps); ``events`` and ``labels`` are the two decoders.

May import: ``tilewatch.streams.settings``, ``tilewatch.streams.errors``, ``tilewatch.aggregators``.
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
