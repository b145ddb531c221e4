"""State: per-partition state (counts, windows, rolling windows), its checkpoint codec, the
replica that merges partitions, and the read-only snapshot.

May import: every other subpackage of ``tilewatch.aggregators``.
"""
