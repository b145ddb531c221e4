"""gzip of the exposition in pieces: one member that every reader decodes, kept pieces
compressed once."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from tests.exporters.prometheus.test_collector import DIMS
from tests.exporters.prometheus.test_exposition import call
from tests.exporters.prometheus.test_health_collector import HIERARCHY, NOW
from tests.exporters.prometheus.test_health_collector import _profile as health_profile
from tests.exporters.prometheus.test_health_collector import _state as health_state
from tilewatch.exporters.prometheus import compression
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.exporters.prometheus.compression import Piece, gzip_pieces
from tilewatch.exporters.prometheus.exposition import exposition_app, generate
from tilewatch.exporters.prometheus.health_collector import HealthCollector


def one_member(body: bytes) -> bytes:
    """Decode ``body`` as a reader that stops after the first gzip member does (curl,
    browsers): it must hold everything, with nothing after it."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = d.decompress(body)
    assert d.eof and d.unused_data == b""
    return out


@pytest.mark.parametrize(
    "datas",
    [
        [],
        [b""],
        [b"a 1.0\n"],
        [b"# HELP x X.\n", b"", b"x 1.0\n" * 1000, bytes(range(256)) * 300, b"y 2\n"],
    ],
)
def test_pieces_make_one_gzip_member_of_their_concatenation(datas: list[bytes]) -> None:
    body = b"".join(gzip_pieces([Piece(d) for d in datas]))
    assert one_member(body) == b"".join(datas) == gzip.decompress(body)


def test_random_pieces_at_every_size() -> None:
    rng = np.random.default_rng(3)
    datas = [rng.integers(0, 40, int(n), dtype=np.uint8).tobytes() for n in [0, 1, 70_000, 5]]
    datas.append(b"repetitive line\n" * 200_000)  # several deflate blocks
    assert one_member(b"".join(gzip_pieces([Piece(d) for d in datas]))) == b"".join(datas)


def test_a_piece_is_compressed_once() -> None:
    piece = Piece(b"z 1.0\n" * 100)
    first = piece.deflated()
    assert piece.deflated() is first
    assert one_member(b"".join(gzip_pieces([piece, piece]))) == piece.data * 2


def test_a_gzip_scrape_compresses_only_what_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second gzip scrape reuses the kept window families' compressed pieces; both
    decode, as one member, to exactly the uncompressed exposition."""
    state = health_state(health_profile())
    registry = CollectorRegistry()
    registry.register(CellCollector(state.snapshot, DIMS))
    registry.register(HealthCollector(state.snapshot, DIMS, HIERARCHY, clock=lambda: NOW))
    app = exposition_app(registry)
    compressors: list[Any] = []
    real = compression.zlib.compressobj

    def counting(*args: Any) -> Any:
        compressors.append(args)
        return real(*args)

    monkeypatch.setattr(compression.zlib, "compressobj", counting)
    bodies, counts = [], []
    for _ in range(2):
        compressors.clear()
        _status, headers, body = call(app, encoding="gzip")
        assert headers["Content-Encoding"] == "gzip"
        assert headers["Content-Length"] == str(len(body))
        bodies.append(one_member(body))
        counts.append(len(compressors))
    plain = generate(registry)
    assert bodies[0] == bodies[1] == plain
    assert counts[1] < counts[0] - 10  # the window families' pieces were not compressed again
