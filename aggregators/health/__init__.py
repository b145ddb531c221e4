"""The health hierarchy: base metrics read from a snapshot, risks, component scores, business
indicators and their drivers, aging signals.

May import: ``stats``, ``cells``, ``drift``, ``labels``, ``state`` and ``errors`` of
``tilewatch.aggregators``.
"""
