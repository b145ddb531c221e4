"""A delta unit's columns and binary form: the same plain data back, anything malformed refused."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tilewatch.aggregators import CellRegistry, CellSettings, PartitionState
from tilewatch.aggregators.state.partition_delta import partition_delta
from tilewatch.aggregators.state.unit_columns import UnitColumns
from tilewatch.streams.changelog.unit_codec import MAGIC, unit_from_bytes, unit_to_bytes

SETTINGS = CellSettings(
    dimensions=("segment",), window_seconds=10, grace_seconds=0, rolling_events=50
)


def _partition() -> PartitionState:
    rng = np.random.default_rng(3)
    part = PartitionState(CellRegistry(SETTINGS), offset=0)
    part.hist_bins = {"latency": 62, "score": 10}
    for t0 in (0, 15, 40):
        n = 3000
        keys = [("m", f"s{i}") for i in rng.integers(0, 300, n)]
        part.apply(
            keys,
            np.sort(rng.uniform(t0, t0 + 25, n)),
            rng.random(n),
            bins={"latency": rng.integers(-1, 62, n), "score": rng.integers(0, 10, n)},
        )
    return part


def test_every_unit_reads_back_as_its_plain_data() -> None:
    units = list(partition_delta(_partition(), None).iter_columns())
    kinds = {name.split("/")[1][0] for name, _u in units}
    assert kinds == {"c", "w"}
    hists = 0
    for _name, unit in units:
        data = unit_to_bytes(unit)
        assert data.startswith(MAGIC)
        back = unit_from_bytes(data).plain()
        # What the JSON form would have restored, value for value.
        assert back == orjson.loads(orjson.dumps(unit.plain()))
        hists += len(back.get("hists", {}))
        for rows in back.values():
            assert rows  # no empty sections are written
    assert hists  # latency histograms went through too


def test_rows_keep_their_cell_whatever_the_order() -> None:
    u = UnitColumns([("m", "a"), ("m", "b"), ("m", 'q"\x1f')])
    u.add(
        "rows",
        pos=np.array([2, 0]),
        c=np.array([4, 5]),
        m=np.array([1.5, 2.5]),
        s=np.array([0.0, 1.0]),
    )
    u.add("hist:latency", pos=np.array([1]), table=np.array([[0, 3, 255]], dtype=np.uint8))
    u.add(
        "rolling",
        pos=np.array([0, 2]),
        total=np.array([7, 60]),
        lengths=np.array([1, 2]),
        means=np.array([1.0, 2.0, 3.0]),
        m2s=np.array([0.5, 0.25, 0.125]),
    )
    assert unit_from_bytes(unit_to_bytes(u)).plain() == {
        "rows": [[["m", 'q"\x1f'], 4, 1.5, 0.0], [["m", "a"], 5, 2.5, 1.0]],
        "hists": {"latency": [[["m", "b"], [0, 3, 255]]]},
        "rolling": [
            [["m", "a"], 7, [1.0], [0.5]],
            [["m", 'q"\x1f'], 60, [2.0, 3.0], [0.25, 0.125]],
        ],
    }


def test_a_table_of_another_dtype_is_refused_when_written() -> None:
    u = UnitColumns([("m", "a")])
    with pytest.raises(ValueError, match="dtype"):
        u.add("hist:x", pos=np.array([0]), table=np.array([[1.0]]))
    with pytest.raises(ValueError, match="columns"):
        u.add("rows", pos=np.array([0]), c=np.array([1]))


def _good() -> bytes:
    u = UnitColumns([("m", "a"), ("m", "b")])
    u.add(
        "cells",
        pos=np.array([0, 1]),
        events=np.array([1, 2]),
        late=np.array([0, 0]),
        last=np.array([1.0, 2.0]),
    )
    return unit_to_bytes(u)


def _with_header(change: object) -> bytes:
    data = _good()
    size = int.from_bytes(data[4:8], "little")
    header = orjson.loads(data[8 : 8 + size])
    change(header)  # type: ignore[operator]
    new = orjson.dumps(header)
    return data[:4] + len(new).to_bytes(4, "little") + new + data[8 + size :]


def _set(path: tuple[object, ...], value: object) -> object:
    def change(header: dict[str, object]) -> None:
        target: object = header
        for p in path[:-1]:
            target = target[p]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]

    return change


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{}", "not a binary unit"),
        (_good()[:-1], "past the end"),
        (_good() + b"\0", "after the last column"),
        (_good()[:10], "header"),
        (_with_header(_set(("sections", 0, 0), "bogus")), "unknown section"),
        (_with_header(_set(("sections", 0, 1, 1, 1), "<f8")), "bad column"),
        (_with_header(_set(("sections", 0, 1, 1, 1), "|O")), "bad column"),
        (_with_header(_set(("sections", 0, 1, 1, 2), [-1])), "bad column"),
        (_with_header(_set(("sections", 0, 1, 3, 2), [3])), "past the end|different lengths"),
        (_with_header(_set(("keys",), 3)), "header|key table"),
        (_with_header(_set(("sections", 0, 1), [])), "columns"),
    ],
)
def test_malformed_binary_units_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        unit_from_bytes(data)


def test_positions_outside_the_key_table_are_refused() -> None:
    u = UnitColumns([("m", "a")])
    u.add(
        "cells", pos=np.array([1]), events=np.array([1]), late=np.array([0]), last=np.array([1.0])
    )
    with pytest.raises(ValueError, match="outside the key table"):
        unit_from_bytes(unit_to_bytes(u))
    bad_keys = UnitColumns([("m", 1)])  # type: ignore[list-item]
    bad_keys.add(
        "cells", pos=np.array([0]), events=np.array([1]), late=np.array([0]), last=np.array([1.0])
    )
    with pytest.raises(ValueError, match="key table"):
        unit_from_bytes(unit_to_bytes(bad_keys))
