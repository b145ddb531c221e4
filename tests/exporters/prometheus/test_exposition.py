"""The bulk exposition writer: the same samples as prometheus-client's, promtool-clean, served
with gzip and ``name[]``, label sets formatted once per cell."""

from __future__ import annotations

import gzip
import itertools
import math
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from tests.exporters.prometheus.test_collector import DIMS, make_state
from tests.exporters.prometheus.test_health_collector import HIERARCHY, NOW
from tests.exporters.prometheus.test_health_collector import _profile as health_profile
from tests.exporters.prometheus.test_health_collector import _state as health_state
from tests.helpers import promtool_check_metrics
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.exporters.prometheus.cell_collector import CellCollector
from tilewatch.exporters.prometheus.cell_labels import CellLabels, label_string, label_strings
from tilewatch.exporters.prometheus.exposition import (
    CellFamily,
    exposition_app,
    format_values,
    generate,
    generate_pieces,
    write_blocks,
)
from tilewatch.exporters.prometheus.health_collector import HealthCollector

Parsed = dict[str, tuple[str, str, list[tuple[str, frozenset[tuple[str, str]], float]]]]


def parse(text: str) -> Parsed:
    """Families by name: type, help and samples sorted by (name, labels); NaN as a string."""
    out: Parsed = {}
    for fam in text_string_to_metric_families(text):
        samples = sorted(
            ((s.name, frozenset(s.labels.items()), s.value) for s in fam.samples),
            key=lambda s: (s[0], sorted(s[1])),
        )
        out[fam.name] = (fam.type, fam.documentation, samples)
    return out


def assert_same(a: Parsed, b: Parsed) -> None:
    assert a.keys() == b.keys()
    for name in a:
        (ta, da, sa), (tb, db, sb) = a[name], b[name]
        assert (ta, da, len(sa)) == (tb, db, len(sb)), name
        for (na, la, va), (nb, lb, vb) in zip(sa, sb, strict=True):
            assert (na, la) == (nb, lb)
            assert va == vb or (math.isnan(va) and math.isnan(vb)), (na, la, va, vb)


def odd_state() -> ReplicaState:
    """Cells whose label values need escaping: quote, backslash, newline, braces, comma."""
    state = ReplicaState(CellSettings(dimensions=DIMS, window_seconds=10, grace_seconds=0))
    keys = [("m", 'q"x', "a\\b"), ("m", "new\nline", "{},="), ("m\u00e9", "x", "y")]
    state.apply(("t", 0), keys, np.array([1.0, 2.0, 3.0]), np.array([0.1, 2.5e7, -2.5]), 3)
    state.apply(("t", 0), keys[:1], np.array([30.0]), np.array([0.5]), 4)
    state.refresh()
    return state


def registries() -> dict[str, CollectorRegistry]:
    out = {}
    for name, state in (("spine", make_state()), ("odd", odd_state())):
        reg = CollectorRegistry()
        reg.register(CellCollector(state.snapshot, DIMS))
        reg.register(HealthCollector(state.snapshot, DIMS, HIERARCHY, clock=lambda: NOW))
        out[name] = reg
    drifted = health_state(health_profile())
    reg = CollectorRegistry()
    reg.register(CellCollector(drifted.snapshot, DIMS))
    reg.register(HealthCollector(drifted.snapshot, DIMS, HIERARCHY, clock=lambda: NOW))
    out["drift"] = reg
    return out


@pytest.mark.parametrize("name", ["spine", "odd", "drift"])
def test_the_writer_gives_the_samples_prometheus_client_gives(name: str) -> None:
    registry = registries()[name]
    ours = generate(registry).decode()
    theirs = generate_latest(registry).decode()
    assert ours != theirs  # the bulk path was taken (labels in declaration order)
    assert_same(parse(ours), parse(theirs))
    assert len(parse(ours)) > 20


@pytest.mark.prometheus
@pytest.mark.parametrize("name", ["odd", "drift"])
def test_promtool_check_metrics_accepts_the_writer(promtool_bin: str, name: str) -> None:
    text = generate(registries()[name]).decode()
    assert promtool_check_metrics(promtool_bin, text) == (0, "", "")


def test_values_read_back_as_the_same_floats_as_prometheus_client_writes_them() -> None:
    values = [0.0, -0.0, 0.1, 1 / 3, 999999.0, 1e6, 1234567.5, 1e22, -1e7, 5e-324, 1e300]
    values += [1767225600.125, 0.1 + 0.2, -123456789.0]
    ours = format_values(np.array([*values, math.inf, -math.inf, math.nan]))
    assert ours[-3:] == ["+Inf", "-Inf", "NaN"]
    for text, value in zip(ours, values, strict=False):
        assert float(text) == float(floatToGoString(value)) == value
        assert math.copysign(1, float(text)) == math.copysign(1, value)
    # the one difference: Go's exponent from a million up (prometheus-client follows Go)
    assert (ours[5], floatToGoString(1e6)) == ("1000000.0", "1e+06")


