"""The orjson parser and renderer answer exactly as DRF's own, and fall back to them."""

from __future__ import annotations

import io
import json

import pytest
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

from apps.core.json import FastJSONParser, FastJSONRenderer

BODIES = [
    b'{"events": [{"event_id": "e1", "value": 1.5, "n": -3, "ok": true, "x": null}]}',
    b'{"big": 123456789012345678901234567890}',      # beyond 64 bits: orjson reads a float
    b'{"u64": 18446744073709551615, "i64": -9223372036854775808, "over": 9223372036854775808}',
    b'{"edge": 18446744073709551616}',
    '{"s": "caf\u00e9 \u2028 \U0001f600"}'.encode(),
    b'{"lone": "\\ud800"}',                           # lone surrogate: orjson declines
    b'{"dup": 1, "dup": 2}',
    b'[1e400]',
]
INVALID = [b"", b"{", b'{"a": NaN}', b"\xff\xfe", b'{"a": Infinity}', b"\xef\xbb\xbf{}"]


@pytest.mark.parametrize("body", BODIES)
def test_parser_gives_drfs_result(body: bytes) -> None:
    assert FastJSONParser().parse(io.BytesIO(body)) == JSONParser().parse(io.BytesIO(body))


@pytest.mark.parametrize("body", INVALID)
def test_parser_rejects_what_drf_rejects(body: bytes) -> None:
    with pytest.raises(ParseError) as drf:
        JSONParser().parse(io.BytesIO(body))
    with pytest.raises(ParseError) as fast:
        FastJSONParser().parse(io.BytesIO(body))
    assert str(fast.value) == str(drf.value)


def test_parser_honours_other_charsets() -> None:
    body = '{"t": "é"}'.encode("latin-1")
    context = {"encoding": "latin-1"}
    assert FastJSONParser().parse(io.BytesIO(body), parser_context=context) == {"t": "é"}


@pytest.mark.parametrize("data", [
    {"results": [{"index": 0, "status": "accepted", "reason": None}], "accepted": 1,
     "dropped_properties": {"référent": 2}},
    {"line": "a\u2028b\u2029c"},
    {"big": 2**70},
    [],
])
def test_renderer_output_is_drfs(data: object) -> None:
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)


def test_renderer_falls_back_for_types_drf_converts() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    data = {"at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "d": Decimal("1.10")}
    assert FastJSONRenderer().render(data) == JSONRenderer().render(data)
    assert json.loads(FastJSONRenderer().render(data))["at"] == "2026-01-02T03:04:05.678000Z"


def test_renderer_indents_like_drf() -> None:
    data = {"a": [1, 2]}
    media = "application/json; indent=2"
    assert FastJSONRenderer().render(data, media) == JSONRenderer().render(data, media)
