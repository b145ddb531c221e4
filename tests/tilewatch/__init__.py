"""Tests of tilewatch/ (CLI, config, wiring)."""