def test_values_are_written_as_repr_writes_them_at_every_magnitude() -> None:
    """The bulk path (orjson) and the one-by-one path (small magnitudes) together write
    exactly ``repr``: random bit patterns (every exponent, subnormals), decimals, integers,
    timestamps, values around the 1e-4 boundary."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**63, 100_000, dtype=np.int64).view(np.float64)
    decimals = np.round(rng.random(20_000) * 10.0 ** rng.integers(-8, 20, 20_000), 3)
    boundary = np.nextafter(1e-4, np.array([0.0, 1.0] * 50)) * rng.choice([1.0, 10.0], 100)
    values = np.concatenate(
        [
            bits[np.isfinite(bits)],
            decimals,
            rng.integers(-(2**60), 2**60, 10_000).astype(np.float64),
            1.7e9 + rng.random(10_000) * 1e6,
            rng.random(10_000) * 10.0 ** rng.integers(-320, -2, 10_000),
            boundary,
            [1e-4, 1e-5, 0.0, 1e16, 1e22, 5e-324, 2.0**53],
        ]
    )
    values = np.concatenate([values, -values])
    assert format_values(values) == [repr(v) for v in values.tolist()]
    assert format_values(values[::7]) == [repr(v) for v in values[::7].tolist()]  # a strided view


def test_cell_labels_are_formatted_once_and_follow_new_cells() -> None:
    labels = CellLabels(["model", "segment"])
    keys = [("m", "a"), ("m", "b")]
    first = labels.strings(keys)
    kept = first[0]
    keys.append(("m", 'c"'))
    second = labels.strings(keys)
    assert second[0] is kept
    assert second == ['model="m",segment="a"', 'model="m",segment="b"', 'model="m",segment="c\\""']
    other = [("n", "z")]  # another registry's key list: formatted afresh
    assert labels.strings(other) == ['model="n",segment="z"']


def test_label_strings_in_bulk_are_label_string_of_each_key() -> None:
    names = ["model", "segment", "region"]
    plain = [("m", "a", "x"), ("m", "{}", "{0}"), ("m", "%s", "")]
    odd = [*plain, ('q"x', "a\\b", "new\nline")]
    for keys in (plain, odd, []):
        assert label_strings(names, keys) == [label_string(names, k) for k in keys]
    assert label_strings(["a"], [(1,)]) == ['a="1"']  # not a string: written with str
    with pytest.raises(ValueError):
        label_strings(names, [("m", "a")])


def test_cell_labels_format_only_the_cells_written() -> None:
    """With the series budget most cells are never exported: their label string is never
    formatted (the registry's keys are not copied either)."""
    labels = CellLabels(["model", "segment"])
    keys = [("m", f"s{i}") for i in range(1000)]
    fam = CellFamily("tilewatch_events", "Events.", "counter")
    fam.add_cells(labels, keys, [3, 997], [1.0, 2.0])
    assert fam.text().splitlines()[2:] == [
        'tilewatch_events_total{model="m",segment="s3"} 1.0',
        'tilewatch_events_total{model="m",segment="s997"} 2.0',
    ]
    formatted = [i for i, s in enumerate(labels._strings) if s]
    assert formatted == [3, 997]
    assert all(k is keys[i] for i, k in enumerate(labels._keys))


def test_cell_family_samples_match_its_text() -> None:
    labels = CellLabels(["model"])
    fam = CellFamily("tilewatch_component_score", "Score.", "gauge", ["component", "model"])
    keys = [("m",), ("n",)]
    fam.add_cells(labels, keys, [1, 0], np.array([0.5, 0.25]), before=(("component", "c"),))
    fam.add_metric(["d", "m"], 1.0)
    text = fam.text()
    assert text.splitlines()[2:] == [
        'tilewatch_component_score{component="c",model="n"} 0.5',
        'tilewatch_component_score{component="c",model="m"} 0.25',
        'tilewatch_component_score{component="d",model="m"} 1.0',
    ]
    assert [(s.labels, s.value) for s in fam.samples] == [
        ({"component": "c", "model": "n"}, 0.5),
        ({"component": "c", "model": "m"}, 0.25),
        ({"component": "d", "model": "m"}, 1.0),
    ]
    with pytest.raises(AttributeError):
        fam.samples = [fam.samples[0]]


def test_cell_rows_as_an_array_or_a_list_write_the_same_family() -> None:
    """Rows are kept as given and converted when written: an index array and a list give the
    same text and samples, and only the written cells' label strings are formatted."""
    keys = [("m", f"s{i}") for i in range(6)]
    texts, samples = [], []
    for rows in ([4, 1, 2], np.array([4, 1, 2])):
        labels = CellLabels(["model", "segment"])
        fam = CellFamily("tilewatch_events", "Events.", "counter")
        fam.add_cells(labels, keys, rows, np.array([1.0, 2.0, 3.0]))
        texts.append(fam.text())
        samples.append([(s.labels["segment"], s.value) for s in fam.samples])
        assert [i for i, s in enumerate(labels._strings) if s] == [1, 2, 4]
    assert texts[0] == texts[1] and samples[0] == samples[1]
    assert samples[0] == [("s4", 1.0), ("s1", 2.0), ("s2", 3.0)]


def call(app: Any, query: str = "", encoding: str = "") -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": "GET", "QUERY_STRING": query, "HTTP_ACCEPT_ENCODING": encoding}
    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_the_app_serves_text_gzip_and_name_filters() -> None:
    registry = registries()["spine"]
    app = exposition_app(registry)
    status, headers, body = call(app)
    assert status == "200 OK"
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert body == generate(registry)
    assert headers["Content-Length"] == str(len(body))
    assert len(generate_pieces(registry)) > 10
    environ = {"REQUEST_METHOD": "GET", "QUERY_STRING": "", "HTTP_ACCEPT_ENCODING": ""}
    writes = list(app(environ, lambda status, headers: None))
    assert len(writes) == 1 and writes[0] == body  # small pieces: one write
    _s, zheaders, zbody = call(app, encoding="deflate, gzip;q=1.0")
    assert zheaders["Content-Encoding"] == "gzip" and gzip.decompress(zbody) == body
    assert zheaders["Content-Length"] == str(len(zbody))
    _s, _h, only = call(app, query="name[]=tilewatch_events_total&name[]=tilewatch_kafka_up")
    names = {f.name for f in text_string_to_metric_families(only.decode())}
    assert names == {"tilewatch_events", "tilewatch_kafka_up"}
    events = parse(only.decode())["tilewatch_events"]
    assert events == parse(body.decode())["tilewatch_events"]


def test_window_families_are_formatted_once_per_reported_window() -> None:
    """A closed window's families keep their text across scrapes until the reported window
    (or the set of exported cells) changes; the exposition stays what a fresh writer gives."""
    state = health_state(health_profile())
    collector = CellCollector(state.snapshot, DIMS)
    registry = CollectorRegistry()
    registry.register(collector)

    def window_families() -> dict[str, CellFamily]:
        return {
            f.name: f
            for f in registry.collect()
            if isinstance(f, CellFamily) and f.name.startswith("tilewatch_window_")
        }

    first = generate(registry)
    cached = window_families()
    assert "tilewatch_window_score_psi" in cached and "tilewatch_window_events" in cached
    assert all(f.kept is not None for f in cached.values())
    assert generate(registry) == first
    fresh = CollectorRegistry()
    fresh.register(CellCollector(state.snapshot, DIMS))
    assert generate(fresh) == first
    # A new event in the open window: counts change, the reported window does not.
    state.apply(("t", 0), [("m", "a", "x")], np.array([16.0]), np.array([0.5]), 10_000)
    assert all(f.kept is not None for f in window_families().values())
    # The next window closes: every window family is formatted again.
    state.apply(("t", 0), [("m", "a", "x")], np.array([35.0]), np.array([0.5]), 10_001)
    state.refresh()
    assert all(f.kept is None for f in window_families().values())
    assert_same(parse(generate(registry).decode()), parse(generate_latest(registry).decode()))


@pytest.mark.parametrize("block", [1, 5, 8, 100])
def test_responses_are_written_in_few_bounded_blocks(block: int) -> None:
    """Pieces are joined up to ``block`` bytes per write, in order; a larger piece is
    written alone, never split or copied."""
    rng = np.random.default_rng(block)
    chunks = [
        bytes(rng.integers(97, 123, int(n)).astype(np.uint8)) for n in rng.integers(0, 12, 40)
    ]
    blocks = list(write_blocks(chunks, block=block))
    assert b"".join(blocks) == b"".join(chunks)
    big = [c for c in chunks if len(c) > block]
    assert all(len(b) <= block or any(b is c for c in big) for b in blocks)
    # As few writes as greedy joining in order allows: no two neighbours would fit one block.
    assert all(len(a) + len(b) > block for a, b in itertools.pairwise(blocks))
    assert list(write_blocks([], block=block)) == []
