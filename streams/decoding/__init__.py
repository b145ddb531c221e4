"""Decoding and validation of Kafka record values: prediction events and label records.

May import: ``tilewatch.streams.settings``, ``tilewatch.streams.errors``, ``tilewatch.aggregators``.
"""
