"""Tests of streams/ (tilewatch.streams): decoding, dead letters, the loop; some need the broker."""
