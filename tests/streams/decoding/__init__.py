"""Tests of streams/decoding (tilewatch.streams.decoding): prediction and label decoders."""
