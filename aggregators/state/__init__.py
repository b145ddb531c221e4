"""State: per-partition state (counts, windows, rolling windows), its checkpoint codec, the
window accumulator, model versions, the replica that merges partitions, and the read-only
snapshot.

May import: the basic modules (``tilewatch.aggregators.errors``, ``arrays``, ``codec``),
``stats``, ``cells``, ``drift`` and ``labels`` of ``tilewatch.aggregators`` (not ``health``).
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
