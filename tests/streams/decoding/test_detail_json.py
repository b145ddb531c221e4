"""The ``tilewatch.detail`` of a rejection shows what the producer sent as JSON (``true``,
``"0.7"``, ``null``), not as Python reprs (``True``, ``'0.7'``, ``None``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.streams.decoding.test_decode import decode_one, event


@pytest.mark.parametrize(
    ("changes", "sent"),
    [
        ({"score": True}, True),
        ({"score": "0.7"}, "0.7"),
        ({"score": [0.7]}, [0.7]),
        ({"score": {"p": 0.7}}, {"p": 0.7}),
        ({"model": ""}, ""),
        ({"model": 7}, 7),
        ({"region": {"name": "eu-west"}}, {"name": "eu-west"}),
        ({"timestamp": False}, False),
        ({"timestamp": "yesterday"}, "yesterday"),
        ({"score": "é" * 80}, None),  # cut to 60 characters: only the start is checked
    ],
)
def test_detail_shows_the_value_as_json(changes: dict[str, Any], sent: Any) -> None:
    batch = decode_one(event(**changes))
    (rejected,) = batch.rejected
    detail = rejected.detail
    found = detail.rsplit("got ", 1)[1]
    assert "True" not in found and "False" not in found and "None" not in found, detail
    assert "'" not in found, detail
    if sent is None and "é" in str(changes):
        assert found.startswith('"ééé') and found.endswith("..."), detail
        assert len(found) == 60
        return
    assert json.loads(found) == sent, detail
