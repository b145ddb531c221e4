"""Drift and data quality: references (baselines), the compiled drift profile, window
statistics against the reference, river detectors on scores.

May import: ``stats``, ``cells`` and ``errors`` of ``tilewatch.aggregators``.
"""
