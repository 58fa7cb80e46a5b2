"""Request parameters on the hot API routes without a DRF serializer per request (issue 18,
bench/README.md "Serving at web speed").

Building a serializer costs a request more than the rest of its view: DRF deep-copies the
declared fields on every instantiation. The views' serializers stay the contract: the
OpenAPI schema is generated from them, and every refusal comes from them. A view passes a
*fast reader* beside its serializer: a function that accepts only well-formed, common input
(ASCII text, plain digits, the usual boolean spellings) and returns exactly the values the
serializer would validate. Anything else, every invalid input included and anything the
reader is unsure of, raises :class:`Unsure` and goes to the serializer, so the 400 body, its
messages and codes are DRF's own. ``tests/core/test_params.py`` checks both agree on
generated input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rest_framework import serializers

_TRUE = frozenset(v for v in serializers.BooleanField.TRUE_VALUES if isinstance(v, str))
_FALSE = frozenset(v for v in serializers.BooleanField.FALSE_VALUES if isinstance(v, str))


class Unsure(Exception):  # noqa: N818 - a signal, not an error
    """The fast reader cannot vouch for this input: the serializer decides."""


def validated_params(serializer_class: type[serializers.Serializer], data: Any,
                     fast: Callable[[Any], dict[str, Any]] | None = None) -> Mapping[str, Any]:
    """``fast(data)`` when it vouches for the input, else the serializer's validated data
    (raising its ``ValidationError``, the API's 400)."""
    if fast is not None:
        try:
            return fast(data)
        except Unsure:
            pass
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def plain_text(value: Any, max_length: int) -> str:
    """A text DRF's ``StrictCharField`` keeps as it is: ASCII, no NUL, not blank or spaces
    alone, no surrounding spaces (so trimming or not gives the same), within the length."""
    if (type(value) is not str or not value or len(value) > max_length or not value.isascii()
            or "\x00" in value or value.strip() != value):
        raise Unsure
    return value


def query_text(query: Mapping[str, Any], name: str, max_length: int) -> str:
    """A required text query parameter (its last value, as DRF reads a ``QueryDict``)."""
    return plain_text(query.get(name), max_length)


def query_int(query: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    """An optional integer query parameter written in plain digits, within bounds."""
    if name not in query:
        return default
    value = query.get(name)
    if type(value) is not str or not 0 < len(value) <= 6 or not value.isascii() \
            or not value.isdigit():
        raise Unsure
    number = int(value)
    if not low <= number <= high:
        raise Unsure
    return number


def query_bool(query: Mapping[str, Any], name: str, default: bool) -> bool:
    """An optional boolean query parameter in one of DRF's spellings (``true``, ``0``...)."""
    if name not in query:
        return default
    value = query.get(name)
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Unsure


def body_int(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    """An optional JSON integer (not a boolean, a float or a string), within bounds."""
    if name not in body:
        return default
    value = body[name]
    if type(value) is not int or not low <= value <= high:
        raise Unsure
    return value


def body_texts(body: Mapping[str, Any], name: str, *, max_items: int, max_length: int,
               min_items: int = 0, default: list[str] | None = None) -> list[str]:
    """A JSON list of plain texts (:func:`plain_text`); absent: ``default`` when given."""
    if name not in body:
        if default is None:
            raise Unsure
        return list(default)
    values = body[name]
    if type(values) is not list or not min_items <= len(values) <= max_items:
        raise Unsure
    return [plain_text(value, max_length) for value in values]


def json_object(data: Any) -> Mapping[str, Any]:
    """A parsed JSON object body (a form-encoded or other body: the serializer decides)."""
    if type(data) is not dict:
        raise Unsure
    return data
