"""The text exposition of a scrape, with the per-cell families formatted in bulk.

prometheus-client formats every sample through a ``Sample`` object, a dict of labels that it
sorts and escapes, and a float conversion: about 5 us per sample, so 0.5 to 1 s for the 100k to
200k samples of 10,000 cells. Most samples are per cell, and a cell's label set never changes, so:

- :class:`~tilewatch.exporters.prometheus.cell_labels.CellLabels` formats each cell's label
  set (``model="m",segment="s",...``, escaped) once, when the cell first appears in a scrape,
  and keeps it for every later scrape;
- :class:`CellFamily` is a metric family whose per-cell samples are kept as columns (cell rows,
  values, label values before and after the cell's) and written as text in one pass per column;
  its ``samples`` are built only when something asks for them (tests, ``registry``
  look-ups, ``name[]`` filtering, prometheus-client's own formatter), so it stays a normal
  ``Metric`` for every consumer;
- :class:`WindowTexts` keeps the text of the families of the reported windows across scrapes,
  so a closed window's families are formatted once;
- :func:`generate` writes the exposition: a :class:`CellFamily` as its text, every other family
  through prometheus-client's ``generate_latest``; :func:`exposition_app` serves it (text format
  0.0.4, gzip when asked, ``name[]`` filtering) as pieces (:func:`generate_pieces`), the kept
  texts as the bytes they are kept as, never joined into one buffer (written in blocks of up
  to 8 MB, :func:`write_blocks`); gzip compresses each kept text once
  (:mod:`~tilewatch.exporters.prometheus.compression`).

The output parses to the same samples as prometheus-client's (labels in declaration order
instead of sorted, which the format allows; values of a million and more without Go's
exponent, see :func:`format_values`); ``tests/exporters/prometheus/test_exposition.py``
checks both on the same data and runs ``promtool check metrics`` on it.

Examples
--------
>>> labels = CellLabels(["model", "segment"])
>>> fam = CellFamily("tilewatch_events", "Events.", "counter")
>>> fam.add_cells(labels, [("m", "a"), ("m", 'q"x')], [0, 1], [3.0, 4.0])
>>> print(fam.text(), end="")
# HELP tilewatch_events_total Events.
# TYPE tilewatch_events_total counter
tilewatch_events_total{model="m",segment="a"} 3.0
tilewatch_events_total{model="m",segment="q\\"x"} 4.0
>>> [(s.labels["segment"], s.value) for s in fam.samples]
[('a', 3.0), ('q"x', 4.0)]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import orjson
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from tilewatch.exporters.prometheus.cell_labels import CellLabels, LabelStrings, label_string
from tilewatch.exporters.prometheus.compression import Piece, gzip_pieces

__all__ = [
    "CONTENT_TYPE",
    "CellFamily",
    "WindowTexts",
    "exposition_app",
    "format_values",
    "generate",
    "generate_pieces",
    "write_blocks",
]

#: The Prometheus text format (what Prometheus falls back to from OpenMetrics; every version
#: accepts it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def format_values(values: Sequence[float] | np.ndarray) -> list[str]:
    """Each value as text that parses to exactly the same float, in bulk.

    Finite values are written as ``repr`` writes them (the shortest text that reads back to
    the same float); prometheus-client's ``floatToGoString`` differs only in writing values of
    a million and more with an exponent, as Go does, which matters for ``le`` and ``quantile``
    label values, never for a sample's value. Infinities and NaN are written as
    ``floatToGoString`` writes them (``+Inf``, ``-Inf``, ``NaN``).

    ``repr`` costs about 0.7 us per float with 17 significant digits, most of a scrape's
    formatting, so the values go through ``orjson`` (a shortest round-trip writer, about 0.1
    us), which writes what ``repr`` writes for 0 and for magnitudes from 1e-4 up; values below
    (``1e-05`` in ``repr``, ``0.00001`` in orjson) and the non-finite ones are written one by one.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(arr)
    magnitude = np.abs(arr)
    small = (magnitude < _ORJSON_FROM) & (magnitude != 0.0)
    if finite.all() and not small.any():
        return _dump_floats(arr)
    out = _dump_floats(np.where(finite, arr, 0.0))
    for i in np.flatnonzero(np.isnan(arr)).tolist():  # often many (a variance of one event)
        out[i] = "NaN"
    alone = np.flatnonzero(small | np.isinf(arr))
    for i, v in zip(alone.tolist(), arr[alone].tolist(), strict=True):
        out[i] = repr(v) if math.isfinite(v) else floatToGoString(v)  # type: ignore[no-untyped-call]
    return out


#: From this magnitude up orjson writes a float as ``repr`` does (checked on random floats of
#: every magnitude in ``tests/exporters/prometheus/test_exposition.py``).
_ORJSON_FROM = 1e-4


