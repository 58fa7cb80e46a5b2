"""JSON in and out with orjson where it gives the same answer as DRF, and DRF's own code
everywhere else.

Decoding an ingestion batch of 1,000 events with the standard library costs ~10 ms of the
request; orjson does it in a fraction. Anything orjson declines or reads differently
(integers beyond 64 bits, lone surrogates, a charset other than UTF-8, ``indent``
requested...) goes through DRF's parser or renderer, so the answers, errors included, are
DRF's.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from rest_framework.fields import DateTimeField
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer

_UTF8 = {"utf-8", "utf8"}
#: orjson reads an integer of 2**64 or more as a float; Python keeps it exact. Twenty digits
#: in a row (in a number or inside a string) send the body to DRF's parser. Found by mapping
#: every digit to "0" and everything else to "x" (a regex takes ten times as long).
_DIGITS_AS_ZEROS = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))
_TWENTY_DIGITS = b"0" * 20


def _has_long_digit_run(body: bytes) -> bool:
    return _TWENTY_DIGITS in body.translate(_DIGITS_AS_ZEROS)


class FastJSONParser(JSONParser):
    """DRF's ``JSONParser`` with orjson for the common case (UTF-8, valid, 64-bit ints)."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: dict[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        body = stream.read() if stream is not None else b""
        if str(encoding).lower() in _UTF8 and not _has_long_digit_run(body):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass  # DRF decides, and words the error
        return super().parse(io.BytesIO(body), media_type, parser_context)


class FastJSONRenderer(JSONRenderer):
    """DRF's ``JSONRenderer`` output for plain data (dicts, lists, strings, integers), made
    by orjson; anything else (an ``indent`` asked for, types DRF's encoder converts) is
    rendered by DRF. For responses built from such data only: orjson writes a NaN float as
    ``null`` where DRF refuses it."""

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict[str, Any] | None = None) -> bytes:
        if (data is None or not self.compact or self.ensure_ascii
                or self.get_indent(accepted_media_type, renderer_context or {}) is not None):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            rendered = orjson.dumps(data, option=orjson.OPT_PASSTHROUGH_DATETIME
                                    | orjson.OPT_PASSTHROUGH_DATACLASS
                                    | orjson.OPT_PASSTHROUGH_SUBCLASS)
        except TypeError:  # a type DRF's encoder knows (datetime, Decimal, lazy text...)
            return super().render(data, accepted_media_type, renderer_context)
        # Like DRF: U+2028/U+2029 escaped, so the output is also valid JavaScript.
        return rendered.replace("\u2028".encode(), b"\\u2028").replace(
            "\u2029".encode(), b"\\u2029")


def api_datetime(value: datetime | None) -> str | None:
    """A date and time as the API writes it in a hand-built body (DRF's ``DateTimeField``:
    ISO 8601, in the current time zone), or ``None``."""
    return DateTimeField().to_representation(value) if value else None


class JSONContentNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation, skipped where its answer is known (issue 18): the API
    renders JSON only, so a request that accepts anything or JSON (what clients send) gets
    the one renderer without its ``Accept`` header being parsed and ranked. Any other
    header, several renderers or a ``?format=`` go through DRF's own (a 406 stays a 406)."""

    _KNOWN = frozenset({"", "*/*", "application/json"})

    def select_renderer(self, request: Any, renderers: list[Any],
                        format_suffix: str | None = None) -> tuple[Any, str]:
        if (len(renderers) == 1 and format_suffix is None
                and request.META.get("HTTP_ACCEPT", "") in self._KNOWN
                and self.settings.URL_FORMAT_OVERRIDE not in request.query_params):
            renderer = renderers[0]
            if renderer.media_type == "application/json":
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
