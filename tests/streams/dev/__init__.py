"""Tests of streams/dev (tilewatch.streams.dev): the embedded broker, demo traffic and producer."""