def _dump_floats(arr: np.ndarray) -> list[str]:
    """``repr`` of each finite value of ``arr`` that is 0 or at least :data:`_ORJSON_FROM` in
    magnitude (what orjson writes, its JSON array split at the commas)."""
    if len(arr) == 0:
        return []
    text = orjson.dumps(arr, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text[1:-1].split(",")


Pairs = Sequence[tuple[str, str]]
#: Cell rows: a list of ints or an integer array (made a list only when written).
Rows = Sequence[int] | np.ndarray


def _row_list(rows: Rows) -> list[int]:
    return rows if isinstance(rows, list) else np.asarray(rows, dtype=np.int64).tolist()


class CellFamily(Metric):
    """A metric family whose samples are columns of cells, written as text in bulk.

    Parameters
    ----------
    name, documentation, typ
        As for ``prometheus_client.core.Metric`` (a counter's ``name`` without ``_total``).

    Add columns with :meth:`add_cells` (cells sharing the label values around theirs) and
    single samples with :meth:`add_metric` (label values in the order of ``label_names``).
    """

    def __init__(
        self, name: str, documentation: str, typ: str, label_names: Sequence[str] = ()
    ) -> None:
        super().__init__(name, documentation, typ)
        self.sample_name = f"{name}_total" if typ == "counter" else name
        self.label_names = list(label_names)
        # (label strings by cell, cell keys, label names of a cell, rows, values, before, after)
        self._chunks: list[
            tuple[Sequence[str], Sequence[tuple[str, ...]], list[str], Rows, Any, Pairs, Pairs]
        ] = []
        self._built: list[Sample] | None = None
        #: The piece to write instead of formatting the columns (a :class:`WindowTexts`
        #: hit): encoded, and compressed once when gzip is asked for.
        self.kept: Piece | None = None
        #: Called with the piece once formatted (to keep it in a :class:`WindowTexts`).
        self.on_text: Callable[[Piece], None] | None = None

    # ``Metric.__init__`` assigns ``self.samples = []``: keep the assignment harmless and
    # build the samples from the columns when read.
    @property
    def samples(self) -> list[Sample]:
        if self._built is None:
            self._built = list(self._iter_samples())
        return self._built

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:
            raise AttributeError("CellFamily samples are added with add_cells or add_metric")

    def add_cells(
        self,
        cells: CellLabels,
        keys: Sequence[tuple[str, ...]],
        rows: Rows,
        values: Sequence[float] | np.ndarray,
        before: Pairs = (),
        after: Pairs = (),
    ) -> None:
        """One sample per cell ``rows[i]`` (an index into ``keys``, the registry's key list)
        with value ``values[i]``, labelled ``before``, then the cell's labels, then ``after``
        (``(name, value)`` pairs).

        ``rows`` and ``values`` are kept, not copied: neither may change afterwards (a
        snapshot's arrays never do). They are converted only when the family is written or
        its samples are read, so a family whose kept text is written costs no conversion.
        """
        if len(rows) == 0:
            return
        self._built = None
        strings = cells.strings(keys)
        self._chunks.append(
            (
                strings,
                keys,
                cells.names,
                rows,
                values,
                tuple(before),
                tuple(after),
            )
        )

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        """One sample with label values ``labels`` in the order of ``label_names``."""
        self._built = None
        pairs = tuple(zip(self.label_names, labels, strict=True))
        self._chunks.append(([""], [()], [], [0], [value], pairs, ()))

    def _iter_samples(self) -> Iterator[Sample]:
        for _strings, keys, names, rows, values, before, after in self._chunks:
            vals = np.asarray(values, dtype=np.float64).tolist()
            for row, v in zip(_row_list(rows), vals, strict=True):
                labels = {**dict(before), **dict(zip(names, keys[row], strict=True)), **dict(after)}
                yield Sample(self.sample_name, labels, v)

    def text(self) -> str:
        """The family in the text format, its HELP and TYPE lines first."""
        return self.data().decode()

    def data(self) -> bytes:
        """:meth:`text` encoded (UTF-8)."""
        return self.piece().data

    def piece(self) -> Piece:
        """What the exposition writes: :meth:`data` as a :class:`Piece`."""
        if self.kept is not None:
            return self.kept
        piece = Piece(self._format().encode())
        if self.on_text is not None:
            self.on_text(piece)
        return piece

    def _format(self) -> str:
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        name = self.sample_name
        out = [f"# HELP {name} {doc}\n# TYPE {name} {self.type}\n"]
        for strings, _keys, names, rows, values, before, after in self._chunks:
            vals = format_values(values)
            pre = label_string([n for n, _ in before], [v for _, v in before])
            post = label_string([n for n, _ in after], [v for _, v in after])
            if not names:  # one sample of add_metric, no cell labels
                body = ",".join(p for p in (pre, post) if p)
                out.append(f"{name}{{{body}}} {vals[0]}\n" if body else f"{name} {vals[0]}\n")
                continue
            head = f"{name}{{{pre}," if pre else f"{name}{{"
            tail = f",{post}}} " if post else "} "
            rl = _row_list(rows)
            cells = (
                strings.take(rl) if isinstance(strings, LabelStrings) else [strings[r] for r in rl]
            )
            if len(cells) != len(vals):
                raise ValueError(f"{name}: {len(cells)} cells, {len(vals)} values")
            # Each line is head, label set, tail, value, newline: the five strings laid out
            # by slice assignment and joined once (3 times faster than an f-string per line).
            lines = [head, "", tail, "", "\n"] * len(cells)
            lines[1::5] = cells
            lines[3::5] = vals
            out += lines
        return "".join(out)


class WindowTexts:
    """The text of families that only change with the reported windows, kept across scrapes.

    A family is reused while the scrape's ``token`` holds the same objects (the snapshot's
    window arrays and drift view, which the replica reuses until a reported window changes) and
    the same ``cells`` digest (the exported cells). A closed window's families are thus
    formatted once, at the first scrape after the window is reported.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[object, ...], Any, Piece]] = {}
        self._lock = threading.Lock()

    def attach(self, fam: CellFamily, token: tuple[object, ...], cells: Any) -> None:
        """Give ``fam`` its kept text, or have it keep its text once formatted."""
        name = fam.sample_name
        with self._lock:
            entry = self._entries.get(name)
        if (
            entry is not None
            and len(entry[0]) == len(token)
            and all(a is b for a, b in zip(entry[0], token, strict=True))
            and entry[1] == cells
        ):
            fam.kept = entry[2]
            return

        def keep(piece: Piece) -> None:
            with self._lock:
                self._entries[name] = (token, cells, piece)

        fam.on_text = keep


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def generate(registry: Any) -> bytes:
    """The text exposition of everything ``registry.collect()`` yields."""
    return b"".join(p.data for p in generate_pieces(registry))


def generate_pieces(registry: Any) -> list[Piece]:
    """:func:`generate` in pieces, one per :class:`CellFamily` (its kept piece when it has
    one) and one per run of other families, so the server writes them without copying them
    into one 35 MB buffer (at 10k cells) and gzip compresses a kept piece once."""
    out: list[Piece] = []
    pending: list[Metric] = []
    for metric in registry.collect():
        if isinstance(metric, CellFamily):
            if pending:
                out.append(Piece(generate_latest(_Families(pending))))
                pending = []
            out.append(metric.piece())
        else:
            pending.append(metric)
    if pending:
        out.append(Piece(generate_latest(_Families(pending))))
    return out


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def exposition_app(registry: Any) -> WSGIApp:
    """A WSGI app serving :func:`generate` of ``registry``: text format 0.0.4 whatever the
    ``Accept`` header asks (Prometheus lists it among the formats it takes), gzip when the
    client accepts it, ``name[]`` to restrict the families (as prometheus-client does)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") == "OPTIONS":
            start_response("200 OK", [("Allow", "OPTIONS,GET")])
            return [b""]
        params = parse_qs(environ.get("QUERY_STRING", ""))
        source = registry
        if "name[]" in params:
            source = registry.restricted_registry(params["name[]"])
        pieces = generate_pieces(source)
        headers = [("Content-Type", CONTENT_TYPE)]
        encodings = environ.get("HTTP_ACCEPT_ENCODING", "")
        if "gzip" in [e.split(";")[0].strip() for e in encodings.split(",")]:
            chunks = gzip_pieces(pieces)
            headers.append(("Content-Encoding", "gzip"))
        else:
            chunks = [p.data for p in pieces]
        # Written a block at a time (never copied into one buffer), so the length is given here.
        headers.append(("Content-Length", str(sum(map(len, chunks)))))
        start_response("200 OK", headers)
        return write_blocks(chunks)

    return app


#: Bytes a response is written in at most (pieces are joined up to this size, a larger piece
#: is written alone): see :func:`write_blocks`.
WRITE_BLOCK = 8 << 20


def write_blocks(chunks: Sequence[bytes], block: int = WRITE_BLOCK) -> Iterator[bytes]:
    """``chunks`` joined into as few writes of up to ``block`` bytes as they allow, one block
    in memory at a time.

    Each write costs the server thread the GIL a few times (wsgiref's Python between the
    ``sendall`` calls), and while the consumer thread runs, each time waits for the
    interpreter's switch interval (5 ms): the 77 pieces of a gzip scrape of 10,000 cells took
    0.3 s to write against a busy thread, joined into one write 0.05 s.

    >>> [len(b) for b in write_blocks([b"ab", b"c", b"defg", b"h"], block=4)]
    [3, 4, 1]
    """
    run: list[bytes] = []
    size = 0
    for chunk in chunks:
        if run and size + len(chunk) > block:
            yield run[0] if len(run) == 1 else b"".join(run)
            run, size = [], 0
        run.append(chunk)
        size += len(chunk)
    if run:
        yield run[0] if len(run) == 1 else b"".join(run)
