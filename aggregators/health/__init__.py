"""The health hierarchy: base metrics read from a snapshot, risks, component scores, business
indicators and their drivers, aging signals.

May import: the basic modules (``tilewatch.aggregators.errors``, ``arrays``, ``codec``) and
``stats``, ``cells``, ``drift``, ``labels`` and ``state`` of ``tilewatch.aggregators``.
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
