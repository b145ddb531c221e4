"""Benchmark scripts (not collected by pytest) and their shared harness."""
